"""The composition root: builds every part of a running ccstream from one Settings object, once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from api.auth import ApiAuth, JWTAuthenticator, parse_go_duration
from api.config import Settings, secret
from projections.db import reader_engine, writer_engine
from projections.jobdb import JobDatabaseProjection
from streams.clusters import ClusterRegistry
from streams.ingest.intake import JobIntake
from streams.log import EventLog, MemoryEventLog, SQLiteEventLog
from streams.runtime import AgentRunner

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """Something needed to start is missing or unusable; the message says what to do."""


def open_log(settings: Settings) -> EventLog:
    """The event log the settings name."""
    if settings.event_log.kind == "memory":
        return MemoryEventLog()
    return SQLiteEventLog(settings.event_log.path)


def build_authenticator(settings: Settings) -> JWTAuthenticator | None:
    """The JWT verifier from `JWT_PUBLIC_KEY`/`JWT_PRIVATE_KEY`; None when authentication is disabled."""
    public, private = secret("JWT_PUBLIC_KEY"), secret("JWT_PRIVATE_KEY")
    if not public:
        if settings.main.disable_authentication:
            return None
        raise StartupError("JWT_PUBLIC_KEY is not set: run `ccstream init` or put the key pair in .env")
    raw_age = settings.auth.jwts.max_age
    max_age = parse_go_duration(raw_age) if raw_age not in ("", "0") else timedelta(days=3650)
    try:
        return JWTAuthenticator(public, private or None, max_age)
    except ValueError as exc:
        raise StartupError(f"JWT keys from the environment are unusable: {exc}") from None


@dataclass
class Services:
    """Everything the API serves from; built by `build_services`, started and closed explicitly."""

    settings: Settings
    log: EventLog
    clusters: ClusterRegistry
    writer: Engine
    reader: Engine
    projection: JobDatabaseProjection
    runner: AgentRunner
    intake: JobIntake
    auth: ApiAuth
    started: bool = field(default=False)

    def start(self) -> None:
        """Catch the read model up with the log, then keep it caught up in the background."""
        self.runner.run_until_caught_up()
        self.runner.start()
        self.started = True

    def close(self) -> None:
        """Stop agents, flush the log, release files."""
        self.runner.stop()
        self.log.close()
        self.writer.dispose()
        self.reader.dispose()

    async def visible(self, position: int) -> bool:
        """Wait until the job database shows the event at `position` (read-your-writes)."""
        return await self.runner.wait_for_async(position, self.settings.intake.read_your_writes_timeout)


def build_services(settings: Settings) -> Services:
    """Wire log, clusters, read model, runner, intake and auth from settings."""
    try:
        clusters = ClusterRegistry.load(Path(settings.archive.path))
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    authenticator = build_authenticator(settings)
    event_log = open_log(settings)
    db_path = Path(settings.main.db)
    writer = writer_engine(db_path)
    projection = JobDatabaseProjection(writer)
    reader = reader_engine(db_path)
    runner = AgentRunner(event_log, projection)
    intake = JobIntake(event_log, clusters, settings.intake)
    auth = ApiAuth(authenticator, settings.main.api_allowed_ips, settings.main.disable_authentication)
    return Services(settings, event_log, clusters, writer, reader, projection, runner, intake, auth)

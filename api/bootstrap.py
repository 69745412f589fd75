"""The composition root: builds every part of a running ccstream from one Settings object, once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from api.auth import ApiAuth, JWTAuthenticator, Principal, parse_go_duration
from api.config import Settings, secret
from archive.agentstate import AgentStateStore
from archive.archiver import Archiver
from archive.backends.factory import open_archive
from archive.backends.protocol import ArchiveBackend
from metricstore.http_source import HttpMetricSource
from metricstore.nats import NatsMetricSubscriber
from metricstore.settings import NatsConnection
from metricstore.source import InProcessMetricSource, MetricSource
from metricstore.store import MetricStore
from projections import queries
from projections.db import DEFAULT_TUNING, SqliteTuning, reader_engine, writer_engine
from projections.jobdb import JobDatabaseProjection
from projections.lookup import JobLookup
from projections.userdir import UserDirectory
from streams.clusters import ClusterRegistry
from streams.deadletter import DeadLetterStore
from streams.ingest.intake import JobIntake
from streams.ingest.nats.client import NatsIngest, NatsOptions
from streams.ingest.nats.processor import NatsProcessor
from streams.ingest.nodestate import NodeHealth, NodeStateIntake
from streams.log import EventLog, MemoryEventLog, SQLiteEventLog
from streams.runtime import AgentRunner

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """Something needed to start is missing or unusable; the message says what to do."""


#: Seconds the server's job database projection waits for another writer of job.db. It also runs in the
#: log's writer thread (AgentRunner.apply_committed), where every append waits behind it; a longer hold
#: (`replay rebuild` swapping in a rebuilt file) fails the batch instead and leaves it to the agent's thread.
JOB_DATABASE_LOCK_WAIT = 1.0


def job_database_tuning(settings: Settings) -> SqliteTuning:
    """`main.db-config` as limits of the job database's connections; a key left at 0 keeps ccstream's default.

    cc-backend's sizing rule holds here too: the page cache is per connection, so up to
    `cache-size-mb` x `max-open-connections` (plus the writer's and the stop answers' lookups) may be used,
    and `soft-heap-limit-mb` should be at least that. Fewer read connections than `reads.workers` would
    leave read workers waiting for a connection instead of for work, so that is refused.
    """
    db = settings.main.db_config
    if db is None:
        return SqliteTuning(pool_timeout=settings.reads.timeout)
    max_open = db.max_open_connections or DEFAULT_TUNING.max_open
    if max_open < settings.reads.workers:
        raise StartupError(f"main.db-config.max-open-connections {max_open} is below reads.workers "
                           f"({settings.reads.workers}): every read worker needs a connection; raise it or "
                           "lower reads.workers")
    return SqliteTuning(
        cache_size_kib=db.cache_size_mb * 1024, soft_heap_limit_bytes=db.soft_heap_limit_mb * 1024 * 1024,
        busy_timeout_ms=db.busy_timeout_ms or DEFAULT_TUNING.busy_timeout_ms, max_open=max_open,
        max_idle=min(db.max_idle_connections or DEFAULT_TUNING.max_idle, max_open),
        max_idle_seconds=db.max_idle_time_minutes * 60.0, pool_timeout=settings.reads.timeout,
    )


def open_log(settings: Settings) -> EventLog:
    """The event log the settings name."""
    if settings.event_log.kind == "memory":
        return MemoryEventLog()
    return SQLiteEventLog(settings.event_log.path)


#: Lifetime of issued tokens when `auth.jwts.max-age` is unset or 0 (cc-backend's example configuration's).
DEFAULT_TOKEN_LIFETIME = "2000h"


def token_lifetime(settings: Settings) -> timedelta:
    """`auth.jwts.max-age`, or DEFAULT_TOKEN_LIFETIME: every token ccstream issues expires."""
    raw_age = settings.auth.jwts.max_age
    return parse_go_duration(raw_age if raw_age not in ("", "0") else DEFAULT_TOKEN_LIFETIME)


def build_authenticator(settings: Settings, users: UserDirectory | None = None) -> JWTAuthenticator | None:
    """The JWT verifier from `JWT_PUBLIC_KEY`/`JWT_PRIVATE_KEY`; None when authentication is disabled.

    With `users` (the server's user table), a token counts only for an existing account and only with
    the roles the account still has.
    """
    public, private = secret("JWT_PUBLIC_KEY"), secret("JWT_PRIVATE_KEY")
    if not public:
        if settings.main.disable_authentication:
            return None
        raise StartupError("JWT_PUBLIC_KEY is not set: run `ccstream init` or put the key pair in .env")
    lookup = None if users is None else _principal_lookup(users)
    try:
        return JWTAuthenticator(public, private or None, token_lifetime(settings), user_lookup=lookup,
                                validate_user=settings.auth.jwts.validateUser)
    except ValueError as exc:
        raise StartupError(f"JWT keys from the environment are unusable: {exc}") from None


def _principal_lookup(users: UserDirectory) -> Callable[[str], Principal | None]:
    def lookup(username: str) -> Principal | None:
        account = users.lookup(username)
        return None if account is None else Principal(account.username, account.roles, account.projects)

    return lookup


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
    #: The job rows stop_job answers with (plain sqlite3, off SQLAlchemy, on the intake's hot path).
    job_lookup: JobLookup
    started: bool = field(default=False)
    #: Node-state intake (REST `/api/nodestate/` and the NATS node-state subject).
    nodestate: NodeStateIntake | None = None
    #: Refused NATS messages; None when no `nats` section is configured.
    dead_letters: DeadLetterStore | None = None
    #: The NATS consumer; None unless `nats.address` and `main.api-subjects` are configured.
    nats: NatsIngest | None = None
    nats_processor: NatsProcessor | None = None
    #: The job archive backend (`archive.kind`).
    archive: ArchiveBackend | None = None
    #: The embedded metric store; None when `metric-store-external` names external ones.
    metric_store: MetricStore | None = None
    #: Where job metrics are read from: the embedded store or the external ones.
    metric_source: MetricSource | None = None
    #: The archiver agent's runner and its state file; None when `archiver.enabled` is false.
    archiver: AgentRunner | None = None
    agent_state: AgentStateStore | None = None
    #: Metric lines over NATS (`metric-store.nats-subscriptions`) into the embedded store.
    metric_nats: NatsMetricSubscriber | None = None

    def start(self) -> None:
        """Restore the metric store and start the agents; they catch up with the log in their own threads.

        Nothing waits for the catch-up: intake decides against the log, not the read model, so the server
        binds and answers at once, and a read model that is behind (or blocked on an event) cannot keep it
        from starting. Answers that must show a write wait for it as always (read-your-writes).
        """
        if self.metric_store is not None:
            self.metric_store.start()
        self.runner.start()
        if self.archiver is not None:
            self.archiver.start()
        self.started = True

    def runners(self) -> list[AgentRunner]:
        """Every agent's runner, the job database's first."""
        return [self.runner] + ([self.archiver] if self.archiver is not None else [])

    async def start_ingest(self) -> None:
        """Start the NATS consumer (on the server's event loop); it connects in the background."""
        if self.nats is not None:
            await self.nats.start()
        if self.metric_nats is not None:
            await self.metric_nats.start()

    async def stop_ingest(self) -> None:
        """Stop consuming NATS before the log closes."""
        if self.metric_nats is not None:
            await self.metric_nats.stop()
        if self.nats is not None:
            await self.nats.stop()

    def close(self) -> None:
        """Stop agents, flush the log and the metric store, release files."""
        timeout = self.settings.agents.stop_timeout
        if self.archiver is not None:
            self.archiver.stop(timeout)
        self.runner.stop(timeout)
        if self.metric_store is not None:
            self.metric_store.close()
        if self.agent_state is not None:
            self.agent_state.close()
        if self.dead_letters is not None:
            self.dead_letters.close()
        self.log.close()
        self.writer.dispose()
        self.reader.dispose()
        self.job_lookup.close()

    async def visible(self, position: int) -> bool:
        """Wait until the job database shows the event at `position` (read-your-writes).

        False at once while the job database is blocked on a failing event before it, or when the event was
        quarantined; else after `intake.read-your-writes-timeout` at most.
        """
        return await self.runner.wait_for_async(position, self.settings.intake.read_your_writes_timeout)

    def not_visible_because(self, position: int) -> str:
        """Why the job database does not show the event at `position` yet, for the answer that says so."""
        blocked_at, failures, last_error = self.runner.holdup()
        if self.runner.was_quarantined(position):
            return f"the job database skipped it (quarantined; see GET /api/admin/status): {last_error}"
        if self.runner.position >= position:
            return "the job database has applied it meanwhile"
        if blocked_at is not None and failures:
            return (f"the job database is held up at log position {blocked_at} "
                    f"(attempt {failures} of {self.runner.max_attempts}): {last_error}")
        return f"the job database is {position - self.runner.position} event(s) behind the log"


def nats_options(settings: Settings) -> NatsOptions | None:
    """The NATS consumer's options, or None when `nats.address` or `main.api-subjects` is missing."""
    nats, subjects = settings.nats, settings.main.api_subjects
    if nats is None or not nats.address or subjects is None:
        return None
    if not subjects.subject_job_event and not subjects.subject_node_state:
        return None
    js = nats.jetstream
    return NatsOptions(
        servers=[a.strip() for a in nats.address.split(",") if a.strip()],
        job_subject=subjects.subject_job_event, node_subject=subjects.subject_node_state, mode=nats.mode,
        username=nats.username, password=nats.password, creds_file=nats.creds_file_path,
        queue_group=nats.queue_group, job_concurrency=subjects.job_concurrency,
        node_concurrency=subjects.node_concurrency, connect_timeout=nats.connect_timeout,
        reconnect_wait=nats.reconnect_wait, max_reconnect_wait=nats.max_reconnect_wait, stream=js.stream,
        durable=js.durable, ack_wait=js.ack_wait, max_deliver=js.max_deliver, max_ack_pending=js.max_ack_pending,
        fetch_batch=js.fetch_batch, duplicate_window=js.duplicate_window, max_age=js.max_age, storage=js.storage,
        replicas=js.replicas,
    )


class ReadModelRunningJobs:
    """The metric store's retention port, answered by the job table: hosts whose data is still needed."""

    def __init__(self, reader: Engine) -> None:
        self.reader = reader

    def hosts_in_use(self, cluster: str) -> set[str]:
        with self.reader.connect() as conn:
            return queries.hosts_awaiting_archive(conn, cluster)


def build_metrics(settings: Settings, clusters: ClusterRegistry, reader: Engine) -> tuple[
    MetricStore | None, MetricSource
]:
    """The embedded metric store and its read port, or the external stores of `metric-store-external`."""
    if settings.metric_store_external:
        return None, HttpMetricSource(settings.metric_store_external, clusters.clusters())
    store = MetricStore(settings.metric_store, clusters.clusters(), running_jobs=ReadModelRunningJobs(reader))
    return store, InProcessMetricSource(store)


def build_metric_nats(settings: Settings, store: MetricStore | None) -> NatsMetricSubscriber | None:
    """The NATS subscriber of the embedded metric store, on the top-level `nats` connection."""
    subscriptions = settings.metric_store.nats_subscriptions
    if store is None or not subscriptions:
        return None
    connection = settings.metric_store.nats
    if connection is None and settings.nats is not None and settings.nats.address:
        connection = NatsConnection.model_validate({
            "address": settings.nats.address, "username": settings.nats.username or None,
            "password": settings.nats.password or None, "creds-file-path": settings.nats.creds_file_path or None,
        })
    return NatsMetricSubscriber(store, subscriptions, connection)


def build_archiver(settings: Settings, services: Services) -> None:
    """The archiver agent over the log, with its retries run whenever it is idle."""
    if not settings.archiver.enabled or services.archive is None or services.metric_source is None:
        return
    services.agent_state = AgentStateStore(settings.archiver.state_path)
    agent = Archiver(
        services.log, services.archive, services.metric_source, services.clusters, services.agent_state,
        max_attempts=settings.archiver.max_attempts, backoff=settings.archiver.retry_backoff,
        give_way_to=services.intake.busy,
    )
    services.archiver = AgentRunner(services.log, agent, batch_size=100, on_idle=agent.retry_due,
                                    types={"job.stopped"}, max_attempts=settings.agents.max_attempts,
                                    max_backoff=settings.agents.max_backoff)


def _parked_stops(reader: Engine) -> int:
    with reader.connect() as conn:
        return queries.count_parked_stops(conn)


def build_services(settings: Settings, health: NodeHealth | None = None) -> Services:
    """Wire log, clusters, read model, runner, intakes, NATS and auth from settings.

    `health` is the node-health port (the metric store's); without it node reports carry what
    cc-backend records for a host without metric data.
    """
    try:
        clusters = ClusterRegistry.load(Path(settings.archive.path))
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    tuning = job_database_tuning(settings)
    event_log = open_log(settings)
    db_path = Path(settings.main.db)
    writer = writer_engine(db_path, lock_wait=JOB_DATABASE_LOCK_WAIT, tuning=tuning)
    projection = JobDatabaseProjection(writer)
    reader = reader_engine(db_path, tuning)
    users = UserDirectory(reader)
    projection.users_changed.append(users.invalidate)
    authenticator = build_authenticator(settings, users)
    runner = AgentRunner(event_log, projection, max_attempts=settings.agents.max_attempts,
                         max_backoff=settings.agents.max_backoff)
    if isinstance(event_log, SQLiteEventLog):
        # The job database follows every commit in the log's writer thread (AgentRunner.apply_committed).
        event_log.on_commit(runner.apply_committed)
    intake = JobIntake(event_log, clusters, settings.intake, parked_count=lambda: _parked_stops(reader),
                       user_exists=lambda name: users.lookup(name) is not None)
    auth = ApiAuth(authenticator, settings.main.api_allowed_ips, settings.main.disable_authentication)
    services = Services(settings, event_log, clusters, writer, reader, projection, runner, intake, auth,
                        JobLookup(db_path, tuning))
    services.archive = open_archive(settings.archive)
    services.metric_store, services.metric_source = build_metrics(settings, clusters, reader)
    services.metric_nats = build_metric_nats(settings, services.metric_store)
    build_archiver(settings, services)
    services.nodestate = NodeStateIntake(event_log, clusters, health or services.metric_source)
    if settings.nats is not None:
        services.dead_letters = DeadLetterStore(settings.nats.dead_letter_path)
        services.nats_processor = NatsProcessor(intake, services.nodestate, services.dead_letters)
        options = nats_options(settings)
        if options is not None:
            services.nats = NatsIngest(options, services.nats_processor)
    return services

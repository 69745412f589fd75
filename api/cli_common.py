"""What every `ccstream` command shares: the one-line error and loading settings and secrets."""

from __future__ import annotations

import argparse
from pathlib import Path

from api.config import Settings, load_env, load_settings


class CliError(Exception):
    """A failure reported to the operator as one line."""


def cli_settings(args: argparse.Namespace) -> Settings:
    load_env(args.env)
    config = Path(args.config)
    if not config.exists():
        if args.config_given:
            raise CliError(f"{config}: no such config file")
        return Settings()
    return load_settings(config)


def catch_up(settings: Settings) -> None:
    """Bring the job database up to date with the log (the server may not be running)."""
    from api.bootstrap import open_log
    from projections.db import writer_engine
    from projections.jobdb import JobDatabaseProjection
    from streams.runtime import AgentRunner

    log = open_log(settings)
    engine = writer_engine(settings.main.db)
    try:
        # The server's tries and back-off; operators' requests are the server's to act on, not a CLI's.
        AgentRunner(log, JobDatabaseProjection(engine), max_attempts=settings.agents.max_attempts,
                    max_backoff=settings.agents.max_backoff, serves_requests=False).run_until_caught_up()
    finally:
        engine.dispose()
        log.close()

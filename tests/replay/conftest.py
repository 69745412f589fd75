"""Shared fixtures of the replay tests: real SQLite logs and read-model files in a scratch directory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections.db import writer_engine
from projections.jobdb import JobDatabaseProjection
from replay.dump import Comparison, compare
from replay.registry import READ_MODELS, ReadModel
from streams.log import EventLog, SQLiteEventLog
from streams.runtime import AgentRunner


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SQLiteEventLog]:
    impl = SQLiteEventLog(tmp_path / "events.db")
    yield impl
    impl.close()


@pytest.fixture
def jobdb() -> ReadModel:
    return READ_MODELS["jobdb"]


def project(log: EventLog, path: Path, batch_size: int = 2000) -> int:
    """The live path: the server's runner and projection, one statement per event, up to the head."""
    engine = writer_engine(path)
    try:
        return AgentRunner(log, JobDatabaseProjection(engine), batch_size=batch_size).run_until_caught_up()
    finally:
        engine.dispose()


def compare_files(a: Path, b: Path, model: ReadModel, limit: int = 50) -> Comparison:
    """Canonical comparison of two read-model files."""
    left = sqlite3.connect(f"file:{a}?mode=ro", uri=True)
    right = sqlite3.connect(f"file:{b}?mode=ro", uri=True)
    try:
        return compare(left, right, model.tables, limit)
    finally:
        left.close()
        right.close()

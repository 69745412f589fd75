"""Time travel: the job database as it stood at a log position or a moment, written beside the live file."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from projections.db import writer_engine
from projections.jobdb import JobDatabaseProjection
from replay.rebuild import RebuildError, Until, parse_until, rebuild_until
from replay.registry import ReadModel
from streams.events import job_subject
from streams.log import SQLiteEventLog
from tests.replay.conftest import compare_files
from tests.replay.factory import bulk_jobs, edits


def project_prefix(log: SQLiteEventLog, path: Path, position: int) -> None:
    """The incremental projection of the first `position` events only."""
    engine = writer_engine(path)
    projection = JobDatabaseProjection(engine)
    after = 0
    while after < position and (events := log.read(after, min(100, position - after))):
        projection.apply(events)  # the log hands out events lifted to the current version
        after = events[-1].position or after
    engine.dispose()


def test_until_a_position(log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path) -> None:
    log.append(bulk_jobs(1, 400))
    log.append(edits([job_subject("fritz", j, 1_700_000_000 + j * 7) for j in range(1, 401)], 300))
    position = 555
    result = rebuild_until(log, jobdb, Until(position=position), tmp_path / "then.db")
    assert result.position == position and result.path == tmp_path / "then.db"
    project_prefix(log, tmp_path / "expected.db", position)
    assert compare_files(tmp_path / "expected.db", tmp_path / "then.db", jobdb).total == 0
    assert not list(tmp_path.glob("*.partial*"))
    with pytest.raises(RebuildError, match="ends at position"):
        rebuild_until(log, jobdb, Until(position=log.head() + 1), tmp_path / "future.db")


def test_until_a_time(log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path) -> None:
    log.append(bulk_jobs(1, 100))
    time.sleep(0.05)
    log.append(bulk_jobs(101, 100))
    boundary = log.head()
    moment = log.read(boundary - 1, 1)[0].recorded_at
    assert moment is not None
    time.sleep(0.05)
    log.append(bulk_jobs(201, 100))
    iso = datetime.fromtimestamp(moment, UTC).isoformat()
    for text in (f"@{moment!r}", iso):
        until = parse_until(text)
        assert until.time == pytest.approx(moment, abs=1e-6) and until.position is None
    result = rebuild_until(log, jobdb, Until(time=moment), tmp_path / "then.db")
    assert result.position == boundary
    project_prefix(log, tmp_path / "expected.db", boundary)
    assert compare_files(tmp_path / "expected.db", tmp_path / "then.db", jobdb).total == 0
    before = rebuild_until(log, jobdb, Until(time=0.0), tmp_path / "empty.db")
    assert before.position == 0 and before.rows["job"] == 0


def test_until_parsing() -> None:
    assert parse_until("42") == Until(position=42)
    assert parse_until("@1700000000") == Until(time=1_700_000_000.0)
    assert parse_until("1700000000.25") == Until(time=1_700_000_000.25)
    assert parse_until("2023-11-14T22:13:20Z") == Until(time=1_700_000_000.0)
    assert parse_until("2023-11-14T23:13:20+01:00") == Until(time=1_700_000_000.0)
    assert parse_until("2023-11-14T22:13:20") == Until(time=1_700_000_000.0)  # no offset: UTC
    for bad in ("yesterday", "@nan", "-5"):
        with pytest.raises(ValueError, match="--until"):
            parse_until(bad)

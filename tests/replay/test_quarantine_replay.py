"""Live and replay agree on what they cannot apply: a rebuild quarantines the events the live projection
quarantined, and `replay verify` finds no difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replay.bulk import JobDatabaseBulkLoader
from replay.rebuild import read_pages
from replay.registry import ReadModel
from streams.events import Event, job_subject, new_event
from streams.log import SQLiteEventLog
from tests.replay.conftest import compare_files, project
from tests.replay.factory import bulk_jobs

T0 = 1_700_000_000


def start(job_id: int, **extra: Any) -> Event:
    data = {"jobId": job_id, "user": "u", "project": "p", "cluster": "fritz", "subCluster": "main", "numNodes": 1,
            "startTime": T0, "resources": [{"hostname": "f0101"}], **extra}
    return new_event("job.started", job_subject("fritz", job_id, T0), data, id=f"q-start-{job_id}")


def poison() -> list[Event]:
    return [
        new_event("job.teleported", "job/fritz/1/1", {}, id="q-unknown"),
        new_event("job.deleted", "job/fritz/2/1", {"reason": "x"}, id="q-future", version=9),
        start(900_001, dbId=5000), start(900_002, dbId=5000),  # the second keeps an id the first has
        start(900_003, walltime=2**63),
    ]


def rebuild(log: SQLiteEventLog, path: Path) -> None:
    loader = JobDatabaseBulkLoader(path)
    try:
        for records in read_pages(log, 0):
            loader.load(records)
        loader.finish()
    finally:
        loader.close()


def test_a_rebuild_quarantines_what_the_live_projection_quarantined(
    log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path
) -> None:
    log.append(bulk_jobs(1, 20))
    log.append(poison())
    log.append(bulk_jobs(100, 20))
    live, rebuilt = tmp_path / "live.db", tmp_path / "rebuilt.db"
    assert project(log, live) == log.head()
    rebuild(log, rebuilt)
    comparison = compare_files(live, rebuilt, jobdb)
    assert comparison.total == 0, comparison.differences
    assert comparison.rows["ccstream_quarantine"] == 4

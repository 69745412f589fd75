"""Duration, footprint and node-state retirement events: the live projection and a rebuild give one table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from replay.registry import ReadModel
from replay.verify import verify
from streams.events import Event, job_subject, new_event
from streams.log import SQLiteEventLog
from tests.replay.conftest import project
from tests.replay.factory import T0, bulk_jobs, mixed_log


def _footprint(subject: str, value: float, as_of: int) -> Event:
    return new_event("job.footprint_updated", subject, {"footprint": {"flops_any_avg": value},
                                                        "energyFootprint": {}, "energy": 0.0, "asOf": as_of})


def _task_events(first: int, count: int) -> list[Event]:
    """Durations, footprints of running and of stopped jobs, and two node-state retirements, interleaved."""
    out: list[Event] = []
    for n, j in enumerate(range(first, first + count)):
        subject = job_subject("fritz", j, T0 + j * 7)
        out.append(_footprint(subject, float(n), T0 + j * 7 + 30))
        if n % 50 == 0:
            out.append(new_event("job.durations_updated", "jobs", {"asOf": T0 + j * 7 + 100}))
    out.append(new_event("node.states_retired", "node-states", {"before": T0 + 200, "policy": "delete", "rows": 0}))
    return out


def test_rebuild_equals_live_with_duration_footprint_and_retirement_events(
    log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path
) -> None:
    mixed_log(log, intake=30, bulk=300, edit=300)
    log.append(_task_events(1, 330))
    log.append(bulk_jobs(1000, 200))  # more jobs after: held rows, stops folded after the updates
    log.append(_task_events(1000, 200))
    log.append([new_event("node.states_retired", "node-states", {"before": T0 + 500, "policy": "move", "rows": 3,
                                                                "location": ["x.parquet"]})])
    live = tmp_path / "job.db"
    project(log, live)
    result = verify(log, jobdb, live)
    assert result.ok, [d.describe() for d in result.comparison.differences]

    with sqlite3.connect(live) as conn:
        running = conn.execute("SELECT duration, footprint, start_time FROM job WHERE job_state = 'running'"
                               " AND job_id >= 1000").fetchall()
        stopped = conn.execute("SELECT footprint, monitoring_status FROM job WHERE job_state != 'running'"
                               " AND job_id >= 1000").fetchall()
        oldest_state = conn.execute("SELECT MIN(time_stamp) FROM node_state").fetchone()[0]
    assert running and stopped
    # Every job in the second batch had a footprint update; only those still running took it.
    assert all(orjson.loads(fp)["flops_any_avg"] >= 0 for _, fp, _ in running)
    assert all(fp is None for fp, _ in stopped)
    # The last durations update of the batch set `asOf - start_time` on the jobs running then.
    assert any(duration > 0 for duration, _, _ in running)
    assert oldest_state is None or oldest_state >= T0 + 500

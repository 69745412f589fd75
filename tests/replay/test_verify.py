"""`verify`: a healthy live model matches a rebuild at its checkpoint; a tampered one fails with a readable diff."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from replay.registry import ReadModel
from replay.verify import verify
from streams.log import SQLiteEventLog
from tests.replay.conftest import project
from tests.replay.factory import bulk_jobs, mixed_log


def test_healthy_model_verifies_even_when_behind_the_head(
    log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path
) -> None:
    mixed_log(log, intake=50, bulk=500, edit=400)
    live = tmp_path / "job.db"
    checkpoint = project(log, live)
    log.append(bulk_jobs(10_000, 50))  # the live model lags: verify compares at its checkpoint
    result = verify(log, jobdb, live)
    assert result.ok and result.position == checkpoint < log.head()
    assert result.comparison.rows["job"] > 500
    assert not list(tmp_path.glob(".job.db.verify-*"))


def test_tampered_model_fails_with_table_key_column_and_both_values(
    log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path
) -> None:
    log.append(bulk_jobs(1, 200))
    live = tmp_path / "job.db"
    project(log, live)
    with sqlite3.connect(live) as conn:
        conn.execute("UPDATE job SET job_state = 'node_fail' WHERE job_id = 3")
        conn.execute("UPDATE job SET meta_data = '{\"jobName\": \"bulk-5\"}' WHERE job_id = 5")  # same JSON
        conn.execute("DELETE FROM job WHERE job_id = 7")
        conn.execute("UPDATE job SET duration = duration + 1 WHERE job_id BETWEEN 100 AND 199")
    result = verify(log, jobdb, live, limit=5)
    assert not result.ok
    assert result.comparison.per_table == {"job": 102}
    lines = [d.describe() for d in result.comparison.differences]
    assert len(lines) == 5
    key3, key7 = "job_id=3 cluster='fritz' start_time=1700000021", "job_id=7 cluster='fritz' start_time=1700000049"
    assert lines[0] == f"job [{key3}] job_state: live 'node_fail' != rebuilt 'failed'"
    assert lines[1] == f"job [{key7}]: row only in the rebuilt database"
    assert lines[2].startswith("job [job_id=100 cluster='fritz'") and "duration: live" in lines[2]

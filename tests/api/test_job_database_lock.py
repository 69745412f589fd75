"""The job database projection follows each commit in the log's writer thread (read-your-writes answers
wait for it). Another writer holding job.db's lock for long, as `replay rebuild` does while it swaps a
rebuilt file in, must delay only what becomes visible, never the appends behind it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.bootstrap import JOB_DATABASE_LOCK_WAIT
from streams.events import new_event
from tests.api.conftest import Tokens, start_job

HOLD = 4.0


def test_a_long_held_job_database_lock_delays_visibility_not_appends(client: tuple[TestClient, Tokens],
                                                                   tmp_path: Path) -> None:
    http, tok = client
    start_job(http, tok, jobId=1)
    services = http.app.state.services
    holder = sqlite3.connect(tmp_path / "job.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    began = time.monotonic()
    try:
        for n in range(20):
            services.log.append([new_event("job.deleted", f"job/fritz/{1000 + n}/1", {"reason": "test"})])
        appending = time.monotonic() - began
        head = services.log.head()
        assert services.runner.position < head, "nothing can be applied while the lock is held"
        time.sleep(max(0.0, HOLD - (time.monotonic() - began)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # The writer waited for the lock once, at most JOB_DATABASE_LOCK_WAIT; the projection's own thread
    # took over the retries.
    assert JOB_DATABASE_LOCK_WAIT < HOLD / 2
    assert appending < JOB_DATABASE_LOCK_WAIT + 1.0 < HOLD, appending
    assert services.runner.wait_for(head, timeout=30)
    assert services.runner.status().failures == 0
    assert start_job(http, tok, jobId=2) > 0

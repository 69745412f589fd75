"""`replay verify` on a log of over 100,000 events from mixed sources.

The live file is what an operator has after `replay rebuild`: the first half of the log bulk-loaded,
the rest applied by the server's runner and projection, one statement per event. Verify rebuilds the
whole log into a scratch file and must find both paths agree.
"""

from __future__ import annotations

import time
from pathlib import Path

from replay.rebuild import Until, rebuild_until
from replay.registry import ReadModel
from replay.verify import verify
from streams.log import SQLiteEventLog
from tests.replay.conftest import project
from tests.replay.factory import mixed_log


def test_verify_passes_on_a_100k_event_mixed_log(log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path) -> None:
    started = time.perf_counter()
    mixed_log(log, intake=2_000, bulk=47_000, edit=8_000)
    generated = time.perf_counter()
    kinds = {r.type for r in log.read_stored(0, 200_000)}
    assert log.head() >= 100_000
    assert {"job.started", "job.stopped", "job.stop_parked", "job.tag_added", "job.tag_removed", "tag.deleted",
            "job.metadata_updated", "job.deleted", "job.archived", "job.archiving_failed", "user.created",
            "user.updated", "user.deleted", "node.states_reported", "tag.created",
            "user.configuration_updated"} <= kinds
    live = tmp_path / "job.db"
    rebuild_until(log, jobdb, Until(position=log.head() // 2), live)
    assert project(log, live) == log.head()
    projected = time.perf_counter()
    result = verify(log, jobdb, live)
    verified = time.perf_counter()
    assert result.ok, [d.describe() for d in result.comparison.differences]
    assert result.position == log.head() and result.comparison.rows["job"] > 45_000
    print(f"\n{log.head():,} events: generated {generated - started:.1f} s, projected {projected - generated:.1f} s,"
          f" verified {verified - projected:.1f} s")

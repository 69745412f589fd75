"""Pages read by reading processes equal pages read in place, and load into the same database."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from projections import jobs
from projections.handlers import HandlerTable
from projections.jobdb import HANDLERS
from replay import fold, rebuild
from replay.bulk import JobDatabaseBulkLoader
from replay.pages import Page, read_in_processes
from replay.rebuild import Until, read_pages
from replay.registry import ReadModel
from streams.events import Event, new_event
from streams.log import SQLiteEventLog
from tests.replay.conftest import compare_files, project
from tests.replay.factory import T0, _started, mixed_log


def _rows(pages: list[Page]) -> list[tuple[object, ...]]:
    return [tuple(row) for page in pages for row in page.rows]


@pytest.mark.parametrize(("page", "until"), [(7, None), (1000, None), (5, 123), (20_000, 1)])
def test_reading_processes_read_what_the_loader_reads(
    log: SQLiteEventLog, tmp_path: Path, page: int, until: int | None
) -> None:
    mixed_log(log, intake=20, bulk=100, edit=150)
    bound = None if until is None else Until(position=until)
    here = _rows(list(read_pages(log, 3, bound, page, parallel=False)))
    pages = list(read_pages(log, 3, bound, page, parallel=True))
    there, decoded = _rows(pages), [pre for p in pages for pre in p.decoded or ()]
    assert [r[0] for r in there] == list(range(4, (until or log.head()) + 1))
    assert decoded == fold.predecode(here)
    # Predecoded rows come without their payload: the loader fetches it should it need it.
    assert there == [(*h[:4], b"" if pre is not None else h[4]) for h, pre in zip(here, decoded, strict=True)]
    assert until is not None or (any(pre is not None for pre in decoded) and any(pre is None for pre in decoded))


def _load(path: Path, pages: list[Page], handlers: HandlerTable = HANDLERS) -> None:
    loader = JobDatabaseBulkLoader(path, handlers, hold=50, batch=20)
    try:
        for p in pages:
            loader.load(p)
        loader.finish()
    finally:
        loader.close()


def test_predecoded_pages_load_the_live_database(log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path) -> None:
    mixed_log(log, intake=40, bulk=300, edit=300)
    project(log, tmp_path / "live.db")
    _load(tmp_path / "rebuilt.db", list(read_pages(log, 0, page=50, parallel=True)))
    assert compare_files(tmp_path / "live.db", tmp_path / "rebuilt.db", jobdb).total == 0
    # With its handler replaced, a stop is the handler's business again, predecoded or not.
    handlers = {**HANDLERS, "job.stopped": lambda conn, event: jobs.record_job_stop(conn, event)}
    _load(tmp_path / "handled.db", list(read_pages(log, 0, page=50, parallel=True)), handlers)
    assert compare_files(tmp_path / "live.db", tmp_path / "handled.db", jobdb).total == 0


def _raw(position: int, event: Event, version: int = 1) -> fold.Raw:
    return position, event.type, version, event.subject, orjson.dumps(event.data)


def test_predecode_takes_current_starts_and_stops_only() -> None:
    start = new_event("job.started", f"job/fritz/7/{T0}", _started(7, T0))
    stop = new_event("job.stopped", f"job/fritz/7/{T0}", {"jobState": "failed", "stopTime": T0 + 1, "duration": 1,
                                                        "parkedStopId": "p"})
    tagged = new_event("job.started", f"job/fritz/8/{T0}", _started(8, T0, tags=[{"type": "a", "name": "b"}]))
    odd_stop = new_event("job.stopped", "node/fritz", {"jobState": "failed", "stopTime": 1, "duration": 1})
    edit = new_event("job.metadata_updated", f"job/fritz/7/{T0}", {"key": "k", "value": "v"})
    rows = [_raw(1, start), _raw(2, stop), _raw(3, tagged), _raw(4, odd_stop), _raw(5, edit), _raw(6, start, 0),
            (7, "job.stopped", 1, f"job/fritz/7/{T0}", b"not json")]
    assert fold.predecode(rows) == [
        fold.start_row(start.data), ((("fritz", 7, T0)), "failed", 1, "p"), None, None, None, None, None,
    ]


def test_a_failing_reading_process_fails_the_read(tmp_path: Path) -> None:
    log = SQLiteEventLog(tmp_path / "gone.db")
    log.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{log.path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(RuntimeError, match="reading the log failed"):
        list(read_in_processes(log, 0, None, 10, 2))


def test_a_rebuild_from_reading_processes(
    log: SQLiteEventLog, jobdb: ReadModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixed_log(log, intake=30, bulk=200, edit=200)
    monkeypatch.setattr(rebuild, "PARALLEL_FROM", 1)
    project(log, tmp_path / "live.db")
    assert rebuild.load(log, jobdb, tmp_path / "rebuilt.db") == log.head()
    assert compare_files(tmp_path / "live.db", tmp_path / "rebuilt.db", jobdb).total == 0

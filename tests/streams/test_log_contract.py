"""The event log contract, run against every implementation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.events import Event, new_event
from streams.log import EventLog, LogClosed, MemoryEventLog, SQLiteEventLog


@pytest.fixture(params=["sqlite", "memory"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    impl: EventLog = SQLiteEventLog(tmp_path / "events.db") if request.param == "sqlite" else MemoryEventLog()
    yield impl
    impl.close()


@contextmanager
def two_handles(path: Path) -> Iterator[tuple[SQLiteEventLog, SQLiteEventLog]]:
    """The server's log and a second handle on the same file, as another process (the CLI) opens it."""
    server, cli = SQLiteEventLog(path), SQLiteEventLog(path)
    try:
        yield server, cli
    finally:
        cli.close()
        server.close()


def ev(subject: str = "job/c/1/100", type_: str = "job.deleted", id_: str | None = None, **data: object) -> Event:
    return new_event(type_, subject, dict(data), id=id_)


def test_empty_log_has_head_zero(log: EventLog) -> None:
    assert log.head() == 0
    assert log.read() == []


def test_positions_start_at_one_and_grow_by_one(log: EventLog) -> None:
    results = log.append([ev(), ev(), ev()])
    assert [r.position for r in results] == [1, 2, 3]
    assert not any(r.duplicate for r in results)
    assert log.head() == 3


def test_read_returns_events_after_position_in_order(log: EventLog) -> None:
    log.append([ev(n=i) for i in range(10)])
    events = log.read(after=4, limit=3)
    assert [e.position for e in events] == [5, 6, 7]
    assert [e.data["n"] for e in events] == [4, 5, 6]
    assert all(e.recorded_at is not None for e in events)


def test_second_append_of_same_id_is_noop_returning_first_position(log: EventLog) -> None:
    first = log.append([ev(id_="a", n=1)])[0]
    log.append([ev(id_="b")])
    again = log.append([ev(id_="a", n=2)])[0]
    assert again.position == first.position
    assert again.duplicate
    assert log.head() == 2
    stored = log.get("a")
    assert stored is not None and stored.data == {"n": 1}


def test_duplicate_inside_one_batch_keeps_first(log: EventLog) -> None:
    results = log.append([ev(id_="x", n=1), ev(id_="x", n=2)])
    assert results[0].position == results[1].position == 1
    assert results[1].duplicate
    assert log.head() == 1


def test_batch_mixing_new_stored_and_repeated_ids(log: EventLog) -> None:
    log.append([ev(id_="old1", n=1), ev(id_="old2", n=2)])
    results = log.append([ev(id_="new1"), ev(id_="old2"), ev(id_="new2"), ev(id_="new1"), ev(id_="old1")])
    assert [(r.position, r.duplicate) for r in results] == [(3, False), (2, True), (4, False), (3, True), (1, True)]
    assert [e.id for e in log.read()] == ["old1", "old2", "new1", "new2"]
    assert log.head() == 4


def test_batch_larger_than_one_statement_is_stored_whole_and_dense(log: EventLog) -> None:
    log.append([ev(id_="e5"), ev(id_="e1500")])
    results = log.append([ev(id_=f"e{i}", n=i) for i in range(3000)])
    assert sum(not r.duplicate for r in results) == 2998
    assert results[5].position == 1 and results[1500].position == 2
    assert [r.position for r in results if not r.duplicate] == list(range(3, 3001))
    stored = log.read(after=0, limit=5000)
    assert [e.position for e in stored] == list(range(1, 3001))
    assert [e.data.get("n") for e in stored[2:5]] == [0, 1, 2]


def test_event_fields_round_trip(log: EventLog) -> None:
    original = new_event(
        "job.tag_added",
        "job/fritz/7/99",
        {"type": "t", "name": "n", "scope": "global"},
        id="evt-1",
        source="rest:/x",
        causation_id="cause",
        at=1234.5,
    )
    log.append([original])
    stored = log.get("evt-1")
    assert stored is not None
    assert (stored.type, stored.subject, stored.data) == (original.type, original.subject, original.data)
    assert (stored.source, stored.causation_id, stored.time, stored.version) == ("rest:/x", "cause", 1234.5, 1)
    assert stored.position == 1


def test_read_by_subject_and_prefix(log: EventLog) -> None:
    log.append([ev("job/c/1/100"), ev("job/c/12/5"), ev("job/c/1/200"), ev("job/d/1/100")])
    assert [e.position for e in log.read_subject("job/c/1/100")] == [1]
    # The trailing slash keeps job 12 out of job 1's family.
    assert [e.position for e in log.read_prefix("job/c/1/")] == [1, 3]
    assert log.read_subject("nothing") == []


def test_get_unknown_id_is_none(log: EventLog) -> None:
    assert log.get("missing") is None


def test_wait_returns_when_something_is_appended(log: EventLog) -> None:
    timer = threading.Timer(0.05, lambda: log.append([ev()]))
    timer.start()
    assert log.wait(0, timeout=5) == 1
    timer.join()


def test_wait_times_out_without_appends(log: EventLog) -> None:
    assert log.wait(0, timeout=0.05) == 0


def test_concurrent_appends_get_distinct_positions(log: EventLog) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(50):
            position = log.append([ev(id_=f"{k}-{i}")])[0].position
            with lock:
                results.append(position)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 401))


def test_append_async(log: EventLog) -> None:
    async def run() -> list[int]:
        batches = await asyncio.gather(*(log.append_async([ev(id_=str(i))]) for i in range(20)))
        return sorted(r[0].position for r in batches)

    assert asyncio.run(run()) == list(range(1, 21))


def test_append_after_close_is_refused(log: EventLog) -> None:
    log.close()
    with pytest.raises(LogClosed):
        log.append([ev()])


def test_empty_append_is_allowed(log: EventLog) -> None:
    assert log.append([]) == []


def test_sqlite_log_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    first = SQLiteEventLog(path)
    first.append([ev(id_="a"), ev(id_="b")])
    first.close()
    reopened = SQLiteEventLog(path)
    try:
        assert reopened.head() == 2
        assert reopened.append([ev(id_="a")])[0].duplicate
        assert reopened.append([ev(id_="c")])[0].position == 3
    finally:
        reopened.close()


def test_sqlite_log_sees_appends_of_another_process_handle(tmp_path: Path) -> None:
    with two_handles(tmp_path / "events.db") as (server, cli):
        cli.append([ev(id_="from-cli")])
        assert server.wait(0, timeout=2) == 1
        assert server.read()[0].id == "from-cli"


def test_sqlite_log_file_is_durable_before_ack(tmp_path: Path) -> None:
    """The writer runs in WAL with synchronous=FULL: a commit is fsync'd before append returns."""
    import sqlite3

    log = SQLiteEventLog(tmp_path / "events.db")
    try:
        log.append([ev()])
        conn = sqlite3.connect(tmp_path / "events.db")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
        conn.close()
        assert log._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        log.close()


def test_read_stored_is_read_with_payloads_left_encoded(log: EventLog) -> None:
    log.append([ev(n=i) for i in range(5)])
    stored = log.read_stored(after=1, limit=3)
    assert [s.position for s in stored] == [2, 3, 4]
    assert all(isinstance(s.data, bytes) for s in stored)
    assert [s.event() for s in stored] == log.read(after=1, limit=3)
    assert log.read_stored(after=5) == []


def test_read_types_returns_only_those_types_in_order(log: EventLog) -> None:
    log.append([ev(type_="job.deleted"), ev(type_="job.tag_added"), ev(type_="job.deleted"), ev(type_="user.deleted")])
    assert [e.position for e in log.read_types({"job.deleted", "user.deleted"})] == [1, 3, 4]
    assert [e.position for e in log.read_types({"job.deleted"}, after=1)] == [3]
    assert [e.position for e in log.read_types({"job.deleted", "user.deleted"}, limit=2)] == [1, 3]
    assert log.read_types({"nothing"}) == []


def test_read_prefix_stored_matches_read_prefix(log: EventLog) -> None:
    log.append([ev("job/c/1/100", n=1), ev("job/c/12/5"), ev("job/c/1/200", n=2)])
    stored = log.read_prefix_stored("job/c/1/")
    assert [s.position for s in stored] == [1, 3]
    assert [s.event() for s in stored] == log.read_prefix("job/c/1/")


def test_sqlite_bad_requests_fail_alone_in_a_group(tmp_path: Path) -> None:
    """Concurrent appends are committed together; one that cannot be stored (a payload JSON cannot hold,
    a NULL where a column needs a value) fails with its own error and takes nothing else down."""
    import dataclasses

    log = SQLiteEventLog(tmp_path / "events.db")
    unencodable = ev(id_="bad-payload", value={1, 2})
    null_type = dataclasses.replace(ev(id_="bad-column"), type=None)  # type: ignore[arg-type]

    async def run() -> list[list[int] | BaseException]:
        requests = [[ev(id_=f"good-{i}")] for i in range(40)]
        requests.insert(10, [ev(id_="before-bad-payload"), unencodable])
        requests.insert(25, [null_type])
        answers = await asyncio.gather(*(log.append_async(r) for r in requests), return_exceptions=True)
        return [a if isinstance(a, BaseException) else [r.position for r in a] for a in answers]

    try:
        answers = asyncio.run(run())
        assert isinstance(answers[10], TypeError) and isinstance(answers[25], Exception)
        good = [p for i, a in enumerate(answers) if i not in (10, 25) for p in a]  # type: ignore[union-attr]
        assert sorted(good) == list(range(1, 41))
        assert log.head() == 40
        stored = {e.id for e in log.read(0, 100)}
        assert stored == {f"good-{i}" for i in range(40)}, "an append is all or nothing"
    finally:
        log.close()


def test_sqlite_two_handles_interleaving_keep_positions_dense(tmp_path: Path) -> None:
    """Another process (the CLI) may append to the same file: positions stay unique and gap-free."""
    with two_handles(tmp_path / "events.db") as (server, cli):
        positions = []
        for i in range(20):
            positions += [r.position for r in server.append([ev(id_=f"s{i}"), ev(id_=f"s{i}b")])]
            positions += [r.position for r in cli.append([ev(id_=f"c{i}")])]
            assert cli.append([ev(id_=f"s{i}")])[0] == (positions[-3], True)
        assert sorted(positions) == list(range(1, 61))


def test_sqlite_reads_see_another_handles_appends_between_its_own(tmp_path: Path) -> None:
    """Reads served from the writer's memory of recent events must not hide what another process wrote:
    a consumer reading on from its last position gets every event once, in order."""

    def consume(read: Callable[[int], list[Event]], after: int) -> list[str]:
        seen: list[str] = []
        while batch := read(after):
            seen += [e.id for e in batch]
            after = batch[-1].position or 0
        return seen

    with two_handles(tmp_path / "events.db") as (server, cli):
        server.append([ev(id_="s1"), ev(id_="s2", type_="job.stopped")])
        cli.append([ev(id_="c1", type_="job.stopped")])
        server.append([ev(id_="s3"), ev(id_="s4", type_="job.stopped")])
        cli.append([ev(id_="c2", type_="job.stopped")])
        expected = ["s1", "s2", "c1", "s3", "s4", "c2"]
        for after in range(6):
            assert consume(lambda a: server.read(a, 2), after) == expected[after:]
            stops = [i for i in expected[after:] if i in ("s2", "c1", "s4", "c2")]
            assert consume(lambda a: server.read_types({"job.stopped"}, a, 100), after) == stops


def test_sqlite_commit_listeners_run_in_the_writer_after_each_group(tmp_path: Path) -> None:
    log = SQLiteEventLog(tmp_path / "events.db")
    seen: list[tuple[int, str, bool]] = []
    failures = 0

    def listener(head: int) -> None:
        nonlocal failures
        appended = False
        try:
            log.append([ev()])
        except RuntimeError:
            appended = True  # refused, not deadlocked
        seen.append((head, threading.current_thread().name, appended))
        failures += 1
        raise ValueError("a failing listener does not stop the writer")

    try:
        log.on_commit(listener)
        log.append([ev(), ev()])
        log.append([ev()])
        log.close()  # listeners run after the answer: closing waits for the writer to finish them
        assert seen == [(2, "event-log-writer", True), (3, "event-log-writer", True)]
        assert failures == 2 and log.head() == 3
    finally:
        log.close()

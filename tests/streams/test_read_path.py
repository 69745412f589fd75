"""One read path: every reader of the log sees an event as it is stored, decoded from the file and lifted to
the current payload version, whether it comes from the writer's recent events, the file, or another handle.

Every published type is still at version 1, so the test publishes a version 2 of each (an upcaster that
marks the payload) for its duration and appends the version-1 fixture of every type.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from streams.events import Event, new_event, payloads, upcasters
from streams.events.codec import event_from_dict
from streams.ingest.family import JobFamily
from streams.log import MemoryEventLog, SQLiteEventLog
from streams.runtime import AgentRunner

FIXTURES = Path(__file__).parent.parent / "fixtures" / "events"
TYPES = sorted(t for t, _ in payloads.PAYLOADS)


@pytest.fixture
def version_two(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every type gets a version 2; lifting a version-1 payload marks it."""
    for type_ in TYPES:
        monkeypatch.setitem(payloads.CURRENT_VERSION, type_, 2)
        monkeypatch.setitem(upcasters.UPCASTERS, (type_, 1), lambda data: {**data, "lifted": True})


def fixtures() -> list[Event]:
    import orjson

    events = []
    for type_ in TYPES:
        raw = orjson.loads((FIXTURES / f"{type_}.v1.json").read_bytes())
        events.append(event_from_dict(raw, upcast_payload=False))
    return events


@pytest.fixture
def sqlite_log(tmp_path: Path) -> Iterator[SQLiteEventLog]:
    log = SQLiteEventLog(tmp_path / "events.db")
    yield log
    log.close()


def lifted(events: Sequence[Event]) -> bool:
    return bool(events) and all(e.version == 2 and e.data.get("lifted") is True for e in events)


class Collector:
    """A real agent that keeps what it is handed."""

    name = "collector"

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self.position = 0

    def checkpoint(self) -> int:
        return self.position

    def apply(self, events: Sequence[Event]) -> None:
        self.seen.extend(events)
        self.position = events[-1].position or 0


def test_every_reader_sees_the_lifted_form(version_two: None, sqlite_log: SQLiteEventLog, tmp_path: Path) -> None:
    stored = fixtures()
    sqlite_log.append(stored)
    other = SQLiteEventLog(tmp_path / "events.db")  # another handle: everything comes from the file
    try:
        for log in (sqlite_log, other):
            assert lifted(log.read(0, 100))
            assert lifted(log.read_types(["job.stopped", "user.created"], 0, 100))
            assert lifted(log.read_subject(stored[0].subject))
            assert lifted(log.read_prefix("job/"))
            assert lifted([r.event() for r in log.read_stored(0, 100)])
            assert lifted([r.event() for r in log.read_prefix_stored("job/")])
            assert all(lifted([log.get(e.id)]) for e in stored)  # type: ignore[list-item]
        agent = Collector()
        AgentRunner(sqlite_log, agent).run_until_caught_up()
        assert len(agent.seen) == len(stored) and lifted(agent.seen)
        family = JobFamily.fold_stored(sqlite_log.read_prefix_stored("job/fritz/398764/"))
        assert all(run.stopped is None or run.stopped.data.get("lifted") for run in family.runs.values())
    finally:
        other.close()


def test_the_memory_log_reads_the_same_way(version_two: None) -> None:
    log = MemoryEventLog()
    log.append(fixtures())
    assert lifted(log.read(0, 100)) and lifted([r.event() for r in log.read_stored(0, 100)])


@pytest.mark.parametrize("make_log", ["sqlite", "memory"])
def test_live_readers_see_what_a_replay_decodes(make_log: str, tmp_path: Path) -> None:
    """A payload the codec does not round-trip as built (NaN becomes null) reaches live agents as stored."""
    log: Any = SQLiteEventLog(tmp_path / "e.db") if make_log == "sqlite" else MemoryEventLog()
    try:
        built = new_event("job.archived", "job/fritz/1/1", {"energy": float("nan"), "statistics": {}}, id="nan")
        log.append([built])
        [live] = log.read(0, 10)
        [replayed] = [r.event() for r in log.read_stored(0, 10)]
        assert live.data == replayed.data == {"energy": None, "statistics": {}}
    finally:
        log.close()

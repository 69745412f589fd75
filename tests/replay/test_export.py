"""Export and import of the log as JSON Lines: round trip, idempotence, malformed lines, old versions."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from replay.export import export_events, import_events
from streams.events import payloads as payload_registry
from streams.events import upcasters as upcaster_registry
from streams.events.payloads import Payload
from streams.log import SQLiteEventLog
from tests.replay.factory import mixed_log


def stored(log: SQLiteEventLog) -> list[tuple[Any, ...]]:
    return [(e.position, e.id, e.type, e.version, e.subject, e.time, e.source, e.causation_id, e.data)
            for e in log.read(0, 10**6)]


def lines_of(log: SQLiteEventLog, after: int = 0) -> list[bytes]:
    out = io.BytesIO()
    export_events(log, out, after=after)
    return out.getvalue().splitlines(keepends=True)


def test_round_trip_keeps_ids_order_and_payloads_and_is_idempotent(log: SQLiteEventLog, tmp_path: Path) -> None:
    mixed_log(log, intake=30, bulk=200, edit=200)
    lines = lines_of(log)
    assert len(lines) == log.head()
    copy = SQLiteEventLog(tmp_path / "copy.db")
    try:
        report = import_events(copy, lines)
        assert (report.lines, report.appended, report.duplicates, report.malformed) == (len(lines), len(lines), 0, 0)
        assert stored(copy) == stored(log)
        again = import_events(copy, lines)
        assert (again.appended, again.duplicates) == (0, len(lines)) and copy.head() == log.head()
    finally:
        copy.close()
    assert lines_of(log, after=log.head() - 3) == lines[-3:]


def test_malformed_lines_are_reported_by_number_and_the_rest_imported(log: SQLiteEventLog, tmp_path: Path) -> None:
    good = [orjson.dumps({"id": f"e{n}", "type": "user.deleted", "version": 1, "subject": f"users/u{n}",
                          "time": 1.0, "source": "old", "data": {"username": f"u{n}"}}) + b"\n" for n in range(4)]
    bad = [
        b"{not json\n",
        b'{"id": "x1", "type": "user.deleted", "subject": "users/x"}\n',  # no data
        b'{"id": "x2", "type": "job.exploded", "version": 1, "subject": "s", "data": {}}\n',
        b'{"id": "x3", "type": "user.deleted", "version": 1, "subject": "users/x", "data": {"username": ""}}\n',
        b'{"id": "x4", "type": "user.deleted", "version": 9, "subject": "users/x", "data": {"username": "x"}}\n',
        b"[1, 2]\n",
    ]
    lines = [good[0], bad[0], good[1], b"\n", bad[1], bad[2], good[2], bad[3], bad[4], bad[5], good[3]]
    report = import_events(log, lines)
    assert (report.lines, report.appended, report.malformed) == (11, 4, 6)
    assert [n for n, _ in report.problems] == [2, 5, 6, 8, 9, 10]
    reasons = dict(report.problems)
    assert reasons[2].startswith("not JSON") and "data" in reasons[5] and "job.exploded" in reasons[6]
    assert "invalid user.deleted payload" in reasons[8] and "newer" in reasons[9]
    assert [e.id for e in log.read()] == ["e0", "e1", "e2", "e3"]


class UserDeletedV2(Payload):
    """A later version of `user.deleted` (for this test only): the reason became mandatory."""

    username: str
    reason: str


def test_old_payload_versions_are_upcast_on_import(log: SQLiteEventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(payload_registry.PAYLOADS, ("user.deleted", 2), UserDeletedV2)
    monkeypatch.setitem(payload_registry.CURRENT_VERSION, "user.deleted", 2)
    monkeypatch.setitem(upcaster_registry.UPCASTERS, ("user.deleted", 1), lambda d: {**d, "reason": "unknown"})
    line = orjson.dumps({"id": "old-one", "type": "user.deleted", "version": 1, "subject": "users/u", "time": 1.0,
                         "source": "cli", "causation_id": None, "data": {"username": "u"}})
    report = import_events(log, [line])
    assert report.appended == 1 and report.malformed == 0
    [event] = log.read()
    assert event.version == 2 and event.data == {"username": "u", "reason": "unknown"}

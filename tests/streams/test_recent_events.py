"""RecentEvents: the dense run of newest events a log handle serves its agents from."""

from __future__ import annotations

from streams.events import Event, new_event
from streams.log.tail import RecentEvents


def stored(position: int, type_: str = "job.started") -> Event:
    return new_event(type_, f"job/c/{position}/1", {}, id=f"e{position}").recorded(position, 0.0)


def test_serves_events_after_a_position_it_holds() -> None:
    recent = RecentEvents()
    recent.extend([stored(p) for p in range(5, 10)], [10] * 5)
    assert [e.position for e in recent.after(4, 100) or []] == [5, 6, 7, 8, 9]
    assert [e.position for e in recent.after(6, 2) or []] == [7, 8]
    assert recent.after(3, 10) is None, "position 4 is not held: the caller reads the file"
    assert recent.after(9, 10) is None, "nothing newer is held: the caller asks the file"


def test_a_gap_starts_a_new_run() -> None:
    recent = RecentEvents()
    recent.extend([stored(1), stored(2)], [10, 10])
    recent.extend([stored(5), stored(6)], [10, 10])  # 3 and 4 were written by another process
    assert recent.first == 5
    assert recent.after(2, 10) is None
    assert [e.position for e in recent.after(4, 10) or []] == [5, 6]


def test_of_types_filters_and_stops_at_the_limit() -> None:
    recent = RecentEvents()
    recent.extend([stored(p, "job.stopped" if p % 2 else "job.started") for p in range(1, 11)], [10] * 10)
    assert [e.position for e in recent.of_types({"job.stopped"}, 0, 3) or []] == [1, 3, 5]
    assert [e.position for e in recent.of_types({"job.stopped"}, 9, 3) or []] == []
    assert recent.of_types({"job.stopped"}, 10, 3) is None


def test_keeps_the_newest_within_its_count_and_byte_bounds() -> None:
    recent = RecentEvents(max_events=4, max_bytes=1000)
    for p in range(1, 21):
        recent.extend([stored(p)], [10])
    assert recent.first == 17
    assert [e.position for e in recent.after(16, 10) or []] == [17, 18, 19, 20]
    assert recent.after(15, 10) is None
    recent.extend([stored(21), stored(22)], [600, 600])
    assert recent.first == 22, "bytes bound: only the newest large event stays"
    recent.extend([stored(23)], [5000])
    assert recent.first == 23, "the newest event is held even when it alone is over the bound"
    recent.clear()
    assert recent.after(22, 10) is None

"""The newest events one log handle wrote, kept in memory for the agents that follow the log.

Agents in the same process read what the writer has just committed; serving those reads from here
spares a query and a payload decode per event, and, more than that, a round of giving up and winning
back the interpreter lock that every SQLite call costs. Only a dense run of positions is kept: when
another process appended in between (the CLI), the run restarts, and anything not held here is read
from the file as before. Events handed out are shared: agents treat them, payloads included, as
read-only, which they are by the log's contract.
"""

from __future__ import annotations

from collections.abc import Collection

from streams.events import Event


class RecentEvents:
    """A dense run of the newest stored events (positions p, p+1, ...), at least `capacity` of them."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._events: list[Event] = []

    @property
    def first(self) -> int | None:
        """Position of the oldest event held, None when empty."""
        return self._events[0].position if self._events else None

    def extend(self, events: list[Event]) -> None:
        """Add newly committed events (with positions); a gap before them starts a new run."""
        if not events:
            return
        if self._events and self._events[-1].position != (events[0].position or 0) - 1:
            self._events.clear()
        self._events.extend(events)
        if len(self._events) > 2 * self.capacity:  # trimmed in halves: amortised O(1) per event
            del self._events[: len(self._events) - self.capacity]

    def clear(self) -> None:
        self._events.clear()

    def after(self, position: int, limit: int) -> list[Event] | None:
        """Up to `limit` events after `position`; None unless the next one is held here."""
        start = self._index_after(position)
        return None if start is None else self._events[start : start + limit]

    def of_types(self, types: Collection[str], position: int, limit: int) -> list[Event] | None:
        """Like `after`, only events of `types`; None unless everything after `position` is held here.

        An empty list means no such event up to the newest held: the caller also asks the file for
        anything newer (another process's appends)."""
        start = self._index_after(position)
        if start is None:
            return None
        found = []
        for event in self._events[start:]:
            if event.type in types:
                found.append(event)
                if len(found) == limit:
                    break
        return found

    def _index_after(self, position: int) -> int | None:
        if not self._events:
            return None
        start = position + 1 - (self._events[0].position or 0)
        if start < 0 or start >= len(self._events):
            return None
        return start

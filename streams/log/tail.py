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
    """A dense run of the newest stored events (positions p, p+1, ...), bounded by count and bytes.

    At least the newest event is always held; beyond it, at most `max_events` events and
    `max_bytes` of encoded payload (large starts, with every hardware thread of a big job listed,
    would otherwise pin megabytes each).
    """

    def __init__(self, max_events: int = 4096, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: list[Event] = []
        self._sizes: list[int] = []
        self._offset = 0  # entries before it are dropped, compacted away in halves
        self._bytes = 0

    @property
    def first(self) -> int | None:
        """Position of the oldest event held, None when empty."""
        return self._events[self._offset].position if self._offset < len(self._events) else None

    def extend(self, events: list[Event], sizes: list[int]) -> None:
        """Add newly committed events (with positions) and their encoded sizes; a gap starts a new run."""
        if not events:
            return
        if self._offset < len(self._events) and self._events[-1].position != (events[0].position or 0) - 1:
            self.clear()
        self._events.extend(events)
        self._sizes.extend(sizes)
        self._bytes += sum(sizes)
        while len(self._events) - self._offset > 1 and (
            len(self._events) - self._offset > self.max_events or self._bytes > self.max_bytes
        ):
            self._bytes -= self._sizes[self._offset]
            self._offset += 1
        if self._offset > len(self._events) // 2:
            del self._events[: self._offset]
            del self._sizes[: self._offset]
            self._offset = 0

    def clear(self) -> None:
        self._events.clear()
        self._sizes.clear()
        self._offset = self._bytes = 0

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
        first = self.first
        if first is None:
            return None
        start = self._offset + position + 1 - first
        if start < self._offset or start >= len(self._events):
            return None
        return start

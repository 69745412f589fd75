"""How many times this consumer has seen one JetStream message.

JetStream reports a delivery count in each message's metadata, and ccstream keeps a message as a dead
letter on the last delivery JetStream will make (`max-deliver`). nats-server 2.9 (Debian bookworm's)
can under-report that count: a negative acknowledgement that arrives after the ack wait ran out makes
the next delivery say `num_delivered=1` although the server counts it as the second, and then stops
redelivering. Trusting the metadata alone would leave such a message in the stream, never applied and
never kept. So the consumer also counts deliveries itself, per stream sequence, and uses the larger of
the two counts. The table is bounded: a message that stays unsettled longer than `capacity` newer
messages falls back to JetStream's count (and the max-deliveries advisory still catches it).
"""

from __future__ import annotations

from collections import OrderedDict


class DeliveryCounts:
    """Deliveries seen per (stream, sequence), oldest forgotten first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, int], int] = OrderedDict()

    def delivered(self, key: tuple[str, int], reported: int) -> int:
        """Record one delivery of `key`; return its delivery number (at least JetStream's `reported`)."""
        count = max(self._seen.pop(key, 0) + 1, reported)
        self._seen[key] = count
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return count

    def settled(self, key: tuple[str, int]) -> None:
        """The message was acknowledged or terminated: it will not come back."""
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)

"""The consumer's own delivery count: never below JetStream's, bounded, forgotten once settled."""

from __future__ import annotations

from streams.ingest.nats.deliveries import DeliveryCounts


def test_counts_deliveries_itself_when_jetstream_under_reports() -> None:
    counts = DeliveryCounts()
    assert counts.delivered(("S", 7), reported=1) == 1
    assert counts.delivered(("S", 7), reported=1) == 2  # nats-server 2.9 after a late nak
    assert counts.delivered(("S", 8), reported=1) == 1


def test_jetstream_count_wins_when_it_is_higher() -> None:
    counts = DeliveryCounts()
    assert counts.delivered(("S", 7), reported=3) == 3  # earlier deliveries went to another instance
    assert counts.delivered(("S", 7), reported=1) == 4


def test_settled_messages_are_forgotten() -> None:
    counts = DeliveryCounts()
    counts.delivered(("S", 7), reported=1)
    counts.settled(("S", 7))
    counts.settled(("S", 99))  # unknown: nothing to forget
    assert len(counts) == 0
    assert counts.delivered(("S", 7), reported=1) == 1


def test_oldest_entries_are_dropped_beyond_capacity() -> None:
    counts = DeliveryCounts(capacity=2)
    for seq in (1, 2, 3):
        counts.delivered(("S", seq), reported=1)
    assert len(counts) == 2
    assert counts.delivered(("S", 1), reported=1) == 1  # forgotten: JetStream's count again
    assert counts.delivered(("S", 3), reported=1) == 2

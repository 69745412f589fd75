"""streams.unknownhosts: counted per cluster, listed within a bound, logged once per new host and rate-limited."""

from __future__ import annotations

import logging
import random
import string

import pytest

from streams.clusters import ClusterRegistry
from streams.unknownhosts import UnknownHosts
from tests.support.specs import find_specs


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_random_host_names_stays_bounded(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    hosts = UnknownHosts("test", capacity=50, log_per_minute=5, clock=clock)
    rng = random.Random(7)
    with caplog.at_level(logging.WARNING, logger="streams.unknownhosts"):
        for i in range(20_000):
            clock.now += 0.001
            hosts.record("fritz", "".join(rng.choices(string.ascii_lowercase, k=12)))
            if i % 100 == 0:
                hosts.record("fritz", "stale-node", 10)  # a real host missing from cluster.json, all along
            assert len(hosts._hosts) < 2 * hosts.capacity
    view = hosts.snapshot()
    assert view["byCluster"] == {"fritz": 20_000 + 200 * 10}
    assert len(view["hosts"]) <= 50 and view["evicted"] > 19_000
    stale = next(h for h in view["hosts"] if h["host"] == "stale-node")
    assert stale["count"] == 2000 and stale["firstSeen"] < stale["lastSeen"]
    # 20 s of flood: one minute's warnings (5) and nothing more, the rest counted for the next warning.
    assert len(caplog.records) == 5


def test_each_new_host_is_logged_once_and_suppressed_ones_are_summed_up(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    hosts = UnknownHosts("job intake", log_per_minute=2, clock=clock)
    with caplog.at_level(logging.WARNING, logger="streams.unknownhosts"):
        for name in ("a", "a", "b", "c", "d"):
            hosts.record("fritz", name)
        clock.now += 61
        hosts.record("fritz", "e")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "host 'a' is in no subcluster nodelist of cluster 'fritz'" in messages[0]
    assert "'e'" in messages[2] and "2 more new unknown hosts were not logged" in messages[2]
    assert hosts.snapshot()["hosts"][0]["host"] == "e"  # most recently seen first


def test_registry_knows_which_hosts_are_outside_the_nodelists() -> None:
    clusters = ClusterRegistry.load(find_specs() / "archive")
    assert not clusters.outside_nodelists("fritz", "f0101")
    assert not clusters.outside_nodelists("fritz", "f2281")  # spr2tb
    assert clusters.outside_nodelists("fritz", "f9999")
    assert not clusters.outside_nodelists("nosuchcluster", "f9999")
    wildcard = ClusterRegistry.from_dicts([{**clusters.get("fritz"), "name": "open",  # type: ignore[dict-item]
                                            "subClusters": [{**clusters.get("fritz")["subClusters"][0],  # type: ignore[index]
                                                             "nodes": "*"}]}])
    assert not wildcard.outside_nodelists("open", "anything")

"""Hosts seen outside their cluster's nodelists: counted per cluster, listed (bounded), logged once each.

A job start or a metric line naming a host that no subcluster lists is accepted, as cc-backend accepts it,
but it usually means a stale cluster.json or a typo in a collector's config: the job gets no subcluster
topology, the node views never show the host. So it is made visible rather than refused. Anyone can send
host names, so everything kept here is bounded: the per-cluster totals by the clusters (names of unknown
clusters are refused before they get here), the host list by `capacity`, the log by `log_per_minute`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Hosts listed by default; the list is pruned back to this size when it reaches twice as many.
DEFAULT_CAPACITY = 100
#: Warnings about new unknown hosts per minute; more are counted and summed up in the next warning.
DEFAULT_LOG_PER_MINUTE = 10


@dataclass(slots=True)
class HostSeen:
    """One host outside the nodelists: how often, first and last seen (unix seconds)."""

    cluster: str
    host: str
    count: int
    first_seen: float
    last_seen: float

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "host": self.host, "count": self.count,
                "firstSeen": int(self.first_seen), "lastSeen": int(self.last_seen)}


class UnknownHosts:
    """Thread-safe record of hosts outside the nodelists, for one source (`what` names it in the log).

    Pruning keeps the most frequent half and, of the rest, the most recently seen: a flood of random
    names cannot push out a host that keeps coming back, and a new one is still listed while it is new."""

    def __init__(self, what: str, *, capacity: int = DEFAULT_CAPACITY,
                 log_per_minute: int = DEFAULT_LOG_PER_MINUTE, clock: Callable[[], float] = time.time) -> None:
        self.what = what
        self.capacity = max(1, capacity)
        self.log_per_minute = log_per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._hosts: dict[tuple[str, str], HostSeen] = {}
        self._totals: Counter[str] = Counter()
        self.evicted = 0
        self._window = 0.0
        self._logged = 0
        self._unlogged = 0

    def record(self, cluster: str, host: str, count: int = 1) -> None:
        """Count `count` occurrences (job resources, samples) of a host outside the cluster's nodelists."""
        now = self.clock()
        with self._lock:
            self._totals[cluster] += count
            seen = self._hosts.get((cluster, host))
            if seen is not None:
                seen.count += count
                seen.last_seen = now
                return
            self._hosts[(cluster, host)] = HostSeen(cluster, host, count, now, now)
            if len(self._hosts) >= 2 * self.capacity:
                self._prune()
            message = self._warning(now)
        if message is not None:
            log.warning("%s: host %r is in no subcluster nodelist of cluster %r (accepted; listed in "
                        "GET /api/admin/status)%s", self.what, host, cluster, message)

    def _warning(self, now: float) -> str | None:
        """None when this minute's warnings are used up; else the suffix of the warning to log."""
        if now - self._window >= 60:
            self._window, self._logged = now, 0
        if self._logged >= self.log_per_minute:
            self._unlogged += 1
            return None
        self._logged += 1
        suffix = f"; {self._unlogged} more new unknown hosts were not logged" if self._unlogged else ""
        self._unlogged = 0
        return suffix

    def _prune(self) -> None:
        keep = self._selection()
        self.evicted += len(self._hosts) - len(keep)
        self._hosts = {(e.cluster, e.host): e for e in keep}

    def _selection(self) -> list[HostSeen]:
        """The `capacity` hosts worth keeping: the most frequent half, then the most recently seen."""
        entries = list(self._hosts.values())
        if len(entries) <= self.capacity:
            return entries
        by_count = sorted(entries, key=lambda e: (e.count, e.last_seen), reverse=True)
        keep = by_count[: self.capacity // 2]
        kept = {(e.cluster, e.host) for e in keep}
        recent = sorted((e for e in entries if (e.cluster, e.host) not in kept), key=lambda e: e.last_seen,
                        reverse=True)
        return keep + recent[: self.capacity - len(keep)]

    def totals(self) -> dict[str, int]:
        """Occurrences per cluster since start (what Prometheus exports; hosts would be unbounded labels)."""
        with self._lock:
            return dict(self._totals)

    def snapshot(self) -> dict[str, Any]:
        """The admin status view: totals per cluster and the listed hosts, most recently seen first."""
        with self._lock:
            hosts = sorted(self._selection(), key=lambda e: (e.last_seen, e.count), reverse=True)
            return {"byCluster": dict(self._totals), "evicted": self.evicted, "hosts": [e.as_dict() for e in hosts]}

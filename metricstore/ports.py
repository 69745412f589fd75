"""Small ports the metric store needs from the rest of ccstream, and their trivial adapters."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol


class RunningJobHosts(Protocol):
    """Which hosts of a cluster run jobs now; their data outlives `retention-in-memory`."""

    def hosts_in_use(self, cluster: str) -> set[str]:
        """Hostnames of the cluster's running jobs."""
        ...


class NoRunningJobs:
    """Used when nothing tells the store about jobs (standalone mode): retention applies to every host."""

    def hosts_in_use(self, cluster: str) -> set[str]:
        return set()


class StaticRunningJobHosts:
    """A fixed mapping cluster -> hosts; for tests and for callers that compute the set themselves."""

    def __init__(self, hosts: Mapping[str, set[str]]) -> None:
        self.hosts = {k: set(v) for k, v in hosts.items()}

    def hosts_in_use(self, cluster: str) -> set[str]:
        return set(self.hosts.get(cluster, ()))


Clock = Callable[[], float]


def system_clock() -> float:
    """Wall-clock seconds; the one thing tests replace."""
    return time.time()

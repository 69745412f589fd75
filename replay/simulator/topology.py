"""The simulated machine: hosts, hardware threads and accelerators of one cluster.json subcluster."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.nodelist import NodeList


@dataclass(frozen=True)
class Machine:
    """One subcluster's nodes as the simulator schedules them."""

    cluster: str
    subcluster: str
    hosts: tuple[str, ...]
    hwthreads: tuple[int, ...]
    sockets: tuple[tuple[int, ...], ...]
    memory_domains: tuple[tuple[int, ...], ...]
    cores: tuple[tuple[int, ...], ...]
    accelerators: tuple[str, ...]
    metric_config: tuple[Mapping[str, Any], ...]

    @property
    def threads_per_node(self) -> int:
        return len(self.hwthreads)


def machine_from_cluster(cluster: Mapping[str, Any], max_nodes: int | None = None) -> Machine:
    """The first subcluster of a cluster.json, limited to `max_nodes` hosts."""
    sub = cluster["subClusters"][0]
    hosts = NodeList.parse(sub["nodes"]).expand(limit=100_000)
    if max_nodes is not None:
        hosts = hosts[:max_nodes]
    topo = sub["topology"]
    return Machine(
        cluster=cluster["name"],
        subcluster=sub["name"],
        hosts=tuple(hosts),
        hwthreads=tuple(topo["node"]),
        sockets=tuple(tuple(s) for s in topo.get("socket") or [topo["node"]]),
        memory_domains=tuple(tuple(d) for d in topo.get("memoryDomain") or []),
        cores=tuple(tuple(c) for c in topo.get("core") or [[h] for h in topo["node"]]),
        accelerators=tuple(str(a["id"]) for a in topo.get("accelerators") or []),
        metric_config=tuple(cluster["metricConfig"]),
    )

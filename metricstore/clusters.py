"""Metric catalogue and node topology per cluster, derived from cluster.json dicts (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hostlist

from metricstore.settings import MetricDefinition

AGGREGATIONS = ("sum", "avg", "")


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What the store needs to know about one metric of one cluster."""

    name: str
    frequency: int
    aggregation: str  # "sum", "avg" or "" (children are not combined)
    scope: str = "node"  # native scope from cluster.json ("node", "socket", "hwthread", ...)
    unit: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Topology:
    """Hardware layout of a subcluster's nodes: hwthread ids per scope element, accelerator ids."""

    node: tuple[int, ...]
    socket: tuple[tuple[int, ...], ...]
    memory_domain: tuple[tuple[int, ...], ...]
    core: tuple[tuple[int, ...], ...]
    accelerators: tuple[str, ...]

    @classmethod
    def from_dict(cls, topo: Mapping[str, Any]) -> Topology:
        """Build from cluster.json's `topology` object (missing parts become empty)."""

        def groups(key: str) -> tuple[tuple[int, ...], ...]:
            return tuple(tuple(int(x) for x in g) for g in topo.get(key) or ())

        accs = tuple(str(a["id"]) for a in topo.get("accelerators") or () if "id" in a)
        return cls(tuple(int(x) for x in topo.get("node") or ()), groups("socket"),
                   groups("memoryDomain"), groups("core"), accs)

    def groups_for(self, scope: str) -> tuple[tuple[int, ...], ...]:
        """Hwthread groups that make up each element of `scope`."""
        table = {"socket": self.socket, "memoryDomain": self.memory_domain, "core": self.core,
                 "node": (self.node,), "hwthread": tuple((h,) for h in self.node)}
        if scope not in table:
            raise ValueError(f"scope {scope!r} has no hwthread grouping")
        return table[scope]


@dataclass(slots=True)
class ClusterInfo:
    """Metrics and subclusters of one cluster."""

    name: str
    metrics: dict[str, MetricInfo]
    subclusters: dict[str, Topology]
    host_subcluster: dict[str, str]


def _metric_from_cluster_json(mc: Mapping[str, Any]) -> MetricInfo:
    name = str(mc["name"])
    timestep = mc.get("timestep")
    if not isinstance(timestep, int) or timestep <= 0:
        raise ValueError(f"metric {name!r}: timestep must be a positive integer, got {timestep!r}")
    agg = mc.get("aggregation") or ""
    if agg not in AGGREGATIONS:
        raise ValueError(f"metric {name!r}: aggregation must be 'sum', 'avg' or empty, got {agg!r}")
    return MetricInfo(name, timestep, agg, str(mc.get("scope") or "node"), dict(mc.get("unit") or {}))


def parse_cluster(doc: Mapping[str, Any]) -> ClusterInfo:
    """Read one cluster.json document; raises ValueError naming the offending entry."""
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("cluster.json without a 'name'")
    metrics = {m.name: m for m in (_metric_from_cluster_json(mc) for mc in doc.get("metricConfig") or ())}
    subclusters: dict[str, Topology] = {}
    host_sc: dict[str, str] = {}
    for sc in doc.get("subClusters") or ():
        sc_name = str(sc["name"])
        subclusters[sc_name] = Topology.from_dict(sc.get("topology") or {})
        nodes = sc.get("nodes") or ""
        try:
            hosts = hostlist.expand_hostlist(nodes) if nodes else []
        except hostlist.BadHostlist as exc:
            raise ValueError(f"cluster {name!r} subcluster {sc_name!r}: bad node list {nodes!r}: {exc}") from exc
        for host in hosts:
            host_sc.setdefault(host, sc_name)
    return ClusterInfo(name, metrics, subclusters, host_sc)


class Catalogue:
    """Answers "which metric, at what frequency" per cluster; standalone `metrics` fill the gaps."""

    def __init__(self, cluster_docs: Iterable[Mapping[str, Any]],
                 standalone: Mapping[str, MetricDefinition] | None = None) -> None:
        self.clusters: dict[str, ClusterInfo] = {}
        for doc in cluster_docs:
            info = parse_cluster(doc)
            self.clusters[info.name] = info
        self.standalone = {name: MetricInfo(name, d.frequency, d.aggregation or "")
                           for name, d in (standalone or {}).items()}

    def knows_cluster(self, cluster: str) -> bool:
        """A cluster is known from its cluster.json, or any cluster when standalone metrics exist."""
        return cluster in self.clusters or bool(self.standalone)

    def outside_nodelists(self, cluster: str, host: str) -> bool:
        """Whether the cluster's cluster.json lists nodes and no subcluster lists this host (a standalone
        cluster, a `*` subcluster, or no node lists at all: every host belongs)."""
        info = self.clusters.get(cluster)
        if info is None or not info.host_subcluster or "*" in info.host_subcluster:
            return False
        return host not in info.host_subcluster

    def metric(self, cluster: str, name: str) -> MetricInfo | None:
        """The metric's definition for this cluster, or None when it is not configured."""
        info = self.clusters.get(cluster)
        if info is not None and name in info.metrics:
            return info.metrics[name]
        return self.standalone.get(name)

    def metric_names(self, cluster: str) -> list[str]:
        """All metrics configured for a cluster."""
        info = self.clusters.get(cluster)
        names = dict.fromkeys(info.metrics if info else ())
        names.update(dict.fromkeys(self.standalone))
        return list(names)

    def topology(self, cluster: str, host: str, subcluster: str | None = None) -> Topology | None:
        """The topology of a host (by its subcluster, found from the node lists when not given)."""
        info = self.clusters.get(cluster)
        if info is None:
            return None
        sc = subcluster or info.host_subcluster.get(host)
        if sc is None and len(info.subclusters) == 1:
            sc = next(iter(info.subclusters))
        return info.subclusters.get(sc) if sc else None

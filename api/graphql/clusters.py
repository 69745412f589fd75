"""`clusters` and `globalMetrics`: the cluster.json configurations in the schema's shape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from api.auth import Principal, Role
from projections import schema
from streams.clusters import ClusterRegistry
from streams.nodelist import NodeList, NodeListError

job = schema.job


def partitions(conn: Connection, cluster: str) -> list[str]:
    """The Slurm partitions jobs of the cluster ran in (cc-backend: the distinct `cluster_partition`s)."""
    stmt = (select(job.c.cluster_partition).where(job.c.cluster == cluster, job.c.cluster_partition.is_not(None))
            .distinct().order_by(job.c.cluster_partition))
    return [p for (p,) in conn.execute(stmt) if p]


def _metric_value(value: Mapping[str, Any] | None) -> dict[str, Any]:
    value = value or {}
    return {"name": None, "unit": _unit(value.get("unit")), "value": float(value.get("value") or 0.0)}


def _unit(unit: Any) -> dict[str, Any]:
    unit = unit if isinstance(unit, Mapping) else {}
    return {"base": str(unit.get("base") or ""), "prefix": unit.get("prefix")}


def metric_config_object(metric: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": metric["name"], "unit": _unit(metric.get("unit")), "scope": metric.get("scope") or "node",
        "aggregation": metric.get("aggregation") or "", "timestep": int(metric.get("timestep") or 0),
        "peak": float(metric.get("peak") or 0.0), "normal": metric.get("normal"),
        "caution": float(metric.get("caution") or 0.0), "alert": float(metric.get("alert") or 0.0),
        "lowerIsBetter": metric.get("lowerIsBetter"), "subClusters": list(metric.get("subClusters") or ()),
    }


def _number_of_nodes(nodes: str) -> int:
    try:
        return NodeList.parse(nodes).count()
    except NodeListError:
        return 0


def subcluster_object(registry: ClusterRegistry, cluster: str, sub: Mapping[str, Any]) -> dict[str, Any]:
    metrics = registry.metric_config(cluster, sub["name"])
    topology = dict(sub.get("topology") or {})
    accelerators = [{"id": str(a.get("id", "")), "type": str(a.get("type", "")), "model": str(a.get("model", ""))}
                    for a in topology.get("accelerators") or ()]
    return {
        "name": sub["name"], "nodes": sub.get("nodes", ""), "numberOfNodes": _number_of_nodes(sub.get("nodes", "")),
        "processorType": sub.get("processorType", ""), "socketsPerNode": int(sub.get("socketsPerNode") or 0),
        "coresPerSocket": int(sub.get("coresPerSocket") or 0), "threadsPerCore": int(sub.get("threadsPerCore") or 0),
        "flopRateScalar": _metric_value(sub.get("flopRateScalar")),
        "flopRateSimd": _metric_value(sub.get("flopRateSimd")),
        "memoryBandwidth": _metric_value(sub.get("memoryBandwidth")),
        "topology": {"node": topology.get("node"), "socket": topology.get("socket"),
                     "memoryDomain": topology.get("memoryDomain"), "die": topology.get("die"),
                     "core": topology.get("core"), "accelerators": accelerators or None},
        "metricConfig": [metric_config_object(m) for m in metrics],
        "footprint": [m["name"] for m in metrics if m.get("footprint")],
    }


def cluster_objects(registry: ClusterRegistry, conn: Connection) -> list[dict[str, Any]]:
    out = []
    for name in registry.names():
        config = registry.get(name) or {}
        out.append({"name": name, "partitions": partitions(conn, name),
                    "subClusters": [subcluster_object(registry, name, sc) for sc in config.get("subClusters", ())]})
    return out


def _sees_restricted(viewer: Principal) -> bool:
    """cc-backend hides `restrict: true` metrics from anyone holding the user or manager role."""
    return not viewer.has_any_role({Role.USER.value, Role.MANAGER.value})


def global_metrics(registry: ClusterRegistry, viewer: Principal) -> list[dict[str, Any]]:
    """Every metric of every cluster once, with the clusters and subclusters that have it."""
    by_name: dict[str, dict[str, Any]] = {}
    for cluster in registry.names():
        config = registry.get(cluster) or {}
        subclusters = [sc["name"] for sc in config.get("subClusters", ())]
        for metric in config.get("metricConfig", ()):
            if metric.get("restrict") and not _sees_restricted(viewer):
                continue
            entry = by_name.setdefault(metric["name"], {
                "name": metric["name"], "unit": _unit(metric.get("unit")), "scope": metric.get("scope") or "node",
                "footprint": metric.get("footprint") or None, "availability": []})
            available = _available_in(registry, cluster, metric["name"], subclusters)
            if available:
                entry["availability"].append({"cluster": cluster, "subClusters": available})
    return list(by_name.values())


def _available_in(registry: ClusterRegistry, cluster: str, metric: str, subclusters: Iterable[str]) -> list[str]:
    return [sc for sc in subclusters if any(m["name"] == metric for m in registry.metric_config(cluster, sc))]

"""Metric data of nodes (§3.9): `nodeMetrics`, `nodeMetricsList`, `clusterMetrics`, for admin and support.

Node series are read through the same metric source as job data, as a request over the hosts and the
time range asked for (whole nodes, node scope unless finer scopes are asked), so the embedded and an
external metric store answer alike, within `reads.max-job-points`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from api.bootstrap import Services
from api.config import Resampling
from api.errors import ApiError
from api.graphql.jobmetrics import default_resolution, rounded_statistics, with_statistics_series
from api.graphql.jobquery import QueryError
from api.graphql.nodes import NEWEST_STATE_ID
from api.readpool import checkpoint
from metricstore.jobdata import JobDataRequest, JobResource
from projections import schema
from streams.nodelist import NodeList, NodeListError

node, node_state = schema.node, schema.node_state

#: Hosts whose data one request loads at most: the node list pages through more.
MAX_HOSTS = 5000
#: Unit prefixes and their powers of ten (clusterMetrics answers in tera).
PREFIXES = {"": 0, "K": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def topology_hosts(services: Services, cluster: str, subcluster: str | None = None) -> list[str]:
    """The hosts the cluster.json nodelists name (of one subcluster, or all), sorted."""
    config = services.clusters.get(cluster)
    if config is None:
        raise QueryError(f"unknown cluster {cluster!r}")
    hosts: set[str] = set()
    for sub in config.get("subClusters", ()):
        if subcluster and sub["name"] != subcluster:
            continue
        try:
            hosts.update(NodeList.parse(sub.get("nodes", "")).expand(limit=100_000))
        except NodeListError:
            continue
    return sorted(hosts)


def _states(conn: Connection, cluster: str) -> dict[str, tuple[str, str, str]]:
    """hostname → (scheduler state, health state, subcluster) from each node's newest report."""
    stmt = (select(node.c.hostname, node.c.subcluster, node_state.c.node_state, node_state.c.health_state)
            .select_from(node).join(node_state, node_state.c.id == NEWEST_STATE_ID).where(node.c.cluster == cluster))
    return {r.hostname: (r.node_state, r.health_state, r.subcluster) for r in conn.execute(stmt)}


def load_node_data(services: Services, cluster: str, hosts: Sequence[str], metrics: Sequence[str] | None,
                   scopes: Sequence[str] | None, start: int, stop: int, resolution: int) -> dict[str, Any]:
    """{metric: {scope: {unit, timestep, series}}} of the hosts between start and stop."""
    if stop <= start:
        raise QueryError("`to` must lie after `from`")
    if len(hosts) > MAX_HOSTS:
        raise QueryError(f"at most {MAX_HOSTS} nodes per request")
    source = services.metric_source
    if source is None or not hosts:
        return {}
    request = JobDataRequest(cluster=cluster, resources=tuple(JobResource(h) for h in hosts), start=start,
                             stop=stop, metrics=tuple(metrics) if metrics is not None else None,
                             scopes=tuple(scopes or ("node",)), resolution=resolution, checkpoint=checkpoint)
    limit = services.settings.reads.max_job_points
    total = sum(source.job_points(request).values())
    if total > limit:
        raise QueryError(f"the nodes' metric data has {total:,} points, more than reads.max-job-points ({limit:,}):"
                         " ask for fewer nodes, metrics or a shorter time range")
    try:
        return dict(source.load_job_data(request))
    except ApiError:
        raise
    except Exception as exc:  # an external metric store may be down: say so
        raise QueryError(f"loading node metric data failed: {type(exc).__name__}: {exc}") from None


def _per_host(data: dict[str, Any], hosts: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Split each metric's series by host: hostname → [JobMetricWithName]."""
    out: dict[str, list[dict[str, Any]]] = {h: [] for h in hosts}
    for name, by_scope in sorted(data.items()):
        for scope, metric in by_scope.items():
            by_host: dict[str, list[dict[str, Any]]] = {}
            for series in metric.get("series") or []:
                by_host.setdefault(series["hostname"], []).append(series)
            for host, series in by_host.items():
                if host in out:
                    entry = {"name": name, "scope": scope, "metric": {**metric, "series": series}}
                    out[host].append(rounded_statistics(with_statistics_series(entry)))
    return out


def _items(services: Services, conn: Connection, cluster: str, hosts: Sequence[str], data: dict[str, Any]
           ) -> list[dict[str, Any]]:
    states = _states(conn, cluster)
    metrics = _per_host(data, hosts)
    return [{"host": h, "nodeState": states.get(h, ("", "", ""))[0], "metricHealth": states.get(h, ("", "", ""))[1],
             "subCluster": states[h][2] if h in states else services.clusters.subcluster_of(cluster, h) or "",
             "metrics": metrics[h]} for h in hosts]


def node_metrics(services: Services, conn: Connection, cluster: str, nodes: Sequence[str] | None,
                 scopes: Sequence[str] | None, metrics: Sequence[str] | None, start: int, stop: int
                 ) -> list[dict[str, Any]]:
    """Native-resolution data of the nodes (all of the cluster's without `nodes`), by hostname."""
    hosts = sorted(set(nodes)) if nodes is not None else topology_hosts(services, cluster)
    data = load_node_data(services, cluster, hosts, _known(services, cluster, metrics), scopes, start, stop, 0)
    return _items(services, conn, cluster, hosts, data)


def _known(services: Services, cluster: str, metrics: Sequence[str] | None) -> list[str] | None:
    """The asked metrics the cluster has (unknown names are dropped, as in cc-backend); None: all."""
    if metrics is None:
        return None
    config = services.clusters.get(cluster) or {}
    names = {m["name"] for m in config.get("metricConfig", ())}
    return [m for m in metrics if m in names]


def node_metrics_list(services: Services, conn: Connection, *, cluster: str, subcluster: str, state_filter: str,
                      node_filter: str, scopes: Sequence[str] | None, metrics: Sequence[str] | None, start: int,
                      stop: int, page: dict[str, Any] | None, resolution: int | None,
                      resampling: Resampling | None) -> dict[str, Any]:
    """One page of the node list: the reported nodes matching the filters (or, with `notindb`, the
    cluster's nodes never reported), by hostname, with their metric data."""
    states = _states(conn, cluster)
    known = {h: s for h, s in states.items() if not subcluster or s[2] == subcluster}
    if state_filter == "notindb" or (state_filter == "all" and not known):
        candidates = [h for h in topology_hosts(services, cluster, subcluster or None)
                      if state_filter != "notindb" or h not in states]
    else:
        candidates = sorted(h for h, s in known.items() if state_filter in ("all", "") or s[0] == state_filter)
    hosts = [h for h in candidates if node_filter.lower() in h.lower()]
    per_page, number = (int(page["itemsPerPage"]), max(int(page["page"]), 1)) if page else (-1, 1)
    if per_page != -1 and per_page < 1:
        raise QueryError("invalid items-per-page value")
    shown = hosts if per_page == -1 else hosts[(number - 1) * per_page : number * per_page]
    step = default_resolution(resampling) if resolution is None else resolution
    data = load_node_data(services, cluster, shown, _known(services, cluster, metrics), scopes, start, stop, step)
    return {"items": _items(services, conn, cluster, shown, data), "offset": None, "limit": None, "count": None,
            "totalNodes": len(hosts), "hasNextPage": per_page != -1 and number * per_page < len(hosts)}


def _scale(prefix: str | None) -> float:
    return 10.0 ** (PREFIXES.get(prefix or "", 0) - PREFIXES["T"])


def cluster_metrics(services: Services, cluster: str, metrics: Sequence[str] | None, start: int, stop: int
                    ) -> dict[str, Any]:
    """Per metric the sum over the cluster's nodes at each time step, in tera units, two decimals."""
    hosts = topology_hosts(services, cluster)
    data = load_node_data(services, cluster, hosts, _known(services, cluster, metrics), ["node"], start, stop, 0)
    out = []
    counted: set[str] = set()
    for name, by_scope in sorted(data.items()):
        metric = by_scope.get("node")
        if metric is None or not metric.get("series"):
            continue
        series = metric["series"]
        length = len(series[0]["data"])
        rows = [s for s in series if len(s["data"]) == length]  # a host with a different length is left out
        counted.update(s["hostname"] for s in rows)
        matrix = np.array([[math.nan if v is None else v for v in s["data"]] for s in rows], dtype=np.float64)
        unit = metric.get("unit") or {}
        summed = np.nan_to_num(matrix, nan=0.0).sum(axis=0) * _scale(unit.get("prefix"))
        out.append({"name": name, "unit": {"base": unit.get("base") or "", "prefix": "T"},
                    "timestep": int(metric.get("timestep") or 0), "data": np.round(summed, 2).tolist()})
    return {"nodeCount": len(counted), "metrics": out}

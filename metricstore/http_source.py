"""`MetricSource` over HTTP: an external cc-metric-store or ccstream metric store (`metric-store-external`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import httpx
import numpy as np
import orjson

from metricstore.clusters import Catalogue
from metricstore.health import State
from metricstore.jobdata import JobDataRequest, metric_entry, series_entry
from metricstore.resample import lttb
from metricstore.settings import ExternalMetricStore
from metricstore.source import JobData, build_plans


class MetricStoreHttpError(RuntimeError):
    """The external store answered with an error or something that is not its API."""


class HttpMetricSource:
    """Plans scopes locally from the cluster.json dicts, then asks the store's `/api/query/`."""

    def __init__(self, endpoints: Sequence[ExternalMetricStore], clusters: Iterable[Mapping[str, Any]], *,
                 transport: httpx.BaseTransport | None = None, timeout: float = 60.0) -> None:
        if not endpoints:
            raise ValueError("HttpMetricSource needs at least one metric-store-external entry")
        self.endpoints = list(endpoints)
        self.catalogue = Catalogue(clusters)
        self.client = httpx.Client(transport=transport, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def endpoint(self, cluster: str, subcluster: str | None = None) -> ExternalMetricStore:
        """The most specific entry: subcluster, then cluster, then '*'."""
        for wanted in (subcluster, cluster, "*"):
            for ep in self.endpoints:
                if wanted is not None and ep.scope == wanted:
                    return ep
        raise LookupError(f"no metric-store-external entry serves cluster {cluster!r}")

    def _call(self, ep: ExternalMetricStore, method: str, path: str, body: Any) -> Any:
        headers = {"Content-Type": "application/json"}
        if ep.token:
            headers["Authorization"] = f"Bearer {ep.token}"
        url = ep.url.rstrip("/") + path
        try:
            resp = self.client.request(method, url, content=orjson.dumps(body), headers=headers)
        except httpx.HTTPError as exc:
            raise MetricStoreHttpError(f"{method} {url}: {exc}") from exc
        if resp.status_code != 200:
            raise MetricStoreHttpError(f"{method} {url}: HTTP {resp.status_code}: {resp.text[:500]}")
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise MetricStoreHttpError(f"{method} {url}: answer is not JSON: {exc}") from exc

    def load_job_data(self, request: JobDataRequest) -> JobData:
        plans = build_plans(self.catalogue, request)
        queries = [{"metric": p.metric.name, "host": g.hostname, "aggreg": True, "resolution": 0,
                    **({"type": g.type, "type-ids": list(g.type_ids)} if g.type is not None else {})}
                   for p in plans for g in p.groups]
        if not queries:
            return {}
        body = {"cluster": request.cluster, "from": request.start, "to": request.stop, "queries": queries,
                "with-stats": True, "with-data": True, "with-padding": True}
        answer = self._call(self.endpoint(request.cluster, request.subcluster), "GET", "/api/query/", body)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(queries):
            raise MetricStoreHttpError(f"query answer has {len(results or [])} results for {len(queries)} queries")
        out: JobData = {}
        pos = 0
        for plan in plans:
            series, timestep = [], plan.metric.frequency
            for group in plan.groups:
                entries = results[pos]
                pos += 1
                if not entries or entries[0].get("error") or entries[0].get("data") is None:
                    continue
                data = np.array([np.nan if v is None else v for v in entries[0]["data"]], np.float32)
                data, timestep = lttb(data, int(entries[0].get("resolution") or plan.metric.frequency),
                                      request.resolution)
                series.append(series_entry(group, data))
            if series:
                out.setdefault(plan.metric.name, {})[plan.scope] = metric_entry(plan.metric, timestep, series)
        return out

    def node_health(self, cluster: str, hostname: str,
                    metrics: list[str] | None = None) -> tuple[State, dict[str, list[str]]]:
        names = metrics if metrics is not None else self.catalogue.metric_names(cluster)
        body = {"cluster": cluster, "nodes": [hostname], "metric-names": names}
        answer = self._call(self.endpoint(cluster), "GET", "/api/healthcheck/", body)
        node = answer.get(hostname) if isinstance(answer, dict) else None
        if not isinstance(node, dict) or node.get("State") not in ("full", "partial", "failed"):
            raise MetricStoreHttpError(f"healthcheck answer without a state for {hostname!r}")
        lists = orjson.loads(node.get("HealthMetrics") or "{}")
        return cast(State, node["State"]), {"missing": list(lists.get("missing") or []),
                                            "degraded": list(lists.get("degraded") or [])}

"""`MetricSource` over HTTP: an external cc-metric-store or ccstream metric store (`metric-store-external`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import httpx
import numpy as np
import orjson

from metricstore.clusters import Catalogue
from metricstore.health import State
from metricstore.jobdata import JobDataRequest, metric_entry, series_entries
from metricstore.resample import lttb
from metricstore.settings import ExternalMetricStore
from metricstore.source import JobData, build_plans, plan_points

#: Points asked of the external store per `/api/query/` call: a big job is read in several calls, so its
#: answer (JSON, then Python lists) is never in memory all at once, and no call meets the store's limits.
HTTP_BATCH_POINTS = 1_000_000


def _batches(queries: list[tuple[dict[str, Any], int]], points: int) -> list[list[dict[str, Any]]]:
    """Consecutive queries cut into calls of about `points` points each (a larger query goes alone)."""
    out: list[list[dict[str, Any]]] = [[]]
    size = 0
    for query, steps in queries:
        if out[-1] and size + steps > points:
            out.append([])
            size = 0
        out[-1].append(query)
        size += steps
    return out


def _aligned(entry: dict[str, Any], start: int, resolution: int) -> np.ndarray:
    """An answer's data as float32 (NaN for null), starting at the job's start.

    cc-metric-store pads the front with nulls back to the asked `from`; ccstream's store does not pad
    before the oldest sample it holds and says so in `from` (its data spans exactly `from`..`to`): the
    front is padded here then, so every series of a job starts at the job's start either way."""
    values = np.array([np.nan if v is None else v for v in entry["data"]], np.float32)
    begin, end = entry.get("from"), entry.get("to")
    if isinstance(begin, int) and isinstance(end, int) and begin > start and end - begin == len(values) * resolution:
        front = (begin - start) // resolution
        values = np.concatenate([np.full(front, np.nan, np.float32), values])
    return values


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

    def job_points(self, request: JobDataRequest) -> dict[str, int]:
        """The job's whole range: what the external store holds is not known before asking it."""
        return plan_points(build_plans(self.catalogue, request), request.steps_at)

    def load_job_data(self, request: JobDataRequest) -> JobData:
        plans = build_plans(self.catalogue, request)
        queries = [({"metric": p.metric.name, "host": g.hostname, "aggreg": True, "resolution": 0,
                     **({"type": g.type, "type-ids": list(g.type_ids)} if g.type is not None else {})},
                    request.steps_at(p.metric.frequency))
                   for p in plans for g in p.groups]
        if not queries:
            return {}
        results = []
        for batch in _batches(queries, HTTP_BATCH_POINTS):
            results.extend(self._query(request, batch))
        out: JobData = {}
        pos = 0
        for plan in plans:
            series, timestep = [], plan.metric.frequency
            for group in plan.groups:
                entries = results[pos]
                pos += 1
                if not entries or entries[0].get("error") or entries[0].get("data") is None:
                    continue
                resolution = int(entries[0].get("resolution") or plan.metric.frequency)
                data, timestep = lttb(_aligned(entries[0], request.start, resolution), resolution,
                                      request.resolution)
                series.append(series_entries([group], data[None, :], request.as_lists, request.exact_arrays)[0])
            if series:
                out.setdefault(plan.metric.name, {})[plan.scope] = metric_entry(plan.metric, timestep, series)
        return out

    def _query(self, request: JobDataRequest, queries: list[dict[str, Any]]) -> list[Any]:
        """One `/api/query/` call; its `results`, one list per query."""
        body = {"cluster": request.cluster, "from": request.start, "to": request.stop, "queries": queries,
                "with-stats": True, "with-data": True, "with-padding": True}
        answer = self._call(self.endpoint(request.cluster, request.subcluster), "GET", "/api/query/", body)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(queries):
            raise MetricStoreHttpError(f"query answer has {len(results or [])} results for {len(queries)} queries")
        return results

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

"""`MetricSource`: how the rest of ccstream reads metrics, served in-process or over HTTP."""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np

from metricstore.health import State, node_health
from metricstore.jobdata import JobDataRequest, Plan, metric_entry, plan_groups, series_entry
from metricstore.query import QueryError, find_levels
from metricstore.resample import lttb
from metricstore.store import MetricStore

JobData = dict[str, dict[str, Any]]  # metric -> scope -> {unit, timestep, series}


class MetricSource(Protocol):
    """Read port of the metric store, for the archiver, the job views and node state."""

    def load_job_data(self, request: JobDataRequest) -> JobData:
        """The job's series per metric and scope, shaped like an archive `data.json`."""
        ...

    def node_health(self, cluster: str, hostname: str,
                    metrics: list[str] | None = None) -> tuple[State, dict[str, list[str]]]:
        """("full"|"partial"|"failed", {"missing": [...], "degraded": [...]}) of one node."""
        ...


def build_plans(store_catalogue: Any, request: JobDataRequest) -> list[Plan]:
    """Plans for every (metric, scope) the job's topology allows; shared by both implementations."""
    cat = store_catalogue
    names = list(request.metrics) if request.metrics is not None else cat.metric_names(request.cluster)
    plans = []
    for name in names:
        info = cat.metric(request.cluster, name)
        if info is None:
            continue
        for scope in request.scopes:
            plan, possible = Plan(info, scope), True
            for res in request.resources:
                topo = cat.topology(request.cluster, res.hostname, request.subcluster)
                groups = plan_groups(info.scope, scope, res, topo)
                if groups is None:
                    possible = False
                    break
                plan.groups.extend(groups)
            if possible and plan.groups:
                plans.append(plan)
    return plans


class InProcessMetricSource:
    """Reads the store directly: one vectorised read per (metric, scope) across all hosts of the job."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store

    def load_job_data(self, request: JobDataRequest) -> JobData:
        out: JobData = {}
        for plan in build_plans(self.store.catalogue, request):
            entry = self._read_plan(request, plan)
            if entry is not None:
                out.setdefault(plan.metric.name, {})[plan.scope] = entry
        return out

    def _read_plan(self, request: JobDataRequest, plan: Plan) -> dict[str, Any] | None:
        store, info = self.store, plan.metric
        rows: list[int] = []
        bounds: list[int] = []
        kept = []
        bid = -1
        with store.lock:
            for group in plan.groups:
                levels = store.levels(request.cluster, group.hostname, info.name)
                found = [hit for p in group.prefixes() for hit in find_levels(levels, p)] if levels else []
                if not found:
                    continue
                bid = found[0][0]
                bounds.append(len(rows))
                rows.extend(r for _b, r in found)
                kept.append(group)
            if not kept:
                return None
            values, _steps = store.read(bid, np.asarray(rows, np.int64), request.start, request.stop)
        combined = _reduce(values, np.asarray(bounds), info.aggregation)
        series, timestep = [], info.frequency
        for group, data in zip(kept, combined, strict=True):
            data, timestep = lttb(data, info.frequency, request.resolution)
            series.append(series_entry(group, data))
        return metric_entry(info, timestep, series)

    def node_health(self, cluster: str, hostname: str,
                    metrics: list[str] | None = None) -> tuple[State, dict[str, list[str]]]:
        return node_health(self.store, cluster, hostname, metrics)


def _reduce(values: np.ndarray, bounds: np.ndarray, aggregation: str) -> np.ndarray:
    """Combine consecutive row ranges starting at `bounds` (sum or avg of present values)."""
    sizes = np.diff(np.append(bounds, values.shape[0]))
    if (sizes == 1).all():
        return values
    if aggregation not in ("sum", "avg"):
        raise QueryError("invalid aggregation")
    present = ~np.isnan(values)
    sums = np.add.reduceat(np.where(present, values, 0).astype(np.float64), bounds, axis=0)
    counts = np.add.reduceat(present.astype(np.int32), bounds, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sums / counts if aggregation == "avg" else np.where(counts > 0, sums, np.nan)
    return np.where(counts > 0, result, np.nan).astype(np.float32)

"""`MetricSource`: how the rest of ccstream reads metrics, served in-process or over HTTP."""

from __future__ import annotations

import warnings
from typing import Any, Protocol, cast

import numpy as np

from metricstore.clusters import Topology
from metricstore.health import State, node_health
from metricstore.jobdata import (
    Group,
    HostShapes,
    JobDataRequest,
    JobResource,
    Plan,
    ShapeCache,
    metric_entry,
    series_entries,
)
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


#: Shared by every job of the process: jobs on the same kind of node ask the same questions.
_SHAPES = ShapeCache()


def build_plans(store_catalogue: Any, request: JobDataRequest) -> list[Plan]:
    """Plans for every (metric, scope) the job's topology allows; shared by both implementations."""
    cat = store_catalogue
    names = list(request.metrics) if request.metrics is not None else cat.metric_names(request.cluster)
    topologies = {res.hostname: cat.topology(request.cluster, res.hostname, request.subcluster)
                  for res in request.resources}
    plans = []
    for name in names:
        info = cat.metric(request.cluster, name)
        if info is None:
            continue
        for scope in request.scopes:
            hosts = _host_shapes(info.scope, scope, request.resources, topologies)
            if hosts:
                plans.append(Plan(info, scope, hosts))
    return plans


def _host_shapes(native: str, scope: str, resources: tuple[JobResource, ...],
                 topologies: dict[str, Topology | None]) -> HostShapes | None:
    """Each host's series of a (native -> requested) scope; None when a host cannot have the scope at
    all (cc-backend then drops the scope for the whole job), hosts without series left out."""
    hosts = []
    for res in resources:
        shapes = _SHAPES.shapes(native, scope, res, topologies[res.hostname])
        if shapes is None:
            return None
        if shapes:
            hosts.append((res.hostname, shapes))
    return tuple(hosts)


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
            for host, shapes in plan.hosts:
                levels = store.levels(request.cluster, host, info.name)
                if not levels:
                    continue  # the host never sent this metric: none of its series can be found
                for shape in shapes:
                    # Usually every prefix names a stored level (72 hwthreads of a node): then the hits
                    # are plain dict lookups, the same as find_levels returns for an exact level, with
                    # no call per prefix. Otherwise find_levels searches the levels below each prefix.
                    exact = list(map(levels.get, shape.prefixes))
                    found: list[tuple[int, int]]
                    if None in exact:
                        found = [hit for p in shape.prefixes for hit in find_levels(levels, p)]
                        if not found:
                            continue
                    else:
                        found = cast("list[tuple[int, int]]", exact)
                    bid = found[0][0]
                    bounds.append(len(rows))
                    rows.extend([r for _b, r in found])
                    kept.append(Group(host, shape.id, shape.type, shape.type_ids))
            if not kept:
                return None
            combined = _grouped_read(store, bid, np.asarray(rows, np.int64), np.asarray(bounds), request,
                                     info.aggregation)
            if combined is None:
                values, _steps = store.read(bid, np.asarray(rows, np.int64), request.start, request.stop)
                combined = _reduce(values, np.asarray(bounds), info.aggregation)
        timestep = info.frequency
        if request.resolution > info.frequency:
            resampled = [lttb(row, info.frequency, request.resolution) for row in combined]
            timestep = resampled[0][1]
            combined = np.stack([r[0] for r in resampled])
        series = series_entries(kept, combined, request.as_lists, request.exact_arrays)
        return metric_entry(info, timestep, series)

    def node_health(self, cluster: str, hostname: str,
                    metrics: list[str] | None = None) -> tuple[State, dict[str, list[str]]]:
        return node_health(self.store, cluster, hostname, metrics)


def _grouped_read(store: MetricStore, bid: int, rows: np.ndarray, bounds: np.ndarray,
                  request: JobDataRequest, aggregation: str) -> np.ndarray | None:
    """Aggregate equal-sized runs of consecutive rows straight from the chunks; None if not applicable."""
    sizes = np.diff(np.append(bounds, len(rows)))
    if len(rows) == 0 or (sizes == 1).all() or not (sizes == sizes[0]).all() or aggregation not in ("sum", "avg"):
        return None
    size = int(sizes[0])
    starts = rows[bounds]
    if not (rows.reshape(-1, size) - starts[:, None] == np.arange(size)).all():
        return None
    block = store.blocks[bid]
    f = block.frequency
    phases = np.maximum(block.phase[rows], 0)
    if not (phases == phases[0]).all():
        return None
    first = (request.start - int(phases[0]) + f // 2) // f
    steps = max(0, -(-(request.stop - request.start) // f))
    steps = 0 if block.head < 0 else min(steps, max(0, block.head - first + 1))
    sums, counts = block.sum_groups(starts, size, first, steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sums / counts if aggregation == "avg" else sums
    return np.where(counts > 0, result, np.nan).astype(np.float32)


def _reduce(values: np.ndarray, bounds: np.ndarray, aggregation: str) -> np.ndarray:
    """Combine consecutive row ranges starting at `bounds` (sum or avg of the present values)."""
    sizes = np.diff(np.append(bounds, values.shape[0]))
    if (sizes == 1).all():
        return values
    if aggregation not in ("sum", "avg"):
        raise QueryError("invalid aggregation")
    if (sizes == sizes[0]).all():  # the usual case: every host has the same number of hwthreads
        stacked = values.reshape(len(sizes), int(sizes[0]), values.shape[1])
        return np.stack([_combine(g, aggregation) for g in stacked]) if len(sizes) < 4 else \
            _combine_3d(stacked, aggregation)
    return np.stack([_combine(values[a : a + n], aggregation) for a, n in zip(bounds, sizes, strict=True)])


def _combine(rows: np.ndarray, aggregation: str) -> np.ndarray:
    return _combine_3d(rows[None], aggregation)[0]


def _combine_3d(groups: np.ndarray, aggregation: str) -> np.ndarray:
    present = ~np.isnan(groups)
    if present.all():  # one pass instead of five when nothing is missing
        total = groups.sum(axis=1, dtype=np.float64)
        return (total / groups.shape[1] if aggregation == "avg" else total).astype(np.float32)
    counts = present.sum(axis=1)
    sums = np.where(present, groups, np.float32(0)).sum(axis=1, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sums / counts if aggregation == "avg" else sums
    return np.where(counts > 0, result, np.nan).astype(np.float32)

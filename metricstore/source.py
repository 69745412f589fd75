"""`MetricSource`: how the rest of ccstream reads metrics, served in-process or over HTTP."""

from __future__ import annotations

import warnings
from collections.abc import Callable
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
from metricstore.query import READ_SLICE_VALUES, QueryError, find_levels
from metricstore.resample import lttb
from metricstore.store import MetricStore

JobData = dict[str, dict[str, Any]]  # metric -> scope -> {unit, timestep, series}


class MetricSource(Protocol):
    """Read port of the metric store, for the archiver, the job views and node state."""

    def load_job_data(self, request: JobDataRequest) -> JobData:
        """The job's series per metric and scope, shaped like an archive `data.json`."""
        ...

    def job_points(self, request: JobDataRequest) -> dict[str, int]:
        """Per metric, at most how many points (series x values) `load_job_data` answers, before reading."""
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


def plan_points(plans: list[Plan], steps: Callable[[int], int]) -> dict[str, int]:
    """Points per metric of these plans: their series times `steps(frequency)` values each."""
    out: dict[str, int] = {}
    for plan in plans:
        series = sum(len(shapes) for _host, shapes in plan.hosts)
        out[plan.metric.name] = out.get(plan.metric.name, 0) + series * steps(plan.metric.frequency)
    return out


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

    def job_points(self, request: JobDataRequest) -> dict[str, int]:
        """Counted up to the newest sample of each block: the store holds nothing later (a job that has
        no data at all costs nothing, however long it has run)."""
        def steps(frequency: int) -> int:
            head = self.store.head_slot(request.cluster, frequency)
            bound = 0 if head is None else max(0, head - request.start // frequency + 2)  # +2: any phase
            return min(request.steps_at(frequency), bound)

        return plan_points(build_plans(self.store.catalogue, request), steps)

    def load_job_data(self, request: JobDataRequest) -> JobData:
        out: JobData = {}
        for plan in build_plans(self.store.catalogue, request):
            if request.checkpoint is not None:
                request.checkpoint()
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
        combined = _read_combined(store, bid, np.asarray(rows, np.int64), np.asarray(bounds), request,
                                  info.aggregation)
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


def _read_combined(store: MetricStore, bid: int, rows: np.ndarray, bounds: np.ndarray,
                   request: JobDataRequest, aggregation: str) -> np.ndarray:
    """One combined series per run of rows starting at `bounds`, over the job's time range.

    Long or wide reads go in time slices of about READ_SLICE_VALUES values, each under one short hold
    of the lock (ingest waits for one slice at most) and combined outside it; every step is computed
    from its own column alone, so slicing changes no value."""
    with store.lock:
        grouped = _grouping(store, bid, rows, bounds, aggregation)
        if grouped is not None:
            block = store.blocks[bid]
            first = (request.start - grouped[2] + block.frequency // 2) // block.frequency
            steps = max(0, -(-(request.stop - request.start) // block.frequency))
            steps = 0 if block.head < 0 else min(steps, max(0, block.head - first + 1))
        else:
            steps = store.steps(bid, rows, request.start, request.stop)
    f = store.blocks[bid].frequency
    width = max(1, READ_SLICE_VALUES // max(1, len(rows)))
    out = np.empty((len(bounds), steps), np.float32)
    for a in range(0, steps, width) if steps else [0]:
        n = min(width, steps - a)
        if a and request.checkpoint is not None:
            request.checkpoint()
        with store.lock:
            if grouped is not None:
                sums, counts = store.blocks[bid].sum_groups(grouped[0], grouped[1], first + a, n)
            else:
                values, _steps = store.read(bid, rows, request.start + a * f, request.start + (a + n) * f)
        if grouped is not None:
            out[:, a : a + n] = _mean_or_sum(sums, counts, aggregation)
        else:
            out[:, a : a + n] = _reduce(values, bounds, aggregation)
    return out


def _grouping(store: MetricStore, bid: int, rows: np.ndarray, bounds: np.ndarray,
              aggregation: str) -> tuple[np.ndarray, int, int] | None:
    """(first rows, group size, phase) when the runs are equal-sized runs of consecutive rows sharing a
    phase: then they are summed straight from the chunks (Block.sum_groups). None otherwise."""
    sizes = np.diff(np.append(bounds, len(rows)))
    if len(rows) == 0 or (sizes == 1).all() or not (sizes == sizes[0]).all() or aggregation not in ("sum", "avg"):
        return None
    size = int(sizes[0])
    starts = rows[bounds]
    if not (rows.reshape(-1, size) - starts[:, None] == np.arange(size)).all():
        return None
    phases = np.maximum(store.blocks[bid].phase[rows], 0)
    if not (phases == phases[0]).all():
        return None
    return starts, size, int(phases[0])


def _mean_or_sum(sums: np.ndarray, counts: np.ndarray, aggregation: str) -> np.ndarray:
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

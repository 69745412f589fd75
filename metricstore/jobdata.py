"""Plans a job's metric reads per scope from the node topology, and shapes the archive's data.json."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from metricstore.clusters import MetricInfo, Topology

HW_SCOPES = ("hwthread", "core", "memoryDomain", "socket", "node")  # finest to coarsest


@dataclass(frozen=True, slots=True)
class JobResource:
    """One host of a job; hwthreads/accelerators None means the whole node."""

    hostname: str
    hwthreads: tuple[int, ...] | None = None
    accelerators: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class JobDataRequest:
    """"The series of these metrics for this job" (cc-backend's LoadData arguments)."""

    cluster: str
    resources: tuple[JobResource, ...]
    start: int
    stop: int
    metrics: tuple[str, ...] | None = None  # None: every metric of the cluster
    scopes: tuple[str, ...] = ("node",)
    subcluster: str | None = None
    resolution: int = 0
    as_lists: bool = True  # False: each series' data stays a float32 numpy array (NaN for gaps), which
    # orjson writes as JSON directly (OPT_SERIALIZE_NUMPY, NaN -> null) and costs no Python floats
    exact_arrays: bool = False  # with as_lists False: float64 arrays instead, holding each float32 value
    # exactly, so orjson writes the same bytes as for the lists (float32 arrays print fewer digits)
    checkpoint: Callable[[], None] | None = None  # called between reads: the caller may pause or stop
    # a long load there (api.readpool gives way to the intake and enforces its time budget)

    def steps_at(self, frequency: int) -> int:
        """Values per series over the job's time range at `frequency`: what an answer is padded to."""
        return max(0, -(-(self.stop - self.start) // frequency))


class Shape(NamedTuple):
    """One output series of a host, without the host's name: the stored `type` elements `type_ids`
    (level `prefixes`), combined by aggregation. Hosts with the same topology and hardware threads
    share one tuple of shapes, so planning a job costs nothing per host and series once it is cached."""

    id: str | None
    type: str | None
    type_ids: tuple[str, ...]
    prefixes: tuple[str, ...]


def shape(id_: str | None, type_: str | None, type_ids: tuple[str, ...] = ()) -> Shape:
    """A shape with its level prefixes (`""`, the node level, when there is no type)."""
    return Shape(id_, type_, type_ids, ("",) if type_ is None else tuple(type_ + i for i in type_ids))


class Group(NamedTuple):
    """One output series: the stored `type` elements `type_ids` of a host, combined by aggregation.

    A NamedTuple rather than a dataclass: a job has hundreds of them, and tuples are cheap to make."""

    hostname: str
    id: str | None
    type: str | None
    type_ids: tuple[str, ...] = ()


HostShapes = tuple[tuple[str, tuple[Shape, ...]], ...]  # (hostname, its series) per host of a job


@dataclass(slots=True)
class Plan:
    """The series of one metric in one scope: per host, the shapes to read."""

    metric: MetricInfo
    scope: str
    hosts: HostShapes

    @property
    def groups(self) -> list[Group]:
        """Every series with its host's name, in output order (the HTTP source queries one per group)."""
        return [Group(host, s.id, s.type, s.type_ids) for host, shapes in self.hosts for s in shapes]


def _elements(topo: Topology, scope: str, hwthreads: set[int]) -> list[tuple[int, tuple[int, ...]]]:
    """(element id, job hwthreads inside it) for each element of `scope` that the job touches."""
    return [(i, tuple(h for h in g if h in hwthreads)) for i, g in enumerate(topo.groups_for(scope))
            if any(h in hwthreads for h in g)]


def plan_shapes(native: str, scope: str, hwthreads: tuple[int, ...] | None, accelerators: tuple[str, ...] | None,
                topo: Topology | None) -> tuple[Shape, ...] | None:
    """Series for (native scope -> requested scope) on a host with these hardware threads and
    accelerators (None: the whole node); None when the scope cannot be made (finer than native, or
    a topology is needed and missing). Mirrors cc-backend's buildQueries."""
    if native == "accelerator" or scope == "accelerator":
        if native != "accelerator" or scope not in ("accelerator", "node"):
            return None
        accs = accelerators if accelerators is not None else (topo.accelerators if topo else ())
        if scope == "accelerator":
            return tuple(shape(a, "accelerator", (a,)) for a in accs)
        return (shape(None, "accelerator", tuple(accs)),) if accs else ()
    if native == "node":
        return (shape(None, None),) if scope == "node" else None
    if native not in HW_SCOPES or scope not in HW_SCOPES or HW_SCOPES.index(scope) < HW_SCOPES.index(native):
        return None
    if native == "memoryDomain" and scope == "socket":
        return None  # memory domains do not nest into sockets in every topology
    if topo is None:
        return None
    threads = set(hwthreads) if hwthreads is not None else set(topo.node)
    natives = _elements(topo, native, threads)
    if scope == "node":
        return (shape(None, native, tuple(str(i) for i, _ in natives)),)
    if native == scope:
        return tuple(shape(str(eid), native, (str(eid),)) for eid, _ in natives)
    # Which native elements hold each hardware thread: one pass instead of comparing every pair.
    owners: dict[int, list[int]] = {}
    for i, hw in natives:
        for h in hw:
            owners.setdefault(h, []).append(i)
    shapes = []
    for eid, members in _elements(topo, scope, threads):
        inner = sorted({i for h in members for i in owners.get(h, ())})
        shapes.append(shape(str(eid), native, tuple(str(i) for i in inner)))
    return tuple(shapes)


class ShapeCache:
    """`plan_shapes` remembered across jobs: every job on the same kind of node asks the same question.

    Keyed by the topology's identity (hashing a topology walks all its tuples, which costs more than
    the lookup saves); the entry keeps the topology, so its id cannot be reused while cached. Cleared
    when full: jobs with ever new hardware thread lists must not grow it without bound.
    """

    def __init__(self, limit: int = 512) -> None:
        self.limit = limit
        self._entries: dict[tuple[Any, ...], tuple[Topology | None, tuple[Shape, ...] | None]] = {}

    def shapes(self, native: str, scope: str, res: JobResource, topo: Topology | None) -> tuple[Shape, ...] | None:
        key = (native, scope, res.hwthreads, res.accelerators, id(topo))
        hit = self._entries.get(key)
        if hit is not None and hit[0] is topo:
            return hit[1]
        found = plan_shapes(native, scope, res.hwthreads, res.accelerators, topo)
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[key] = (topo, found)
        return found


def row_means(wide: np.ndarray, gappy: np.ndarray) -> np.ndarray:
    """`np.nanmean(wide, axis=1)`, value for value, without its NaN-replacing copy when no row has a gap.

    nanmean always copies the array and sums a mask; for gap-free rows its result is the plain row sum
    (the same pairwise summation of the same contiguous values) divided by the row length, so that is
    computed directly. Rows with gaps keep nanmean itself (caller silences its empty-row warning)."""
    if gappy.any():
        return np.asarray(np.nanmean(wide, axis=1))
    return np.asarray(wide.sum(axis=1) / wide.shape[1])


def series_entries(groups: list[Group], data: np.ndarray, as_lists: bool = True,
                   exact_arrays: bool = False) -> list[dict[str, Any]]:
    """`series` items of data.json for the rows of `data` (statistics computed for all rows at once).

    Data is a list per row, or with `as_lists` False an array per row: float32 (NaN for gaps), or
    float64 with `exact_arrays`, which serialises byte for byte like the list and makes no Python float.
    """
    if len(groups) == 0:
        return []
    wide = data.astype(np.float64, order="C")  # C order: orjson serialises only contiguous rows
    has_gap = np.isnan(data).any(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mins, maxs = np.nanmin(data, axis=1), np.nanmax(data, axis=1)
        avgs = row_means(wide, has_gap)
    gaps = has_gap.tolist()
    # The float64 copy's tolist() gives the same Python floats as the float32 one (each float32 value
    # is exact in float64) but skips a per-element conversion: lists cost ~15% less to make.
    rows: list[Any] = wide.tolist() if as_lists else list(wide) if exact_arrays else list(data)
    out = []
    # Plain Python floats via tolist(): the same values float() of each numpy scalar gives, made at once.
    for group, values, low, avg, high, gappy in zip(groups, rows, mins.tolist(), avgs.tolist(), maxs.tolist(),
                                                    gaps, strict=True):
        entry: dict[str, Any] = {"hostname": group.hostname}
        if group.id is not None:
            entry["id"] = group.id
        if avg != avg:  # NaN: the row has no value
            entry["statistics"] = {"min": None, "avg": None, "max": None}
        else:
            entry["statistics"] = {"min": low, "avg": avg, "max": high}
        entry["data"] = [None if v != v else v for v in values] if as_lists and gappy else values
        out.append(entry)
    return out


def series_entry(group: Group, data: np.ndarray) -> dict[str, Any]:
    """One `series` item of data.json: hostname, id (not for node scope), statistics, data (NaN -> None)."""
    return series_entries([group], data[None, :])[0]


def metric_entry(info: MetricInfo, timestep: int, series: list[dict[str, Any]]) -> dict[str, Any]:
    """One `<metric>.<scope>` object of data.json (`unit`, `timestep`, `series`)."""
    return {"unit": dict(info.unit) or {"base": ""}, "timestep": timestep, "series": series}

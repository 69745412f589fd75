"""Plans a job's metric reads per scope from the node topology, and shapes the archive's data.json."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Group:
    """One output series: the stored `type` elements `type_ids` of a host, combined by aggregation."""

    hostname: str
    id: str | None
    type: str | None
    type_ids: tuple[str, ...] = ()

    def prefixes(self) -> list[str]:
        return [""] if self.type is None else [self.type + i for i in self.type_ids]


@dataclass(slots=True)
class Plan:
    metric: MetricInfo
    scope: str
    groups: list[Group] = field(default_factory=list)


def _elements(topo: Topology, scope: str, hwthreads: set[int]) -> list[tuple[int, tuple[int, ...]]]:
    """(element id, job hwthreads inside it) for each element of `scope` that the job touches."""
    return [(i, tuple(h for h in g if h in hwthreads)) for i, g in enumerate(topo.groups_for(scope))
            if any(h in hwthreads for h in g)]


def plan_groups(native: str, scope: str, res: JobResource, topo: Topology | None) -> list[Group] | None:
    """Series for (native scope -> requested scope) on one host; None when the scope cannot be made
    (finer than native, or a topology is needed and missing). Mirrors cc-backend's buildQueries."""
    host = res.hostname
    if native == "accelerator" or scope == "accelerator":
        if native != "accelerator" or scope not in ("accelerator", "node"):
            return None
        accs = res.accelerators if res.accelerators is not None else (topo.accelerators if topo else ())
        if scope == "accelerator":
            return [Group(host, a, "accelerator", (a,)) for a in accs]
        return [Group(host, None, "accelerator", tuple(accs))] if accs else []
    if native == "node":
        return [Group(host, None, None)] if scope == "node" else None
    if native not in HW_SCOPES or scope not in HW_SCOPES or HW_SCOPES.index(scope) < HW_SCOPES.index(native):
        return None
    if native == "memoryDomain" and scope == "socket":
        return None  # memory domains do not nest into sockets in every topology
    if topo is None:
        return None
    threads = set(res.hwthreads) if res.hwthreads is not None else set(topo.node)
    natives = _elements(topo, native, threads)
    if scope == "node":
        return [Group(host, None, native, tuple(str(i) for i, _ in natives))]
    if native == scope:
        return [Group(host, str(eid), native, (str(eid),)) for eid, _ in natives]
    # Which native elements hold each hardware thread: one pass instead of comparing every pair.
    owners: dict[int, list[int]] = {}
    for i, hw in natives:
        for h in hw:
            owners.setdefault(h, []).append(i)
    groups = []
    for eid, members in _elements(topo, scope, threads):
        inner = sorted({i for h in members for i in owners.get(h, ())})
        groups.append(Group(host, str(eid), native, tuple(str(i) for i in inner)))
    return groups


def series_entries(groups: list[Group], data: np.ndarray, as_lists: bool = True) -> list[dict[str, Any]]:
    """`series` items of data.json for the rows of `data` (statistics computed for all rows at once)."""
    if len(groups) == 0:
        return []
    missing = np.isnan(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mins, maxs = np.nanmin(data, axis=1), np.nanmax(data, axis=1)
        avgs = np.nanmean(data.astype(np.float64), axis=1)
    out = []
    gaps = missing.any(axis=1)
    rows: list[Any] = data.tolist() if as_lists else list(data)
    for i, (group, values) in enumerate(zip(groups, rows, strict=True)):
        entry: dict[str, Any] = {"hostname": group.hostname}
        if group.id is not None:
            entry["id"] = group.id
        if np.isnan(avgs[i]):
            entry["statistics"] = {"min": None, "avg": None, "max": None}
        else:
            entry["statistics"] = {"min": float(mins[i]), "avg": float(avgs[i]), "max": float(maxs[i])}
        entry["data"] = [None if v != v else v for v in values] if as_lists and gaps[i] else values
        out.append(entry)
    return out


def series_entry(group: Group, data: np.ndarray) -> dict[str, Any]:
    """One `series` item of data.json: hostname, id (not for node scope), statistics, data (NaN -> None)."""
    return series_entries([group], data[None, :])[0]


def metric_entry(info: MetricInfo, timestep: int, series: list[dict[str, Any]]) -> dict[str, Any]:
    """One `<metric>.<scope>` object of data.json (`unit`, `timestep`, `series`)."""
    return {"unit": dict(info.unit) or {"base": ""}, "timestep": timestep, "series": series}

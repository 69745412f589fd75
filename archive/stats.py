"""What the archiver derives from a job's metric data: statistics, footprint and energy. Pure functions.

A series' `data` is a list (null for gaps) or, in the archiver's own data, a float64 numpy array (NaN
for gaps; see JobDataRequest.exact_arrays). Both give the same results: arrays are reduced to the
same Python floats the list would hold before anything is summed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

STAT_TYPES = ("avg", "min", "max")


def _series_data(series: Mapping[str, Any]) -> Any:
    """A series' values, [] when it has none (an array has no truth value, so no `or []` here)."""
    data = series.get("data")
    return data if isinstance(data, np.ndarray) else data or []


def _finite(values: Iterable[Any]) -> list[float]:
    if isinstance(values, np.ndarray):
        wide = values.astype(np.float64, copy=False)
        return wide[np.isfinite(wide)].tolist()
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def _has_value(values: Iterable[Any]) -> bool:
    """Whether a series has at least one finite value (stops at the first)."""
    if isinstance(values, np.ndarray):
        return bool(np.isfinite(values).any())
    return any(v is not None and math.isfinite(float(v)) for v in values)


def series_statistics(values: Sequence[Any]) -> dict[str, float] | None:
    """avg/min/max of one series, gaps (null, NaN) left out; None when the series has no value."""
    finite = _finite(values)
    if not finite:
        return None
    return {"avg": sum(finite) / len(finite), "min": min(finite), "max": max(finite)}


def job_statistics(data: Mapping[str, Any], num_nodes: int) -> dict[str, dict[str, Any]]:
    """Per-metric job statistics as cc-backend computes them at archive time.

    From the node-scope series: avg is the mean of the per-node averages (sum over the nodes divided
    by numNodes, rounded to 2 digits), min the smallest node minimum, max the largest node maximum.
    """
    out: dict[str, dict[str, Any]] = {}
    for metric, scopes in data.items():
        node = scopes.get("node") if isinstance(scopes, Mapping) else None
        if not node:
            continue
        stats = [_stats_of(s) for s in node.get("series") or []]
        present = [s for s in stats if s is not None]
        if not present:
            continue
        avg = sum(s["avg"] for s in present) / max(num_nodes, 1)
        out[metric] = {
            "unit": node.get("unit") or {"base": ""},
            "avg": round(avg, 2),
            "min": min(s["min"] for s in present),
            "max": max(s["max"] for s in present),
        }
    return out


def _stats_of(series: Mapping[str, Any]) -> dict[str, float] | None:
    given = series.get("statistics")
    if isinstance(given, Mapping) and all(isinstance(given.get(k), int | float) for k in STAT_TYPES):
        return {k: float(given[k]) for k in STAT_TYPES}
    return series_statistics(_series_data(series))


def footprint(
    statistics: Mapping[str, Mapping[str, Any]], metric_config: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """`<metric>_<stat>` for every footprint metric of the job's subcluster that has statistics."""
    out: dict[str, float] = {}
    for metric in metric_config:
        stat = metric.get("footprint")
        if not stat:
            continue
        if stat not in STAT_TYPES:
            stat = "avg"
        values = statistics.get(metric["name"])
        if values is not None and values.get(stat) is not None:
            out[f"{metric['name']}_{stat}"] = float(values[stat])
    return out


def energy(
    data: Mapping[str, Any], metric_config: Sequence[Mapping[str, Any]], duration: int
) -> tuple[dict[str, float], float]:
    """Energy in kWh per power metric (`energy: "power"`) and the total.

    Each node's mean power over its samples times the job's duration, summed over the nodes: the
    integral of the power series with gaps filled by the node's mean. cc-backend multiplies the
    job-wide average by numNodes, which is the same without gaps and wrong with them.
    """
    per_metric: dict[str, float] = {}
    for metric in metric_config:
        if metric.get("energy") != "power":
            continue
        node = (data.get(metric["name"]) or {}).get("node")
        if not node:
            continue
        joules = 0.0
        for series in node.get("series") or []:
            stats = series_statistics(_series_data(series))
            if stats is not None:
                joules += stats["avg"] * max(duration, 0)
        per_metric[metric["name"]] = round(joules / 3.6e6, 4)
    return per_metric, round(sum(per_metric.values()), 4)


def missing_metrics(data: Mapping[str, Any], wanted: Iterable[str]) -> list[str]:
    """Metrics the job should have (by its cluster's config) but that have no value at all."""
    missing = []
    for name in wanted:
        scopes = data.get(name)
        present = isinstance(scopes, Mapping) and any(
            _has_value(_series_data(s)) for scope in scopes.values() for s in (scope.get("series") or [])
        )
        if not present:
            missing.append(name)
    return missing

"""Metric data of one job for GraphQL (§3.8): `jobMetrics`, `jobStats`, `scopedJobStats`.

Running jobs read the metric store, finished ones their archive file (through `api.jobdata`, with the
same point limit as the REST routes). On top come cc-backend's post-processing steps: archived series
resampled with LTTB to the asked resolution, `statisticsSeries` for metrics of eight series or more,
`flops_any` and `mem_bw` summed up to node scope when `node` is asked for and only finer scopes exist,
and statistics rounded to two decimals. Each step is a pure function of the loaded entries.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import RowMapping

from api import jobdata
from api.bootstrap import Services
from api.config import Resampling
from metricstore.resample import lttb

#: A metric with this many series or more gets `statisticsSeries` (cc-backend's rule).
STATISTICS_SERIES_FROM = 8
#: Metrics cc-backend sums up to node scope when only finer scopes exist.
NODE_SUMMED = ("flops_any", "mem_bw")


def default_resolution(resampling: Resampling | None) -> int:
    """`resolution` omitted: the coarsest configured resolution, or the native one without resampling."""
    return max(resampling.resolutions) if resampling is not None and resampling.resolutions else 0


def _array(values: Any) -> np.ndarray:
    """A series' data (a list with None for gaps, or an array with NaN) as a float64 array."""
    if values is None:
        return np.zeros(0)
    return np.array([math.nan if v is None else v for v in values] if isinstance(values, list) else values,
                    dtype=np.float64)


def _data(series: dict[str, Any]) -> np.ndarray:
    return _array(series.get("data"))


def resample_entry(entry: dict[str, Any], resolution: int, minimum_points: int) -> dict[str, Any]:
    """An archived metric at `resolution` (LTTB); series shorter than `minimum_points` stay as they are."""
    metric = entry["metric"]
    timestep = int(metric.get("timestep") or 0)
    series = metric.get("series") or []
    if resolution <= timestep or not series or max(len(_data(s)) for s in series) < minimum_points:
        return entry
    new_step = timestep
    resampled = []
    for s in series:
        data, new_step = lttb(_data(s), timestep, resolution)
        resampled.append({**s, "data": data})
    return {**entry, "metric": {**metric, "timestep": new_step, "series": resampled}}


def statistics_series(series: Sequence[dict[str, Any]]) -> dict[str, list[float]] | None:
    """Per time step, the min, mean, median and max over the series (gaps left out)."""
    rows = [_data(s) for s in series]
    if not rows:
        return None
    length = min(len(r) for r in rows)
    matrix = np.vstack([r[:length] for r in rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"min": np.nanmin(matrix, axis=0).tolist(), "mean": np.nanmean(matrix, axis=0).tolist(),
                "median": np.nanmedian(matrix, axis=0).tolist(), "max": np.nanmax(matrix, axis=0).tolist()}


def with_statistics_series(entry: dict[str, Any]) -> dict[str, Any]:
    series = entry["metric"].get("series") or []
    if len(series) < STATISTICS_SERIES_FROM or entry["metric"].get("statisticsSeries"):
        return entry
    return {**entry, "metric": {**entry["metric"], "statisticsSeries": statistics_series(series)}}


def node_sums(entries: Sequence[dict[str, Any]], scopes: Iterable[str]) -> list[dict[str, Any]]:
    """flops_any and mem_bw at node scope, summed from their finest scope, where only finer ones exist."""
    if "node" not in scopes:
        return []
    out = []
    for name in NODE_SUMMED:
        mine = [e for e in entries if e["name"] == name]
        if not mine or any(e["scope"] == "node" for e in mine):
            continue
        finest = mine[0]
        by_host: dict[str, list[np.ndarray]] = {}
        for s in finest["metric"].get("series") or []:
            by_host.setdefault(s["hostname"], []).append(_data(s))
        series = []
        for host, rows in by_host.items():
            length = min(len(r) for r in rows)
            summed = np.nansum(np.vstack([r[:length] for r in rows]), axis=0)
            series.append({"hostname": host, "statistics": _stats(summed), "data": summed})
        out.append({"name": name, "scope": "node",
                    "metric": {**finest["metric"], "series": series, "statisticsSeries": None}})
    return out


def _stats(data: np.ndarray) -> dict[str, float] | None:
    finite = data[np.isfinite(data)]
    if len(finite) == 0:
        return None
    return {"min": float(finite.min()), "avg": float(finite.mean()), "max": float(finite.max())}


def _round(value: Any) -> Any:
    return round(float(value), 2) if isinstance(value, int | float) and math.isfinite(value) else value


def rounded_statistics(entry: dict[str, Any]) -> dict[str, Any]:
    series = []
    for s in entry["metric"].get("series") or []:
        stats = s.get("statistics")
        series.append({**s, "statistics": {k: _round(v) for k, v in stats.items()} if stats else None})
    return {**entry, "metric": {**entry["metric"], "series": series}}


def job_metrics(services: Services, row: RowMapping, metrics: Sequence[str] | None, scopes: Sequence[str] | None,
                resolution: int | None) -> list[dict[str, Any]]:
    """The job's `[JobMetricWithName]`, post-processed as cc-backend does."""
    settings = services.settings.main.resampling
    wanted_scopes = list(scopes or ["node"])
    resolution = default_resolution(settings) if resolution is None else resolution
    archived = int(row["monitoring_status"]) == jobdata.ARCHIVED and services.archive is not None
    entries = list(jobdata.named_metrics(services, row, metrics, wanted_scopes, services.settings.reads.max_job_points,
                                         resolution=0 if archived else resolution))
    if archived and resolution > 0:
        minimum = settings.minimum_points if settings is not None else 0
        entries = [resample_entry(e, resolution, minimum) for e in entries]
    entries += node_sums(entries, wanted_scopes)
    return [rounded_statistics(with_statistics_series(e)) for e in entries]


def job_stats(services: Services, row: RowMapping, archived_stats: dict[str, Any] | None,
              metrics: Sequence[str] | None) -> list[dict[str, Any]]:
    """Per metric, the job's min/avg/max: archived from the read model, running over its node series."""
    if archived_stats is not None:
        return [{"name": name, "data": {k: _round(stats.get(k) or 0.0) for k in ("min", "avg", "max")}}
                for name, stats in sorted(archived_stats.items()) if metrics is None or name in metrics]
    out = []
    for entry in jobdata.named_metrics(services, row, metrics, ["node"], services.settings.reads.max_job_points):
        nodes = [s.get("statistics") for s in entry["metric"].get("series") or []]
        nodes = [n for n in nodes if n and n.get("avg") is not None]
        if not nodes:
            data = {"min": 0.0, "avg": 0.0, "max": 0.0}
        else:
            average = sum(n["avg"] for n in nodes) / len(nodes)
            data = {"min": _round(min(n["min"] for n in nodes)), "avg": _round(average),
                    "max": _round(max(n["max"] for n in nodes))}
        out.append({"name": entry["name"], "data": data})
    return out


def scoped_job_stats(services: Services, row: RowMapping, metrics: Sequence[str] | None,
                     scopes: Sequence[str] | None) -> list[dict[str, Any]]:
    """Per metric and scope, every series' min/avg/max (`[NamedStatsWithScope]`)."""
    out = []
    for entry in jobdata.named_metrics(services, row, metrics, list(scopes or ["node"]),
                                       services.settings.reads.max_job_points):
        stats = []
        for s in entry["metric"].get("series") or []:
            values = s.get("statistics") or _stats(_data(s)) or {}
            stats.append({"hostname": s["hostname"], "id": s.get("id"),
                          "data": {k: _round(values.get(k) or 0.0) for k in ("min", "avg", "max")}})
        out.append({"name": entry["name"], "scope": entry["scope"], "stats": stats})
    return out

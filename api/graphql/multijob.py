"""Queries over the metrics of many jobs at once (§3.7, §3.3): `jobsFootprints`, `rooflineHeatmap`,
`jobsMetricStats`.

Each loads per-job metric data, so the number of jobs is bounded (cc-backend's 500). A finished job's
averages come from the read model's archived statistics, without opening its archive file; a running
job's from the metric store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, RowMapping, and_, select, true

from api import jobdata
from api.bootstrap import Services
from api.errors import ApiError
from api.graphql.jobmetrics import job_stats
from api.graphql.jobquery import QueryError
from api.readpool import checkpoint
from projections import schema
from projections.queries import statistics_of

job = schema.job

#: Jobs one of these queries may cover (cc-backend's limit).
MAX_JOBS = 500
#: Monitoring states without metric data: disabled (0) and archiving failed (2).
UNMONITORED = (0, 2)


def monitored_jobs(conn: Connection, conditions: Sequence[ColumnElement[bool]], *, ordered: bool = False
                   ) -> list[RowMapping]:
    """The matching jobs with metric data; more than MAX_JOBS matching is an error."""
    stmt = select(job).where(and_(true(), *conditions))
    if ordered:
        stmt = stmt.order_by(job.c.start_time, job.c.id)
    rows = list(conn.execute(stmt.limit(MAX_JOBS + 1)).mappings())
    if len(rows) > MAX_JOBS:
        raise QueryError(f"too many jobs matched (max: {MAX_JOBS})")
    return [r for r in rows if int(r["monitoring_status"]) not in UNMONITORED]


def _duration(row: RowMapping, now: float) -> int:
    if row["job_state"] == "running":
        return max(int(now) - int(row["start_time"]), 0)
    return int(row["duration"])


def _node_averages(services: Services, row: RowMapping, metrics: Sequence[str]) -> dict[str, float]:
    """Σ over the job's nodes of each node's average (cc-backend's LoadAverages for running jobs)."""
    out: dict[str, float] = {}
    for entry in jobdata.named_metrics(services, row, metrics, ["node"], services.settings.reads.max_job_points):
        averages = [s["statistics"]["avg"] for s in entry["metric"].get("series") or []
                    if s.get("statistics") and s["statistics"].get("avg") is not None]
        if averages:
            out[entry["name"]] = float(sum(averages))
    return out


def footprints(services: Services, conn: Connection, conditions: Sequence[ColumnElement[bool]],
               metrics: Sequence[str], now: float) -> dict[str, Any]:
    """Per metric the average of every job (NaN where missing) and the jobs' node, core and accelerator weights."""
    rows = monitored_jobs(conn, conditions)
    archived = statistics_of(conn, [int(r["id"]) for r in rows if r["job_state"] != "running"])
    weights: dict[str, list[float]] = {"nodeHours": [], "accHours": [], "coreHours": []}
    values: dict[str, list[float]] = {m: [] for m in metrics}
    for row in rows:
        checkpoint()
        minutes = _duration(row, now) / 60
        weights["nodeHours"].append(minutes * int(row["num_nodes"]))
        weights["accHours"].append(minutes * int(row["num_acc"]) if row["num_acc"] else 1.0)
        weights["coreHours"].append(minutes * int(row["num_hwthreads"]) if row["num_hwthreads"] else 1.0)
        stats = archived.get(int(row["id"]))
        if stats is not None:
            averages = {m: float(s["avg"]) for m, s in stats.items()
                        if isinstance(s, dict) and s.get("avg") is not None}
        elif row["job_state"] == "running":
            averages = _node_averages(services, row, metrics)
        else:
            averages = {}
        for metric in metrics:
            values[metric].append(averages.get(metric, math.nan))
    return {"timeWeights": weights, "metrics": [{"metric": m, "data": values[m]} for m in metrics]}


def roofline_tiles(flops: np.ndarray, mem_bw: np.ndarray, rows: int, cols: int,
                   bounds: tuple[float, float, float, float]) -> np.ndarray:
    """Counts of (arithmetic intensity, performance) points per tile on log axes; row 0 is the lowest y. Pure."""
    min_x, min_y, max_x, max_y = (math.log10(b) for b in bounds)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log10(flops / mem_bw)
        y = np.log10(flops)
    keep = np.isfinite(x) & np.isfinite(y) & (x >= min_x) & (x < max_x) & (y >= min_y) & (y < max_y)
    tile_y = np.floor((y[keep] - min_y) / (max_y - min_y) * rows).astype(np.int64)
    tile_x = np.floor((x[keep] - min_x) / (max_x - min_x) * cols).astype(np.int64)
    tiles = np.zeros((rows, cols), dtype=np.int64)
    np.add.at(tiles, (np.clip(tile_y, 0, rows - 1), np.clip(tile_x, 0, cols - 1)), 1)
    return tiles


def roofline(services: Services, conn: Connection, conditions: Sequence[ColumnElement[bool]], rows: int, cols: int,
             bounds: tuple[float, float, float, float]) -> list[list[float]]:
    """The heat map of every node's (flops_any / mem_bw, flops_any) points over the jobs' runs."""
    if not (0 < rows <= 1000 and 0 < cols <= 1000):
        raise QueryError("rows and cols must be between 1 and 1000")
    if any(b <= 0 or not math.isfinite(b) for b in bounds) or bounds[0] >= bounds[2] or bounds[1] >= bounds[3]:
        raise QueryError("the bounds must be positive with minX < maxX and minY < maxY")
    tiles = np.zeros((rows, cols), dtype=np.int64)
    for row in monitored_jobs(conn, conditions):
        checkpoint()
        entries = _roofline_metrics(services, row)
        if "flops_any" not in entries or "mem_bw" not in entries:
            continue
        bandwidth = {s["hostname"]: s for s in entries["mem_bw"]["metric"].get("series") or []}
        for series in entries["flops_any"]["metric"].get("series") or []:
            other = bandwidth.get(series["hostname"])
            if other is None:
                continue
            flops, bw = _floats(series["data"]), _floats(other["data"])
            length = min(len(flops), len(bw))
            tiles += roofline_tiles(flops[:length], bw[:length], rows, cols, bounds)
    return [[float(v) for v in r] for r in tiles.tolist()]


def _roofline_metrics(services: Services, row: RowMapping) -> dict[str, dict[str, Any]]:
    """The job's node-scope flops_any and mem_bw; none when its data cannot be loaded (it is left out)."""
    try:
        return {e["name"]: e for e in jobdata.named_metrics(services, row, ["flops_any", "mem_bw"], ["node"],
                                                            services.settings.reads.max_job_points)
                if e["scope"] == "node"}
    except ApiError as exc:
        if exc.status == 504:
            raise
        return {}


def _floats(values: Any) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values] if isinstance(values, list) else values,
                    dtype=np.float64)


def jobs_metric_stats(services: Services, conn: Connection, conditions: Sequence[ColumnElement[bool]],
                      metrics: Sequence[str] | None) -> list[dict[str, Any]]:
    """Per job (by start time), its per-metric min/avg/max; a job whose data cannot be loaded is left out."""
    stmt = select(job).where(and_(true(), *conditions)).order_by(job.c.start_time, job.c.id).limit(MAX_JOBS + 1)
    rows = list(conn.execute(stmt).mappings())
    if len(rows) > MAX_JOBS:
        raise QueryError(f"too many jobs matched (max: {MAX_JOBS})")
    archived = statistics_of(conn, [int(r["id"]) for r in rows if r["job_state"] != "running"])
    out = []
    for row in rows:
        checkpoint()
        stats_of_job = archived.get(int(row["id"]))
        try:
            stats = job_stats(services, row, stats_of_job, metrics)
        except ApiError as exc:  # cc-backend skips a job whose data fails to load; a read past its budget stops
            if exc.status == 504:
                raise
            continue
        out.append({"id": row["id"], "jobId": str(row["job_id"]), "startTime": int(row["start_time"]),
                    "duration": int(row["duration"]), "cluster": row["cluster"], "subCluster": row["subcluster"],
                    "numNodes": row["num_nodes"], "numHWThreads": row["num_hwthreads"],
                    "numAccelerators": row["num_acc"], "stats": stats})
    return out


def running_metric_histogram(services: Services, rows: Sequence[RowMapping], metric: str, peak: float, unit: str,
                             bins: int) -> dict[str, Any]:
    """Running jobs by their live value of `metric` (Σ of node averages) in `bins` bins from 0 to `peak`."""
    counts = [0] * bins
    for row in rows:
        checkpoint()
        value = _node_averages(services, row, [metric]).get(metric)
        if value is None or not 0 <= value <= peak:
            continue
        counts[min(int(value / peak * bins), bins - 1)] += 1
    step = peak / bins
    return {"metric": metric, "unit": unit, "stat": None,
            "data": [{"bin": i + 1, "count": counts[i], "min": round(step * i), "max": round(step * (i + 1))}
                     for i in range(bins)]}


def running_jobs_for_histograms(conn: Connection, conditions: Sequence[ColumnElement[bool]]) -> list[RowMapping] | None:
    """The monitored running jobs of the filter, or None when there are more than MAX_JOBS (no histogram)."""
    try:
        return monitored_jobs(conn, conditions)
    except QueryError:
        return None

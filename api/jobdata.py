"""A job's metric data for the REST API: from the metric store while it runs, from the archive afterwards."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import RowMapping

from api.bootstrap import Services
from api.errors import ApiError
from api.readpool import checkpoint
from archive.archiver import data_request
from archive.backends.protocol import ArchiveError
from metricstore.jobdata import JobDataRequest
from metricstore.source import MetricSource

SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")
ARCHIVED = 3
#: Points loaded from the metric store per call while an answer is written (4 MB of float64, a few
#: tens of milliseconds: between two loads a read can give way to the intake, see api.readpool).
BATCH_POINTS = 500_000


def _job_of(row: RowMapping) -> dict[str, Any]:
    running = row["job_state"] == "running"
    duration = max(int(time.time()) - int(row["start_time"]), 0) if running else int(row["duration"])
    return {
        "cluster": row["cluster"], "subCluster": row["subcluster"], "resources": orjson.loads(row["resources"]),
        "startTime": int(row["start_time"]), "duration": duration, "numNodes": row["num_nodes"],
        "numAcc": row["num_acc"] or 0,
    }


def check_scopes(scopes: Sequence[str]) -> None:
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise ApiError(400, f"unknown metric scope {bad[0]!r} (one of {', '.join(SCOPES)})")


def named_metrics(services: Services, row: RowMapping, metrics: Sequence[str] | None, scopes: Sequence[str],
                  max_points: int, *, resolution: int = 0) -> Iterator[dict[str, Any]]:
    """cc-backend's `[]JobMetricWithName` of one job (by metric name, then scope), entry by entry.

    While the job runs, its data comes from the metric store a few metrics at a time (BATCH_POINTS), so
    a big job is never in memory all at once; more than `max_points` in all is refused (400) before
    anything is read. Archived data comes from the archive file as a whole; `resolution` (seconds per
    point, 0 native) applies to the metric store's answer."""
    check_scopes(scopes)
    if int(row["monitoring_status"]) == ARCHIVED and services.archive is not None:
        try:
            data = services.archive.load_data(row["cluster"], int(row["job_id"]), int(row["start_time"]))
        except ArchiveError as exc:
            raise ApiError(500, f"loading archived metric data failed: {exc}") from None
        return iter(with_names({
            name: {scope: metric for scope, metric in by_scope.items() if scope in scopes}
            for name, by_scope in data.items()
            if metrics is None or name in metrics
        }))
    source = services.metric_source
    if source is None:
        raise ApiError(500, "no metric source is configured")
    request = dataclasses.replace(
        data_request(_job_of(row)), metrics=tuple(metrics) if metrics is not None else None, scopes=tuple(scopes),
        checkpoint=checkpoint, resolution=resolution,
    )
    points = source.job_points(request)
    total = sum(points.values())
    if total > max_points:
        raise ApiError(400, f"the job's metric data has {total:,} points, more than reads.max-job-points "
                       f"({max_points:,}): ask for fewer metrics or scopes (`POST /api/jobs/{{id}}` with their "
                       "names, `GET /api/jobs/metrics/{id}?metric=...`)")
    return _load(source, request, _batches(points, BATCH_POINTS))


def _batches(points: dict[str, int], limit: int) -> list[tuple[str, ...]]:
    """Metric names in sorted order, cut into loads of about `limit` points (a larger metric goes alone)."""
    out: list[list[str]] = [[]]
    size = 0
    for name in sorted(points):
        if out[-1] and size + points[name] > limit:
            out.append([])
            size = 0
        out[-1].append(name)
        size += points[name]
    return [tuple(names) for names in out if names]


def _load(source: MetricSource, request: JobDataRequest, batches: list[tuple[str, ...]]) -> Iterator[dict[str, Any]]:
    for names in batches:
        checkpoint()
        try:
            data = source.load_job_data(dataclasses.replace(request, metrics=names))
        except Exception as exc:  # an external metric store may be down; say so instead of a bare 500
            raise ApiError(500, f"loading metric data failed: {type(exc).__name__}: {exc}") from None
        for name in names:
            for scope, metric in data.get(name, {}).items():
                yield {"name": name, "scope": scope, "metric": metric}


def dumps(value: Any) -> bytes:
    """A JSON value as the API writes it (numpy arrays included)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def with_names(data: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """cc-backend's `[]JobMetricWithName`: one entry per metric and scope."""
    return [
        {"name": name, "scope": scope, "metric": metric}
        for name, by_scope in sorted(data.items())
        for scope, metric in by_scope.items()
    ]

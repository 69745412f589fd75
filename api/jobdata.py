"""A job's metric data for the REST API: from the metric store while it runs, from the archive afterwards."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import RowMapping

from api.bootstrap import Services
from api.errors import ApiError
from archive.archiver import data_request
from archive.backends.protocol import ArchiveError

SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")
ARCHIVED = 3


def _job_of(row: RowMapping) -> dict[str, Any]:
    running = row["job_state"] == "running"
    duration = max(int(time.time()) - int(row["start_time"]), 0) if running else int(row["duration"])
    return {
        "cluster": row["cluster"], "subCluster": row["subcluster"], "resources": orjson.loads(row["resources"]),
        "startTime": int(row["start_time"]), "duration": duration, "numNodes": row["num_nodes"],
        "numAcc": row["num_acc"] or 0,
    }


def load(services: Services, row: RowMapping, metrics: Sequence[str] | None,
         scopes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{metric: {scope: JobMetric}} of one job, the shape of an archive data.json either way."""
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise ApiError(400, f"unknown metric scope {bad[0]!r} (one of {', '.join(SCOPES)})")
    if int(row["monitoring_status"]) == ARCHIVED and services.archive is not None:
        try:
            data = services.archive.load_data(row["cluster"], int(row["job_id"]), int(row["start_time"]))
        except ArchiveError as exc:
            raise ApiError(500, f"loading archived metric data failed: {exc}") from None
        return {
            name: {scope: metric for scope, metric in by_scope.items() if scope in scopes}
            for name, by_scope in data.items()
            if metrics is None or name in metrics
        }
    if services.metric_source is None:
        raise ApiError(500, "no metric source is configured")
    request = dataclasses.replace(
        data_request(_job_of(row)), metrics=tuple(metrics) if metrics is not None else None, scopes=tuple(scopes)
    )
    try:
        return services.metric_source.load_job_data(request)
    except Exception as exc:  # an external metric store may be down; say so instead of a bare 500
        raise ApiError(500, f"loading metric data failed: {type(exc).__name__}: {exc}") from None


def with_names(data: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """cc-backend's `[]JobMetricWithName`: one entry per metric and scope."""
    return [
        {"name": name, "scope": scope, "metric": metric}
        for name, by_scope in sorted(data.items())
        for scope, metric in by_scope.items()
    ]

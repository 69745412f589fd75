"""A job row as cc-backend marshals `schema.Job`: its keys, order and omitempty rules."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import RowMapping


def _loads(raw: str | None) -> Any:
    return orjson.loads(raw) if raw else None


def _resources(raw: str) -> list[dict[str, Any]]:
    # schema.Resource marshals hwthreads, accelerators and configuration with omitempty.
    return [{k: v for k, v in r.items() if v not in (None, "", [])} for r in orjson.loads(raw)]


def job_json(
    row: RowMapping | Mapping[str, Any],
    tags: list[dict[str, Any]] | None = None,
    *,
    with_metadata: bool = True,
    now: float | None = None,
    statistics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The job's JSON; a running job's duration counts up to now, as cc-backend reports it; `statistics`
    are an archived job's (cc-backend reads them from the archive's meta.json, ccstream from the read model)."""
    duration = int(row["duration"])
    if row["job_state"] == "running":
        duration = max(int((now or time.time()) - row["start_time"]), 0)
    out: dict[str, Any] = {
        "cluster": row["cluster"],
        "subCluster": row["subcluster"],
        "partition": row["cluster_partition"] or "",
        "project": row["project"],
        "user": row["hpc_user"],
        "shared": row["shared"],
        "jobState": row["job_state"],
        "resources": _resources(row["resources"]),
        "energyFootprint": _loads(row["energy_footprint"]),
        "footprint": _loads(row["footprint"]),
    }
    meta = _loads(row["meta_data"]) if with_metadata else None
    if meta:
        out["metaData"] = meta
    if tags:
        out["tags"] = tags
    out["concurrentJobs"] = {"items": None, "count": 0}
    out["energy"] = row["energy"] or 0
    out["walltime"] = row["walltime"]
    out["jobId"] = row["job_id"]
    out["duration"] = duration
    if row["array_job_id"]:
        out["arrayJobId"] = row["array_job_id"]
    out["smt"] = row["smt"]
    out["monitoringStatus"] = row["monitoring_status"]
    if row["num_acc"]:
        out["numAcc"] = row["num_acc"]
    out["numHwthreads"] = row["num_hwthreads"] or 0
    out["numNodes"] = row["num_nodes"]
    out["statistics"] = statistics
    out["id"] = row["id"]
    out["submitTime"] = row["submit_time"]
    out["startTime"] = row["start_time"]
    return out


def user_json(row: RowMapping) -> dict[str, Any]:
    """A user as cc-backend's `GET /api/users/` lists it (never the password hash)."""
    return {
        "username": row["username"],
        "name": row["name"] or "",
        "roles": orjson.loads(row["roles"] or "[]"),
        "email": row["email"] or "",
        "projects": orjson.loads(row["projects"] or "[]"),
    }

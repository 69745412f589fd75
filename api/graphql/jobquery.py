"""Ordering and paging of `jobs` (§3.3), and job rows as the schema's Job objects (§3.4)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, RowMapping, Select, and_, func, select, true

from projections import schema

job = schema.job

#: `OrderByInput.field` (type "col") → column; cc-backend snake-cases the field into the column name.
SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "id": job.c.id, "jobId": job.c.job_id, "startTime": job.c.start_time, "submitTime": job.c.submit_time,
    "duration": job.c.duration, "walltime": job.c.walltime, "numNodes": job.c.num_nodes,
    "numHwthreads": job.c.num_hwthreads, "numHWThreads": job.c.num_hwthreads, "numAcc": job.c.num_acc,
    "energy": job.c.energy, "cluster": job.c.cluster, "subCluster": job.c.subcluster,
    "partition": job.c.cluster_partition, "user": job.c.hpc_user, "project": job.c.project,
    "state": job.c.job_state, "jobState": job.c.job_state, "arrayJobId": job.c.array_job_id,
    "monitoringStatus": job.c.monitoring_status, "smt": job.c.smt, "SMT": job.c.smt, "shared": job.c.shared,
}
_FOOTPRINT_KEY = re.compile(r"^[a-zA-Z0-9_]+$")
#: `page` omitted: cc-backend's default page.
DEFAULT_PAGE = {"itemsPerPage": 50, "page": 1}


class QueryError(ValueError):
    """An argument the query cannot run with; the message is the GraphQL error's."""


def database_id(value: object, what: str = "job") -> int:
    """A GraphQL `ID` argument as a positive 64-bit row id; anything else is an error naming it."""
    try:
        number = int(str(value))
    except ValueError:
        raise QueryError(f"{str(value)[:64]!r} is not a {what} id") from None
    if not 0 < number < 2**63:
        raise QueryError(f"{number} is not a {what} id")
    return number


def order_clause(order: Mapping[str, Any] | None) -> list[ColumnElement[Any]]:
    """ORDER BY for an OrderByInput, always ending in the job id so that equal keys keep one order.

    A footprint sort (any `type` but "col") orders by the footprint value; jobs without one come last
    instead of vanishing from the list as they do in cc-backend.
    """
    if not order:
        return [job.c.id.asc()]
    field, descending = str(order.get("field") or ""), order.get("order") == "DESC"
    if order.get("type") == "col":
        column = SORT_COLUMNS.get(field)
        if column is None:
            raise QueryError(f"cannot sort by {field[:64]!r}: not a job column")
    else:
        if not _FOOTPRINT_KEY.match(field):
            raise QueryError(f"cannot sort by footprint value {field[:64]!r}")
        column = func.json_extract(job.c.footprint, f"$.{field}")
    if descending:
        return [column.desc().nulls_last(), job.c.id.desc()]
    return [column.asc().nulls_last(), job.c.id.asc()]


@dataclass(frozen=True)
class Page:
    """LIMIT/OFFSET of a PageRequest; `limit` None is every row (itemsPerPage -1)."""

    limit: int | None
    offset: int

    @classmethod
    def of(cls, request: Mapping[str, Any] | None) -> Page:
        spec = request or DEFAULT_PAGE
        per_page, number = int(spec["itemsPerPage"]), max(int(spec["page"]), 1)
        if per_page == -1:
            return cls(None, 0)
        if per_page < 1:
            raise QueryError("invalid items-per-page value")
        return cls(per_page, (number - 1) * per_page)


def page_of_jobs(conn: Connection, conditions: Sequence[ColumnElement[bool]], order: Mapping[str, Any] | None,
                 page: Page) -> list[RowMapping]:
    stmt: Select[Any] = select(job).where(and_(true(), *conditions)).order_by(*order_clause(order))
    if page.limit is not None:
        stmt = stmt.limit(page.limit).offset(page.offset)
    return list(conn.execute(stmt).mappings())


def count_jobs(conn: Connection, conditions: Sequence[ColumnElement[bool]]) -> int:
    return int(conn.execute(select(func.count()).select_from(job).where(and_(true(), *conditions))).scalar_one())


def has_next_page(conn: Connection, conditions: Sequence[ColumnElement[bool]], page: Page) -> bool:
    if page.limit is None:
        return False
    stmt = select(job.c.id).where(and_(true(), *conditions)).limit(1).offset(page.offset + page.limit)
    return conn.execute(stmt).first() is not None


def _json(raw: str | None) -> Any:
    return orjson.loads(raw) if raw else None


def footprint_values(raw: str | None) -> list[dict[str, Any]]:
    """`{"flops_any_avg": 1.5}` as `[{name: flops_any, stat: avg, value: 1.5}]`, split at the last underscore."""
    values = _json(raw)
    if not isinstance(values, dict):
        return []
    out = []
    for key, value in sorted(values.items()):
        name, _, stat = str(key).rpartition("_")
        if isinstance(value, int | float):
            out.append({"name": name or stat, "stat": stat if name else "", "value": float(value)})
    return out


_HARDWARE = ((re.compile(r"cpu|Cpu|CPU"), "CPU"), (re.compile(r"acc|Acc|ACC"), "Accelerator"),
             (re.compile(r"mem|Mem|MEM"), "Memory"), (re.compile(r"core|Core|CORE"), "Core"))


def energy_footprint_values(raw: str | None) -> list[dict[str, Any]]:
    """`{metric: kWh}` as `[{hardware, metric, value}]`, the hardware guessed from the metric's name."""
    values = _json(raw)
    if not isinstance(values, dict):
        return []
    out = []
    for metric, value in sorted(values.items()):
        if not isinstance(value, int | float):
            continue
        hardware = next((label for pattern, label in _HARDWARE if pattern.search(str(metric))), "Other")
        out.append({"hardware": hardware, "metric": str(metric), "value": float(value)})
    return out


def resources(raw: str) -> list[dict[str, Any]]:
    value = _json(raw)
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def job_object(row: RowMapping | Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """A job row with the schema's field names; tags, userData, concurrentJobs and metaData resolve on demand."""
    duration = int(row["duration"])
    if row["job_state"] == "running":
        duration = max(int((time.time() if now is None else now) - row["start_time"]), 0)
    return {
        "id": row["id"], "jobId": row["job_id"], "user": row["hpc_user"], "project": row["project"],
        "cluster": row["cluster"], "subCluster": row["subcluster"], "startTime": row["start_time"],
        "duration": duration, "walltime": row["walltime"], "numNodes": row["num_nodes"],
        "numHWThreads": row["num_hwthreads"] or 0, "numAcc": row["num_acc"] or 0, "energy": row["energy"] or 0.0,
        "SMT": row["smt"], "shared": row["shared"], "partition": row["cluster_partition"] or "",
        "arrayJobId": row["array_job_id"] or 0, "monitoringStatus": row["monitoring_status"],
        "state": row["job_state"], "row": row,
    }

"""`JobFilter` inputs as SQL conditions on the job table (cc-backend's BuildWhereClause, §3.2).

Pure: input dicts in, SQLAlchemy expressions out, every value a bound parameter. Where cc-backend
inlines strings (`shared`, `state`), has a broken variant (`node.startsWith`) or counts a job once per
matching tag (the `tags` join), this does the right thing; the README lists the differences.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, exists, false, func, literal_column, select, true
from sqlalchemy.sql.elements import ColumnClause

from projections import schema

job = schema.job
jobtag = schema.jobtag

#: `startTime.range` values and their length in seconds.
RANGES = {"last6h": 6 * 3600, "last24h": 24 * 3600, "last7d": 7 * 86400, "last30d": 30 * 86400}
_METRIC_NAME = re.compile(r"^[a-zA-Z0-9_]+$")
#: StringInput operators in the order cc-backend tries them: the first one set wins.
_OPERATORS = ("eq", "neq", "startsWith", "endsWith", "contains", "in")

class FilterError(ValueError):
    """A filter value that cannot be a condition (the message is the GraphQL error's)."""

def string_condition(column: ColumnElement[Any], spec: Mapping[str, Any] | None) -> ColumnElement[bool] | None:
    """A StringInput on a text column: eq, neq, startsWith, endsWith, contains (case-insensitive), in."""
    if not spec:
        return None
    for op in _OPERATORS:
        value = spec.get(op)
        if value is None:
            continue
        if op == "eq":
            return column == value
        if op == "neq":
            return column != value
        if op == "startsWith":
            return column.startswith(value, autoescape=True)
        if op == "endsWith":
            return column.endswith(value, autoescape=True)
        if op == "contains":
            return column.contains(value, autoescape=True)
        return column.in_(list(value))
    return None

def _job_id_condition(spec: Mapping[str, Any] | None) -> ColumnElement[bool] | None:
    """jobId is an integer column compared with strings: equality as numbers, patterns as text."""
    if not spec:
        return None
    op = next((o for o in _OPERATORS if spec.get(o) is not None), None)
    if op in ("eq", "neq"):
        number = _as_int(spec[op])
        if number is None:
            return false() if op == "eq" else true()
        return job.c.job_id == number if op == "eq" else job.c.job_id != number
    if op == "in":
        return job.c.job_id.in_([n for n in (_as_int(v) for v in spec["in"]) if n is not None])
    return string_condition(cast(job.c.job_id, String), spec)

def _as_int(value: str) -> int | None:
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if -(2**63) <= number < 2**63 else None

def range_condition(column: ColumnElement[Any], spec: Mapping[str, Any] | None) -> ColumnElement[bool] | None:
    """IntRange / FloatRange: both bounds > 0 → between; one > 0 → that bound; both 0 → no condition."""
    if not spec:
        return None
    low, high = spec.get("from") or 0, spec.get("to") or 0
    if low > 0 and high > 0:
        return column.between(low, high)
    if low > 0:
        return column >= low
    if high > 0:
        return column <= high
    return None

def time_condition(spec: Mapping[str, Any] | None, now: float) -> ColumnElement[bool] | None:
    """TimeRange on start_time: from/to (unix seconds after parsing), else a named recent range."""
    if not spec:
        return None
    low, high = spec.get("from"), spec.get("to")
    if low is not None and high is not None:
        return job.c.start_time.between(low, high)
    if low is not None:
        return job.c.start_time >= low
    if high is not None:
        return job.c.start_time <= high
    length = RANGES.get(spec.get("range") or "")
    return None if length is None else job.c.start_time >= int(now) - length

def _json_text(column: ColumnElement[Any], path: str) -> ColumnElement[Any]:
    return func.json_extract(column, path)

def _node_condition(spec: Mapping[str, Any] | None) -> ColumnElement[bool] | None:
    """A host among the job's resources (json_each over `resources`)."""
    if not spec:
        return None
    each = func.json_each(job.c.resources).table_valued("value").alias("resource")
    hostname: ColumnClause[Any] = literal_column("json_extract(resource.value, '$.hostname')")
    condition = string_condition(hostname, spec)
    if condition is None:
        return None
    return and_(func.json_valid(job.c.resources) == 1, exists(select(1).select_from(each).where(condition)))

def _metric_stats(items: Sequence[Mapping[str, Any]]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for item in items:
        name = str(item.get("metricName") or "")
        if not _METRIC_NAME.match(name):
            conditions.append(false())
            continue
        bound = range_condition(_json_text(job.c.footprint, f"$.{name}"), item.get("range"))
        if bound is not None:
            conditions.append(and_(func.json_valid(job.c.footprint) == 1, bound))
    return conditions

def _ids(values: Sequence[Any], what: str) -> list[int]:
    ids = []
    for value in values:
        number = _as_int(str(value))
        if number is None:
            raise FilterError(f"{what}: {str(value)[:64]!r} is not a database id")
        ids.append(number)
    return ids

def _schedule(value: str | None) -> ColumnElement[bool] | None:
    name = _json_text(job.c.meta_data, "$.jobName")
    if value == "interactive":
        return name == "interactive"
    if value == "batch":
        return name != "interactive"
    return None

_STRING_COLUMNS: dict[str, ColumnElement[Any]] = {
    "cluster": job.c.cluster, "subCluster": job.c.subcluster, "partition": job.c.cluster_partition,
    "project": job.c.project, "user": job.c.hpc_user,
}
_RANGE_COLUMNS: dict[str, ColumnElement[Any]] = {
    "numNodes": job.c.num_nodes, "numAccelerators": job.c.num_acc, "numHWThreads": job.c.num_hwthreads,
    "duration": job.c.duration, "energy": job.c.energy,
}

def filter_conditions(filters: Sequence[Mapping[str, Any]] | None, *, now: float | None = None
                      ) -> list[ColumnElement[bool]]:
    """Every set field of every filter element, ANDed together."""
    at = time.time() if now is None else now
    out: list[ColumnElement[bool]] = []

    def add(condition: ColumnElement[bool] | None) -> None:
        if condition is not None:
            out.append(condition)

    for flt in filters or ():
        if flt.get("dbId") is not None:
            add(job.c.id.in_(_ids(flt["dbId"], "dbId")))
        if flt.get("tags") is not None:  # any of the tags; a job matching several is still one job
            add(job.c.id.in_(select(jobtag.c.job_id).where(jobtag.c.tag_id.in_(_ids(flt["tags"], "tags")))))
        add(_job_id_condition(flt.get("jobId")))
        if flt.get("arrayJobId") is not None:
            add(job.c.array_job_id == flt["arrayJobId"])
        for key, column in _STRING_COLUMNS.items():
            add(string_condition(column, flt.get(key)))
        for key, column in _RANGE_COLUMNS.items():
            add(range_condition(column, flt.get(key)))
        add(time_condition(flt.get("startTime"), at))
        if flt.get("state"):
            add(job.c.job_state.in_(list(flt["state"])))
        if flt.get("shared") is not None:
            add(job.c.shared == flt["shared"])
        out.extend(_metric_stats(flt.get("metricStats") or ()))
        add(_node_condition(flt.get("node")))
        add(_job_name_condition(flt.get("jobName")))
        add(_schedule(flt.get("schedule")))
    return out

def _job_name_condition(spec: Mapping[str, Any] | None) -> ColumnElement[bool] | None:
    """jobName in the metadata: eq, neq and the patterns (cc-backend ignores `in`; so do we)."""
    if not spec:
        return None
    name = _json_text(job.c.meta_data, "$.jobName")
    usable = {k: v for k, v in spec.items() if k != "in"}
    condition = string_condition(name, usable)
    return None if condition is None else and_(func.json_valid(job.c.meta_data) == 1, condition)

"""Node queries (§3.9): the newest state of each node, state counts, state history, allocated nodes.

Node data is for admin and support only. The newest state of a node is found through the
`(node_id, time_stamp DESC)` index, one node at a time, so it costs the number of nodes, not the
length of the history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, RowMapping, and_, distinct, func, literal_column, select, true

from api.graphql.jobfilter import string_condition
from api.graphql.jobquery import QueryError
from projections import schema
from projections.node_queries import HEALTH_STATES, SCHEDULER_STATES

node, node_state, job = schema.node, schema.node_state, schema.job

_newest = node_state.alias("newest")
#: The id of a node's newest state report (correlated with the outer `node` row).
NEWEST_STATE_ID = (select(_newest.c.id).where(_newest.c.node_id == node.c.id)
                    .order_by(_newest.c.time_stamp.desc(), _newest.c.id.desc()).limit(1)
                    .correlate(node).scalar_subquery())
STATE_TYPES = {"node": node_state.c.node_state, "health": node_state.c.health_state}


def node_conditions(filters: Sequence[Mapping[str, Any]] | None) -> list[ColumnElement[bool]]:
    """NodeFilter elements, ANDed: hostname, cluster, subCluster (StringInput) and the two states."""
    out: list[ColumnElement[bool]] = []
    for flt in filters or ():
        for key, column in (("hostname", node.c.hostname), ("cluster", node.c.cluster),
                            ("subCluster", node.c.subcluster)):
            condition = string_condition(column, flt.get(key))
            if condition is not None:
                out.append(condition)
        if flt.get("schedulerState") is not None:
            out.append(node_state.c.node_state == flt["schedulerState"])
        if flt.get("healthState") is not None:
            out.append(node_state.c.health_state == flt["healthState"])
    return out


def _time_start(filters: Sequence[Mapping[str, Any]] | None) -> int | None:
    starts = [int(f["timeStart"]) for f in filters or () if f.get("timeStart") is not None]
    return max(starts) if starts else None


def newest_states(conn: Connection, conditions: Sequence[ColumnElement[bool]], *, with_meta: bool,
                  node_id: int | None = None) -> list[dict[str, Any]]:
    """Every node with its newest state, by hostname (then cluster): the schema's Node objects."""
    stmt = (select(node, *(c for c in node_state.c if c.name not in ("id", "node_id"))).select_from(node)
            .join(node_state, node_state.c.id == NEWEST_STATE_ID)
            .where(and_(true(), *conditions)).order_by(node.c.hostname, node.c.cluster))
    if node_id is not None:
        stmt = stmt.where(node.c.id == node_id)
    return [_node_object(r, with_meta) for r in conn.execute(stmt).mappings()]


def _node_object(row: RowMapping, with_meta: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row["id"], "hostname": row["hostname"], "cluster": row["cluster"], "subCluster": row["subcluster"],
        "jobsRunning": row["jobs_running"], "cpusAllocated": row["cpus_allocated"],
        "memoryAllocated": row["memory_allocated"], "gpusAllocated": row["gpus_allocated"],
        "schedulerState": row["node_state"], "healthState": row["health_state"], "metaData": None,
        "healthData": None,
    }
    if with_meta:
        out["metaData"] = orjson.loads(row["meta_data"]) if row["meta_data"] else {}
        out["healthData"] = orjson.loads(row["health_metrics"]) if row["health_metrics"] else {}
    return out


def _ordered(counts: Counter[str], order: Sequence[str]) -> list[tuple[str, int]]:
    known = [(s, counts[s]) for s in order if counts[s]]
    return known + sorted((s, n) for s, n in counts.items() if s not in order)


def state_counts(conn: Connection, conditions: Sequence[ColumnElement[bool]]) -> list[dict[str, Any]]:
    """Nodes per scheduler state, then per health state (their newest states), in one list."""
    rows = conn.execute(select(node_state.c.node_state, node_state.c.health_state).select_from(node)
                        .join(node_state, node_state.c.id == NEWEST_STATE_ID).where(and_(true(), *conditions))).all()
    scheduler = Counter(str(r.node_state) for r in rows)
    health = Counter(str(r.health_state) for r in rows)
    return [{"state": s, "count": n} for s, n in [*_ordered(scheduler, SCHEDULER_STATES),
                                                  *_ordered(health, HEALTH_STATES)]]


def states_timed(conn: Connection, filters: Sequence[Mapping[str, Any]] | None, kind: str) -> list[dict[str, Any]]:
    """Reports per state and report time after the filter's `timeStart`: `[{state, times, counts}]`."""
    column = STATE_TYPES.get(kind)
    if column is None:
        raise QueryError("unknown Node State Query Type")
    conditions = node_conditions(filters)
    start = _time_start(filters)
    if start is not None:
        conditions.append(node_state.c.time_stamp > start)
    stmt = (select(column.label("state"), node_state.c.time_stamp, func.count().label("n")).select_from(node_state)
            .join(node, node.c.id == node_state.c.node_id).where(and_(true(), *conditions))
            .group_by(column, node_state.c.time_stamp).order_by(node_state.c.time_stamp))
    series: dict[str, dict[str, list[int]]] = {}
    for row in conn.execute(stmt):
        entry = series.setdefault(str(row.state), {"times": [], "counts": []})
        entry["times"].append(int(row.time_stamp))
        entry["counts"].append(int(row.n))
    order = SCHEDULER_STATES if kind == "node" else HEALTH_STATES
    names = [s for s in order if s in series] + sorted(set(series) - set(order))
    return [{"state": s, **series[s]} for s in names]


def allocated_nodes(conn: Connection, cluster: str) -> list[dict[str, Any]]:
    """Per subcluster, the distinct hosts running jobs hold now."""
    each = func.json_each(job.c.resources).table_valued("value").alias("resource")
    hostname: ColumnElement[Any] = literal_column("json_extract(resource.value, '$.hostname')")
    stmt = (select(job.c.subcluster, func.count(distinct(hostname)).label("n")).select_from(job).join(each, true())
            .where(job.c.cluster == cluster, job.c.job_state == "running", func.json_valid(job.c.resources) == 1)
            .group_by(job.c.subcluster).order_by(job.c.subcluster))
    return [{"name": r.subcluster, "count": int(r.n)} for r in conn.execute(stmt)]

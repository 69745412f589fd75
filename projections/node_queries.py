"""Read queries on node states: the current state of every node, and state counts over time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, text

#: Canonical order of states in answers (cc-lib's SchedulerState and MonitoringState).
SCHEDULER_STATES = ("allocated", "reserved", "idle", "mixed", "down", "unknown")
HEALTH_STATES = ("full", "partial", "failed")
StateKind = Literal["node", "health"]
_COLUMN = {"node": "node_state", "health": "health_state"}

_LATEST = """
SELECT * FROM (
    SELECT n.id AS node_id, n.hostname, n.cluster, n.subcluster, n.meta_data, s.time_stamp, s.node_state,
           s.health_state, s.health_metrics, s.jobs_running, s.cpus_allocated, s.memory_allocated,
           s.gpus_allocated,
           ROW_NUMBER() OVER (PARTITION BY s.node_id ORDER BY s.time_stamp DESC, s.id DESC) AS newest
    FROM node_state s JOIN node n ON n.id = s.node_id
    WHERE n.cluster = :cluster AND (:subcluster IS NULL OR n.subcluster = :subcluster)
      AND s.time_stamp <= :before
) WHERE newest = 1
"""


@dataclass(frozen=True)
class StatesTimed:
    """cc-backend's GraphQL `NodeStatesTimed`: how many nodes were in `state` at each of `times`."""

    state: str
    counts: list[int]
    times: list[int]


def current_states(
    conn: Connection, cluster: str, subcluster: str | None = None, at: int | None = None
) -> list[dict[str, Any]]:
    """The newest state of every reported node of a cluster (as of `at`, default now), by hostname.

    Shaped like cc-backend's GraphQL `Node`, plus the report's `timeStamp`.
    """
    rows = conn.execute(
        text(_LATEST + " ORDER BY hostname"),
        {"cluster": cluster, "subcluster": subcluster, "before": _FOREVER if at is None else at},
    ).mappings()
    return [
        {
            "id": r["node_id"],
            "hostname": r["hostname"],
            "cluster": r["cluster"],
            "subCluster": r["subcluster"],
            "jobsRunning": r["jobs_running"],
            "cpusAllocated": r["cpus_allocated"],
            "memoryAllocated": r["memory_allocated"],
            "gpusAllocated": r["gpus_allocated"],
            "schedulerState": r["node_state"],
            "healthState": r["health_state"],
            "healthData": orjson.loads(r["health_metrics"]) if r["health_metrics"] else None,
            "metaData": orjson.loads(r["meta_data"]) if r["meta_data"] else None,
            "timeStamp": r["time_stamp"],
        }
        for r in rows
    ]


_FOREVER = 2**62


def state_history(
    conn: Connection, cluster: str, start: int, end: int, kind: StateKind = "node", subcluster: str | None = None
) -> list[StatesTimed]:
    """Node counts per state at every report time in [start, end]; nodes keep their last state between reports.

    Nodes reported before `start` count with the state they had then, so the first point is a true
    census and not only the nodes that happened to be reported in the window.
    """
    column = _COLUMN[kind]
    seed_rows = conn.execute(
        text(f"SELECT node_id, {column} AS state FROM ({_LATEST})"),
        {"cluster": cluster, "subcluster": subcluster, "before": start - 1},
    )
    changes = conn.execute(
        text(
            f"SELECT s.time_stamp, s.node_id, s.{column} FROM node_state s JOIN node n ON n.id = s.node_id "
            "WHERE n.cluster = :cluster AND (:subcluster IS NULL OR n.subcluster = :subcluster) "
            "AND s.time_stamp BETWEEN :start AND :end ORDER BY s.time_stamp, s.id"
        ),
        {"cluster": cluster, "subcluster": subcluster, "start": start, "end": end},
    )
    seed = {int(r.node_id): str(r.state) for r in seed_rows}
    order = SCHEDULER_STATES if kind == "node" else HEALTH_STATES
    return counts_over_time(seed, ((int(t), int(n), str(s)) for t, n, s in changes), order)


def counts_over_time(
    seed: dict[int, str], changes: Iterable[tuple[int, int, str]], order: Iterable[str]
) -> list[StatesTimed]:
    """Pure sweep: apply changes (time, node, state) in order; census after the last change of each time.

    States that never occur are left out; the others come in `order`, then any unexpected ones by name.
    """
    current = dict(seed)
    times: list[int] = []
    censuses: list[Counter[str]] = []
    pending: int | None = None
    for time_stamp, node, state in changes:
        if pending is not None and time_stamp != pending:
            times.append(pending)
            censuses.append(Counter(current.values()))
        pending = time_stamp
        current[node] = state
    if pending is not None:
        times.append(pending)
        censuses.append(Counter(current.values()))
    seen = {state for census in censuses for state in census}
    known = [s for s in order if s in seen]
    ordered = known + sorted(seen - set(known))
    return [StatesTimed(state, [census.get(state, 0) for census in censuses], list(times)) for state in ordered]

"""Node handlers: cc-backend's `node` table (one row per host) and `node_state` (one row per report)."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from projections import schema
from projections.handlers import HandlerTable
from streams.events import Event


def _node_id(conn: Connection, cluster: str, hostname: str, subcluster: str) -> int:
    """The node row's id, created on first report; a host moved to another subcluster is updated."""
    node = schema.node
    conn.execute(
        sqlite_insert(node)
        .values(hostname=hostname, cluster=cluster, subcluster=subcluster)
        .on_conflict_do_nothing(index_elements=["hostname", "cluster"])
    )
    row = conn.execute(
        select(node.c.id, node.c.subcluster).where(node.c.cluster == cluster, node.c.hostname == hostname)
    ).one()
    if row.subcluster != subcluster:
        conn.execute(update(node).where(node.c.id == row.id).values(subcluster=subcluster))
    return int(row.id)


def record_node_states(conn: Connection, event: Event) -> None:
    """History: every report adds a row per node; the newest row of a node is its current state."""
    d = event.data
    rows = []
    for n in d["nodes"]:
        metrics = n.get("healthMetrics")
        rows.append({
            "time_stamp": d["timeStamp"],
            "jobs_running": n.get("jobsRunning", 0),
            "cpus_allocated": n.get("cpusAllocated", 0),
            "memory_allocated": n.get("memoryAllocated", 0),
            "gpus_allocated": n.get("gpusAllocated", 0),
            "node_state": n["nodeState"],
            "health_state": n["healthState"],
            "health_metrics": None if metrics is None else orjson.dumps(metrics).decode(),
            "node_id": _node_id(conn, d["cluster"], n["hostname"], n["subCluster"]),
        })
    if rows:
        conn.execute(schema.node_state.insert(), rows)


def record_node_states_retired(conn: Connection, event: Event) -> None:
    """Node-state rows older than the retirement's `before` are gone (see `NodeStatesRetiredV1`).

    A rule applied in log order rather than a list of row ids: row ids are the projection's, and a
    rebuild must reach the same table from the log alone."""
    conn.execute(delete(schema.node_state).where(schema.node_state.c.time_stamp < event.data["before"]))


HANDLERS: HandlerTable = {
    "node.states_reported": record_node_states,
    "node.states_retired": record_node_states_retired,
}

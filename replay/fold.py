"""A job's events folded into its final row in memory, before the row is written.

Applied one by one, a job costs a rebuild an INSERT at its start and an UPDATE at its stop (and one
per edit), each UPDATE first finding the row by (cluster, job_id, start_time). Held back in memory
for a while, most jobs meet their stop before they are written, and go into the file once, final.

Each function here takes a row and an event's payload and returns the row the event's handler in
`projections.jobs` would leave in the table; tests/replay/test_fold.py runs the handlers on the
same events and compares. Rows are tuples of plain values: the garbage collector stops tracking them after one
pass, however many are held.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.events import parse_job_subject
from streams.events.bounds import INT64_MAX, INT64_MIN
from streams.events.payloads import CURRENT_VERSION

#: A job's identity in the table as Python compares it; held rows have keys that compare like SQLite's,
#: and no start time of None (a stop of `job/<cluster>/<id>/*` selects no row).
JobKey = tuple[str, int, int | None]
#: A job row in the order of `JOB_COLUMNS`, with `NULL` for NULL in the mostly-NULL columns.
Row = tuple[Any, ...]
#: A start ready to be held: its key and row (`start_row`).
Started = tuple[JobKey, Row]
#: A stop ready to be folded: the key its handler selects the row by, state, duration, parked stop id.
Stopped = tuple[JobKey, Any, Any, Any]
#: A log row as replay reads it: position, type, version, subject, payload (encoded).
Raw = tuple[int, str, int, str, bytes]

#: Columns of the job table in the order rows are held and inserted (`id` first); replay.bulk checks
#: them against the schema (this module stays light: the reading processes import it).
JOB_COLUMNS: tuple[str, ...] = (
    "id", "job_id", "cluster", "subcluster", "submit_time", "start_time", "hpc_user", "project",
    "cluster_partition", "array_job_id", "duration", "walltime", "job_state", "meta_data", "resources",
    "num_nodes", "num_hwthreads", "num_acc", "smt", "shared", "monitoring_status", "energy",
    "energy_footprint", "footprint",
)
_COLUMN = {name: index for index, name in enumerate(JOB_COLUMNS)}
_STATE, _DURATION = _COLUMN["job_state"], _COLUMN["duration"]
_META = _COLUMN["meta_data"]
_MONITORING = _COLUMN["monitoring_status"]
_FOOTPRINT, _ENERGY_FOOTPRINT, _ENERGY = _COLUMN["footprint"], _COLUMN["energy_footprint"], _COLUMN["energy"]

#: What a held row holds for NULL in the columns that are mostly NULL. sqlite3 binds None a dozen
#: times slower than a string (it looks for an adapter first), so the INSERT binds '' and turns it into
#: NULL: no value of these columns is ever '' (JSON text, or an id that is not a string).
NULL = ""
_NULLABLE = frozenset({"id", "meta_data", "energy_footprint", "footprint"})

#: The plain INSERT of a held row. No ON CONFLICT clause, unlike the handler's: a row whose key or id
#: is taken makes SQLite raise, and the loader then applies that job's events to the stored row instead.
_NULLIF = f"NULLIF(?, '{NULL}')"
INSERT_JOB_SQL = (
    f"INSERT INTO job ({', '.join(JOB_COLUMNS)})"
    f" VALUES ({', '.join(_NULLIF if name in _NULLABLE else '?' for name in JOB_COLUMNS)})"
)


def _json_or_null(value: object) -> str:
    return NULL if value is None else orjson.dumps(value).decode()


def start_row(data: dict[str, Any]) -> Started | None:
    """Key and row of a `job.started` payload: `jobs.job_start_values`, as a tuple in column order.

    Written out here because the dict of the handler's function costs as much as the rest of a job's
    rebuild; test_fold.py compares both on payloads with every field present, absent and null. None
    sends the start to the handler: starts with tags (tag and jobtag rows need the job's id), keys
    Python would not compare as SQLite does (a float job id, a bool), a string `dbId` (it could be
    `NULL`), and payloads the handler would reject, so that it raises its own error.
    """
    if data.get("tags"):
        return None
    get = data.get
    try:
        cluster, job_id, start_time, db_id = data["cluster"], data["jobId"], data["startTime"], get("dbId")
        meta = get("metaData") or {}
        row = (
            NULL if db_id is None else db_id, job_id, cluster, data["subCluster"], get("submitTime") or 0,
            start_time, data["user"], data["project"], get("partition") or "", get("arrayJobId") or 0,
            get("duration") or 0, get("walltime") or 0, "running", _json_or_null(meta) if meta else NULL,
            orjson.dumps(data["resources"]).decode(), data["numNodes"], get("numHwthreads") or 0,
            get("numAcc") or 0, get("smt", 1), get("shared") or "none", get("monitoringStatus", 1),
            get("energy") or 0.0, _json_or_null(get("energyFootprint")), _json_or_null(get("footprint")),
        )
    except Exception:
        return None
    if type(job_id) is not int or type(start_time) is not int or type(cluster) is not str or type(db_id) is str:
        return None
    if not all(INT64_MIN <= v <= INT64_MAX for v in row if type(v) is int):
        return None  # the handler fails on it and the loader quarantines it, as the live projection does
    return (cluster, job_id, start_time), row


def stop_of(subject: str, data: dict[str, Any]) -> Stopped:
    """What `record_job_stop` takes from a `job.stopped` event; raises as it does on what it cannot take."""
    return parse_job_subject(subject), data["jobState"], data["duration"], data.get("parkedStopId")


def predecode(rows: list[Raw]) -> list[Started | Stopped | None]:
    """Starts and stops of the current payload version, decoded for the bulk loader; None for the rest.

    This is the part of a job's rebuild that needs no order, so a separate process can do it for a
    page while the loader applies the previous one. None also for a start `start_row` refuses and a
    stop `stop_of` raises on: the loader decodes those itself and treats them as it always does.
    """
    start_version, stop_version = CURRENT_VERSION["job.started"], CURRENT_VERSION["job.stopped"]
    decoded: list[Started | Stopped | None] = []
    for _position, type_, version, subject, payload in rows:
        pre: Started | Stopped | None = None
        try:
            if type_ == "job.started" and version == start_version:
                pre = start_row(orjson.loads(payload))
            elif type_ == "job.stopped" and version == stop_version:
                pre = stop_of(subject, orjson.loads(payload))
        except Exception:
            pre = None
        decoded.append(pre)
    return decoded


def _with(row: Row, changes: dict[int, Any]) -> Row:
    values = list(row)
    for index, value in changes.items():
        values[index] = value
    return tuple(values)


def stopped(row: Row, state: Any, duration: Any) -> Row:
    """`record_job_stop`: the payload's `jobState` and `duration`, as `jobs.job_stop_params` takes them."""
    values = list(row)
    values[_STATE] = state
    values[_DURATION] = duration
    return tuple(values)


def metadata_updated(row: Row, data: dict[str, Any]) -> Row:
    """`record_metadata`: one key of the stored meta_data object set (an empty column is `{}`)."""
    raw = row[_META]
    meta = orjson.loads(raw) if raw else {}
    meta[data["key"]] = data["value"]
    return _with(row, {_META: orjson.dumps(meta).decode()})


def archived(row: Row, data: dict[str, Any]) -> Row:
    """`record_archived`: monitoring status 3 and the footprints and energy the archive derived."""
    return _with(row, {
        _MONITORING: 3,
        _FOOTPRINT: _json_or_null(data.get("footprint") or None),
        _ENERGY_FOOTPRINT: _json_or_null(data.get("energyFootprint") or None),
        _ENERGY: data.get("energy") or 0.0,
    })


def archiving_failed(row: Row, data: dict[str, Any]) -> Row:
    """`record_archiving_failed`: monitoring status 2 once the last attempt failed, else unchanged."""
    return _with(row, {_MONITORING: 2}) if data.get("final") else row



def footprint_updated(row: Row, data: dict[str, Any]) -> Row:
    """`record_footprint_updated`: the running job's footprints and energy; a stopped job's row unchanged."""
    if row[_STATE] != "running":
        return row
    return _with(row, {
        _FOOTPRINT: _json_or_null(data.get("footprint") or None),
        _ENERGY_FOOTPRINT: _json_or_null(data.get("energyFootprint") or None),
        _ENERGY: data.get("energy") or 0.0,
    })

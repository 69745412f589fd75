"""meta.json <-> events: an archived job as `job.started`/`job.stopped`/`job.archived`, and back.

Event ids derive from the job key and the event kind, so importing the same job twice appends
nothing the second time, whichever import (archive, single job, database) came first.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import ValidationError

from archive.imports.footprint import FootprintRules, is_mapping, statistics_from_data
from archive.paths import JobKey
from archive.validate import meta_problems
from streams.events import Event, job_subject
from streams.events.bounds import INT32_MAX, INT64_MAX, NAME_MAX, TEXT_MAX
from streams.events.envelope import EVENT_ID_NAMESPACE
from streams.events.payloads import JobState, SharedMode, payload_model

ARCHIVE_SOURCE = "import:archive"
#: cc-backend's older names of job states, and the legacy `exclusive` flag's meaning as `shared`.
_STATE_ALIASES = {"out_of_memory": "out-of-memory", "stopped": "cancelled"}
_EXCLUSIVE = {1: "none", 0: "multi_user", 2: "single_user"}
_MONITORING_ARCHIVED = 3
_NAMESPACE = EVENT_ID_NAMESPACE.bytes
_JOB_STATES = frozenset(get_args(JobState))
_SHARED_MODES = frozenset(get_args(SharedMode))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Integer fields of a `job.started` payload (all built by `_int`) and the bound each must keep.
_COUNTS = ("numNodes", "numHwthreads", "numAcc", "smt", "walltime")
_INT64S = ("jobId", "arrayJobId", "requestedMemory", "submitTime", "startTime")
_STR_TYPE = frozenset({str})
_JOB_KINDS = (b"started", b"stopped", b"archived")
#: The first hex digit of byte 8 with the RFC 4122 variant set (top bits 10), by the byte's value.
_VARIANT = tuple("89ab"[(byte >> 4) & 0x3] for byte in range(256))
#: Cluster names `JobKey.from_meta` accepted: an archive has a handful, checked once each.
_SAFE_CLUSTERS: set[str] = set()
_MAX_SAFE_CLUSTERS = 1024


class MetaError(ValueError):
    """A meta.json that cannot become a job: the message says which field and why."""


@dataclass(frozen=True)
class JobEvents:
    """The events of one imported job and what was off in its meta.json (reported, not fatal)."""

    key: JobKey
    events: list[Event]
    problems: list[str] = field(default_factory=list)


def import_event_id(key: JobKey, kind: str, *extra: object) -> str:
    """`derived_event_id("import", cluster, jobId, startTime, kind, ...)`: the id of an imported job's event.

    The same uuid5, computed without building UUID objects: an import derives three per job, and
    `uuid.uuid5` was a fifth of the import's time. A test pins it to `derived_event_id`.
    """
    return import_event_ids(key, "\x1f".join(map(str, (kind, *extra))))[0]


def import_event_ids(key: JobKey, *kinds: str) -> list[str]:
    """`import_event_id(key, kind)` for each kind, the shared part of the name built once."""
    return _event_ids(key, [kind.encode() for kind in kinds])


def _event_ids(key: JobKey, kinds: Iterable[bytes]) -> list[str]:
    # Hashing the whole short name per kind is cheaper than copying a hash object of the prefix.
    prefix = _NAMESPACE + f"import\x1f{key.cluster}\x1f{key.job_id}\x1f{key.start_time}\x1f".encode()
    return [_uuid5(hashlib.sha1(prefix + kind).digest()) for kind in kinds]


def _uuid5(sha1: bytes) -> str:
    """The uuid5 text of a SHA-1 digest: its first 16 bytes with the version and variant bits set."""
    h = sha1.hex()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[sha1[8]]}{h[17:20]}-{h[20:32]}"


def _int(meta: Mapping[str, Any], name: str, default: int = 0) -> int:
    value = meta.get(name)
    if type(value) is int:  # nearly always: answered first
        return value
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetaError(f"'{name}' should be an integer, got {value!r:.60}")
    return value


def _resources(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise MetaError("'resources' should be a non-empty array")
    out = []
    for r in raw:
        if not is_mapping(r) or not isinstance(r.get("hostname"), str):
            raise MetaError(f"resource without hostname: {r!r:.60}")
        hwthreads, accelerators, configuration = r.get("hwthreads"), r.get("accelerators"), r.get("configuration")
        out.append({  # every key, as the payload model dumps it
            "hostname": r["hostname"],
            "hwthreads": list(hwthreads) if hwthreads else None,
            "accelerators": [str(a) for a in accelerators] if accelerators else None,
            "configuration": str(configuration) if configuration else None,
        })
    return out


def _shared(meta: Mapping[str, Any]) -> str:
    if isinstance(meta.get("shared"), str):
        return str(meta["shared"])
    return _EXCLUSIVE.get(_int(meta, "exclusive", 1), "none")


def started_payload(meta: Mapping[str, Any], *, db_id: int | None = None) -> dict[str, Any]:
    """The `job.started` payload of a meta.json: its scheduler facts, tags, and archived status."""
    resources = _resources(meta.get("resources"))
    tags = [
        {"type": str(t["type"]), "name": str(t["name"]), "scope": str(t.get("scope") or "global")}
        for t in meta.get("tags") or ()
        if is_mapping(t) and t.get("type") and t.get("name")
    ]
    meta_data = meta.get("metaData") or {}
    return {
        "jobId": _int(meta, "jobId"),
        "user": meta.get("user"),
        "project": meta.get("project"),
        "cluster": meta.get("cluster"),
        "subCluster": meta.get("subCluster") or "",
        "partition": meta.get("partition") or "",
        "arrayJobId": _int(meta, "arrayJobId"),
        "numNodes": _int(meta, "numNodes", len(resources)),
        "numHwthreads": _int(meta, "numHwthreads"),
        "numAcc": _int(meta, "numAcc"),
        "shared": _shared(meta),
        "monitoringStatus": _MONITORING_ARCHIVED,
        "smt": _int(meta, "smt", 1),
        "walltime": _int(meta, "walltime"),
        "requestedMemory": _int(meta, "requestedMemory"),
        "submitTime": _int(meta, "submitTime"),
        "startTime": _int(meta, "startTime"),
        "resources": resources,
        "metaData": {str(k): str(v) for k, v in meta_data.items() if v is not None},
        "tags": tags,
        "footprint": None,
        "energyFootprint": None,
        "energy": 0.0,
        "statistics": None,
        "dbId": db_id,
    }


def checked(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The payload after checking it against its model; MetaError naming the first bad field.

    The payloads built here already have every field the model dumps, so validating without
    re-dumping (a third of the import's time) gives the same dict; a test pins that.
    """
    try:
        payload_model(event_type, 1).model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise MetaError(f"{event_type}: '{where}': {first.get('msg')}") from None
    return data


# The payloads below are built field by field with the models' types (`_int`, `str(...)`), so the
# models can only object to the few values copied from meta.json as they are. Checking just those
# answers for well-formed jobs at a tenth of the cost of the model; anything else goes to the model
# (`checked`), which accepts it or names the field. A test pins: accepted here => the model accepts.


def _name(value: object) -> bool:
    """A name within the payload bounds (streams.events.bounds): short, no control characters."""
    return type(value) is str and len(value) <= NAME_MAX and (value.isprintable() or not _CONTROL.search(value))


def _resource_valid(r: Mapping[str, Any]) -> bool:
    threads, accelerators, configuration = r["hwthreads"], r["accelerators"], r["configuration"]
    return (
        _name(r["hostname"])
        and (threads is None or all(type(t) is int and 0 <= t <= INT32_MAX for t in threads))
        and (accelerators is None or all(map(_name, accelerators)))
        and (configuration is None or _name(configuration))
    )


def _started_valid(p: Mapping[str, Any]) -> bool:
    """True when the `job.started` model surely accepts a payload of `started_payload` (bounds included)."""
    return (
        all(_name(p[k]) for k in ("user", "project", "subCluster")) and _name(p["cluster"]) and p["cluster"] != ""
        and _name(p["partition"]) and p["shared"] in _SHARED_MODES
        and all(-INT32_MAX - 1 <= p[k] <= INT32_MAX for k in _COUNTS)
        and all(-INT64_MAX - 1 <= p[k] <= INT64_MAX for k in _INT64S)
        and (p["dbId"] is None or (type(p["dbId"]) is int and -INT64_MAX - 1 <= p["dbId"] <= INT64_MAX))
        and all(_name(k) and k != "" and len(v) <= TEXT_MAX for k, v in p["metaData"].items())
        and all(_name(t["type"]) and _name(t["name"]) and _name(t["scope"]) for t in p["tags"])
        and all(_resource_valid(r) for r in p["resources"])
    )


def _stopped_valid(p: Mapping[str, Any]) -> bool:
    """True when the `job.stopped` model surely accepts a payload of `events_from_meta`."""
    state = p["jobState"]
    return type(state) is str and state in _JOB_STATES and p["duration"] >= 0


def _finite_fields(stat: Mapping[str, Any]) -> dict[str, Any]:
    """A metric's statistics with NaN and infinities as null: what JSON (and so the log) can hold of them."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in stat.items()}


def _archived_valid(p: Mapping[str, Any]) -> bool:
    """True when the `job.archived` model surely accepts a payload of `events_from_meta`."""
    return (
        type(p["location"]) is str and len(p["location"]) <= TEXT_MAX and set(map(type, p["statistics"])) <= _STR_TYPE
        and all(len(k) <= NAME_MAX for k in p["statistics"]) and math.isfinite(p["energy"])
        and all(math.isfinite(v) for v in p["footprint"].values())
        and all(math.isfinite(v) for v in p["energyFootprint"].values())
        and _plain_statistics(p["statistics"])
    )


def _plain_statistics(stats: Mapping[str, Any]) -> bool:
    """Statistics of the usual shape ({metric: {unit: {...}, avg, min, max}}) with finite numbers only."""
    for stat in stats.values():
        for value in stat.values():
            if type(value) is float and not math.isfinite(value):
                return False
            if type(value) is int and not -INT64_MAX - 1 <= value <= INT64_MAX:
                return False
            if isinstance(value, list) or (isinstance(value, dict) and not _plain_unit(value)):
                return False
    return True


def _plain_unit(unit: Mapping[str, Any]) -> bool:
    return all(type(v) is str and len(v) <= NAME_MAX for v in unit.values())


def job_key(meta: Mapping[str, Any]) -> JobKey:
    """`JobKey.from_meta`, with the name check done once per cluster instead of once per job."""
    cluster, job_id, start = meta.get("cluster"), meta.get("jobId"), meta.get("startTime")
    if (
        type(cluster) is str and cluster in _SAFE_CLUSTERS
        and type(job_id) is int and job_id >= 0 and type(start) is int and start >= 0
    ):
        return JobKey(cluster, job_id, start)
    key = JobKey.from_meta(meta)
    if len(_SAFE_CLUSTERS) < _MAX_SAFE_CLUSTERS:
        _SAFE_CLUSTERS.add(key.cluster)
    return key


def events_from_meta(
    meta: Mapping[str, Any],
    *,
    metric_config: Sequence[Mapping[str, Any]] | FootprintRules | None = None,
    data: Mapping[str, Any] | None = None,
    location: str = "",
    source: str = ARCHIVE_SOURCE,
) -> JobEvents:
    """The three events an archived job stands for; MetaError when a required fact is missing or wrong.

    `metric_config` is the job's subcluster metricConfig (footprint and energy metrics), or the rules
    taken from it once for many jobs; `data` is only needed when the meta.json carries no statistics.
    """
    key = job_key(meta)
    problems = meta_problems(meta)
    state = meta.get("jobState")
    if isinstance(state, str) and state in _STATE_ALIASES:
        problems.append(f"jobState {state!r} read as {_STATE_ALIASES[state]!r}")
        state = _STATE_ALIASES[state]
    duration = _int(meta, "duration")
    started = started_payload(meta)
    if not _started_valid(started):
        checked("job.started", started)
    stopped = {"jobState": state, "stopTime": key.start_time + duration, "duration": duration, "parkedStopId": None}
    if not _stopped_valid(stopped):
        checked("job.stopped", stopped)
    stats = meta.get("statistics")
    if not is_mapping(stats) or not stats:
        stats = statistics_from_data(data, started["numNodes"]) if data is not None else {}
    stats = {k: _finite_fields(v) for k, v in stats.items() if is_mapping(v)}
    rules = metric_config if isinstance(metric_config, FootprintRules) else FootprintRules.of(metric_config)
    energy_footprint, total = rules.energy(stats, started["numNodes"], duration)
    archived = {
        "statistics": stats,
        "footprint": rules.footprint(stats),
        "energyFootprint": energy_footprint,
        "energy": total,
        "location": location,
        "missingMetrics": [],
    }
    if not _archived_valid(archived):
        checked("job.archived", archived)
    subject = job_subject(*key)
    start_time, stop_time = float(key.start_time), float(key.start_time + duration)
    started_id, stopped_id, archived_id = _event_ids(key, _JOB_KINDS)
    # Event(id, type, subject, data, version, time, source) directly: new_event's keyword handling
    # was a quarter of building an event.
    events = [
        Event(started_id, "job.started", subject, started, 1, start_time, source),
        Event(stopped_id, "job.stopped", subject, stopped, 1, stop_time, source),
        Event(archived_id, "job.archived", subject, archived, 1, stop_time, source),
    ]
    return JobEvents(key, events, problems)


def job_from_events(events: Iterable[Event]) -> dict[str, Any]:
    """One job's state folded from its events, in meta.json's field names (the input of `meta_from_job`)."""
    job: dict[str, Any] = {}
    for event in events:
        d = event.data
        if event.type == "job.started":
            job.update({k: v for k, v in d.items() if k != "dbId"})
            job["jobState"] = "running"
            if d.get("dbId") is not None:
                job["id"] = d["dbId"]
        elif event.type == "job.stopped":
            job.update(jobState=d["jobState"], duration=d["duration"])
        elif event.type == "job.archived":
            job.update({k: d[k] for k in ("statistics", "footprint", "energyFootprint", "energy")})
            job["monitoringStatus"] = _MONITORING_ARCHIVED
        elif event.type == "job.metadata_updated":
            job["metaData"] = {**(job.get("metaData") or {}), d["key"]: d["value"]}
        elif event.type in ("job.tag_added", "job.tag_removed"):
            tag = {"type": d["type"], "name": d["name"], "scope": d.get("scope") or "global"}
            tags = [t for t in job.get("tags") or () if t != tag]
            job["tags"] = [*tags, tag] if event.type == "job.tag_added" else tags
    return job


def _resource_json(r: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if v not in (None, "", [])}


def meta_from_job(job: Mapping[str, Any], statistics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """meta.json as cc-backend writes it when archiving: `schema.Job`'s key order and omitempty rules."""
    out: dict[str, Any] = {
        "cluster": job["cluster"],
        "subCluster": job.get("subCluster") or "",
    }
    if job.get("partition"):
        out["partition"] = job["partition"]
    state = job.get("jobState") or "completed"
    # The archive schema (cc-lib) spells it out_of_memory; the job table out-of-memory.
    out.update(project=job["project"], user=job["user"], shared=job.get("shared") or "none",
               jobState="out_of_memory" if state == "out-of-memory" else state)
    if job.get("tags"):
        out["tags"] = list(job["tags"])
    out["resources"] = [_resource_json(r) for r in job["resources"]]
    out["energyFootprint"] = job.get("energyFootprint") or None
    out["footprint"] = job.get("footprint") or None
    out["metaData"] = job.get("metaData") or None
    out["concurrentJobs"] = job.get("concurrentJobs") or {"items": None, "count": 0}
    out["energy"] = job.get("energy") or 0
    for name in ("arrayJobId", "walltime", "requestedMemory"):
        if job.get(name):
            out[name] = job[name]
    out["jobId"] = job["jobId"]
    out["duration"] = job.get("duration") or 0
    for name in ("smt", "monitoringStatus", "numAcc", "numHwthreads"):
        if job.get(name):
            out[name] = job[name]
    out["numNodes"] = job["numNodes"]
    out["statistics"] = dict(statistics if statistics is not None else job.get("statistics") or {})
    db_id = job.get("id", job.get("dbId"))
    if db_id:
        out["id"] = db_id
    if job.get("submitTime"):
        out["submitTime"] = job["submitTime"]
    out["startTime"] = job["startTime"]
    return out

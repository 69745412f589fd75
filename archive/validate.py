"""Lenient checks of meta.json and data.json against the archive schemas: report problems, never reject.

Real archives written by cc-backend do not fully validate (nulls in series, units like `Flops/s`,
missing `shared` in old jobs), so these checks list what deviates and leave the decision to import
what can be imported to the caller. The structure is embedded here; nothing is read at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from streams.clusters import validate_cluster

JOB_STATES = (
    "boot_fail", "cancelled", "completed", "deadline", "failed", "node_fail", "out_of_memory", "out-of-memory",
    "pending", "preempted", "running", "suspended", "timeout",
)
SHARED = ("none", "single_user", "multi_user")
SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")
_REQUIRED_META = (
    "jobId", "user", "project", "cluster", "subCluster", "numNodes", "shared", "startTime", "jobState", "duration",
    "resources", "statistics",
)


def _int(v: Any) -> bool:
    return type(v) is int  # bool is not an integer here, as in JSON


def _num(v: Any) -> bool:
    return type(v) is int or type(v) is float


def _str(v: Any) -> bool:
    return type(v) is str


def _positive(v: Any) -> bool:
    return type(v) is int and v > 0


def _numbers(v: Any) -> bool:
    return type(v) is dict and all(_num(x) for x in v.values())


# Checked on every job of an import (hundreds of thousands): plain functions and type() keep it cheap.
_META_FIELDS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("jobId", _int, "an integer"),
    ("user", _str, "a string"),
    ("project", _str, "a string"),
    ("cluster", _str, "a string"),
    ("subCluster", _str, "a string"),
    ("partition", _str, "a string"),
    ("arrayJobId", _int, "an integer"),
    ("numNodes", _positive, "an integer > 0"),
    ("numHwthreads", _positive, "an integer > 0"),
    ("numAcc", _positive, "an integer > 0"),
    ("shared", SHARED.__contains__, f"one of {SHARED}"),
    ("monitoringStatus", _int, "an integer"),
    ("smt", _int, "an integer"),
    ("walltime", _positive, "an integer > 0"),
    ("jobState", JOB_STATES.__contains__, "a job state"),
    ("startTime", _positive, "an integer > 0"),
    ("duration", _positive, "an integer > 0"),
    ("submitTime", _int, "an integer"),
    ("requestedMemory", _positive, "an integer > 0"),
    ("energy", _num, "a number"),
    ("id", _int, "an integer"),
    ("metaData", lambda v: type(v) is dict, "an object"),
    ("footprint", _numbers, "an object of numbers"),
    ("energyFootprint", _numbers, "an object of numbers"),
)


def meta_problems(meta: Mapping[str, Any]) -> list[str]:
    """What in a meta.json deviates from job-meta.schema.json (an empty list when nothing does)."""
    problems = [f"missing '{k}'" for k in _REQUIRED_META if k not in meta]
    for key, ok, expected in _META_FIELDS:
        value = meta.get(key)
        if value is None:
            if key in meta and key in _REQUIRED_META:
                problems.append(f"'{key}' is null")
        elif not ok(value):
            problems.append(f"'{key}' should be {expected}, got {value!r:.60}")
    problems += _resource_problems(meta.get("resources"))
    problems += _tag_problems(meta.get("tags"))
    stats = meta.get("statistics")
    if type(stats) is dict:
        for metric, stat in stats.items():
            if not _good_statistics(stat):
                problems += [f"statistics.{metric}: {p}" for p in statistics_problems(stat)]
    elif stats is not None:
        problems.append("'statistics' should be an object")
    return problems


def _good_statistics(stat: Any) -> bool:
    """The common case, answered fast; `statistics_problems` explains the rest."""
    if type(stat) is not dict:
        return False
    unit = stat.get("unit")
    return (
        _num(stat.get("avg")) and _num(stat.get("min")) and _num(stat.get("max"))
        and type(unit) is dict and type(unit.get("base")) is str
    )


def _resource_problems(resources: Any) -> list[str]:
    if resources is None:
        return []
    if not isinstance(resources, list) or not resources:
        return ["'resources' should be a non-empty array"]
    problems = []
    for n, r in enumerate(resources):
        if type(r) is not dict or not _str(r.get("hostname")):
            problems.append(f"resources[{n}] has no hostname")
        elif r.get("hwthreads") is not None and not all(_int(t) for t in r["hwthreads"] or ()):
            problems.append(f"resources[{n}].hwthreads should be integers")
    return problems


def _tag_problems(tags: Any) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list):
        return ["'tags' should be an array"]
    return [
        f"tags[{n}] needs string 'type' and 'name'"
        for n, t in enumerate(tags)
        if not (type(t) is dict and _str(t.get("type")) and _str(t.get("name")))
    ]


def statistics_problems(stat: Any) -> list[str]:
    """Problems of one `{unit, avg, min, max}` statistics object."""
    if not isinstance(stat, Mapping):
        return ["should be an object"]
    problems = [f"missing '{k}'" for k in ("unit", "avg", "min", "max") if k not in stat]
    problems += [f"'{k}' should be a number" for k in ("avg", "min", "max") if k in stat and not _num(stat[k])]
    unit = stat.get("unit")
    if "unit" in stat and not (isinstance(unit, Mapping) and _str(unit.get("base"))):
        problems.append("'unit' needs a string 'base'")
    return problems


def data_problems(data: Mapping[str, Any]) -> list[str]:
    """What in a data.json deviates from job-data / job-metric-data (nulls in series are fine)."""
    problems = []
    for metric, scopes in data.items():
        if not isinstance(scopes, Mapping):
            problems.append(f"{metric}: should map scopes to metric data")
            continue
        for scope, metric_data in scopes.items():
            where = f"{metric}.{scope}"
            if scope not in SCOPES:
                problems.append(f"{where}: unknown scope")
            problems += [f"{where}: {p}" for p in metric_data_problems(metric_data)]
    return problems


def metric_data_problems(md: Any) -> list[str]:
    """Problems of one `{unit, timestep, series}` object."""
    if not isinstance(md, Mapping):
        return ["should be an object"]
    problems = [f"missing '{k}'" for k in ("unit", "timestep", "series") if k not in md]
    if "timestep" in md and not _int(md["timestep"]):
        problems.append("'timestep' should be an integer")
    series = md.get("series")
    if series is not None and not isinstance(series, list):
        return [*problems, "'series' should be an array"]
    for n, s in enumerate(series or ()):
        if not isinstance(s, Mapping) or not _str(s.get("hostname")):
            problems.append(f"series[{n}] has no hostname")
        elif not isinstance(s.get("data"), list) or not all(x is None or _num(x) for x in s["data"]):
            problems.append(f"series[{n}].data should be numbers (or null)")
    return problems


def cluster_problems(cluster: Mapping[str, Any]) -> list[str]:
    """Problems of a cluster.json (the registry's own checks)."""
    return validate_cluster(cluster)

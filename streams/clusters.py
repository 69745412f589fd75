"""Cluster configurations from the job archive (`<root>/<cluster>/cluster.json`), as cc-backend reads them."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.nodelist import NodeList

CLUSTER_FILE = "cluster.json"

# Override keys cc-backend copies from a metric's `subClusters` entry. The thresholds (and
# `restrict`) keep the cluster value when the entry omits them; cc-backend would zero them, which
# no real config relies on. The flags are replaced wholesale, as in cc-backend: an entry without
# `footprint` takes the metric out of that subcluster's footprint (fritz flops_any on spr2tb).
_KEPT_UNLESS_GIVEN = ("peak", "normal", "caution", "alert", "restrict")
_REPLACED = ("footprint", "energy", "lowerIsBetter")

_SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")
_AGGREGATIONS = ("sum", "avg")
_FOOTPRINTS = ("avg", "max", "min")
_ENERGIES = ("power", "energy")
_ACCELERATOR_TYPES = ("Nvidia GPU", "AMD GPU", "Intel GPU")
_HOSTS_REMEMBERED = 100_000


class ClusterConfigError(ValueError):
    """A cluster.json the registry cannot use; the message names the file (or cluster) and the problem."""


@dataclass(frozen=True, slots=True)
class _Cluster:
    """One compiled cluster: parsed nodelists and per-subcluster metric configs, computed once."""

    raw: dict[str, Any]
    nodelists: tuple[tuple[str, NodeList], ...]
    fallback: str | None
    metrics: dict[str, tuple[dict[str, Any], ...]]
    problems: tuple[str, ...]
    #: True when a `*` subcluster takes any host, or no subcluster lists nodes: no host is then "unknown".
    any_host: bool = False
    #: Hosts already resolved by `subcluster_of` (every start asks for its first host; a cluster has at
    #: most some ten thousand, and hostile requests cannot grow it past `_HOSTS_REMEMBERED`).
    host_subclusters: dict[str, str | None] = field(default_factory=dict)


class ClusterRegistry:
    """Read-mostly registry: compiled at load, copy-on-write on `add`, so readers never lock."""

    def __init__(self) -> None:
        self._clusters: dict[str, _Cluster] = {}
        self._write_lock = threading.Lock()

    @classmethod
    def load(cls, root: Path) -> ClusterRegistry:
        """Load every `<root>/<dir>/cluster.json`; a missing root is an empty archive, not an error."""
        registry = cls()
        if not root.exists():
            return registry
        if not root.is_dir():
            raise ClusterConfigError(f"{root}: job archive root is not a directory")
        for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            path = directory / CLUSTER_FILE
            if not path.is_file():
                continue  # job archives hold other directories too (lost+found, temp dirs)
            raw = _read_json(path)
            cluster = _compile(raw, str(path))
            if raw["name"] != directory.name:
                raise ClusterConfigError(
                    f"{path}: cluster name {raw['name']!r} does not match its directory {directory.name!r}"
                )
            registry._insert(cluster, str(path))
        return registry

    @classmethod
    def from_dicts(cls, clusters: Iterable[Mapping[str, Any]]) -> ClusterRegistry:
        registry = cls()
        for cluster in clusters:
            registry.add(cluster)
        return registry

    def add(self, cluster: Mapping[str, Any]) -> None:
        """Add one cluster.json dict (deep-copied, so later changes by the caller don't leak in)."""
        name = cluster.get("name")
        origin = f"cluster {name!r}" if _nonempty_str(name) else "cluster"
        self._insert(_compile(copy.deepcopy(dict(cluster)), origin), origin)

    def _insert(self, cluster: _Cluster, origin: str) -> None:
        name = cluster.raw["name"]
        with self._write_lock:
            if name in self._clusters:
                raise ClusterConfigError(f"{origin}: duplicate cluster {name!r}")
            # Swap in a new dict rather than mutating: a concurrent reader sees old or new, whole.
            self._clusters = {**self._clusters, name: cluster}

    def names(self) -> list[str]:
        return list(self._clusters)

    def has(self, name: str) -> bool:
        return name in self._clusters

    def __contains__(self, name: object) -> bool:
        return name in self._clusters

    def __len__(self) -> int:
        return len(self._clusters)

    def get(self, name: str) -> dict[str, Any] | None:
        """The cluster.json dict as loaded; a copy, because API handlers may decorate what they serve."""
        cluster = self._clusters.get(name)
        return copy.deepcopy(cluster.raw) if cluster else None

    def clusters(self) -> list[dict[str, Any]]:
        """All cluster dicts in load order, the body of cc-backend's `GET /api/clusters/`."""
        return [copy.deepcopy(c.raw) for c in self._clusters.values()]

    def subcluster(self, cluster: str, name: str) -> dict[str, Any] | None:
        entry = self._clusters.get(cluster)
        if entry is None:
            return None
        found = next((sc for sc in entry.raw["subClusters"] if sc["name"] == name), None)
        return copy.deepcopy(found) if found is not None else None

    def subcluster_of(self, cluster: str, hostname: str) -> str | None:
        """First subcluster (file order) listing the host, else the `*` subcluster, else None.

        cc-backend iterates a Go map here, so overlapping lists (fritz spr1tb/spr2tb) get a random
        answer upstream; file order makes ours deterministic.
        """
        entry = self._clusters.get(cluster)
        if entry is None:
            return None
        known = entry.host_subclusters
        if hostname in known:
            return known[hostname]
        found = next((name for name, nodelist in entry.nodelists if nodelist.contains(hostname)), entry.fallback)
        if len(known) >= _HOSTS_REMEMBERED:
            known.clear()
        known[hostname] = found
        return found

    def outside_nodelists(self, cluster: str, hostname: str) -> bool:
        """Whether a known cluster lists nodes and none of its subclusters lists this host (accepted all
        the same, as cc-backend does, but counted: see streams.unknownhosts)."""
        entry = self._clusters.get(cluster)
        if entry is None or entry.any_host:
            return False
        return not any(nodelist.contains(hostname) for _name, nodelist in entry.nodelists)

    def metric_config(self, cluster: str, subcluster: str | None = None) -> list[dict[str, Any]]:
        """Cluster metricConfig, or with `subcluster` the effective one: overrides applied, removals gone.

        Raises KeyError for an unknown cluster or subcluster: an empty list would read as "no metrics".
        """
        entry = self._clusters.get(cluster)
        if entry is None:
            raise KeyError(f"unknown cluster {cluster!r}")
        if subcluster is None:
            return copy.deepcopy(entry.raw["metricConfig"])
        if subcluster not in entry.metrics:
            raise KeyError(f"unknown subcluster {subcluster!r} of cluster {cluster!r}")
        return copy.deepcopy(list(entry.metrics[subcluster]))

    def problems(self, cluster: str) -> list[str]:
        """What `validate` found when the cluster was added: reported, never a reason to reject."""
        entry = self._clusters.get(cluster)
        return list(entry.problems) if entry else []

    @staticmethod
    def validate(cluster: Mapping[str, Any]) -> list[str]:
        return validate_cluster(cluster)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ClusterConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ClusterConfigError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise ClusterConfigError(f"{path}: expected a JSON object, got {_kind(raw)}")
    return raw


def _compile(raw: dict[str, Any], origin: str) -> _Cluster:
    problems = _structure_problems(raw)
    if problems:
        raise ClusterConfigError(f"{origin}: " + "; ".join(problems))
    nodelists: list[tuple[str, NodeList]] = []
    fallback: str | None = None
    wildcard = False
    for index, sc in enumerate(raw["subClusters"]):
        nodes = NodeList.parse(sc["nodes"])  # already checked by _structure_problems
        if nodes.is_wildcard:
            wildcard = True
            fallback = fallback or sc["name"]
        elif sc["nodes"]:
            nodelists.append((sc["name"], nodes))
        elif index == 0:
            fallback = fallback or sc["name"]  # cc-backend: an empty first list takes unlisted hosts
    metrics = {sc["name"]: _effective_metrics(raw["metricConfig"], sc["name"]) for sc in raw["subClusters"]}
    return _Cluster(raw, tuple(nodelists), fallback, metrics, tuple(validate_cluster(raw)),
                    any_host=wildcard or not nodelists)


def _effective_metrics(metric_config: list[dict[str, Any]], subcluster: str) -> tuple[dict[str, Any], ...]:
    """cc-backend's per-subcluster metricConfig (initClusterConfig), without its `subClusters` key."""
    out = []
    for metric in metric_config:
        override = next((o for o in metric.get("subClusters") or () if o["name"] == subcluster), None)
        effective = {k: v for k, v in metric.items() if k != "subClusters"}
        if override is not None:
            if override.get("remove") is True:
                continue
            for key in _KEPT_UNLESS_GIVEN:
                if key in override:
                    effective[key] = override[key]
            for key in _REPLACED:
                if override.get(key) not in (None, "", False):
                    effective[key] = override[key]
                else:
                    effective.pop(key, None)
        out.append(effective)
    return tuple(out)


def _structure_problems(raw: Mapping[str, Any]) -> list[str]:
    """What the registry itself needs; anything missing here would break a lookup later."""
    problems: list[str] = []
    if not _nonempty_str(raw.get("name")):
        problems.append(_missing_or_bad(raw, "name", "a non-empty string"))
    subclusters = raw.get("subClusters")
    if not isinstance(subclusters, list) or not subclusters:
        problems.append(_missing_or_bad(raw, "subClusters", "a non-empty list"))
    else:
        for i, sc in enumerate(subclusters):
            where = f"subClusters[{i}]"
            if not isinstance(sc, dict):
                problems.append(f"{where}: expected an object, got {_kind(sc)}")
                continue
            if not _nonempty_str(sc.get("name")):
                problems.append(f"{where}: " + _missing_or_bad(sc, "name", "a non-empty string"))
            if not isinstance(sc.get("nodes"), str):
                problems.append(f"{where}: " + _missing_or_bad(sc, "nodes", "a string"))
                continue
            try:
                NodeList.parse(sc["nodes"])
            except ValueError as exc:
                problems.append(f"{where} ({sc.get('name')!r}): {exc}")
    metrics = raw.get("metricConfig")
    if not isinstance(metrics, list):
        problems.append(_missing_or_bad(raw, "metricConfig", "a list"))
        return problems
    for i, metric in enumerate(metrics):
        where = f"metricConfig[{i}]"
        if not isinstance(metric, dict):
            problems.append(f"{where}: expected an object, got {_kind(metric)}")
            continue
        if not _nonempty_str(metric.get("name")):
            problems.append(f"{where}: " + _missing_or_bad(metric, "name", "a non-empty string"))
        overrides = metric.get("subClusters")
        if overrides is None:
            continue
        if not isinstance(overrides, list):
            problems.append(f"{where}.subClusters: expected a list, got {_kind(overrides)}")
            continue
        for j, override in enumerate(overrides):
            if not isinstance(override, dict) or not _nonempty_str(override.get("name")):
                problems.append(f"{where}.subClusters[{j}]: expected an object with a string 'name'")
    return problems


def validate_cluster(cluster: Mapping[str, Any]) -> list[str]:
    """Lenient check against cluster.schema.json's rules, embedded (no schema files at runtime).

    Returns problems to report. Unit names are not checked: real configs use `Flops/s`.
    """
    problems = _structure_problems(cluster)
    if problems:
        return problems
    subcluster_names: list[str] = [sc["name"] for sc in cluster["subClusters"]]
    for name in sorted({n for n in subcluster_names if subcluster_names.count(n) > 1}):
        problems.append(f"subClusters: duplicate name {name!r}")
    for sc in cluster["subClusters"]:
        problems += _subcluster_problems(f"subClusters ({sc['name']!r})", sc)
    seen: set[str] = set()
    for metric in cluster["metricConfig"]:
        where = f"metricConfig ({metric['name']!r})"
        if metric["name"] in seen:
            problems.append(f"{where}: duplicate metric")
        seen.add(metric["name"])
        problems += _metric_problems(where, metric, subcluster_names)
    return problems


def _accelerators(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(a, dict)
        and all(isinstance(a.get(k), str) for k in ("id", "type", "model"))
        and a["type"] in _ACCELERATOR_TYPES
        for a in value
    )


def _missing_or_bad(obj: Mapping[str, Any], key: str, expected: str) -> str:
    if key not in obj:
        return f"missing {key!r}"
    return f"{key!r} should be {expected}, got {_kind(obj[key])}"


def _kind(value: Any) -> str:
    """Short description of a wrong value for messages: containers by kind, scalars as written."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    return f"{value!r:.60}"


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(_integer(x) for x in value)


def _int_lists(value: Any) -> bool:
    return isinstance(value, list) and all(_int_list(x) for x in value)


def _positive_int(value: Any) -> bool:
    return _integer(value) and value >= 1


def _unit(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("base"), str)


def _rate(value: Any) -> bool:
    return isinstance(value, dict) and _number(value.get("value"))


_Check = tuple[str, Callable[[Any], bool], str, bool]  # key, predicate, expectation, required


def _one_of(options: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda value: value in options


def _is(kind: type) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, kind)


_THRESHOLDS: list[_Check] = [(k, _number, "a number", True) for k in ("peak", "normal", "caution", "alert")]
_FLAGS: list[_Check] = [
    ("footprint", _one_of(_FOOTPRINTS), f"one of {_FOOTPRINTS}", False),
    ("energy", _one_of(_ENERGIES), f"one of {_ENERGIES}", False),
    ("lowerIsBetter", _is(bool), "a boolean", False),
    ("restrict", _is(bool), "a boolean", False),
]
_METRIC: list[_Check] = [
    ("unit", _unit, "an object with a string 'base'", True),
    ("scope", _one_of(_SCOPES), f"one of {_SCOPES}", True),
    ("timestep", _positive_int, "an integer >= 1", True),
    ("aggregation", _one_of(_AGGREGATIONS), f"one of {_AGGREGATIONS}", True),
    *_THRESHOLDS,
    *_FLAGS,
]
_OVERRIDE: list[_Check] = [
    *[(key, check, expected, False) for key, check, expected, _ in _THRESHOLDS],
    *_FLAGS,
    ("remove", _is(bool), "a boolean", False),
]
_SUBCLUSTER: list[_Check] = [
    ("processorType", _is(str), "a string", True),
    *[(k, _positive_int, "an integer >= 1", True) for k in ("socketsPerNode", "coresPerSocket", "threadsPerCore")],
    *[
        (k, _rate, "an object with a numeric 'value'", True)
        for k in ("flopRateScalar", "flopRateSimd", "memoryBandwidth")
    ],
    ("topology", _is(dict), "an object", True),
]
_TOPOLOGY: list[_Check] = [
    ("node", _int_list, "a list of integers", True),
    *[(k, _int_lists, "a list of integer lists", True) for k in ("socket", "memoryDomain")],
    *[(k, _int_lists, "a list of integer lists", False) for k in ("die", "core")],
    ("accelerators", _accelerators, "a list of {id, type, model} objects", False),
]


def _run(where: str, obj: Mapping[str, Any], checks: list[_Check]) -> list[str]:
    problems = []
    for key, check, expected, required in checks:
        if key not in obj:
            if required:
                problems.append(f"{where}: missing {key!r}")
        elif not check(obj[key]):
            problems.append(f"{where}: {key!r} should be {expected}, got {_kind(obj[key])}")
    return problems


def _metric_problems(where: str, metric: Mapping[str, Any], subclusters: list[str]) -> list[str]:
    problems = _run(where, metric, _METRIC)
    for override in metric.get("subClusters") or ():
        at = f"{where}.subClusters ({override['name']!r})"
        if override["name"] not in subclusters:
            problems.append(f"{at}: no such subcluster")
        problems += _run(at, override, _OVERRIDE)
    return problems


def _subcluster_problems(where: str, sc: Mapping[str, Any]) -> list[str]:
    problems = _run(where, sc, _SUBCLUSTER)
    if isinstance(sc.get("topology"), dict):
        problems += _run(f"{where}.topology", sc["topology"], _TOPOLOGY)
    return problems


__all__ = ["CLUSTER_FILE", "ClusterConfigError", "ClusterRegistry", "validate_cluster"]

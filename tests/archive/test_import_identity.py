"""The events an import appends, pinned byte for byte: speeding up the import must not change them.

`golden/import-events.json` holds what the importer produced for the reference specs (the archive,
the example job, the importer inputs) and for a few hundred deviating variants of them: the error
of each unusable meta.json, the problems reported for the others, and a digest of their events
(id, type, subject, time, source, payload bytes). It was written by the importer before its fast
paths existed; regenerate it (`python -m tests.archive.test_import_identity --write`) only for an
intended change.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from archive.backends import FileArchive
from archive.imports.walk import import_archive
from archive.jobjson import events_from_meta
from streams.clusters import ClusterRegistry
from streams.events.codec import event_to_dict
from streams.log import SQLiteEventLog
from tests.archive.conftest import EXAMPLE_JOB, REFERENCE_ARCHIVE, SPECS

GOLDEN = Path(__file__).parent / "golden" / "import-events.json"
REFERENCE = FileArchive(REFERENCE_ARCHIVE)
Meta = dict[str, Any]

#: Changes to a well-formed meta.json: every field the importer reads, with values real archives
#: have (nulls, floats for integers, legacy names) and values no archive should have.
CHANGES: list[tuple[str, Any]] = [
    *[("jobState", v) for v in ("out_of_memory", "stopped", "running", "exploded", None, 5, "out-of-memory")],
    *[("shared", v) for v in ("multi_user", "single_user", "weird", 5, None)],
    *[("exclusive", v) for v in (0, 1, 2, 7, None, "x", True, 1.0)],
    *[("numNodes", v) for v in ("two", 0, -1, 2.0, 2.5, True, None)],
    *[(k, v) for k in ("user", "project") for v in (None, 5, "", "ü")],
    *[("cluster", v) for v in ("../etc", "", None, 5, "a/b", ".x", "a\x01", "x" * 300)],
    *[(k, v) for k in ("subCluster", "partition") for v in (None, 5, "", ["a"])],
    *[(k, v) for k in ("startTime", "jobId") for v in (None, -1, 1.5, 3.0, "7", True, 0)],
    *[("duration", v) for v in (-5, None, 0, 1.5, 60.0, "x", False)],
    *[(k, v) for k in ("walltime", "numHwthreads", "numAcc", "smt", "requestedMemory", "submitTime", "arrayJobId")
      for v in (None, 0, -1, 2.0, 2.5, "3", True)],
    *[("monitoringStatus", v) for v in (0, 2, "x", None)],
    *[("resources", v) for v in (
        [], None, "x", [{"hostname": 5}], ["x"], [{}], [{"hostname": "h", "hwthreads": [1, "2"]}],
        [{"hostname": "h", "hwthreads": [1.0, 2]}], [{"hostname": "h", "hwthreads": [True]}],
        [{"hostname": "h", "hwthreads": []}], [{"hostname": "h", "hwthreads": None}],
        [{"hostname": "h", "hwthreads": "ab"}], [{"hostname": "h", "hwthreads": {"1": 2}}],
        [{"hostname": "h", "accelerators": [1, "b"]}], [{"hostname": "h", "accelerators": []}],
        [{"hostname": "h", "configuration": 5}], [{"hostname": "h", "configuration": ""}],
        [{"hostname": "h", "hwthreads": [0, 1], "accelerators": ["a"], "configuration": "c", "extra": 1}],
        [{"hostname": "a"}, {"hostname": "b"}, {"hostname": "a/b"}], [{"hostname": ""}],
    )],
    *[("tags", v) for v in (
        [{"type": "app", "name": "vasp"}], [{"type": "app"}], ["x"], [{"type": "a", "name": "b", "scope": None}],
        [{"type": "a", "name": "b", "scope": "user", "id": 4}], [{"type": 5, "name": 6}], None, [], "ab", {},
        [{"type": "", "name": "b"}],
    )],
    *[("metaData", v) for v in ({"a": 1, "b": None, "c": "x"}, None, {}, {"x": [1], "y": 1.5, "z": True}, [])],
    *[("statistics", v) for v in (
        {}, None, "x", [], {"m": 5}, {"m": {"unit": {"base": "Flops/s"}, "avg": None, "min": 0, "max": 1}},
        {"m": {"avg": 1, "min": 1, "max": 1}}, {"m": {"unit": {}, "avg": 1, "min": 1, "max": 1}},
        {"cpu_load": {"unit": {"base": ""}, "avg": float("nan"), "min": 0, "max": 1}},
        {"cpu_load": {"unit": {"base": ""}, "avg": True, "min": 0, "max": 1}},
        {"cpu_load": {"unit": {"base": ""}, "avg": 3, "min": 0, "max": 1}, "mem_used": {"max": "x"}},
        {"cpu_power": {"unit": {"base": "W"}, "avg": 250.5, "min": 0, "max": 400}},
    )],
    *[(k, v) for k in ("footprint", "energyFootprint") for v in ({"a": "x"}, {"a": 1}, [], None)],
    *[(k, v) for k in ("energy", "id") for v in ("x", 1.5, 3, None)],
    ("concurrentJobs", {"items": None, "count": 0}),
]
#: Fields to drop from a well-formed meta.json (None: keep all; the base case).
DROPS: list[str | None] = [
    None, "jobState", "shared", "numNodes", "user", "project", "cluster", "subCluster", "partition", "startTime",
    "jobId", "duration", "resources", "tags", "metaData", "statistics", "numHwthreads", "walltime", "smt",
]


def base_metas() -> list[tuple[str, Meta]]:
    """Every meta.json of the specs, named."""
    metas = [("example-fritz", orjson.loads((EXAMPLE_JOB / "meta.json").read_bytes()))]
    metas += [(f"archive-{e.location}", e.meta) for e in REFERENCE.iter_jobs() if e.meta is not None]
    metas += [(name, orjson.loads((SPECS / "importer" / f"meta-{name}.input").read_bytes()))
              for name in ("fritzMinimal", "fritzError")]
    return metas


def variants() -> Iterator[tuple[str, Meta]]:
    """The base metas, then each change and drop applied to the example job and one emmy job."""
    bases = base_metas()
    yield from bases
    for base_name, base in bases[:2]:
        for key, value in CHANGES:
            yield f"{base_name} {key}={value!r:.40}", {**copy.deepcopy(base), key: value}
        for drop in DROPS[1:]:
            yield f"{base_name} -{drop}", {k: copy.deepcopy(v) for k, v in base.items() if k != drop}
        both = copy.deepcopy(base)
        both.update(jobState="stopped", tags=[{"type": "a", "name": "b"}, {"type": "a"}], numNodes=2.0)
        yield f"{base_name} several", both


def _registry() -> ClusterRegistry:
    clusters = [REFERENCE.load_cluster(c) for c in REFERENCE.clusters()]
    return ClusterRegistry.from_dicts(clusters)


def convert(name: str, meta: Meta, registry: ClusterRegistry) -> dict[str, Any]:
    """What `events_from_meta` makes of one meta.json, as JSON: events and problems, or the error."""
    try:
        config = registry.metric_config(str(meta.get("cluster")), str(meta.get("subCluster")))
    except KeyError:
        config = None
    data = None
    if not meta.get("statistics"):
        data = REFERENCE.load_data("emmy", 1404397, 1609300556)
    try:
        job = events_from_meta(meta, metric_config=config, data=data, location=f"loc/{name}")
    except Exception as exc:  # the golden pins crashes too: any change of behaviour shows
        return {"name": name, "error": f"{type(exc).__name__}: {exc}"}
    return {"name": name, "key": list(job.key), "problems": job.problems,
            "events": digest([event_to_dict(e) for e in job.events])}


def _positive(value: Any) -> bool:
    return type(value) is int and value > 0


def _archive_with_variants(root: Path) -> None:
    """The reference archive plus every variant stored at its own place, and a few broken entries."""
    shutil.copytree(REFERENCE_ARCHIVE, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    for n, (_, meta) in enumerate(variants()):
        assert n < 1000
        job_id, start = 7000 + n, 1_000_000 + n
        # Each variant at its own key (and place), unless the variant is about the key.
        meta.update((k, v) for k, v in (("jobId", job_id), ("startTime", start)) if _positive(meta.get(k)))
        directory = root / "emmy" / "7" / f"{n:03d}" / str(start)
        directory.mkdir(parents=True)
        (directory / "meta.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_NON_STR_KEYS))
    (root / "emmy" / "8" / "001" / "5").mkdir(parents=True)  # no meta.json
    (root / "emmy" / "8" / "002" / "5").mkdir(parents=True)
    (root / "emmy" / "8" / "002" / "5" / "meta.json").write_bytes(b'{"jobId": 1, "cluster": "em')
    (root / "emmy" / "8" / "003" / "5").mkdir(parents=True)
    (root / "emmy" / "8" / "003" / "5" / "meta.json").write_bytes(b"[1]")
    (root / "emmy" / "8" / "04").mkdir(parents=True)  # not the layout
    (root / "emmy" / "x").mkdir()


def imported(root: Path, tmp: Path, batch_size: int) -> dict[str, Any]:
    """The whole log after `import_archive` (stored payload bytes as text) and the report's messages."""
    log = SQLiteEventLog(tmp / f"events-{batch_size}.db")
    try:
        report = import_archive(FileArchive(root), log, batch_size=batch_size)
        rows = [
            digest([s.position, s.id, s.type, s.version, s.subject, s.time, s.source, s.causation_id,
                    bytes(s.data).decode()])
            for s in log.read_stored(limit=1_000_000)
        ]
    finally:
        log.close()
    counts = [report.seen, report.imported, report.unchanged, report.failed, report.with_problems,
              report.events_appended]
    # Messages about a missing data.json name the archive's absolute path; the golden cannot.
    errors, problems = ([m.replace(str(root), "<root>") for m in ms] for ms in (report.errors, report.problems))
    return {"counts": counts, "errors": errors, "problems": problems, "rows": rows}


def golden_now(tmp: Path) -> dict[str, Any]:
    registry = _registry()
    root = tmp / "archive"
    _archive_with_variants(root)
    return {"convert": [convert(name, meta, registry) for name, meta in variants()],
            "import": imported(root, tmp, 100)}


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def digest(value: Any) -> str:
    """A short digest of JSON; orjson keeps 1 and 1.0 apart and dict order as it is (both are stored)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)).hexdigest()[:20]


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(GOLDEN.read_bytes())
    return value


def _compare(actual: list[Any], expected: list[Any], name: Callable[[int], str]) -> None:
    assert len(actual) == len(expected)
    for n, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert _dump(a) == _dump(e), name(n)


def test_each_meta_json_gives_the_pinned_events() -> None:
    registry = _registry()
    expected = orjson.loads(GOLDEN.read_bytes())["convert"]
    actual = [convert(name, meta, registry) for name, meta in variants()]
    _compare(actual, expected, lambda n: expected[n]["name"])


@pytest.mark.parametrize("batch_size", [1, 100, 5000])
def test_importing_the_archive_appends_the_pinned_events(
    tmp_path: Path, golden: dict[str, Any], batch_size: int
) -> None:
    root = tmp_path / "archive"
    _archive_with_variants(root)
    actual = imported(root, tmp_path, batch_size)
    expected = golden["import"]
    assert actual["counts"] == expected["counts"]
    assert actual["errors"] == expected["errors"]
    assert actual["problems"] == expected["problems"]
    _compare(actual["rows"], expected["rows"], lambda n: f"log row {n + 1}")


def test_the_variants_cover_errors_problems_and_clean_jobs(golden: dict[str, Any]) -> None:
    kinds = [("error" in c, bool(c.get("problems"))) for c in golden["convert"]]
    assert kinds.count((True, False)) > 50 and kinds.count((False, True)) > 50 and kinds.count((False, False)) > 20


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python -m tests.archive.test_import_identity --write")
    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(_dump(golden_now(Path(tmp))) + b"\n")
    print(f"wrote {GOLDEN}")

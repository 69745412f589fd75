"""The import's shortcuts agree with the long way: directory reading, payload checks, keys and event ids."""

from __future__ import annotations

import copy
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from archive import jobjson
from archive.backends import FileArchive
from archive.imports.filewalk import iter_file_entries, prefetched
from archive.jobjson import MetaError, events_from_meta, import_event_id, import_event_ids, job_key, started_payload
from archive.paths import InvalidName, JobKey
from streams.events import derived_event_id
from streams.events.payloads import payload_model
from tests.archive.conftest import small_job
from tests.archive.test_import_identity import variants


def _messy_archive(root: Path) -> FileArchive:
    """Good jobs next to every oddity a walk meets: wrong names, stray files, hidden and empty directories."""
    archive = FileArchive(root)
    for n in range(3):
        archive.store_job(small_job(job_id=1000 + n, start=100 + n, cluster="emmy"), {})
    archive.store_job(small_job(job_id=5, start=7, cluster="emmy"), {})
    archive.store_job(small_job(job_id=5, start=8, cluster="emmy"), {})  # a reused job id
    base = root / "emmy"
    (base / "1" / "001" / "101" / "meta.json").write_bytes(b'{"jobId": 1, "cluster": "em')
    (base / "1" / "002" / "102" / "meta.json").write_bytes(b"[1]")
    (base / "1" / "000" / "100" / "meta.json").unlink()
    for directory in ("x/001/5", "1/04/5", "1/abc/5", "1/003/abc", "1/003/.hidden", ".tmp/001/5", "2/003"):
        (base / directory).mkdir(parents=True)
    for stray in ("1/README", "1/003/notes.txt", "1/003/123", "0/005/9", "7"):
        (base / stray).write_text("not a job")
    (root / "bad\x01name" / "0" / "001" / "1").mkdir(parents=True)
    (root / "bad\x01name" / "0" / "001" / "1" / "meta.json").write_bytes(orjson.dumps(small_job()))
    os.symlink(base / "1" / "001", base / "1" / "009")
    (root / "version.txt").write_text("3\n")
    return archive


@pytest.mark.parametrize("readers", [1, 4])
def test_reading_by_directory_yields_what_iter_jobs_yields(tmp_path: Path, readers: int) -> None:
    archive = _messy_archive(tmp_path / "archive")
    archive.readers = readers
    expected = list(archive.iter_jobs())
    assert len(expected) > 10 and any(e.error for e in expected)
    assert list(iter_file_entries(archive)) == expected


def test_prefetching_keeps_order_and_bounds_the_work_ahead() -> None:
    running = most = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.001)
        with lock:
            running -= 1
        return n * n

    with ThreadPoolExecutor(4) as pool:
        out = []
        for value in prefetched(pool, work, range(40), ahead=2):
            time.sleep(0.002)  # a slow consumer: the pool must not run off with the whole input
            out.append(value)
    assert out == [n * n for n in range(40)]
    assert most <= 3


def _payloads(meta: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The three payloads events_from_meta checks, built as it builds them (MetaError as it raises it)."""
    state = meta.get("jobState")
    state = jobjson._STATE_ALIASES.get(state, state) if isinstance(state, str) else state
    duration = jobjson._int(meta, "duration")
    started = started_payload(meta)
    stopped = {"jobState": state, "stopTime": 5 + duration, "duration": duration, "parkedStopId": None}
    stats = meta.get("statistics")
    stats = {k: v for k, v in stats.items() if isinstance(v, dict)} if isinstance(stats, dict) else {}
    archived = {"statistics": stats, "footprint": {}, "energyFootprint": {}, "energy": 0.0, "location": "x",
                "missingMetrics": []}
    return [("job.started", started), ("job.stopped", stopped), ("job.archived", archived)]


def _accepted(event_type: str, payload: dict[str, Any]) -> bool:
    try:
        payload_model(event_type, 1).model_validate(payload)
    except ValidationError:
        return False
    return True


FAST_CHECKS = {"job.started": jobjson._started_valid, "job.stopped": jobjson._stopped_valid,
               "job.archived": jobjson._archived_valid}


def test_a_payload_the_shortcut_passes_is_one_the_model_accepts() -> None:
    passed = 0
    for _, meta in variants():
        try:
            payloads = _payloads(meta)
        except MetaError:
            continue  # refused before any model would see it
        for event_type, payload in payloads:
            if FAST_CHECKS[event_type](payload):
                passed += 1
                assert _accepted(event_type, payload), (event_type, payload)
    assert passed > 500


@pytest.mark.parametrize(("field", "value"), [
    ("user", 5), ("project", None), ("subCluster", ["a"]), ("partition", 7), ("shared", "weird"), ("dbId", "x"),
    ("resources", [{"hostname": "h", "hwthreads": ["1"], "accelerators": None, "configuration": None}]),
])
def test_what_the_started_shortcut_doubts_goes_to_the_model(field: str, value: Any) -> None:
    payload = {**started_payload(small_job()), field: value}
    assert not jobjson._started_valid(payload)


def test_the_shortcuts_pass_the_reference_jobs() -> None:
    job = events_from_meta(small_job(), location="x")
    for event in job.events:
        assert FAST_CHECKS[event.type](event.data)


def test_job_key_is_from_meta_with_the_name_check_remembered() -> None:
    for _, meta in variants():
        for _ in range(2):  # the second time the cluster name is known
            try:
                expected: JobKey | str = JobKey.from_meta(meta)
            except InvalidName as exc:
                expected = str(exc)
            try:
                actual: JobKey | str = job_key(meta)
            except InvalidName as exc:
                actual = str(exc)
            assert actual == expected


@pytest.mark.parametrize("cluster", ["emmy", "grüne-wiese", "a b"])
def test_event_ids_are_derived_event_ids(cluster: str) -> None:
    key = JobKey(cluster, 1234567, 1700000000)
    kinds = ["started", "stopped", "archived"]
    assert import_event_ids(key, *kinds) == [derived_event_id("import", *key, kind) for kind in kinds]
    assert import_event_id(key, "tag", "app", "vasp", "global") == derived_event_id(
        "import", *key, "tag", "app", "vasp", "global")
    job = events_from_meta(small_job(job_id=1234567, start=1700000000, cluster=cluster))
    assert [e.id for e in job.events] == [derived_event_id("import", *key, kind) for kind in kinds]


def test_unchanged_meta_after_conversion() -> None:
    meta = small_job()
    before = copy.deepcopy(meta)
    events_from_meta(meta)
    assert meta == before

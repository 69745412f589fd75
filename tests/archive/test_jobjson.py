"""meta.json <-> events: the events of archived jobs, derived facts, and meta.json as cc-backend writes it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from archive.backends import FileArchive
from archive.imports.footprint import LEGACY_FOOTPRINT, statistics_from_data
from archive.jobjson import MetaError, events_from_meta, import_event_id, job_from_events, meta_from_job
from archive.paths import JobKey
from streams.clusters import ClusterRegistry
from streams.events import derived_event_id, validate_payload
from tests.archive.conftest import EXAMPLE_JOB, REFERENCE_ARCHIVE, SPECS

REFERENCE = FileArchive(REFERENCE_ARCHIVE)
CLUSTERS = ClusterRegistry.from_dicts([REFERENCE.load_cluster(c) for c in REFERENCE.clusters()])


def example_meta() -> dict[str, Any]:
    meta: dict[str, Any] = orjson.loads((EXAMPLE_JOB / "meta.json").read_bytes())
    return meta


def all_metas() -> list[dict[str, Any]]:
    metas = [example_meta(), *(e.meta for e in REFERENCE.iter_jobs() if e.meta)]
    for name in ("meta-fritzMinimal.input", "meta-fritzError.input"):
        metas.append(orjson.loads((SPECS / "importer" / name).read_bytes()))
    return metas


def test_an_emmy_job_becomes_started_stopped_archived() -> None:
    meta = REFERENCE.load_meta("emmy", 1403244, 1608923076)
    job = events_from_meta(meta, metric_config=CLUSTERS.metric_config("emmy", "haswell"), location="loc")
    started, stopped, archived = job.events
    assert [e.type for e in job.events] == ["job.started", "job.stopped", "job.archived"]
    assert {e.subject for e in job.events} == {"job/emmy/1403244/1608923076"}
    assert started.id == derived_event_id("import", "emmy", 1403244, 1608923076, "started")
    assert archived.id == derived_event_id("import", "emmy", 1403244, 1608923076, "archived")
    assert (started.data["user"], started.data["numNodes"], started.data["monitoringStatus"]) == ("emmyUser6", 32, 3)
    assert len(started.data["resources"]) == 32
    assert stopped.data == {"jobState": "completed", "stopTime": 1608923076 + 86486, "duration": 86486,
                            "parkedStopId": None}
    # emmy's cluster.json names no footprint metrics: the legacy four, from the statistics.
    assert archived.data["footprint"] == {
        "cpu_load_avg": 18.4, "flops_any_avg": 225.59, "mem_bw_avg": 63.57, "mem_used_max": 37.5
    }
    assert archived.data["statistics"] == meta["statistics"]
    assert archived.data["location"] == "loc"
    assert job.problems == []


def test_fritz_footprint_and_energy_follow_the_cluster_config() -> None:
    meta = example_meta()
    job = events_from_meta(meta, metric_config=CLUSTERS.metric_config("fritz", "main"))
    archived = job.events[2].data
    stats = meta["statistics"]
    assert archived["footprint"] == {
        "cpu_load_avg": stats["cpu_load"]["avg"], "flops_any_avg": stats["flops_any"]["avg"],
        "mem_bw_avg": stats["mem_bw"]["avg"], "mem_used_max": stats["mem_used"]["max"],
    }
    cpu_kwh = round(stats["cpu_power"]["avg"] * 1 * 177 / 3600 / 1000, 2)
    assert archived["energyFootprint"] == {"cpu_power": cpu_kwh, "mem_power": 0.0}  # no mem_power statistics
    assert archived["energy"] == cpu_kwh


def test_ids_are_deterministic() -> None:
    first = events_from_meta(example_meta())
    again = events_from_meta(copy.deepcopy(example_meta()))
    assert [e.id for e in first.events] == [e.id for e in again.events]
    key = JobKey("fritz", 398764, 1675954353)
    assert import_event_id(key, "tag", "app", "vasp", "global") == derived_event_id(
        "import", "fritz", 398764, 1675954353, "tag", "app", "vasp", "global"
    )


@pytest.mark.parametrize("meta", all_metas(), ids=lambda m: f"{m['cluster']}-{m['jobId']}")
def test_payloads_are_exactly_what_the_models_dump(meta: dict[str, Any]) -> None:
    for event in events_from_meta(meta).events:
        assert event.data == validate_payload(event.type, 1, event.data)


def test_statistics_come_from_data_when_meta_has_none() -> None:
    meta = REFERENCE.load_meta("emmy", 1404397, 1609300556)
    del meta["statistics"]
    data = REFERENCE.load_data("emmy", 1404397, 1609300556)
    job = events_from_meta(meta, data=data)
    stats = job.events[2].data["statistics"]
    assert set(stats) == set(data)
    series = data["mem_used"]["node"]["series"]
    assert stats["mem_used"]["max"] == max(s["statistics"]["max"] for s in series)
    assert stats["mem_used"]["avg"] == round(sum(s["statistics"]["avg"] for s in series) / 32, 2)
    assert set(job.events[2].data["footprint"]) == {f"{m}_{s}" for m, s in LEGACY_FOOTPRINT if m in stats}
    assert "missing 'statistics'" in job.problems
    assert statistics_from_data({"x": {"core": {}}}, 1) == {}


def test_lenient_about_real_world_deviations() -> None:
    meta = example_meta()
    meta.update(jobState="out_of_memory", walltime=None, numHwthreads=None, metaData={"a": 1, "b": None})
    del meta["shared"]
    meta["exclusive"] = 0
    meta["statistics"]["weird"] = {"unit": {"base": "Flops/s"}, "avg": None, "min": 0, "max": 1}
    job = events_from_meta(meta)
    started, stopped, _ = (e.data for e in job.events)
    assert stopped["jobState"] == "out-of-memory"
    assert (started["shared"], started["walltime"], started["numHwthreads"]) == ("multi_user", 0, 0)
    assert started["metaData"] == {"a": "1"}
    assert any("out_of_memory" in p for p in job.problems)
    assert any("statistics.weird" in p for p in job.problems)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"resources": []}, "resources"),
        ({"jobState": "exploded"}, "jobState"),
        ({"numNodes": "two"}, "numNodes"),
        ({"user": None}, "user"),
        ({"cluster": "../etc"}, "cluster"),
        ({"startTime": None}, "startTime"),
    ],
)
def test_unusable_meta_is_an_error(change: dict[str, Any], message: str) -> None:
    meta = {**example_meta(), **change}
    with pytest.raises(ValueError, match=message):
        events_from_meta(meta)


def test_meta_error_is_a_value_error() -> None:
    assert issubclass(MetaError, ValueError)


def test_meta_from_job_is_what_cc_backend_archives() -> None:
    expected = example_meta()
    job = {k: v for k, v in expected.items() if k not in ("id",)} | {"dbId": 5711}
    out = meta_from_job(job)
    assert out == expected
    assert list(out) == list(expected)  # cc-backend's key order
    assert orjson.dumps(out) == orjson.dumps(expected)


def test_events_fold_back_into_the_meta_json() -> None:
    expected = example_meta()
    job = events_from_meta(expected, metric_config=CLUSTERS.metric_config("fritz", "main"))
    out = meta_from_job(job_from_events(job.events))
    same = set(expected) - {"id", "monitoringStatus", "footprint", "energyFootprint", "energy", "concurrentJobs"}
    assert {k: out.get(k) for k in same} == {k: expected[k] for k in same}
    assert out["monitoringStatus"] == 3 and "id" not in out
    assert list(out)[:5] == ["cluster", "subCluster", "partition", "project", "user"]


def test_meta_from_job_omits_empty_fields() -> None:
    job = {"cluster": "c", "project": "p", "user": "u", "jobId": 1, "numNodes": 1, "startTime": 5,
           "resources": [{"hostname": "h", "hwthreads": None, "accelerators": [], "configuration": ""}]}
    out = meta_from_job(job, {"cpu_load": {"unit": {"base": ""}, "avg": 1, "min": 1, "max": 1}})
    assert out["resources"] == [{"hostname": "h"}]
    for absent in ("partition", "tags", "arrayJobId", "smt", "numAcc", "id", "submitTime", "walltime"):
        assert absent not in out
    assert (out["footprint"], out["metaData"], out["jobState"]) == (None, None, "completed")
    assert set(out["statistics"]) == {"cpu_load"}


def test_paths_module_agrees_with_reference_layout() -> None:
    for entry in REFERENCE.iter_jobs():
        assert entry.meta is not None and entry.key is not None
        assert JobKey.from_meta(entry.meta).directory() == entry.location
        assert (REFERENCE_ARCHIVE / entry.location / "meta.json").is_file()
    assert Path(EXAMPLE_JOB).parts[-4:] == ("fritz", "398", "764", "1675954353")

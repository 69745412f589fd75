"""The archive backend contract, run against every backend: file, S3 (real server), SQLite."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from archive.backends import ArchiveBackend, ArchiveError, InvalidName, JobKey, JobNotFound, SQLiteArchive, transfer_job
from tests.archive.conftest import big_data, small_data, small_job

FRITZ = {"name": "fritz", "metricConfig": [], "subClusters": []}


def test_version_is_three_once_something_is_stored(backend: ArchiveBackend) -> None:
    backend.store_cluster(FRITZ)
    assert backend.version() == 3


def test_clusters_round_trip(backend: ArchiveBackend) -> None:
    assert backend.clusters() == []
    backend.store_cluster({**FRITZ, "name": "zeta"})
    backend.store_cluster(FRITZ)
    assert backend.clusters() == ["fritz", "zeta"]
    assert backend.load_cluster("fritz") == FRITZ
    backend.store_cluster({**FRITZ, "metricConfig": [{"name": "cpu_load"}]})
    assert backend.load_cluster("fritz")["metricConfig"] == [{"name": "cpu_load"}]


def test_unknown_cluster_is_not_found(backend: ArchiveBackend) -> None:
    with pytest.raises(JobNotFound):
        backend.load_cluster("nope")


def test_store_and_load_a_small_job(backend: ArchiveBackend) -> None:
    meta, data = small_job(), small_data()
    location = backend.store_job(meta, data)
    assert location == "fritz/398/764/1675954353"
    assert backend.exists("fritz", 398764, 1675954353)
    assert backend.load_meta("fritz", 398764, 1675954353) == meta
    assert backend.load_data("fritz", 398764, 1675954353) == data


def test_store_and_load_a_big_job_gzipped(backend: ArchiveBackend) -> None:
    meta, data = small_job(job_id=7, start=100), big_data()
    backend.store_job(meta, data)
    assert backend.load_data("fritz", 7, 100) == data
    assert backend.compress_job("fritz", 7, 100) is False  # already stored compressed


def test_restoring_replaces_both_files(backend: ArchiveBackend) -> None:
    backend.store_job(small_job(job_id=7, start=100), big_data())
    meta = small_job(job_id=7, start=100, project="other")
    backend.store_job(meta, small_data())
    assert backend.load_meta("fritz", 7, 100)["project"] == "other"
    assert backend.load_data("fritz", 7, 100) == small_data()


def test_missing_job_is_not_found(backend: ArchiveBackend) -> None:
    assert not backend.exists("fritz", 1, 2)
    with pytest.raises(JobNotFound):
        backend.load_meta("fritz", 1, 2)
    with pytest.raises(JobNotFound):
        backend.load_data("fritz", 1, 2)
    with pytest.raises(JobNotFound):
        backend.store_meta(small_job(job_id=1, start=2))


def test_store_meta_replaces_only_meta(backend: ArchiveBackend) -> None:
    backend.store_job(small_job(), small_data())
    meta = small_job(tags=[{"type": "app", "name": "vasp", "scope": "global"}])
    backend.store_meta(meta)
    assert backend.load_meta("fritz", 398764, 1675954353)["tags"] == meta["tags"]
    assert backend.load_data("fritz", 398764, 1675954353) == small_data()


def test_delete_job(backend: ArchiveBackend) -> None:
    backend.store_job(small_job(), small_data())
    backend.store_job(small_job(job_id=398765), small_data())
    assert backend.delete_job("fritz", 398764, 1675954353) is True
    assert not backend.exists("fritz", 398764, 1675954353)
    assert backend.delete_job("fritz", 398764, 1675954353) is False
    assert [e.key for e in backend.iter_jobs()] == [JobKey("fritz", 398765, 1675954353)]


def test_iter_jobs_yields_every_job_in_a_stable_order(backend: ArchiveBackend) -> None:
    keys = [JobKey("fritz", 1000 + n, 1_700_000_000 + n) for n in range(5)] + [JobKey("alex", 3, 5)]
    for key in reversed(keys):
        backend.store_job(small_job(key.job_id, key.start_time, key.cluster), small_data())
    entries = list(backend.iter_jobs())
    assert sorted(e.key for e in entries if e.key) == sorted(keys)
    assert all(e.ok and e.meta and e.data is None for e in entries)
    assert [e.key for e in backend.iter_jobs()] == [e.key for e in entries]
    with_data = list(backend.iter_jobs(with_data=True))
    assert all(e.data == small_data() for e in with_data)
    assert {e.location for e in entries} == {k.directory() for k in keys}


def test_iter_keys_selects_by_start_time(backend: ArchiveBackend) -> None:
    for n in range(4):
        backend.store_job(small_job(job_id=n, start=1000 * (n + 1)), small_data())
    assert sorted(k.start_time for k in backend.iter_keys()) == [1000, 2000, 3000, 4000]
    assert sorted(k.start_time for k in backend.iter_keys(started_before=2500)) == [1000, 2000]


def test_compress_job_keeps_the_data(backend: ArchiveBackend) -> None:
    backend.store_job(small_job(), small_data())
    assert backend.compress_job("fritz", 398764, 1675954353) is True
    assert backend.load_data("fritz", 398764, 1675954353) == small_data()
    assert backend.compress_job("fritz", 398764, 1675954353) is False
    assert backend.compress_job("fritz", 1, 1) is False  # no such job


def test_nan_is_stored_as_null(backend: ArchiveBackend) -> None:
    data = small_data()
    data["cpu_load"]["node"]["series"][0]["data"] = [1.0, math.nan, 2.0]
    backend.store_job(small_job(), data)
    assert backend.load_data("fritz", 398764, 1675954353)["cpu_load"]["node"]["series"][0]["data"] == [1.0, None, 2.0]


@pytest.mark.parametrize("cluster", ["..", "../etc", "a/b", "a\\b", "", ".hidden", "x\x00y", "bad\nname"])
def test_hostile_cluster_names_are_rejected(backend: ArchiveBackend, cluster: str) -> None:
    with pytest.raises(InvalidName, match="cluster"):
        backend.store_job(small_job(cluster=cluster), small_data())
    with pytest.raises(InvalidName):
        backend.load_meta(cluster, 1, 2)
    with pytest.raises(InvalidName):
        backend.store_cluster({**FRITZ, "name": cluster})
    with pytest.raises(InvalidName):
        backend.load_cluster(cluster)
    assert backend.clusters() == []


@pytest.mark.parametrize("hostname", ["../../etc", "f01/../x", "..", "a\\b"])
def test_hostile_host_names_are_rejected(backend: ArchiveBackend, hostname: str) -> None:
    with pytest.raises(InvalidName, match="hostname"):
        backend.store_job(small_job(resources=[{"hostname": hostname}]), small_data())
    assert list(backend.iter_jobs()) == []


@pytest.mark.parametrize(("job_id", "start"), [(-1, 5), (5, -1), ("5", 5), (True, 5), (1.5, 5)])
def test_bad_job_identity_is_rejected(backend: ArchiveBackend, job_id: object, start: object) -> None:
    with pytest.raises(InvalidName):
        backend.store_job(small_job(job_id=job_id, start=start), small_data())  # type: ignore[arg-type]


def test_invalid_name_is_an_archive_agnostic_value_error() -> None:
    assert issubclass(InvalidName, ValueError)
    assert issubclass(JobNotFound, ArchiveError)


def test_transfer_moves_a_job_to_another_archive(backend: ArchiveBackend, tmp_path: Path) -> None:
    backend.store_job(small_job(), big_data())
    target = SQLiteArchive(tmp_path / "retired.db")
    key = JobKey("fritz", 398764, 1675954353)
    assert transfer_job(backend, target, key, move=True) == key.directory()
    assert not backend.exists(*key)
    assert target.load_meta(*key) == small_job() and target.load_data(*key) == big_data()
    target.close()

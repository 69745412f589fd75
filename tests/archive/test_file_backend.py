"""The file backend: cc-backend's layout, archives cc-backend wrote, atomic writes, broken entries."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from archive.backends import FileArchive, JobKey, fsutil, open_archive, open_location
from tests.archive.conftest import REFERENCE_ARCHIVE, big_data, small_data, small_job

REPO = Path(__file__).resolve().parents[2]


def test_reads_the_archive_cc_backend_wrote() -> None:
    archive = FileArchive(REFERENCE_ARCHIVE)
    assert archive.version() == 3
    assert archive.clusters() == ["alex", "emmy", "fritz"]
    assert archive.load_cluster("emmy")["name"] == "emmy"
    meta = archive.load_meta("emmy", 1403244, 1608923076)
    assert (meta["user"], meta["numNodes"], meta["duration"]) == ("emmyUser6", 32, 86486)
    data = archive.load_data("emmy", 1403244, 1608923076)  # data.json.gz
    assert len(data) == 9
    series = data["flops_any"]["node"]["series"]
    assert len(series) == 32 and len(series[0]["data"]) == 1441
    entries = list(archive.iter_jobs())
    assert [e.key for e in entries] == [JobKey("emmy", 1403244, 1608923076), JobKey("emmy", 1404397, 1609300556)]
    assert all(e.ok for e in entries)


def test_layout_on_disk(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path)
    archive.store_job(small_job(), small_data())
    archive.store_job(small_job(job_id=12, start=99), big_data())
    assert (tmp_path / "version.txt").read_text() == "3\n"
    small = tmp_path / "fritz" / "398" / "764" / "1675954353"
    assert sorted(p.name for p in small.iterdir()) == ["data.json", "meta.json"]
    assert orjson.loads((small / "data.json").read_bytes()) == small_data()
    big = tmp_path / "fritz" / "0" / "012" / "99"
    assert sorted(p.name for p in big.iterdir()) == ["data.json.gz", "meta.json"]
    assert orjson.loads(gzip.decompress((big / "data.json.gz").read_bytes())) == big_data()
    assert len(orjson.dumps(small_data())) <= 2000 < len(orjson.dumps(big_data()))


def test_a_gzipped_entry_replaced_by_a_small_one_leaves_one_data_file(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path)
    archive.store_job(small_job(), big_data())
    archive.store_job(small_job(), small_data())
    directory = tmp_path / "fritz" / "398" / "764" / "1675954353"
    assert sorted(p.name for p in directory.iterdir()) == ["data.json", "meta.json"]


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path)
    for n in range(20):
        archive.store_job(small_job(job_id=n), big_data() if n % 2 else small_data())
        archive.store_meta(small_job(job_id=n, project="p2"))
    archive.compress_job("fritz", 0, 1675954353)
    archive.store_cluster({"name": "fritz"})
    assert [p for p in tmp_path.rglob("*") if p.name.startswith(".")] == []


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = FileArchive(tmp_path)
    archive.store_job(small_job(), small_data())
    meta_path = tmp_path / "fritz" / "398" / "764" / "1675954353" / "meta.json"
    before = meta_path.read_bytes()

    def power_cut(_fd: int) -> None:  # the new bytes were written, but never made it to disk
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fsutil.os, "fsync", power_cut)
    with pytest.raises(OSError):
        archive.store_meta(small_job(project="changed"))
    monkeypatch.undo()
    assert meta_path.read_bytes() == before
    assert [p.name for p in meta_path.parent.iterdir() if p.name.startswith(".")] == []


WRITER = """
import sys
from archive.backends import FileArchive
root, payload = sys.argv[1], int(sys.argv[2])
archive = FileArchive(root)
meta = {"jobId": 1, "cluster": "c", "startTime": 1, "resources": [{"hostname": "h"}]}
print("ready", flush=True)
n = 0
while True:
    n += 1
    archive.store_meta({**meta, "n": n, "metaData": {"jobScript": "x" * payload}})
"""


def test_kill_9_mid_write_never_leaves_a_partial_meta_json(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path)
    archive.store_job({"jobId": 1, "cluster": "c", "startTime": 1, "resources": [{"hostname": "h"}], "n": 0}, {})
    meta_path = tmp_path / "c" / "0" / "001" / "1" / "meta.json"
    seen = set()
    for attempt in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(2_000_000)],
            cwd=REPO, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + 0.07 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        meta = orjson.loads(meta_path.read_bytes())  # whole, never truncated
        assert meta["jobId"] == 1
        seen.add(meta["n"])
        # A killed writer may leave its temp file; it is hidden and never read as an entry.
        assert [e.key for e in archive.iter_jobs()] == [JobKey("c", 1, 1)]
    assert len(seen) > 1, "the writer never got a rewrite done: the test proves nothing"


def test_broken_entries_are_reported_and_the_rest_is_read(reference_copy: Path) -> None:
    archive = FileArchive(reference_copy)
    good = small_job(job_id=5, start=10, cluster="emmy")
    archive.store_job(good, big_data())
    # truncated gzip
    gz = reference_copy / "emmy" / "1403" / "244" / "1608923076" / "data.json.gz"
    gz.write_bytes(gz.read_bytes()[:5000])
    # invalid JSON
    bad_json = reference_copy / "emmy" / "1404" / "397" / "1609300556" / "meta.json"
    bad_json.write_bytes(bad_json.read_bytes()[:100])
    # missing meta.json
    (reference_copy / "emmy" / "7" / "000" / "1234").mkdir(parents=True)
    (reference_copy / "emmy" / "7" / "000" / "1234" / "data.json").write_text("{}")
    # not cc-backend's layout
    (reference_copy / "emmy" / "lost+found" / "x" / "y").mkdir(parents=True)
    # meta.json that is JSON but not an object
    (reference_copy / "emmy" / "8" / "000" / "5").mkdir(parents=True)
    (reference_copy / "emmy" / "8" / "000" / "5" / "meta.json").write_text("[1, 2]")

    entries = {e.location: e for e in archive.iter_jobs(with_data=True)}
    assert entries["emmy/0/005/10"].ok and entries["emmy/0/005/10"].data == big_data()
    errors = {loc: e.error for loc, e in entries.items() if e.error}
    assert set(errors) == {
        "emmy/1403/244/1608923076", "emmy/1404/397/1609300556", "emmy/7/000/1234", "emmy/lost+found/x/y",
        "emmy/8/000/5",
    }
    assert "damaged gzip" in str(errors["emmy/1403/244/1608923076"])
    assert "invalid JSON" in str(errors["emmy/1404/397/1609300556"])
    assert "missing meta.json" in str(errors["emmy/7/000/1234"])
    assert "expected a JSON object" in str(errors["emmy/8/000/5"])
    # Without data the truncated gzip does not matter.
    assert {e.location for e in archive.iter_jobs() if e.ok} == {"emmy/0/005/10", "emmy/1403/244/1608923076"}


def test_delete_removes_empty_id_levels(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path)
    archive.store_job(small_job(), small_data())
    archive.delete_job("fritz", 398764, 1675954353)
    assert sorted(p.name for p in (tmp_path / "fritz").iterdir()) == []


def test_open_location_picks_the_backend(tmp_path: Path) -> None:
    assert open_location(str(REFERENCE_ARCHIVE)).kind == "file"
    sqlite = open_archive({"kind": "sqlite", "db-path": str(tmp_path / "a.db")})
    sqlite.close()
    assert open_location(str(tmp_path / "a.db")).kind == "sqlite"
    with pytest.raises(Exception, match="no such archive"):
        open_location(str(tmp_path / "missing"))

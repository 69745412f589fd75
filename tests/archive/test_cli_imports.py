"""`ccstream import-archive | import-db | import-job`: real files, one error line and exit 1 on failure."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.cli import main
from archive.backends import FileArchive, open_archive
from projections import queries
from streams.log import SQLiteEventLog
from tests.archive.conftest import REFERENCE_ARCHIVE, SPECS, small_data, small_job
from tests.archive.test_import_archive import project
from tests.support.s3server import S3Server

IMPORTER = SPECS / "importer"


def write_config(tmp_path: Path, archive: dict[str, Any] | None = None, **main: Any) -> Path:
    config = {
        "main": {"db": str(tmp_path / "job.db"), **main},
        "archive": archive or {"kind": "file", "path": str(tmp_path / "archive")},
        "event-log": {"kind": "sqlite", "path": str(tmp_path / "events.db")},
    }
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps(config))
    return path


def run(config: Path, *args: str) -> int:
    return main(["--config", str(config), "--env", str(config.parent / ".env"), *args])


def head(tmp_path: Path) -> int:
    log = SQLiteEventLog(tmp_path / "events.db")
    try:
        return log.head()
    finally:
        log.close()


def test_import_archive_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert run(config, "import-archive", str(REFERENCE_ARCHIVE)) == 0
    assert "2 jobs: 2 imported" in capsys.readouterr().out
    assert run(config, "import-archive", str(REFERENCE_ARCHIVE)) == 0
    assert "0 imported, 2 already there" in capsys.readouterr().out
    assert head(tmp_path) == 6


def test_import_archive_reports_broken_jobs(reference_copy: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (reference_copy / "emmy" / "1404" / "397" / "1609300556" / "meta.json").write_text("{")
    config = write_config(tmp_path)
    assert run(config, "import-archive", str(reference_copy)) == 0
    out, err = capsys.readouterr()
    assert "1 imported" in out and "1 failed" in out
    assert "error: emmy/1404/397/1609300556" in err
    assert run(config, "import-archive", "--strict", str(reference_copy)) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "ccstream: 1 job(s) could not be imported"


def test_import_archive_from_the_configured_archive_and_from_s3(
    tmp_path: Path, s3: S3Server, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REFERENCE_ARCHIVE, tmp_path / "archive")
    assert run(write_config(tmp_path), "import-archive") == 0
    assert "2 imported" in capsys.readouterr().out
    remote = open_archive(s3.settings(s3_bucket))
    remote.store_job(small_job(), small_data())
    other = tmp_path / "other"
    other.mkdir()
    configured = s3.settings(s3.create_bucket())  # another bucket: the job is copied into it
    assert run(write_config(other, configured), "import-archive", f"s3://{s3_bucket}") == 0
    assert "1 jobs: 1 imported" in capsys.readouterr().out
    assert open_archive(configured).load_data("fritz", 398764, 1675954353) == small_data()


@pytest.mark.parametrize("source", ["/nonexistent/archive", "s3://"])
def test_import_archive_bad_source_is_one_line(tmp_path: Path, source: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run(write_config(tmp_path), "import-archive", source) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ccstream: ")


def test_import_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert run(config, "import-db", str(SPECS / "db" / "cc-backend-test-job.db")) == 0
    assert "544 jobs: 544 imported" in capsys.readouterr().out
    assert run(config, "import-db", str(tmp_path / "missing.db")) == 1
    assert capsys.readouterr().err == f"ccstream: {tmp_path / 'missing.db'}: no such file\n"


@pytest.mark.parametrize("name", ["fritzMinimal", "fritzError"])
def test_import_job_archives_and_records_it(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    archive = FileArchive(tmp_path / "archive")
    archive.store_cluster(orjson.loads((IMPORTER / "cluster-fritz.json").read_bytes()))
    config = write_config(tmp_path)
    spec = f"{IMPORTER / f'meta-{name}.input'}:{IMPORTER / f'data-{name}.json'}"
    assert run(config, "import-job", spec) == 0
    assert "1 jobs: 1 imported" in capsys.readouterr().out
    golden = orjson.loads((IMPORTER / f"{name}-golden.json").read_bytes())
    key = (golden["cluster"], golden["jobId"], golden["startTime"])
    stored = archive.load_meta(*key)
    assert stored["duration"] == golden["duration"] and stored["monitoringStatus"] == 3
    assert stored["footprint"] and stored["statistics"]
    assert archive.load_data(*key) == orjson.loads((IMPORTER / f"data-{name}.json").read_bytes())
    log = SQLiteEventLog(tmp_path / "events.db")
    engine = project(log, tmp_path / "job.db")
    with engine.connect() as conn:
        row = queries.find_job_by_key(conn, *key)
    engine.dispose()
    log.close()
    assert row is not None and row["duration"] == golden["duration"]
    assert orjson.loads(row["footprint"]) == stored["footprint"]
    assert run(config, "import-job", spec) == 0  # again: same entry, no new events
    assert "0 imported, 1 already there" in capsys.readouterr().out


def test_import_job_failures_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert run(config, "import-job", "just-one-path") == 1
    assert capsys.readouterr().err == "ccstream: 'just-one-path': expected <meta.json>:<data.json>\n"
    hostile = tmp_path / "meta.json"
    hostile.write_bytes(orjson.dumps(small_job(cluster="../../etc")))
    data = tmp_path / "data.json"
    data.write_bytes(orjson.dumps(small_data()))
    assert run(config, "import-job", f"{hostile}:{data}") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must not contain '..'" in err
    assert not (tmp_path / "etc").exists() and head(tmp_path) == 0


def test_main_validate_refuses_a_job_whose_meta_json_deviates_from_the_schema(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = FileArchive(tmp_path / "archive")
    archive.store_cluster(orjson.loads((REFERENCE_ARCHIVE / "emmy" / "cluster.json").read_bytes()))
    meta = small_job()
    del meta["shared"]  # tolerated without main.validate (old jobs lack it), a schema deviation with it
    (tmp_path / "meta.json").write_bytes(orjson.dumps(meta))
    (tmp_path / "data.json").write_bytes(orjson.dumps(small_data()))
    spec = f"{tmp_path / 'meta.json'}:{tmp_path / 'data.json'}"
    strict = write_config(tmp_path, validate=True)
    assert run(strict, "import-job", spec) == 1
    err = capsys.readouterr().err
    assert "meta.json does not match the job archive schema (main.validate): missing 'shared'" in err
    assert head(tmp_path) == 0 and list(archive.iter_keys()) == []  # nothing stored, nothing appended
    lenient = write_config(tmp_path, validate=False)
    assert run(lenient, "import-job", spec) == 0
    assert "1 imported" in capsys.readouterr().out and head(tmp_path) > 0


def test_main_validate_leaves_deviating_jobs_out_of_an_archive_import(
        reference_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta_path = reference_copy / "emmy" / "1404" / "397" / "1609300556" / "meta.json"
    meta = orjson.loads(meta_path.read_bytes())
    meta["numNodes"] = -1
    meta_path.write_bytes(orjson.dumps(meta))
    config = write_config(tmp_path, validate=True)
    assert run(config, "import-archive", str(reference_copy)) == 0
    out, err = capsys.readouterr()
    assert "2 jobs: 1 imported" in out and "1 failed" in out
    assert ("emmy/1404/397/1609300556: meta.json does not match the job archive schema (main.validate): "
            "'numNodes' should be an integer > 0, got -1") in err

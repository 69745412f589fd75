"""Job archive → Parquet in cc-backend's column layout: exact round trips, the layout itself, and file splitting."""

from __future__ import annotations

import copy
import io
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archive.backends import FileArchive, JobKey
from archive.maintenance import MaintenanceReport, job_to_row, read_jobs, retire_jobs, row_to_job, rows_to_parquet
from archive.maintenance.parquet import SCHEMA, estimate_row_size, parquet_to_rows
from archive.maintenance.sinks import ParquetSink
from archive.maintenance.targets import FileLocation
from tests.archive.conftest import big_data, small_data, small_job
from tests.archive.test_maintenance import NOW, OLD, fill, keys, policy

#: cc-backend's ParquetJobRow columns (pkg/archive/parquet/schema.go), in order.
CC_BACKEND_COLUMNS = [
    "job_id", "cluster", "sub_cluster", "partition", "project", "user", "job_state", "start_time", "duration",
    "walltime", "num_nodes", "num_hwthreads", "num_acc", "exclusive", "energy", "smt", "resources_json",
    "statistics_json", "tags_json", "meta_data_json", "footprint_json", "energy_footprint_json", "metric_data_gz",
]


def odd_meta() -> dict[str, Any]:
    """A meta.json with what columns cannot say: tags, exclusive, nulls, ints for floats, unknown keys."""
    meta = small_job(4242, 1_700_000_000)
    meta.update(tags=[{"id": 3, "type": "app", "name": "vasp", "scope": "global"}], exclusive=1, arrayJobId=77,
                energyFootprint=None, metaData={}, partition="", concurrentJobs={"items": None, "count": 0})
    del meta["numHwthreads"]
    return meta


@pytest.mark.parametrize("meta", [small_job(), odd_meta()], ids=["reference", "odd"])
def test_round_trip_gives_back_meta_and_data_exactly(meta: dict[str, Any]) -> None:
    data = big_data()
    raw = rows_to_parquet([job_to_row(meta, data)])
    [(meta_back, data_back)] = read_jobs(raw)
    assert meta_back == meta and data_back == data


def test_columns_follow_cc_backend_layout() -> None:
    meta = small_job()
    table = pq.read_table(io.BytesIO(rows_to_parquet([job_to_row(meta, small_data())])))
    assert table.column_names[: len(CC_BACKEND_COLUMNS)] == CC_BACKEND_COLUMNS
    assert table.column_names[len(CC_BACKEND_COLUMNS):] == ["meta_extra_json"]
    assert table.schema.field("job_id").type == pa.int64() and table.schema.field("duration").type == pa.int32()
    assert table.schema.field("metric_data_gz").type == pa.binary()
    row = table.to_pylist()[0]
    assert (row["job_id"], row["cluster"], row["sub_cluster"], row["job_state"]) == (398764, "fritz", "main",
                                                                                  "completed")
    assert (row["num_hwthreads"], row["exclusive"], row["tags_json"]) == (72, 1, None)  # shared none: exclusive
    footprint = row["footprint_json"]
    assert footprint.startswith(b'{"cpu_load_avg"')
    metadata = pq.read_metadata(io.BytesIO(rows_to_parquet([job_to_row(meta, small_data())])))
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_rows_without_the_extra_column_read_like_cc_backend_reads_them() -> None:
    """A file cc-backend wrote has no meta_extra_json: the columns alone make the meta."""
    meta = small_job()
    row = job_to_row(meta, small_data())
    del row["meta_extra_json"]
    foreign = pa.Table.from_pylist([row], schema=SCHEMA.remove(SCHEMA.get_field_index("meta_extra_json")))
    buffer = io.BytesIO()
    pq.write_table(foreign, buffer, compression="zstd")
    [(back, data)] = read_jobs(buffer.getvalue())
    assert data == small_data()
    assert {k: back[k] for k in ("jobId", "cluster", "startTime", "resources", "statistics")} == {
        k: meta[k] for k in ("jobId", "cluster", "startTime", "resources", "statistics")
    }
    assert "shared" not in back  # not a cc-backend column


def test_rows_are_sorted_by_subcluster_project_start() -> None:
    metas = [small_job(1, 300, project="b"), small_job(2, 200, project="a"), small_job(3, 100, project="b")]
    rows = parquet_to_rows(rows_to_parquet([job_to_row(m, small_data()) for m in metas]))
    assert [(r["project"], r["start_time"]) for r in rows] == [("a", 200), ("b", 100), ("b", 300)]
    assert row_to_job(rows[0])[0] == metas[1]


def test_sink_splits_files_above_the_size_limit(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path / "archive")
    jobs = fill(archive, [(100 + n, NOW - 30 * 86_400 - n) for n in range(5)], big_data())
    row_size = estimate_row_size(job_to_row(*next(iter(jobs.values()))))
    report = MaintenanceReport("test")
    sink = ParquetSink(archive, FileLocation(tmp_path / "pq"), 2 * row_size + 10, report, now=NOW)
    done: list[JobKey] = []
    for key, (meta, data) in jobs.items():
        done += sink.add(key, meta, data)
    assert len(done) == 4 and len(report.files) == 2  # two full files; the fifth job is held until close
    done += sink.close()
    assert sorted(done) == sorted(jobs) and len(report.files) == 3
    counts = [len(read_jobs((tmp_path / "pq" / name).read_bytes())) for name in report.files]
    assert counts == [2, 2, 1]
    assert [name.rsplit("-", 1)[1] for name in report.files] == ["001.parquet", "002.parquet", "003.parquet"]


def test_max_file_size_mb_splits_a_retention_run(tmp_path: Path) -> None:
    """Jobs of about 0.6 MB each (noise does not compress) with max-file-size-mb 1: one job per file."""
    archive = FileArchive(tmp_path / "archive")
    rng = random.Random(5)
    data = copy.deepcopy(small_data())
    series = data["cpu_load"]["node"]["series"][0]
    data["cpu_load"]["node"]["series"] = [{**series, "data": [rng.random() for _ in range(80_000)]}]
    fill(archive, OLD[:3], data)
    rule = policy(policy="move", format="parquet", target_path=str(tmp_path / "pq"), max_file_size_mb=1)
    report = retire_jobs(archive, rule, now=NOW)
    assert (report.copied, report.deleted, report.failed, len(report.files)) == (3, 3, 0, 3)
    sizes = [(tmp_path / "pq" / name).stat().st_size for name in report.files]
    assert all(400_000 < size < 1024 * 1024 for size in sizes)
    assert not keys(archive)

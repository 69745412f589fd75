"""Job archive ↔ Parquet in cc-backend's retention layout (`pkg/archive/parquet`): one row per job.

Columns, as cc-backend's `ParquetJobRow` names them (required unless marked nullable):

| column | type | from meta.json |
|---|---|---|
| job_id, start_time, walltime | int64 | jobId, startTime, walltime |
| cluster, sub_cluster, project, user, job_state | string | cluster, subCluster, project, user, jobState |
| partition | string, nullable | partition |
| duration, num_nodes, num_hwthreads, num_acc, smt | int32 | duration, numNodes, numHwthreads, numAcc, smt |
| exclusive | int32 | exclusive, else derived from shared (none 1, single_user 2, multi_user 0) |
| energy | float64 | energy |
| resources_json | binary (JSON) | resources |
| statistics_json, tags_json, meta_data_json | binary (JSON), nullable | statistics, tags, metaData |
| footprint_json, energy_footprint_json | binary (JSON), nullable | footprint, energyFootprint |
| metric_data_gz | binary | the whole data.json, gzipped JSON |
| meta_extra_json | binary (JSON), nullable | ccstream's addition, see below |

cc-backend's columns cannot carry every meta.json key (`shared`, `monitoringStatus`, `arrayJobId`,
`concurrentJobs`, ...) nor tell an absent key from a default. `meta_extra_json` holds exactly what
the columns would lose: `{"keys": {key: original value}, "absent": [keys the columns would add]}`,
so `rows_to_jobs(jobs_to_table(...))` gives back meta.json unchanged. cc-backend's reader ignores
the extra column; files written by cc-backend (without it) read back with what their columns hold.
Rows are sorted by (sub_cluster, project, start_time) and the file is zstd-compressed, as cc-backend does.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from archive.backends.codec import encode_json

SCHEMA = pa.schema([
    pa.field("job_id", pa.int64(), nullable=False),
    pa.field("cluster", pa.string(), nullable=False),
    pa.field("sub_cluster", pa.string(), nullable=False),
    pa.field("partition", pa.string()),
    pa.field("project", pa.string(), nullable=False),
    pa.field("user", pa.string(), nullable=False),
    pa.field("job_state", pa.string(), nullable=False),
    pa.field("start_time", pa.int64(), nullable=False),
    pa.field("duration", pa.int32(), nullable=False),
    pa.field("walltime", pa.int64(), nullable=False),
    pa.field("num_nodes", pa.int32(), nullable=False),
    pa.field("num_hwthreads", pa.int32(), nullable=False),
    pa.field("num_acc", pa.int32(), nullable=False),
    pa.field("exclusive", pa.int32(), nullable=False),
    pa.field("energy", pa.float64(), nullable=False),
    pa.field("smt", pa.int32(), nullable=False),
    pa.field("resources_json", pa.binary(), nullable=False),
    pa.field("statistics_json", pa.binary()),
    pa.field("tags_json", pa.binary()),
    pa.field("meta_data_json", pa.binary()),
    pa.field("footprint_json", pa.binary()),
    pa.field("energy_footprint_json", pa.binary()),
    pa.field("metric_data_gz", pa.binary(), nullable=False),
    pa.field("meta_extra_json", pa.binary()),
])
SORT_KEYS = [("sub_cluster", "ascending"), ("project", "ascending"), ("start_time", "ascending")]

_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
# (column, meta key, conversion, default) of the scalar columns.
_SCALARS: list[tuple[str, str, Callable[[Any], Any], Any]] = [
    ("job_id", "jobId", int, 0), ("cluster", "cluster", str, ""), ("sub_cluster", "subCluster", str, ""),
    ("project", "project", str, ""), ("user", "user", str, ""), ("job_state", "jobState", str, ""),
    ("start_time", "startTime", int, 0), ("duration", "duration", int, 0), ("walltime", "walltime", int, 0),
    ("num_nodes", "numNodes", int, 0), ("num_hwthreads", "numHwthreads", int, 0), ("num_acc", "numAcc", int, 0),
    ("energy", "energy", float, 0.0), ("smt", "smt", int, 0),
]
# (column, meta key) of the nested values stored as JSON; null when the value is null or empty.
_JSONS = [("statistics_json", "statistics"), ("tags_json", "tags"), ("meta_data_json", "metaData"),
          ("footprint_json", "footprint"), ("energy_footprint_json", "energyFootprint")]
_SHARED_TO_EXCLUSIVE = {"none": 1, "single_user": 2, "multi_user": 0}


def _convert(value: Any, kind: Callable[[Any], Any], default: Any, column: str) -> Any:
    """The column value, or the default when the meta value does not fit (the original goes to extra)."""
    if value is None or isinstance(value, bool) or (kind is not str and isinstance(value, str)):
        return default
    try:
        out = kind(value)
    except (TypeError, ValueError, OverflowError):
        return default
    limit = _INT64 if column in ("job_id", "start_time", "walltime") else _INT32
    if kind is int and not -limit - 1 <= out <= limit:
        return default
    return out


def _exclusive(meta: Mapping[str, Any]) -> int:
    value = meta.get("exclusive")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _INT32:
        return value
    return _SHARED_TO_EXCLUSIVE.get(str(meta.get("shared")), 0)


def _columns_to_meta(row: Mapping[str, Any]) -> dict[str, Any]:
    """meta.json as far as cc-backend's columns tell it (its reader's `ParquetRowToJob`)."""
    meta: dict[str, Any] = {key: row[column] for column, key, _, _ in _SCALARS}
    if row.get("partition") is not None:
        meta["partition"] = row["partition"]
    meta["resources"] = orjson.loads(row["resources_json"]) if row.get("resources_json") else None
    for column, key in _JSONS:
        if row.get(column):
            meta[key] = orjson.loads(row[column])
    return meta


def job_to_row(meta: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """One Parquet row (column → value) of a job's meta.json and data.json."""
    row: dict[str, Any] = {c: _convert(meta.get(k), kind, d, c) for c, k, kind, d in _SCALARS}
    partition = meta.get("partition")
    row["partition"] = partition if isinstance(partition, str) and partition else None
    row["exclusive"] = _exclusive(meta)
    row["resources_json"] = _json(meta.get("resources"))
    for column, key in _JSONS:
        value = meta.get(key)
        row[column] = _json(value) if value else None
    row["metric_data_gz"] = gzip.compress(encode_json(data), compresslevel=9, mtime=0)
    restored = _columns_to_meta(row)
    keys = {k: v for k, v in meta.items() if k not in restored or _json(restored[k]) != _json(v)}
    absent = sorted(k for k in restored if k not in meta)
    row["meta_extra_json"] = encode_json({"keys": keys, "absent": absent}) if keys or absent else None
    return row


def _json(value: Any) -> bytes:
    """Any JSON value encoded as the archive encodes meta.json (compact; NaN as null)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def row_to_job(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta.json, data.json) of one row; exact for rows written by `job_to_row`."""
    meta = _columns_to_meta(row)
    extra = row.get("meta_extra_json")
    if extra:
        decoded = orjson.loads(extra)
        for key in decoded.get("absent", ()):
            meta.pop(key, None)
        meta.update(decoded.get("keys", {}))
    data = orjson.loads(gzip.decompress(row["metric_data_gz"]))
    return meta, data


def estimate_row_size(row: Mapping[str, Any]) -> int:
    """Bytes a row adds to a file, as cc-backend estimates them: 200 plus strings and blobs."""
    size = 200
    for value in row.values():
        if isinstance(value, str | bytes):
            size += len(value)
    return size


def rows_to_parquet(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """A Parquet file (zstd, rows sorted by sub_cluster, project, start_time) in memory."""
    table = pa.Table.from_pylist(list(rows), schema=SCHEMA).sort_by(SORT_KEYS)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def parquet_to_rows(raw: bytes) -> list[dict[str, Any]]:
    """The rows of a Parquet job file (ccstream's or cc-backend's)."""
    table = pq.read_table(io.BytesIO(raw))
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def parquet_keys(raw: bytes) -> list[tuple[str, int, int]]:
    """(cluster, jobId, startTime) of every row, reading only those columns (to verify a written file)."""
    table = pq.read_table(io.BytesIO(raw), columns=["cluster", "job_id", "start_time"])
    columns = [table.column(name).to_pylist() for name in ("cluster", "job_id", "start_time")]
    return list(zip(*columns, strict=True))


def read_jobs(raw: bytes) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (meta.json, data.json) in a Parquet job file."""
    return [row_to_job(row) for row in parquet_to_rows(raw)]

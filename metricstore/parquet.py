"""Parquet archive of expired data in cc-backend's long format (pyarrow, zstd)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from metricstore.maintenance import Expired
from metricstore.series import split_level

SCHEMA = pa.schema([
    ("cluster", pa.string()), ("hostname", pa.string()), ("metric", pa.string()), ("scope", pa.string()),
    ("scope_id", pa.string()), ("timestamp", pa.int64()), ("frequency", pa.int64()), ("value", pa.float32()),
])


def to_table(item: Expired) -> pa.Table:
    """One row per present value, sorted by (hostname, metric, timestamp) as cc-backend sorts."""
    pos, col = np.nonzero(~np.isnan(item.data))
    n_keys = len(item.keys)
    hosts = pa.array([k[0] for k in item.keys], pa.string())
    metrics = pa.array([k[2] for k in item.keys], pa.string())
    scopes_ids = [split_level(k[1]) for k in item.keys]
    scopes = pa.array([s for s, _ in scopes_ids], pa.string())
    scope_ids = pa.array([i for _, i in scopes_ids], pa.string())
    take = pa.array(pos, pa.int64()) if n_keys else pa.array([], pa.int64())
    timestamps = (item.first_slot + col) * item.frequency + item.phase[pos]
    table = pa.table({
        "cluster": pa.array([item.cluster] * len(pos), pa.string()),
        "hostname": hosts.take(take), "metric": metrics.take(take),
        "scope": scopes.take(take), "scope_id": scope_ids.take(take),
        "timestamp": pa.array(timestamps, pa.int64()),
        "frequency": pa.array(np.full(len(pos), item.frequency, np.int64)),
        "value": pa.array(item.data[pos, col], pa.float32()),
    }, schema=SCHEMA)
    return table.sort_by([("hostname", "ascending"), ("metric", "ascending"), ("timestamp", "ascending")])


def write_archive(directory: Path, items: Iterable[Expired]) -> tuple[int, int]:
    """Write each item to `<dir>/<cluster>/<from>-<to>-<frequency>s.parquet` (temp file, fsync, rename).
    Returns (files written, values written)."""
    files = values = 0
    for item in items:
        table = to_table(item)
        if table.num_rows == 0:
            continue
        start = item.first_slot * item.frequency
        end = (item.first_slot + item.data.shape[1]) * item.frequency
        target = directory / item.cluster / f"{start}-{end}-{item.frequency}s.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # the same chunk freed twice (memory cap, then a new chunk): keep both
            target = target.with_name(f"{target.stem}-{os.getpid()}-{files}.parquet")
        tmp = target.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        files += 1
        values += table.num_rows
    return files, values


def read_archive(directory: Path) -> pa.Table:
    """All archived rows under a directory (for tests, tooling and re-import)."""
    paths = sorted(directory.rglob("*.parquet"))
    if not paths:
        return SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in paths])

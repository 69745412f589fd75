"""Snapshots (raw float32 chunks as .npy) and restore: newest snapshot, then the WAL after it."""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from metricstore.maintenance import free
from metricstore.store import MetricStore
from metricstore.wal import KIND_FREE, KIND_ROWS, KIND_SAMPLES, ReadResult, decode_samples, list_segments, read_segment

log = logging.getLogger(__name__)
SNAPSHOT = re.compile(r"snapshot-(\d{10})$")


@dataclass(slots=True)
class BlockPlan:
    cluster: str
    frequency: int
    head: int
    keys: list[tuple[str, str, str]]
    phase: np.ndarray
    last: np.ndarray
    chunks: list[tuple[int, np.ndarray | None, np.ndarray]]  # (number, rows, data) references


@dataclass(slots=True)
class SnapshotPlan:
    """What a snapshot writes, captured under the store lock right after the WAL rotation to `wal_seq`.
    Chunk arrays are referenced, not copied: writes after the rotation may or may not land in the file,
    and both are fine because the WAL from `wal_seq` on is replayed over the snapshot."""

    wal_seq: int
    blocks: list[BlockPlan] = field(default_factory=list)


def capture(store: MetricStore, wal_seq: int) -> SnapshotPlan:
    """Caller holds the store lock."""
    plan = SnapshotPlan(wal_seq)
    for bid, b in enumerate(store.blocks):
        plan.blocks.append(BlockPlan(b.cluster, b.frequency, b.head, list(store.keys[bid]),
                                     b.phase[: b.nrows].copy(), b.last[: b.nrows].copy(),
                                     [(n, c.rows, c.data) for n, c in sorted(b.chunks.items())]))
    return plan


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def write_snapshot(directory: Path, plan: SnapshotPlan) -> Path:
    """Write into a temp directory, fsync, then rename: a snapshot directory is complete or absent."""
    target = directory / f"snapshot-{plan.wal_seq:010d}"
    tmp = directory / f".tmp-snapshot-{plan.wal_seq:010d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta: dict[str, Any] = {"version": 1, "wal_seq": plan.wal_seq, "blocks": []}
    for bid, bp in enumerate(plan.blocks):
        (tmp / f"b{bid}-keys.json").write_bytes(orjson.dumps(bp.keys))
        _save(tmp / f"b{bid}-phase.npy", bp.phase)
        _save(tmp / f"b{bid}-last.npy", bp.last)
        chunks = []
        for number, rows, data in bp.chunks:
            _save(tmp / f"b{bid}-c{number}.npy", data)
            if rows is not None:
                _save(tmp / f"b{bid}-c{number}-rows.npy", rows)
            chunks.append({"number": number, "sparse": rows is not None})
        meta["blocks"].append({"cluster": bp.cluster, "frequency": bp.frequency, "head": bp.head,
                               "chunks": chunks})
    (tmp / "meta.json").write_bytes(orjson.dumps(meta))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := SNAPSHOT.match(p.name)))


def remove_older(directory: Path, keep_seq: int) -> None:
    """Delete snapshots and WAL segments superseded by the snapshot at `keep_seq`."""
    for seq, path in list_snapshots(directory):
        if seq < keep_seq:
            shutil.rmtree(path, ignore_errors=True)
    for seq, path in list_segments(directory):
        if seq < keep_seq:
            path.unlink(missing_ok=True)


def load_snapshot(store: MetricStore, path: Path, restore_seconds: float) -> None:
    """Rebuild blocks, rows and chunks from a snapshot directory; chunks older than the restore window
    (counted back from the newest sample) are skipped."""
    from metricstore.block import Chunk

    meta = orjson.loads((path / "meta.json").read_bytes())
    for bid, bm in enumerate(meta["blocks"]):
        if store.block_id(bm["cluster"], bm["frequency"]) != bid:
            raise RuntimeError(f"snapshot {path}: block {bid} out of order")
        block = store.blocks[bid]
        for host, level, metric in orjson.loads((path / f"b{bid}-keys.json").read_bytes()):
            store.define_row(block.cluster, block.frequency, host, level, metric)
        n = block.nrows
        block.phase[:n] = np.load(path / f"b{bid}-phase.npy")[:n]
        block.last[:n] = np.load(path / f"b{bid}-last.npy")[:n]
        block.head = max(block.head, int(bm["head"]))
        oldest = (block.head * block.frequency - restore_seconds) // block.frequency
        for cm in bm["chunks"]:
            number = int(cm["number"])
            if block.chunk_end(number) <= oldest:
                continue
            data = np.load(path / f"b{bid}-c{number}.npy")
            rows = np.load(path / f"b{bid}-c{number}-rows.npy") if cm["sparse"] else None
            block.chunks[number] = Chunk(number, data, rows)


def replay(store: MetricStore, path: Path, result: ReadResult) -> None:
    """Apply one WAL segment's intact records in order (the store's WAL is detached meanwhile)."""
    for kind, payload in read_segment(path, result):
        if kind == KIND_ROWS:
            for bid, cluster, freq, row, host, level, metric in orjson.loads(payload):
                got = store.define_row(cluster, freq, host, level, metric)
                if got != (bid, row):
                    raise RuntimeError(f"WAL {path}: row {(bid, row)} replayed as {got}")
        elif kind == KIND_SAMPLES:
            bid, rows, times, values = decode_samples(payload)
            store.write_samples(bid, rows, times, values)
        elif kind == KIND_FREE:
            call = orjson.loads(payload)
            free(store, call["selectors"], int(call["to"]))
        else:
            log.warning("WAL %s: skipping record of unknown kind %d", path, kind)


def restore(store: MetricStore, directory: Path, restore_seconds: float) -> tuple[int, ReadResult]:
    """Load the newest snapshot and replay the WAL written after it. Returns (next WAL seq, stats)."""
    result = ReadResult()
    snapshots = list_snapshots(directory)
    start_seq = 0
    if snapshots:
        start_seq, path = snapshots[-1]
        load_snapshot(store, path, restore_seconds)
    segments = [(seq, p) for seq, p in list_segments(directory) if seq >= start_seq]
    for _seq, seg in segments:
        replay(store, seg, result)
    next_seq = max([start_seq] + [seq + 1 for seq, _ in segments])
    return next_seq, result

"""Freeing memory: retention (sparing hosts of running jobs), the memory cap, and `/api/free/`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metricstore.block import Block, Chunk
from metricstore.store import MetricStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Expired:
    """A chunk's data on its way to the Parquet archive (arrays are final: no write reaches them)."""

    cluster: str
    frequency: int
    first_slot: int
    rows: np.ndarray
    data: np.ndarray
    keys: list[tuple[str, str, str]]
    phase: np.ndarray


def _expired(store: MetricStore, bid: int, chunk: Chunk) -> Expired:
    block = store.blocks[bid]
    rows = chunk.row_ids()
    real = rows < block.nrows
    rows, data = rows[real], chunk.data[real] if chunk.rows is not None else chunk.data[: int(real.sum())]
    keys = store.keys[bid]
    return Expired(block.cluster, block.frequency, chunk.number * block.chunk_len, rows, data,
                   [keys[r] for r in rows.tolist()], np.maximum(block.phase[rows], 0))


def _host_rows(store: MetricStore, bid: int, hosts: set[str]) -> np.ndarray:
    cluster = store.blocks[bid].cluster
    rows = [row for host in hosts for levels in store.index.get(cluster, {}).get(host, {}).values()
            for b, row in levels.values() if b == bid]
    return np.unique(np.asarray(rows, np.int64))


def apply_retention(store: MetricStore, archive: bool) -> list[Expired]:
    """Drop chunks older than the window; rows of hosts in running jobs are kept. Caller holds the lock."""
    out: list[Expired] = []
    in_use_cache: dict[str, set[str]] = {}
    for bid, block in enumerate(store.blocks):
        if block.head < 0:
            continue
        lower = block.oldest_allowed(block.head)
        for number in sorted(n for n in block.chunks if block.chunk_end(n) <= lower):
            chunk = block.chunks[number]
            if archive and not chunk.archived:
                out.append(_expired(store, bid, chunk))
                chunk.archived = True
            if block.cluster not in in_use_cache:
                in_use_cache[block.cluster] = store.running_jobs.hosts_in_use(block.cluster)
            keep = _host_rows(store, bid, in_use_cache[block.cluster])
            before = chunk.nbytes
            if keep.size:
                chunk.keep_only(keep)
            if not keep.size or chunk.row_ids().size == 0:
                del block.chunks[number]
                store.counters.add_freed("retention", 1)
            elif chunk.nbytes < before:
                store.counters.add_freed("retention_partial", 1)
    return out


def apply_memory_cap(store: MetricStore, cap_bytes: int, archive: bool) -> list[Expired]:
    """Free the oldest chunks (across blocks) until under the cap; a block's newest chunk stays."""
    out: list[Expired] = []
    if cap_bytes <= 0:
        return out
    total = store.memory_bytes()
    if total <= cap_bytes:
        return out
    candidates = sorted((n * b.chunk_len * b.frequency, bid, n) for bid, b in enumerate(store.blocks)
                        for n in b.chunks if n != b.head // b.chunk_len)
    freed = 0
    for _start, bid, number in candidates:
        if total <= cap_bytes:
            break
        block = store.blocks[bid]
        chunk = block.chunks.pop(number)
        if archive and not chunk.archived:
            out.append(_expired(store, bid, chunk))
        total -= chunk.nbytes
        freed += 1
    if freed:
        store.counters.add_freed("memory_cap", freed)
        log.warning("metric store above memory cap (%d bytes): freed the %d oldest chunk(s)", cap_bytes, freed)
    return out


def _selected_rows(store: MetricStore, selector: Sequence[str]) -> dict[int, list[int]]:
    if not selector:
        return {}
    cluster, host = selector[0], selector[1] if len(selector) > 1 else None
    prefix = "/".join(selector[2:])
    hosts = store.index.get(cluster, {})
    by_block: dict[int, list[int]] = {}
    for name in [host] if host is not None else list(hosts):
        for levels in hosts.get(name, {}).values():
            for level, (bid, row) in levels.items():
                if not prefix or level == prefix or level.startswith(prefix + "/"):
                    by_block.setdefault(bid, []).append(row)
    return by_block


def free(store: MetricStore, selectors: Sequence[Sequence[str]], to: int) -> int:
    """Free the selected series' data older than `to`; returns how many (series, chunk) buffers went.
    Caller holds the lock and logs the call to the WAL."""
    freed = 0
    for selector in selectors:
        for bid, row_list in _selected_rows(store, selector).items():
            freed += _free_rows(store.blocks[bid], np.unique(np.asarray(row_list, np.int64)), to)
    if freed:
        store.counters.add_freed("free_api", freed)
    return freed


def _free_rows(block: Block, rows: np.ndarray, to: int) -> int:
    freed = 0
    f = block.frequency
    for number in sorted(block.chunks):
        chunk = block.chunks[number]
        first = number * block.chunk_len
        if first * f >= to:
            continue
        present, pos = chunk.positions(rows)
        if not pos.size:
            continue
        if block.chunk_end(number) * f <= to:
            freed += int(pos.size)
            chunk.keep_only(np.setdiff1d(chunk.row_ids(), rows[present]))
            if chunk.row_ids().size == 0:
                del block.chunks[number]
        else:
            cols = -(-(to - first * f) // f)  # columns whose slot time lies before `to`
            chunk.data[pos, :cols] = np.nan
    return freed

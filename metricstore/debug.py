"""`/api/debug/`: counters plus a dump of a host's buffers in cc-metric-store's checkpoint tree shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from metricstore.query import LimitExceeded
from metricstore.store import MetricStore


def _tree() -> dict[str, Any]:
    return {"metrics": {}, "children": {}}


def dump(store: MetricStore, selector: list[str]) -> dict[str, Any]:
    """Without a selector: stats and the hosts per cluster. With `cluster[:host[:level...]]`: the buffers.

    The buffers are copied out under the lock and shaped after it; a dump larger than
    `metric-store.max-points-per-request` is refused (LimitExceeded) before anything is copied."""
    out: dict[str, Any] = {"stats": store.stats()}
    if not selector:
        with store.lock:
            out["clusters"] = {c: store.hosts(c) for c in sorted(store.index)}
        return out
    cluster = selector[0]
    if cluster not in store.index:
        raise KeyError(f"unknown cluster {cluster!r}")
    if len(selector) == 1:
        out["hosts"] = store.hosts(cluster)
        return out
    host, prefix = selector[1], "/".join(selector[2:])
    with store.lock:
        metrics = store.index[cluster].get(host)
        if metrics is None:
            raise KeyError(f"unknown host {host!r} in cluster {cluster!r}")
        wanted = [(metric, level, bid, row) for metric, levels in sorted(metrics.items())
                  for level, (bid, row) in sorted(levels.items())
                  if not prefix or level == prefix or level.startswith(prefix + "/")]
        points = sum(_extent(store, bid)[1] for _m, _l, bid, _r in wanted)
        limit = store.settings.max_points_per_request
        if points > limit:
            raise LimitExceeded(f"the dump has {points:,} points, more than metric-store.max-points-per-request "
                                f"({limit:,}): select a level below the host")
    tree = _tree()
    for metric, level, bid, row in wanted:
        with store.lock:  # one buffer per hold: ingest waits for one copy at most
            buffer = _copy(store, bid, row)
        node = tree
        for part in level.split("/") if level else ():
            node = node["children"].setdefault(part, _tree())
        node["metrics"][metric] = _shape(*buffer)
    out["tree"] = tree
    return out


def _extent(store: MetricStore, bid: int) -> tuple[int, int]:
    """(oldest slot, number of slots up to the newest) of a block; (0, 0) when it holds nothing."""
    block = store.blocks[bid]
    oldest = block.oldest_slot()
    if oldest is None or block.head < oldest:
        return 0, 0
    return oldest, block.head - oldest + 1


def _copy(store: MetricStore, bid: int, row: int) -> tuple[int, int, int, np.ndarray]:
    """(frequency, phase, oldest slot, values) of one row: the raw copy taken under the lock."""
    block = store.blocks[bid]
    oldest, count = _extent(store, bid)
    data = block.read(np.asarray([row]), np.asarray([oldest]), count)[0]
    return block.frequency, max(int(block.phase[row]), 0), oldest, data


def _shape(frequency: int, phase: int, oldest: int, data: np.ndarray) -> dict[str, Any]:
    """cc-metric-store's buffer dump: leading gaps cut, NaN as null. The values go out as a float64 array,
    which orjson writes byte for byte like the list of Python floats, without making one per value."""
    if not data.size:
        return {"frequency": frequency, "start": None, "data": []}
    present = np.nonzero(~np.isnan(data))[0]
    skip = int(present[0]) if present.size else len(data)
    return {"frequency": frequency, "start": (oldest + skip) * frequency + phase,
            "data": data[skip:].astype(np.float64)}

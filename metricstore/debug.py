"""`/api/debug/`: counters plus a dump of a host's buffers in cc-metric-store's checkpoint tree shape."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from metricstore.store import MetricStore


def _tree() -> dict[str, Any]:
    return {"metrics": {}, "children": {}}


def dump(store: MetricStore, selector: list[str]) -> dict[str, Any]:
    """Without a selector: stats and the hosts per cluster. With `cluster[:host[:level...]]`: the buffers."""
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
        tree = _tree()
        for metric, levels in sorted(metrics.items()):
            for level, (bid, row) in sorted(levels.items()):
                if prefix and level != prefix and not level.startswith(prefix + "/"):
                    continue
                node = tree
                for part in level.split("/") if level else ():
                    node = node["children"].setdefault(part, _tree())
                node["metrics"][metric] = _buffer(store, bid, row)
    out["tree"] = tree
    return out


def _buffer(store: MetricStore, bid: int, row: int) -> dict[str, Any]:
    block = store.blocks[bid]
    oldest = block.oldest_slot()
    f = block.frequency
    if oldest is None or block.head < oldest:
        return {"frequency": f, "start": None, "data": []}
    phase = max(int(block.phase[row]), 0)
    count = block.head - oldest + 1
    data = block.read(np.asarray([row]), np.asarray([oldest]), count)[0]
    present = np.nonzero(~np.isnan(data))[0]
    skip = int(present[0]) if present.size else len(data)
    data = data[skip:]
    return {"frequency": f, "start": (oldest + skip) * f + phase,
            "data": [None if math.isnan(v) else v for v in data.tolist()]}

"""Node health from buffer freshness: which expected metrics are missing or degraded on a node."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import orjson

from metricstore.store import MetricStore

STALE_STEPS = 5  # a buffer is healthy while its newest value is at most 5 frequencies old
State = Literal["full", "partial", "failed"]


def classify(expected: Iterable[str], fresh: dict[str, tuple[int, int]]) -> tuple[State, dict[str, list[str]]]:
    """Pure rule. `fresh[metric]` = (healthy buffers, all buffers); absent metric = never seen.

    missing: no buffer, or none fresh. degraded: some buffers fresh, some stale (e.g. one socket
    stopped reporting). full: nothing missing or degraded; failed: everything missing."""
    missing, degraded = [], []
    names = list(expected)
    for name in names:
        healthy, total = fresh.get(name, (0, 0))
        if healthy == 0:
            missing.append(name)
        elif healthy < total:
            degraded.append(name)
    if not missing and not degraded:
        state: State = "full"
    elif names and len(missing) == len(names):
        state = "failed"
    else:
        state = "partial"
    return state, {"missing": sorted(missing), "degraded": sorted(degraded)}


def freshness(store: MetricStore, cluster: str, hostname: str, metrics: Iterable[str],
              now: float) -> dict[str, tuple[int, int]]:
    """(healthy, total) buffer counts per metric of a host."""
    out: dict[str, tuple[int, int]] = {}
    with store.lock:
        for metric in metrics:
            levels = store.levels(cluster, hostname, metric)
            if not levels:
                continue
            by_block: dict[int, list[int]] = {}
            for bid, row in levels.values():
                by_block.setdefault(bid, []).append(row)
            healthy = total = 0
            for bid, rows in by_block.items():
                last = store.last_seen(bid, np.asarray(rows, np.int64))
                limit = now - STALE_STEPS * store.blocks[bid].frequency
                healthy += int(np.count_nonzero((last >= 0) & (last >= limit)))
                total += len(rows)
            out[metric] = (healthy, total)
    return out


def node_health(store: MetricStore, cluster: str, hostname: str,
                metrics: Iterable[str] | None = None) -> tuple[State, dict[str, list[str]]]:
    """State of one node for the node-state projection; expected metrics default to the cluster's."""
    expected = list(metrics) if metrics is not None else store.catalogue.metric_names(cluster)
    if cluster not in store.index or hostname not in store.index[cluster]:
        return "failed", {"missing": sorted(expected), "degraded": []}
    return classify(expected, freshness(store, cluster, hostname, expected, store.clock()))


def healthcheck(store: MetricStore, cluster: str, nodes: list[str], metric_names: list[str] | None) -> dict[str, Any]:
    """The `/api/healthcheck/` answer: per node `State` and `HealthMetrics` (a JSON *string*)."""
    out: dict[str, Any] = {}
    for node in nodes:
        state, lists = node_health(store, cluster, node, metric_names)
        out[node] = {"State": state,
                     "HealthMetrics": orjson.dumps({"degraded": lists["degraded"],
                                                    "missing": lists["missing"]}).decode()}
    return out

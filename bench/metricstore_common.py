"""Shared parts of the metric store benchmarks: the synthetic cluster, line batches, RSS, CPU pinning."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator

NODE_METRICS = [f"node_m{i}" for i in range(20)]
HW_METRICS = [f"hw_m{i}" for i in range(5)]
HWTHREADS = 72
FREQUENCY = 60


def metrics_config() -> dict[str, dict[str, object]]:
    """Standalone `metrics` section: 20 node metrics (avg) and 5 hwthread metrics (sum), all at 60 s."""
    cfg: dict[str, dict[str, object]] = {m: {"frequency": FREQUENCY, "aggregation": "avg"} for m in NODE_METRICS}
    cfg.update({m: {"frequency": FREQUENCY, "aggregation": "sum"} for m in HW_METRICS})
    return cfg


def host(i: int) -> str:
    return f"n{i:05d}"


def node_lines(i: int, ts: int) -> list[str]:
    """All 380 lines one node's collector sends per interval (tags sorted, as cc-lib sinks emit them)."""
    h = host(i)
    out = [f"{m},cluster=bench,hostname={h},type=node,type-id=0 value={(i * 7 + j) % 100 + 0.25} {ts}"
           for j, m in enumerate(NODE_METRICS)]
    out += [f"{m},cluster=bench,hostname={h},type=hwthread,type-id={t} value={(t + j) % 50}.5 {ts}"
            for j, m in enumerate(HW_METRICS) for t in range(HWTHREADS)]
    return out


def batches(nodes: int, ts: int, lines_per_batch: int) -> Iterator[bytes]:
    """The lines of `nodes` nodes at time `ts`, cut into batches of `lines_per_batch`."""
    buf: list[str] = []
    for i in range(nodes):
        buf.extend(node_lines(i, ts))
        while len(buf) >= lines_per_batch:
            yield ("\n".join(buf[:lines_per_batch]) + "\n").encode()
            del buf[:lines_per_batch]
    if buf:
        yield ("\n".join(buf) + "\n").encode()


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pin(cpu: int) -> None:
    """Run this process on one core, so figures are per core."""
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def median(values: list[float]) -> float:
    return statistics.median(values)

"""Shared helpers of the benchmarks: import path, statistics, CPU accounting and table printing."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    # Benchmarks run as `python bench/<name>.py`; the project and tests.support live at the repo root.
    sys.path.insert(0, str(REPO))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values."""
    return statistics.median(values) if values else float("nan")


def _cpu_ticks() -> tuple[int, int, int]:
    """(all, busy, steal) ticks of the machine since boot, from /proc/stat; zeros where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return 0, 0, 0
    ticks = [int(v) for v in fields[:8]] + [0] * (8 - len(fields[:8]))
    total = sum(ticks)
    idle, iowait, steal = ticks[3], ticks[4], ticks[7]
    return total, total - idle - iowait - steal, steal


def process_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds a process has used so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Meter:
    """Wall time, this process's and another process's CPU, the machine's busy cores and steal over a span."""

    other_pid: int | None = None
    wall: float = 0.0
    own_cpu: float = 0.0
    other_cpu: float = 0.0
    busy_cores: float = 0.0
    steal: float = 0.0

    def __enter__(self) -> Meter:
        self._t = time.perf_counter()
        self._own = sum(os.times()[:2])
        self._other = process_cpu_seconds(self.other_pid) if self.other_pid else 0.0
        self._ticks = _cpu_ticks()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.perf_counter() - self._t
        self.own_cpu = sum(os.times()[:2]) - self._own
        if self.other_pid:
            self.other_cpu = process_cpu_seconds(self.other_pid) - self._other
        total, busy, steal = _cpu_ticks()
        elapsed = total - self._ticks[0]
        self.steal = (steal - self._ticks[2]) / elapsed if elapsed > 0 else 0.0
        self.busy_cores = (busy - self._ticks[1]) / os.sysconf("SC_CLK_TCK") / self.wall if self.wall else 0.0

    def foreign_cores(self, *ours: float) -> float:
        """Cores busy with processes other than ours (other tenants of the machine), given our CPU seconds."""
        return max(0.0, self.busy_cores - sum(ours) / self.wall) if self.wall else 0.0


def machine_line() -> str:
    """One line naming the machine: CPUs, Python, and how busy it is already (other processes, steal)."""
    with Meter() as m:
        time.sleep(1.0)
    return (
        f"os.cpu_count()={os.cpu_count()}  python {sys.version.split()[0]}  before start: "
        f"{m.busy_cores:.2f} cores busy with other processes, steal {m.steal:.0%} (figures drop when these are high)"
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)

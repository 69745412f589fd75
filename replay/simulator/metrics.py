"""Node agents: metric lines per node and scope, consistent with what the jobs on the node do."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from replay.simulator.model import SimJob
from replay.simulator.topology import Machine

#: Per profile: (thread activity, flops fraction of peak, ipc, memory bandwidth fraction, memory fraction,
#: file GB/s, accelerator utilisation %).
PROFILE_LEVELS: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "compute": (0.95, 0.55, 2.2, 0.25, 0.30, 0.05, 85.0),
    "memory": (0.95, 0.08, 0.6, 0.80, 0.60, 0.05, 70.0),
    "idle": (0.02, 0.0, 0.3, 0.01, 0.04, 0.0, 0.0),
    "imbalance": (0.95, 0.40, 1.8, 0.15, 0.25, 0.05, 40.0),
    "io": (0.35, 0.02, 0.8, 0.10, 0.20, 4.0, 10.0),
    "gpu_idle": (0.50, 0.05, 1.0, 0.10, 0.20, 0.05, 0.0),
}
IDLE_NODE = (0.01, 0.0, 0.4, 0.005, 0.03, 0.0, 0.0)


@dataclass(frozen=True)
class ThreadLoad:
    """What one hardware thread does at one moment."""

    activity: float
    flops: float
    ipc: float


class NodeAgents:
    """Turns the running jobs of a machine into samples, as cc-metric-collector on every node would."""

    def __init__(self, machine: Machine, seed: int, detail: str = "full") -> None:
        if detail not in ("full", "node"):
            raise ValueError(f"detail must be 'full' or 'node', not {detail!r}")
        self.machine = machine
        self.seed = seed
        #: "full": every metric at its native scope; "node": one node-level line per metric (large soaks).
        self.detail = detail
        self.metrics = {m["name"]: m for m in machine.metric_config}
        flops_peak = next((m.get("peak", 1000) for m in machine.metric_config if m["name"] == "flops_any"), 1000)
        self.flops_per_thread = float(flops_peak) / max(machine.threads_per_node, 1)
        self.bw_peak = float(next((m.get("peak", 100) for m in machine.metric_config if m["name"] == "mem_bw"), 100))
        self.mem_peak = float(next((m.get("peak", 256) for m in machine.metric_config if m["name"] == "mem_used"), 256))

    def lines(self, at: int, running: Iterable[SimJob], hosts: Iterable[str] | None = None) -> list[str]:
        """Line-protocol samples of every metric at its native scope for `hosts` (default: all)."""
        jobs_on = self._jobs_by_host(running)
        out: list[str] = []
        for host in hosts if hosts is not None else self.machine.hosts:
            jobs = jobs_on.get(host, [])
            if self.detail == "node":
                prefix = f"cluster={self.machine.cluster},hostname={host},type=node,type-id=0"
                for name, value in self.node_values(at, jobs, host).items():
                    out.append(f"{name},{prefix} value={value:.3f} {at}")
                continue
            out.extend(self._host_lines(host, at, jobs, self._rng(at, host)))
        return out

    def _rng(self, at: int, host: str) -> random.Random:
        # str hashes are salted per process; crc32 keeps runs with one seed identical.
        return random.Random(zlib.crc32(f"{self.seed}:{at}:{host}".encode()))

    def node_values(self, at: int, jobs: list[SimJob], host: str) -> dict[str, float]:
        """Node-level value of every metric on one host, computed per job rather than per thread."""
        rng = self._rng(at, host)
        return {k: v * (1 + rng.gauss(0, 0.03)) for k, v in self.base_node_values(at, jobs, host).items()}

    def base_node_values(self, at: int, jobs: list[SimJob], host: str) -> dict[str, float]:
        """Node-level values without measurement noise."""
        m = self.machine
        threads = max(m.threads_per_node, 1)
        idle_threads = threads - sum(len(j.hwthreads.get(host, ())) for j in jobs)
        activity = idle_threads * IDLE_NODE[0]
        ipc = idle_threads * IDLE_NODE[2]
        flops = 0.0
        bw_share = idle_threads * IDLE_NODE[3]
        mem_share = IDLE_NODE[4]
        for job in jobs:
            levels = PROFILE_LEVELS[job.profile]
            n = len(job.hwthreads.get(host, ()))
            busy = n // 4 if job.profile == "imbalance" else n
            activity += busy * levels[0] + (n - busy) * 0.05
            ipc += busy * levels[2] + (n - busy) * 0.3
            flops += busy * levels[1] * self.flops_per_thread
            bw_share += n * levels[3]
            mem_share = max(mem_share, levels[4])
            if job.final_state == "out-of-memory" and job.end_time - at < 600:
                mem_share = 0.97
        act = activity / threads
        values = {
            "cpu_user": act * 100, "flops_any": flops, "ipc": ipc / threads, "clock": 1200 + 1300 * act,
            "mem_bw": bw_share / threads * self.bw_peak, "cpu_power": len(m.sockets) * (90 + 240 * act),
            "mem_power": len(m.sockets) * (15 + 60 * bw_share / threads), "cpu_load": activity,
            "mem_used": mem_share * self.mem_peak,
            "net_bw": 6.0 if any(j.num_nodes > 1 for j in jobs) else 0.05,
            "file_bw": max((PROFILE_LEVELS[j.profile][5] for j in jobs), default=0.0),
        }
        util = {acc: 0.0 for acc in m.accelerators}
        for job in jobs:
            for acc in job.accelerators.get(host, ()):
                util[acc] = PROFILE_LEVELS[job.profile][6]
        if util:
            values["acc_utilization"] = sum(util.values()) / len(util)
            values["acc_mem_used"] = sum(2 + 0.4 * u for u in util.values())
            values["acc_power"] = sum(55 + 3 * u for u in util.values())
        return {k: max(v, 0.0) for k, v in values.items() if k in self.metrics}

    @staticmethod
    def _jobs_by_host(running: Iterable[SimJob]) -> dict[str, list[SimJob]]:
        out: dict[str, list[SimJob]] = {}
        for job in running:
            for host in job.hosts:
                out.setdefault(host, []).append(job)
        return out

    def _thread_loads(self, host: str, jobs: list[SimJob], at: int) -> dict[int, tuple[ThreadLoad, tuple[float, ...]]]:
        loads: dict[int, tuple[ThreadLoad, tuple[float, ...]]] = {}
        for hw in self.machine.hwthreads:
            loads[hw] = (ThreadLoad(IDLE_NODE[0], 0.0, IDLE_NODE[2]), IDLE_NODE)
        for job in jobs:
            levels = PROFILE_LEVELS[job.profile]
            threads = job.hwthreads.get(host, ())
            busy = len(threads) // 4 if job.profile == "imbalance" else len(threads)
            for i, hw in enumerate(threads):
                active = i < busy
                activity = levels[0] if active else 0.05
                flops = levels[1] * self.flops_per_thread if active else 0.0
                loads[hw] = (ThreadLoad(activity, flops, levels[2] if active else 0.3), levels)
        return loads

    def _host_lines(self, host: str, at: int, jobs: list[SimJob], rng: random.Random) -> list[str]:
        m = self.machine
        loads = self._thread_loads(host, jobs, at)
        noise = rng.gauss
        prefix = f"cluster={m.cluster},hostname={host}"
        out: list[str] = []

        def emit(name: str, scope: str, ident: object, value: float) -> None:
            if name in self.metrics:
                tag = f"type={scope},type-id={ident}"
                out.append(f"{name},{prefix},{tag} value={max(value, 0.0) * (1 + noise(0, 0.03)):.3f} {at}")

        for hw, (load, _) in loads.items():
            emit("cpu_user", "hwthread", hw, load.activity * 100)
            emit("flops_any", "hwthread", hw, load.flops)
            emit("ipc", "hwthread", hw, load.ipc)
            emit("clock", "hwthread", hw, 1200 + 1300 * load.activity)
        node_levels = [loads[hw][1] for hw in m.hwthreads]
        for index, socket in enumerate(m.sockets):
            share = sum(loads[hw][1][3] for hw in socket) / max(len(socket), 1)
            act = sum(loads[hw][0].activity for hw in socket) / max(len(socket), 1)
            emit("mem_bw", "socket", index, share * self.bw_peak / max(len(m.sockets), 1))
            emit("cpu_power", "socket", index, 90 + 240 * act)
            emit("mem_power", "socket", index, 15 + 60 * share)
        busy = sum(loads[hw][0].activity for hw in m.hwthreads)
        mem_share = max(level[4] for level in node_levels)
        if any(j.final_state == "out-of-memory" and j.end_time - at < 600 for j in jobs):
            mem_share = 0.97
        emit("cpu_load", "node", 0, busy)
        emit("mem_used", "node", 0, mem_share * self.mem_peak)
        emit("net_bw", "node", 0, 6.0 if any(j.num_nodes > 1 for j in jobs) else 0.05)
        emit("file_bw", "node", 0, max((PROFILE_LEVELS[j.profile][5] for j in jobs), default=0.0))
        self._accelerator_lines(host, jobs, emit)
        return out

    def _accelerator_lines(self, host: str, jobs: list[SimJob], emit: Any) -> None:
        util: dict[str, float] = {acc: 0.0 for acc in self.machine.accelerators}
        for job in jobs:
            for acc in job.accelerators.get(host, ()):
                util[acc] = PROFILE_LEVELS[job.profile][6]
        for acc, u in util.items():
            emit("acc_utilization", "accelerator", acc, u)
            emit("acc_mem_used", "accelerator", acc, 2 + 0.4 * u)
            emit("acc_power", "accelerator", acc, 55 + 3 * u)


def metric_names(metric_config: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the configured metrics."""
    return [m["name"] for m in metric_config]

"""`ccstream simulate` and `ccstream demo`: drive a ccstream server as a cluster's adapters and agents would."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from replay.simulator.metrics import NodeAgents
from replay.simulator.model import Scheduler
from replay.simulator.options import TEMPLATES
from replay.simulator.run import LoopSettings, Report, SimulatedCluster, Simulation
from replay.simulator.senders import (
    Counters,
    HttpMetricSender,
    JobSender,
    MetricSender,
    NatsJobSender,
    NatsMetricSender,
    RestJobSender,
)
from replay.simulator.topology import Machine, machine_from_cluster


class SimulationError(Exception):
    """A simulation that cannot start; the message says why."""


def load_machines(paths: Sequence[str], nodes: int | None) -> list[tuple[dict[str, Any], Machine]]:
    """cluster.json files (default: the shipped templates) as machines of at most `nodes` hosts."""
    files = [Path(p) for p in paths] or sorted(TEMPLATES.glob("*.json"))
    if not files:
        raise SimulationError("no cluster.json given and no templates found")
    out = []
    for file in files:
        try:
            cluster = orjson.loads(file.read_bytes())
            out.append((cluster, machine_from_cluster(cluster, nodes)))
        except (OSError, orjson.JSONDecodeError, KeyError, ValueError) as exc:
            raise SimulationError(f"{file}: not a usable cluster.json: {exc}") from None
    return out


def build_clusters(machines: list[tuple[dict[str, Any], Machine]], args: argparse.Namespace,
                   start: int) -> list[SimulatedCluster]:
    """A scheduler and node agents per machine; job ids of different clusters never collide."""
    out = []
    for index, (_, machine) in enumerate(machines):
        scheduler = Scheduler(machine, seed=args.seed + index, start=start, jobs_per_hour=args.jobs_per_hour,
                              first_job_id=(index + 1) * 10_000_000 + (start // 60) % 1_000_000 * 10)
        out.append(SimulatedCluster(machine, scheduler, NodeAgents(machine, args.seed + index, args.detail)))
    return out


async def run_simulation(args: argparse.Namespace) -> Report:
    """One simulation run against a server, as configured by the command line."""
    machines = load_machines(args.cluster, args.nodes)
    start = args.start if args.start is not None else int(time.time())
    counters = Counters()
    headers = {"X-Auth-Token": args.token} if args.token else {}
    nc: Any = None
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=60.0,
                                 limits=httpx.Limits(max_connections=32)) as client:
        if "nats" in (args.transport, args.metrics):
            import nats

            nc = await nats.connect(args.nats_url, connect_timeout=5)
        try:
            jobs: JobSender = (NatsJobSender(nc, args.job_subject, args.node_subject, counters)
                               if args.transport == "nats" else RestJobSender(client, counters))
            metrics: MetricSender | None = None
            if args.metrics == "http":
                metrics = HttpMetricSender(client, counters)
            elif args.metrics == "nats":
                metrics = NatsMetricSender(nc, args.metric_subject, counters)
            settings = LoopSettings(speed=args.speed, duration=args.duration, metric_interval=args.interval)
            simulation = Simulation(build_clusters(machines, args, start), jobs, metrics, counters, settings)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, simulation.stop)
            return await simulation.run(start)
        finally:
            if nc is not None:
                await nc.drain()


def cmd_simulate(args: argparse.Namespace) -> None:
    """Run the simulator and print its report."""
    try:
        report = asyncio.run(run_simulation(args))
    except (SimulationError, httpx.HTTPError, OSError) as exc:
        raise SimulationError(str(exc)) from None
    for line in report.lines():
        print(line)

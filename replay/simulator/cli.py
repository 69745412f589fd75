"""`ccstream simulate` and `ccstream demo`: drive a ccstream server as a cluster's adapters and agents would."""

from __future__ import annotations

import argparse
import asyncio
import math
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


def start_time(start: int | None, speed: float, duration: float | None, now: int) -> int:
    """The simulated start: `start` if given, else the latest start from which a run of `duration` at
    `speed` never gets ahead of the wall clock, so that an accelerated run ends at the present.

    The metric store refuses samples more than a few minutes in the future, so a run at 60x that
    started at `now` would have most of its samples refused. A start in the future is refused for the
    same reason. Without a duration the run starts now (there is no end to finish at the present).
    """
    if start is not None:
        if start > now:
            raise SimulationError(f"--start {start} lies in the future (now is {now}): the metric store "
                                  "would refuse the samples")
        return start
    if duration is None or speed <= 1:
        return now
    return now - math.ceil(duration * (1 - 1 / speed))


async def server_clusters(client: httpx.AsyncClient) -> list[str] | None:
    """The clusters the server has configured (`GET /api/clusters/`), or None when it has no such route.

    Events of a cluster the server does not know are all refused, so the simulator asks before sending.
    """
    response = await client.get("/api/clusters/")
    if response.status_code == 404:
        return None
    if response.status_code in (401, 403):
        raise SimulationError(f"{client.base_url}: the token was refused ({response.status_code}); "
                              "give a JWT with the api role (--token or $CCSTREAM_TOKEN)")
    if response.status_code >= 300:
        raise SimulationError(f"{client.base_url}/api/clusters/: {response.status_code} {response.text[:200]}")
    return sorted(str(c["name"]) for c in response.json().get("clusters") or [] if isinstance(c, dict))


async def check_clusters(client: httpx.AsyncClient, machines: list[tuple[dict[str, Any], Machine]]) -> None:
    """Refuse to start when the server does not have a simulated cluster: one clear message, not
    dozens of refused events."""
    known = await server_clusters(client)
    if known is None:
        return
    missing = sorted({m.cluster for _, m in machines} - set(known))
    if missing:
        names = ", ".join(known) if known else "none"
        raise SimulationError(f"the server at {client.base_url} has no cluster {', '.join(missing)} "
                              f"(it has: {names}); add its cluster.json to the server's job archive first")


async def run_simulation(args: argparse.Namespace) -> Report:
    """One simulation run against a server, as configured by the command line."""
    machines = load_machines(args.cluster, args.nodes)
    start = start_time(args.start, args.speed, args.duration, int(time.time()))
    counters = Counters()
    headers = {"X-Auth-Token": args.token} if args.token else {}
    nc: Any = None
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=60.0,
                                 limits=httpx.Limits(max_connections=32)) as client:
        await check_clusters(client, machines)
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
            settings = LoopSettings(speed=args.speed, duration=args.duration, metric_interval=args.interval,
                                    follow_wall_clock=True)
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

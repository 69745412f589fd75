"""The simulation loop: a simulated clock drives schedulers and node agents, senders deliver what they say."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from replay.simulator.adapter import node_state_payload, start_payload, stop_payload
from replay.simulator.metrics import NodeAgents
from replay.simulator.model import Ended, Scheduler, SchedulerEvent, Started
from replay.simulator.senders import Counters, JobSender, MetricSender
from replay.simulator.topology import Machine


@dataclass(frozen=True)
class SimulatedCluster:
    """One machine with its scheduler and node agents."""

    machine: Machine
    scheduler: Scheduler
    agents: NodeAgents


@dataclass(frozen=True)
class LoopSettings:
    """How fast and how long to run, and how often node agents and sinfo report."""

    speed: float = 1.0
    duration: float | None = None
    metric_interval: int = 60
    node_state_interval: int = 300
    concurrency: int = 16
    #: Never run ahead of the wall clock: a run that starts in the past catches up at `speed`, then goes on
    #: in real time (the demo's way to have running jobs with recent metrics from the first minute, and
    #: `ccstream simulate`'s, since the metric store refuses samples from more than 600 s in the future).
    follow_wall_clock: bool = False


@dataclass(frozen=True)
class Report:
    """What a run sent and achieved."""

    simulated_seconds: float
    wall_seconds: float
    counters: Counters

    def lines(self) -> list[str]:
        c = self.counters
        wall = max(self.wall_seconds, 1e-9)
        return [
            f"simulated {self.simulated_seconds:.0f} s in {self.wall_seconds:.1f} s wall",
            f"job/node-state events: {c.events_sent} sent, {c.events_acknowledged} acknowledged, "
            f"{c.events_acknowledged / wall:.0f}/s",
            f"metric samples: {c.samples_sent} sent, {c.samples_acknowledged} acknowledged, "
            f"{c.samples_acknowledged / wall:.0f}/s",
            f"errors: {c.errors}" + (f" (first: {c.error_examples[0]})" if c.error_examples else ""),
        ]


class Simulation:
    """Runs clusters in real or accelerated time against ccstream's public interfaces."""

    def __init__(self, clusters: Sequence[SimulatedCluster], jobs: JobSender, metrics: MetricSender | None,
                 counters: Counters, settings: LoopSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clusters = list(clusters)
        self.jobs = jobs
        self.metrics = metrics
        self.counters = counters
        self.settings = settings
        self.clock = clock
        #: Simulated time reached so far: every event up to it has been sent.
        self.now: int | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """End the run after the step in hand."""
        self._stop.set()

    async def run(self, start: int) -> Report:
        """Simulate from `start` until the duration is over or stop() is called."""
        s = self.settings
        wall0 = self.clock()
        end = None if s.duration is None else start + s.duration
        next_metric = start - start % s.metric_interval + s.metric_interval
        next_state = start
        now = start
        while not self._stop.is_set():
            target = start + (self.clock() - wall0) * s.speed
            wall_now = time.time()
            caught_up = s.follow_wall_clock and target >= wall_now
            if caught_up:
                target = wall_now
            if end is not None:
                target = min(target, end)
            while next_metric <= target or next_state <= target:
                step = min(next_metric, next_state)
                await self._advance(step)
                if step == next_metric:
                    await self._send_metrics(step)
                    next_metric += s.metric_interval
                if step == next_state:
                    await self._send_node_states(step)
                    next_state += s.node_state_interval
            await self._advance(int(target))
            now = self.now = int(target)
            if end is not None and now >= end:
                break
            # Once caught up with the wall clock the next step is due in real seconds, not simulated ones.
            wake = (min(next_metric, next_state) - target) / (1.0 if caught_up else s.speed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=max(0.01, min(wake, 1.0)))
        return Report(now - start, self.clock() - wall0, self.counters)

    async def _advance(self, until: int) -> None:
        for cluster in self.clusters:
            await self._deliver(cluster, cluster.scheduler.advance(until))

    async def _deliver(self, cluster: SimulatedCluster, events: list[SchedulerEvent]) -> None:
        """Send events with bounded concurrency; one job's events stay in order."""
        chains: dict[int, list[SchedulerEvent]] = {}
        for event in events:
            chains.setdefault(event.job.job_id, []).append(event)
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def send_chain(chain: list[SchedulerEvent]) -> None:
            async with gate:
                for event in chain:
                    if isinstance(event, Started):
                        await self.jobs.start(start_payload(event.job, cluster.machine), event.at)
                    elif isinstance(event, Ended):
                        await self.jobs.stop(stop_payload(event.job, cluster.machine, event.state, event.at),
                                             event.at)

        await asyncio.gather(*(send_chain(c) for c in chains.values()))

    async def _send_metrics(self, at: int) -> None:
        if self.metrics is None:
            return
        for cluster in self.clusters:
            lines = cluster.agents.lines(at, cluster.scheduler.running_jobs())
            await self.metrics.send(cluster.machine.cluster, lines)

    async def _send_node_states(self, at: int) -> None:
        for cluster in self.clusters:
            body = node_state_payload(cluster.machine, cluster.scheduler.node_states(),
                                      cluster.scheduler.running_jobs())
            await self.jobs.node_states(body, at)

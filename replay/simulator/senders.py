"""Transports of the simulator: REST with a JWT, NATS, and the metric store's line-protocol endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from replay.simulator.adapter import nats_job_line, nats_node_state_line


@dataclass
class Counters:
    """What was sent and what came back."""

    events_sent: int = 0
    events_acknowledged: int = 0
    errors: int = 0
    samples_sent: int = 0
    samples_acknowledged: int = 0
    error_examples: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_examples) < 20:
            self.error_examples.append(text)


class JobSender(Protocol):
    """Delivers scheduler events to ccstream."""

    async def start(self, body: dict[str, Any], at: int) -> None: ...

    async def stop(self, body: dict[str, Any], at: int) -> None: ...

    async def node_states(self, body: dict[str, Any], at: int) -> None: ...


class MetricSender(Protocol):
    """Delivers metric lines to the metric store."""

    async def send(self, cluster: str, lines: Sequence[str]) -> None: ...


class RestJobSender:
    """cc-slurm-adapter over REST: start_job, stop_job, nodestate with `X-Auth-Token`."""

    def __init__(self, client: httpx.AsyncClient, counters: Counters) -> None:
        self.client = client
        self.counters = counters

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        self.counters.events_sent += 1
        for attempt in range(5):
            try:
                response = await self.client.post(path, json=body)
            except httpx.TransportError as exc:
                if attempt == 4:
                    self.counters.error(f"{path}: {exc!r}")
                    return
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            if response.status_code < 300:
                self.counters.events_acknowledged += 1
            else:
                self.counters.error(f"{path}: {response.status_code} {response.text[:200]}")
            return

    async def start(self, body: dict[str, Any], at: int) -> None:
        await self._post("/api/jobs/start_job/", body)

    async def stop(self, body: dict[str, Any], at: int) -> None:
        await self._post("/api/jobs/stop_job/", body)

    async def node_states(self, body: dict[str, Any], at: int) -> None:
        await self._post("/api/nodestate/", body)


class NatsJobSender:
    """cc-slurm-adapter over NATS: line protocol on the job-event and node-state subjects."""

    def __init__(self, nc: Any, job_subject: str, node_subject: str, counters: Counters) -> None:
        self.nc = nc
        self.job_subject = job_subject
        self.node_subject = node_subject
        self.counters = counters

    async def _publish(self, subject: str, line: str) -> None:
        self.counters.events_sent += 1
        try:
            await self.nc.publish(subject, line.encode())
            self.counters.events_acknowledged += 1
        except Exception as exc:
            self.counters.error(f"{subject}: {exc!r}")

    async def start(self, body: dict[str, Any], at: int) -> None:
        await self._publish(self.job_subject, nats_job_line("start_job", body, at))

    async def stop(self, body: dict[str, Any], at: int) -> None:
        await self._publish(self.job_subject, nats_job_line("stop_job", body, at))

    async def node_states(self, body: dict[str, Any], at: int) -> None:
        await self._publish(self.node_subject, nats_node_state_line(body, at))


class HttpMetricSender:
    """cc-metric-collector's HTTP sink: batches POSTed to `/api/write/?cluster=`."""

    def __init__(self, client: httpx.AsyncClient, counters: Counters, batch: int = 5000) -> None:
        self.client = client
        self.counters = counters
        self.batch = batch

    async def send(self, cluster: str, lines: Sequence[str]) -> None:
        for start in range(0, len(lines), self.batch):
            chunk = lines[start : start + self.batch]
            self.counters.samples_sent += len(chunk)
            try:
                response = await self.client.post(
                    "/api/write/", params={"cluster": cluster}, content="\n".join(chunk).encode()
                )
            except httpx.TransportError as exc:
                self.counters.error(f"/api/write/: {exc!r}")
                continue
            if response.status_code < 300:
                self.counters.samples_acknowledged += len(chunk)
            else:
                self.counters.error(f"/api/write/: {response.status_code} {response.text[:200]}")


class NatsMetricSender:
    """cc-metric-collector's NATS sink: batches of lines published on one subject."""

    def __init__(self, nc: Any, subject: str, counters: Counters, batch: int = 5000) -> None:
        self.nc = nc
        self.subject = subject
        self.counters = counters
        self.batch = batch

    async def send(self, cluster: str, lines: Sequence[str]) -> None:
        for start in range(0, len(lines), self.batch):
            chunk = lines[start : start + self.batch]
            self.counters.samples_sent += len(chunk)
            try:
                await self.nc.publish(self.subject, "\n".join(chunk).encode())
                self.counters.samples_acknowledged += len(chunk)
            except Exception as exc:
                self.counters.error(f"{self.subject}: {exc!r}")

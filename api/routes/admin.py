"""Operator endpoints: agent lag, failures and quarantined events, skip and retry, stops waiting for their start."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from api.agents import RequestRefused, check_request, file_and_wait
from api.errors import ApiError
from api.responses import JSON
from api.routes.common import parse_int, services_of
from projections import queries
from streams.runtime import AgentRunner
from streams.runtime.quarantine import Action

#: Seconds a skip or retry request waits for the agent to act on it before answering 202.
REQUEST_WAIT = 5.0


def build_router(admin_auth: Any) -> APIRouter:
    """Admin routes, behind the `admin` role."""
    router = APIRouter(dependencies=[Depends(admin_auth)])

    @router.get("/api/admin/status")
    async def status(request: Request) -> JSON:
        """Log head; per agent, checkpoint, lag and the last failure; the metric store's figures; and
        `unknownHosts`: hosts of job starts (`jobs`) and of metric lines (`metrics`) that no subcluster
        nodelist of their cluster lists, accepted but counted per cluster (`byCluster`) and listed with
        count and first/last seen, most recent first (at most 100 each; `evicted` says how many fell off)."""
        services = services_of(request)
        agents = await run_in_threadpool(lambda: [_agent_json(r) for r in services.runners()])
        body: dict[str, Any] = {"log": {"head": services.log.head()}, "agents": agents,
                                "unknownHosts": {"jobs": services.intake.unknown_hosts.snapshot()}}
        if services.agent_state is not None:
            body["archiverPending"] = len(services.agent_state.pending("archiver"))
        if services.metric_store is not None:
            stats = services.metric_store.stats()
            body["unknownHosts"]["metrics"] = stats.pop("unknown_hosts")
            body["metricStore"] = stats
        return JSON(body)

    @router.post("/api/admin/agents/{agent}/skip/{position}")
    async def skip_event(agent: str, position: str, request: Request) -> JSON:
        """Skip the event an agent is blocked on: quarantined with its last error, the agent goes on."""
        return await _file(request, agent, position, "skip")

    @router.post("/api/admin/agents/{agent}/retry/{position}")
    async def retry_event(agent: str, position: str, request: Request) -> JSON:
        """Apply a quarantined event again (after a fix); it stays quarantined, with the new error, if it fails."""
        return await _file(request, agent, position, "retry")

    @router.get("/api/admin/parked-stops")
    async def parked_stops(request: Request) -> JSON:
        """Stops that arrived before their job's start, still waiting for it."""
        with services_of(request).reader.connect() as conn:
            rows = queries.parked_stops(conn)
        return JSON(
            [
                {
                    "eventId": r["event_id"],
                    "cluster": r["cluster"],
                    "jobId": r["job_id"],
                    "startTime": r["start_time"],
                    "jobState": r["job_state"],
                    "stopTime": r["stop_time"],
                    "receivedAt": r["received_at"],
                }
                for r in rows
            ]
        )

    return router


def _agent_json(runner: AgentRunner) -> dict[str, Any]:
    body = asdict(runner.status())
    body["quarantine"] = [asdict(q) for q in runner.quarantined()]
    body["requests"] = [asdict(r) for r in runner.agent.requests()]
    return body


async def _file(request: Request, agent: str, raw_position: str, action: Action) -> JSON:
    services = services_of(request)
    position = parse_int(raw_position, "position")
    runner = next((r for r in services.runners() if r.agent.name == agent), None)
    if runner is None:
        names = ", ".join(r.agent.name for r in services.runners())
        raise ApiError(404, f"no agent {agent!r} (agents: {names})")
    try:  # off the event loop: it reads the agent's store
        await run_in_threadpool(check_request, runner.agent, position, action, services.log.head())
    except RequestRefused as exc:
        raise ApiError(400, str(exc)) from None

    outcome = (await run_in_threadpool(file_and_wait, runner.agent, position, action, REQUEST_WAIT,
                                       runner.nudge)).as_json()
    return JSON(outcome, status_code=200 if outcome["settled"] else 202)

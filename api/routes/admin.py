"""Operator endpoints: agent lag and failures, stops waiting for their start."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request

from api.responses import JSON
from api.routes.common import services_of
from projections import queries


def build_router(admin_auth: Any) -> APIRouter:
    """Admin routes, behind the `admin` role."""
    router = APIRouter(dependencies=[Depends(admin_auth)])

    @router.get("/api/admin/status")
    async def status(request: Request) -> JSON:
        """Log head and, per agent, checkpoint, lag and the last failure."""
        services = services_of(request)
        runners = [services.runner] + ([services.archiver] if services.archiver is not None else [])
        body: dict[str, Any] = {"log": {"head": services.log.head()}, "agents": [asdict(r.status()) for r in runners]}
        if services.agent_state is not None:
            body["archiverPending"] = len(services.agent_state.pending("archiver"))
        if services.metric_store is not None:
            body["metricStore"] = services.metric_store.stats()
        return JSON(body)

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

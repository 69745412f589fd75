"""Node states: cc-backend's `POST|PUT /api/nodestate/`, plus the current states and their history."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.bootstrap import Services
from api.errors import ApiError
from api.readpool import ReadRoute
from api.responses import JSON
from api.routes.common import parse_int, reject_unknown_params, rejection, services_of
from projections import node_queries
from streams.ingest.nodestate import NodeStateIntake
from streams.ingest.outcomes import Rejected

DAY = 86400


def _nodestate_intake(services: Services) -> NodeStateIntake:
    if services.nodestate is None:
        raise ApiError(503, "node-state intake is not configured")
    return services.nodestate


def _cluster(request: Request, services: Services) -> str:
    cluster = request.query_params.get("cluster")
    if not cluster:
        raise ApiError(400, "missing required query parameter: cluster")
    if not services.clusters.has(cluster):
        raise ApiError(400, f"unknown cluster: {cluster}")
    return cluster


def build_router(api_auth: Any) -> APIRouter:
    """The node-state routes, behind the `api` role; the reads run in the read pool."""
    router = APIRouter(dependencies=[Depends(api_auth)], route_class=ReadRoute)

    @router.post("/api/nodestate/", operation_id="update_node_states")
    @router.put("/api/nodestate/", operation_id="update_node_states_put")
    # cc-backend's published swagger.yaml names the route `/api/nodestats/` (POST) while cc-backend
    # serves `/api/nodestate/`; clients generated from the swagger file work with both here.
    @router.post("/api/nodestats/", operation_id="update_node_states_swagger_path")
    async def update_node_states(request: Request) -> Response:
        """Record a scheduler's node states (cc-backend's body); 200 with an empty body once visible."""
        services = services_of(request)
        intake = _nodestate_intake(services)
        try:
            accepted = await intake.report(
                await request.body(), source=f"rest:{request.url.path}", observed_at=int(time.time())
            )
        except Rejected as exc:
            raise await rejection(services, exc) from None
        await services.visible(accepted.position)
        return Response(status_code=200)

    @router.get("/api/nodestate/")
    def current_node_states(request: Request) -> JSON:
        """The newest reported state of every node of `cluster` (optionally one `subcluster`).

        Answers `{"items": [Node], "count": n}`, each Node as in cc-backend's GraphQL (`schedulerState`,
        `healthState`, `healthData`, allocations) plus the `timeStamp` of its report.
        """
        reject_unknown_params(request, {"cluster", "subcluster"})
        services = services_of(request)
        cluster = _cluster(request, services)
        with services.reader.connect() as conn:
            items = node_queries.current_states(conn, cluster, request.query_params.get("subcluster"))
        return JSON({"items": items, "count": len(items)})

    @router.get("/api/nodestate/history")
    def node_state_history(request: Request) -> JSON:
        """Node counts per state over time, as cc-backend's GraphQL `nodeStatesTimed`.

        `from`/`to` are unix seconds (default: the last 24 hours); `type` is `node` (scheduler state,
        default) or `health`. Answers `[{"state", "counts": [...], "times": [...]}]`, one point per
        report time; between reports a node keeps its last state.
        """
        reject_unknown_params(request, {"cluster", "subcluster", "from", "to", "type"})
        services = services_of(request)
        cluster = _cluster(request, services)
        q = request.query_params
        end = parse_int(q["to"], "to") if "to" in q else int(time.time())
        start = parse_int(q["from"], "from") if "from" in q else end - DAY
        if start > end:
            raise ApiError(400, f"invalid time range: from {start} is after to {end}")
        kind = q.get("type", "node")
        if kind not in ("node", "health"):
            raise ApiError(400, f"invalid query parameter value: type={kind!r} (expected node or health)")
        with services.reader.connect() as conn:
            series = node_queries.state_history(conn, cluster, start, end, kind, q.get("subcluster"))  # type: ignore[arg-type]
        return JSON([asdict(s) for s in series])

    return router

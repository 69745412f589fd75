"""Cluster configurations (cc-backend's `GET /api/clusters/`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from api.errors import ApiError
from api.readpool import ReadRoute
from api.responses import JSON
from api.routes.common import reject_unknown_params, services_of


def build_router(api_auth: Any) -> APIRouter:
    """The cluster route, behind the `api` role, run in the read pool."""
    router = APIRouter(dependencies=[Depends(api_auth)], route_class=ReadRoute)

    @router.get("/api/clusters/")
    def clusters(request: Request) -> JSON:
        """All cluster.json configurations, or the one named by `cluster`."""
        reject_unknown_params(request, {"cluster"})
        registry = services_of(request).clusters
        name = request.query_params.get("cluster")
        if name is not None:
            config = registry.get(name)
            if config is None:
                raise ApiError(400, f"unknown cluster: {name}")
            return JSON({"clusters": [config]})
        return JSON({"clusters": [registry.get(n) for n in registry.names()]})

    return router

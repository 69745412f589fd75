"""cc-backend's `GET` and `PUT|POST /api/machine_state/{cluster}/{host}`: per-node JSON files.

Mounted only when `main.machine-state-dir` is set, as cc-backend does; behind the `api` role like the
other routes cc-backend mounts in `MountAPIRoutes`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.errors import ApiError
from api.machinestate import MachineStateError, MachineStateStore
from api.readpool import ReadRoute


async def _bounded_body(request: Request, store: MachineStateStore) -> bytes:
    """The body, refused (413) by its Content-Length or as soon as it streams past the limit."""
    try:
        announced = request.headers.get("content-length")
        if announced is not None and announced.isdigit():
            store.check_size(int(announced))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            store.check_size(size)
            chunks.append(chunk)
    except MachineStateError as exc:
        raise ApiError(exc.status, str(exc)) from None
    return b"".join(chunks)


def build_router(api_auth: Any, directory: str) -> APIRouter:
    """The machine state routes over files under `directory`."""
    router = APIRouter(dependencies=[Depends(api_auth)], route_class=ReadRoute)
    store = MachineStateStore(directory)

    @router.put("/api/machine_state/{cluster}/{host}", operation_id="put_machine_state", status_code=201)
    @router.post("/api/machine_state/{cluster}/{host}", operation_id="post_machine_state", status_code=201)
    async def put_machine_state(cluster: str, host: str, request: Request) -> Response:
        """Store the JSON body as the machine state of one node; 201 with an empty body once on disk.

        Refused with 400 for a cluster or host name that is no safe file name or a body that is not
        JSON, and with 413 for a body over `MAX_MACHINE_STATE_BYTES` (1 MiB)."""
        try:
            store.path(cluster, host)
        except MachineStateError as exc:
            raise ApiError(exc.status, str(exc)) from None
        body = await _bounded_body(request, store)
        try:
            await asyncio.to_thread(store.put, cluster, host, body)
        except MachineStateError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return Response(status_code=201, media_type="text/plain")

    @router.get("/api/machine_state/{cluster}/{host}", operation_id="get_machine_state")
    def get_machine_state(cluster: str, host: str, request: Request) -> Response:
        """The stored machine state of one node as `application/json`; 404 when none was stored."""
        try:
            data = store.get(cluster, host)
        except MachineStateError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return Response(data, media_type="application/json")

    return router

"""Operator endpoints of the NATS intake: refused messages (list, retry) and the connection state."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request

from api.bootstrap import Services
from api.errors import ApiError
from api.readpool import ReadRoute
from api.responses import JSON
from api.routes.common import parse_int, reject_unknown_params, services_of
from streams.deadletter import DeadLetterStore
from streams.ingest.nats.processor import retry_dead_letter


def _store(services: Services) -> DeadLetterStore:
    if services.dead_letters is None:
        raise ApiError(404, "no dead-letter store: the `nats` section is not configured")
    return services.dead_letters


def build_router(admin_auth: Any) -> APIRouter:
    """Dead letters and NATS state, behind the `admin` role; the reads run in the read pool."""
    router = APIRouter(dependencies=[Depends(admin_auth)], route_class=ReadRoute)

    @router.get("/api/admin/rejected")
    def list_rejected(request: Request) -> JSON:
        """Refused NATS messages, oldest first: `{"items": [...], "count": n, "counts": {status: {kind: n}}}`.

        `status` is `open` (default) or `resolved` or `all`; `limit` (default 100) and `offset` page.
        """
        reject_unknown_params(request, {"status", "limit", "offset"})
        store = _store(services_of(request))
        q = request.query_params
        status = q.get("status", "open")
        if status not in ("open", "resolved", "all"):
            raise ApiError(400, f"invalid query parameter value: status={status!r} (open, resolved or all)")
        limit = parse_int(q.get("limit", "100"), "limit")
        offset = parse_int(q.get("offset", "0"), "offset")
        if not 1 <= limit <= 10_000 or offset < 0:
            raise ApiError(400, "limit must be between 1 and 10000 and offset must not be negative")
        wanted = None if status == "all" else status
        items = [e.to_json() for e in store.entries(status=wanted, limit=limit, offset=offset)]
        return JSON({"items": items, "count": store.total(wanted), "counts": store.counts()})

    @router.get("/api/admin/rejected/{entry_id}")
    def get_rejected(entry_id: str, request: Request) -> JSON:
        """One refused message."""
        entry = _store(services_of(request)).get(parse_int(entry_id, "id"))
        if entry is None:
            raise ApiError(404, f"no rejected message with id {entry_id}")
        return JSON(entry.to_json())

    @router.post("/api/admin/rejected/{entry_id}/retry")
    async def retry_rejected(entry_id: str, request: Request) -> JSON:
        """Run a refused message through the intake again (after fixing its cause, e.g. a cluster.json).

        Answers `{"result": "resolved" | "rejected" | "already resolved", "entry": {...}, "lines": [...]}`.
        """
        services = services_of(request)
        store = _store(services)
        if services.nats_processor is None:
            raise ApiError(404, "the NATS intake is not configured")
        number = parse_int(entry_id, "id")
        try:
            result, outcomes = await retry_dead_letter(services.nats_processor, number)
        except KeyError:
            raise ApiError(404, f"no rejected message with id {entry_id}") from None
        positions = [o.position for o in outcomes if o.position]
        if positions:
            await services.visible(max(positions))
        entry = store.get(number)
        lines = [{k: v for k, v in asdict(o).items() if k != "raw"} for o in outcomes]
        return JSON({"result": result, "entry": entry.to_json() if entry else None, "lines": lines})

    @router.get("/api/admin/nats")
    def nats_status(request: Request) -> JSON:
        """Connection state and per-subject counters (received, redelivered, applied, duplicate,
        rejected, failed) of the NATS intake, and under `metricStore` the metric store's subscriptions
        (`metric-store.nats-subscriptions`) with their counters; `{"configured": false}` without either."""
        services = services_of(request)
        body: dict[str, Any] = {"configured": services.nats is not None or services.metric_nats is not None}
        if services.nats is not None:
            body.update(services.nats.snapshot())
        if services.metric_nats is not None:
            body["metricStore"] = services.metric_nats.snapshot()
        if services.dead_letters is not None:
            body["deadLetters"] = services.dead_letters.counts()
        return JSON(body)

    return router

"""cc-metric-store's HTTP surface (`/api/write|query|free|debug|healthcheck/`) over a MetricStore."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import numpy as np
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.bodylimit import WRITE_PATH, BodyLimitMiddleware, general_limit, write_limit
from api.config import ReadSettings, Settings
from api.errors import ApiError, install_error_handlers
from api.readpool import CHUNK_BYTES, ChunkedAnswer, ReadPool, checkpoint
from metricstore import debug, health
from metricstore.query import APIQueryRequest, LimitExceeded, QueryPlan, plan_query, read_entry
from metricstore.store import MetricStore
from metricstore.wal import WalClosed


class _Lifecycle(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class HealthCheckRequest(BaseModel):
    """`/api/healthcheck/` body as cc-backend sends it."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    cluster: str = Field(min_length=1)
    nodes: list[str]
    metric_names: list[str] | None = Field(None, alias="metric-names")


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json")


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())


async def _body(request: Request) -> bytes:
    """The body, within the limit the app's BodyLimitMiddleware holds it to (`metric-store.max-write-bytes`)."""
    return await request.body()


def _parse_json(body: bytes, what: str) -> Any:
    if not body.strip():
        raise ApiError(400, f"{what}: empty request body, expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"{what}: invalid JSON: {exc}") from None


def _go_style(entry: dict[str, Any]) -> dict[str, Any]:
    """cc-metric-store writes data with 3 decimals and statistics with 2; NaN becomes null."""
    if "data" in entry:
        entry["data"] = np.round(np.asarray(entry["data"], np.float64), 3)
    for key in ("avg", "min", "max"):
        if key in entry:
            value = entry[key]
            entry[key] = None if value != value else round(value, 2)
    return entry


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def query_answer(store: MetricStore, plan: QueryPlan) -> Iterator[bytes]:
    """The `/api/query/` answer entry by entry: each series is read, rounded and written before the next,
    so a request holds one series at a time, whatever its size. The bytes are those of serialising the
    whole answer at once: `{"queries": [...], "results": [[entry, ...], ...]}`."""
    out = bytearray(b"{" + (b'"queries":' + _dumps(plan.extra) + b"," if plan.extra is not None else b"")
                    + b'"results":[')
    for n, entries in enumerate(plan.results):
        out += b",[" if n else b"["
        for k, entry in enumerate(entries):
            checkpoint()
            if k:
                out += b","
            out += _dumps(_go_style(read_entry(store, plan.request, entry)))
            if len(out) >= CHUNK_BYTES:
                yield bytes(out)
                out.clear()
        out += b"]"
    out += b"]}"
    yield bytes(out)


def build_metricstore_router(store: MetricStore, auth: Callable[..., Any], pool: ReadPool | None = None) -> APIRouter:
    """All cc-metric-store routes, each behind the caller's auth dependency; reads run in `pool` (one of
    the router's own with default settings when none is given)."""
    reads = pool or ReadPool(ReadSettings())
    router = APIRouter(prefix="/api", dependencies=[Depends(auth)], tags=["metricstore"])

    @router.post("/write/")
    async def write(request: Request, cluster: str | None = None) -> Response:
        """Store a batch of InfluxDB line protocol (cc-metric-collector's HTTP sink, cc-metric-store's API).

        A 200 means every sample it counts as `accepted` is in memory and, with `write-mode: durable`,
        written and fsync'ed to the write-ahead log (otherwise it reaches the log within one
        `flush-interval`). Malformed lines are refused one by one: when some lines were stored the answer
        is still 200 — cc-metric-collector treats anything else as a failed batch — and its body names the
        refused lines and their reasons (`rejected`, `errors`); only a batch of which nothing was stored is
        answered 400. Old samples and unknown metrics are dropped and counted, not refused."""
        report = store.ingest_lines(await _body(request), cluster or None)
        if report.errors and not report.accepted:
            raise ApiError(400, report.message())
        if store.settings.durable_writes:
            try:
                await run_in_threadpool(store.wait_durable, report)
            except (OSError, WalClosed) as exc:
                raise ApiError(503, f"the batch is in memory but its write-ahead log write failed ({exc}); "
                                    "it is not durable: send it again") from None
        return _json(report.as_dict())

    @router.get("/query/", operation_id="ms_query")
    @router.post("/query/", operation_id="ms_query_post")
    async def query(request: Request) -> Response:
        """cc-metric-store's query: series per metric, host and scope, optionally with statistics."""
        try:
            req = APIQueryRequest.model_validate(_parse_json(await _body(request), "query"))
        except ValidationError as exc:
            raise ApiError(400, f"query: {_describe(exc)}") from None

        def answer() -> ChunkedAnswer:
            try:
                plan = plan_query(store, req)
            except LimitExceeded as exc:
                raise ApiError(400, f"query: {exc}") from None
            return ChunkedAnswer(query_answer(store, plan))

        return await reads.respond(answer)

    @router.post("/free/")
    async def free(request: Request, to: str | None = None) -> PlainTextResponse:
        """Release the buffers of the selected series that hold only data older than `to`."""
        if to is None or not to.lstrip("-").isdigit():
            raise ApiError(400, f"free: query parameter 'to' must be a unix timestamp, got {to!r}")
        selectors = _parse_json(await _body(request), "free")
        if not isinstance(selectors, list) or not all(
                isinstance(s, list) and s and all(isinstance(p, str) for p in s) for s in selectors):
            raise ApiError(400, "free: body must be a list of selectors (non-empty lists of strings)")
        return PlainTextResponse(f"buffers freed: {store.free(selectors, int(to))}")

    @router.get("/debug/", operation_id="ms_debug")
    @router.post("/debug/", operation_id="ms_debug_post")
    async def debug_dump(selector: str | None = None) -> Response:
        """The store's statistics and the clusters, hosts or buffers the selector names."""
        parts = [p for p in (selector or "").split(":") if p]

        def answer() -> Response:
            try:
                return _json(debug.dump(store, parts))
            except KeyError as exc:
                raise ApiError(400, f"debug: {exc.args[0]}") from None
            except LimitExceeded as exc:
                raise ApiError(400, f"debug: {exc}") from None

        return await reads.respond(answer)

    @router.get("/healthcheck/", operation_id="ms_healthcheck")
    @router.post("/healthcheck/", operation_id="ms_healthcheck_post")
    async def healthcheck(request: Request, cluster: str | None = None, node: str | None = None) -> Response:
        """Per node: whether its metrics arrive (`State`) and which are degraded or missing."""
        body = await _body(request)
        raw: Any = ({"cluster": cluster or "", "nodes": [node] if node else []} if not body.strip()
                    else _parse_json(body, "healthcheck"))
        try:
            req = HealthCheckRequest.model_validate(raw)
        except ValidationError as exc:
            raise ApiError(400, f"healthcheck: {_describe(exc)}") from None
        return await reads.respond(lambda: _json(health.healthcheck(store, req.cluster, req.nodes, req.metric_names)))

    return router


def create_metricstore_app(store: MetricStore, auth: Callable[..., Any],
                           services: tuple[_Lifecycle, ...] = (), reads: ReadSettings | None = None,
                           settings: Settings | None = None) -> FastAPI:
    """The standalone metric store (`ccstream metricstore`): starts the store and e.g. the NATS subscriber;
    its reads run in a pool of their own (`reads` section), its bodies are held to the body-limit
    settings of `settings` (the defaults when none are given)."""
    pool = ReadPool(reads or ReadSettings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store.start()
        for service in services:
            await service.start()
        try:
            yield
        finally:
            for service in reversed(services):
                await service.stop()
            pool.close()
            store.close()

    app = FastAPI(title="ccstream metric store", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(build_metricstore_router(store, auth, pool))
    limits = settings if settings is not None else Settings()
    app.add_middleware(BodyLimitMiddleware, default=general_limit(limits),
                       per_path={WRITE_PATH: write_limit(limits)})

    @app.get("/api/metricstore/stats/", dependencies=[Depends(auth)])
    async def stats() -> Response:
        return await pool.respond(lambda: _json(store.stats()))

    return app

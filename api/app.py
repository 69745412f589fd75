"""The FastAPI application: cc-backend's REST API over ccstream's services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from api.apidoc import document as apidoc
from api.bodylimit import WRITE_PATH, BodyLimitMiddleware, general_limit, job_limit, write_limit
from api.bootstrap import Services
from api.direct import direct_routes
from api.direct import install as install_direct
from api.errors import install_error_handlers
from api.graphql.endpoint import build_router as build_graphql_router
from api.metricstore_routes import build_metricstore_router
from api.prometheus import AppMetrics, MetricsListener, MetricsMiddleware
from api.prometheus import build_router as build_metrics_router
from api.readpool import ReadPool
from api.responses import JSON
from api.routes import admin, clusters, edits, jobs, machinestate, nodes, rejected, users
from api.scheduler import start_maintenance, stop_maintenance
from api.swagger import install_swagger_ui


class _App(FastAPI):
    """FastAPI with the metrics middleware in front of everything.

    Outermost, in front of FastAPI's server error middleware, so that latency and refusals cover every
    answer, the server's own error answers included. The direct lane (api.direct) wraps the router,
    inside every middleware, so the metrics and any middleware added see its requests too.
    """

    #: Request latency and refusals are counted here when set (`prometheus.enabled`).
    metrics: AppMetrics | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.metrics is not None:
            stack = MetricsMiddleware(stack, self.metrics)
        return stack


#: Where `--dev` serves the OpenAPI document (the UI is at api.swagger.PAGE).
OPENAPI_URL = "/swagger/openapi.json"


def create_app(services: Services, *, dev: bool = False) -> FastAPI:
    """The app; it starts the services' agents on startup and closes them on shutdown."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # First: when its port is taken, the server fails to start before anything else has started.
        listener = None if listen is None or metrics is None else MetricsListener.start(metrics, *listen)
        if not services.started:
            services.start()
        await services.start_ingest()
        maintenance = start_maintenance(services, asyncio.get_running_loop())
        yield
        if listener is not None:
            await asyncio.to_thread(listener.stop)
        # Waits for a maintenance run in progress, off the event loop, before anything closes.
        await asyncio.to_thread(stop_maintenance, maintenance)
        await services.stop_ingest()
        reads.close()
        services.close()

    app = _App(
        title="ccstream REST API",
        version="1.0.0",
        description="ClusterCockpit-compatible job API of ccstream.",
        default_response_class=JSON,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL if dev else None,
    )
    if dev:
        install_swagger_ui(app, OPENAPI_URL)
    app.state.services = services
    # Every read route runs its work here, off the loop that answers start/stop and NATS (api.readpool).
    app.state.read_pool = reads = ReadPool(services.settings.reads, give_way_to=services.intake.busy)
    install_error_handlers(app)
    api_auth = services.auth.dependency("api")
    admin_auth = services.auth.dependency("admin")
    job_routes = jobs.build_router(api_auth)
    app.include_router(job_routes)
    app.include_router(edits.build_router(api_auth))
    app.include_router(clusters.build_router(api_auth))
    app.include_router(users.build_router(admin_auth))
    app.include_router(admin.build_router(admin_auth))
    app.include_router(nodes.build_router(api_auth))
    app.include_router(rejected.build_router(admin_auth))
    if services.settings.main.machine_state_dir:
        app.include_router(machinestate.build_router(api_auth, services.settings.main.machine_state_dir))
    app.include_router(build_graphql_router(services.auth.dependency()))
    prometheus = services.settings.prometheus
    metrics = AppMetrics(services, reads) if prometheus.enabled else None
    listen = prometheus.address()
    app.metrics = app.state.metrics = metrics
    if metrics is not None and listen is None:
        app.include_router(build_metrics_router(metrics, api_auth))
    if services.metric_store is not None:
        # cc-backend embeds cc-metric-store's API at the same paths, behind the `api` role like the job routes.
        app.include_router(build_metricstore_router(services.metric_store, api_auth, reads))

    # Start and stop are the hot path: dispatched straight to their endpoints (see api.direct).
    direct = direct_routes(app.router.routes, jobs.DIRECT_OPERATIONS)
    install_direct(app.router, direct)
    settings = services.settings
    per_path = {path: job_limit(settings) for _method, path in direct}
    if services.metric_store is not None:
        per_path[WRITE_PATH] = write_limit(settings)
    app.add_middleware(BodyLimitMiddleware, default=general_limit(settings), per_path=per_path)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Bodies, parameters and answers come from the declared operations, not from the endpoint signatures.
    apidoc.install(app)

    return app

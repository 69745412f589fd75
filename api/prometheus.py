"""Prometheus metrics of one app: state read at scrape time, plus the refusals and latencies the app counts.

State (log head, agent lag, archiver queue, metric store, NATS, read pool) is already kept by the parts
that own it; a collector reads it when Prometheus scrapes instead of mirroring it in counters that could
drift. What nothing else keeps, requests refused (a collector sending a wrong token every interval
leaves no other trace) and request latency, is counted by an ASGI middleware in front of the whole app,
the direct start/stop lane included. Every app has its own registry, so apps in one process never clash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from wsgiref.simple_server import WSGIServer

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_wsgi_server
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.bootstrap import Services, StartupError
from api.errors import REFUSAL_KEY
from api.readpool import ReadPool, ReadRoute

log = logging.getLogger(__name__)

#: Label of requests no route matched (404s): scanned paths must not become series of their own.
UNMATCHED = "<unmatched>"

#: Methods kept as labels; anything else a client sends is counted as "other", to bound the series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Latency buckets (seconds): start/stop answer in about a millisecond, reads may take their whole budget.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: Metric store stats that only grow (exported as counters); every other number is a gauge, among them the
#: `wal_*` figures, which describe the last restore, and the `last_*` timestamps and durations.
_STORE_COUNTER_PREFIXES = ("samples_", "lines_", "chunks_freed", "archived_", "batches")


def _is_store_counter(key: str) -> bool:
    return key.startswith(_STORE_COUNTER_PREFIXES) or "overwritten" in key or key == "wal_fsyncs"


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (`/api/jobs/{db_id}`), never its raw path."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class AppMetrics:
    """The registry of one app, its request counters, and the collector of the services' state."""

    def __init__(self, services: Services, reads: ReadPool) -> None:
        self.registry = CollectorRegistry()
        self.refused = Counter("ccstream_http_requests_refused", "Requests refused, by reason and route template "
                               "(authentication and authorization failures).", ["reason", "route"],
                               registry=self.registry)
        self.latency = Histogram("ccstream_http_request_duration_seconds", "Time to answer a request, until its "
                                 "last byte, by method, route template and status.", ["method", "route", "status"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(StateCollector(services, reads))
        # labels() validates and locks on every call; start/stop arrive by the thousand per second.
        self._children: dict[tuple[str, str, str], Any] = {}

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        """Count one answered request: its latency, and its refusal if it was refused."""
        route = route_template(scope)
        method = scope["method"] if scope["method"] in _METHODS else "other"
        key = (method, route, str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, self.latency.labels(*key))
        child.observe(seconds)
        reason = scope.get(REFUSAL_KEY)
        if reason is not None:
            self.refused.labels(reason, route).inc()

    def exposition(self) -> bytes:
        """The text format a scrape answers (reads the services' state: call it off the event loop)."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware around everything (the direct lane too): latency and refusals per route template."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the server answers when the app fails before starting a response

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            self.metrics.observe(scope, status, time.perf_counter() - began)


def build_router(metrics: AppMetrics, api_auth: Any) -> APIRouter:
    """`GET /metrics` on the main server, behind the `api` role like the job routes."""
    # In the read pool (a plain function on a ReadRoute router): agent status and the archiver's queue read SQLite.
    router = APIRouter(dependencies=[Depends(api_auth)], route_class=ReadRoute)

    @router.get("/metrics", response_class=Response,
                responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}})
    def scrape(request: Request) -> Response:
        """Prometheus metrics: log head, agent lag, archiver queue, metric store, NATS, refusals, latency."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


class MetricsListener:
    """The separate, unauthenticated `/metrics` listener of `prometheus.listen`, in a daemon thread."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @classmethod
    def start(cls, metrics: AppMetrics, host: str, port: int) -> MetricsListener:
        try:
            server, thread = start_wsgi_server(port, host, registry=metrics.registry)
        except OSError as exc:
            raise StartupError(f"prometheus.listen {host}:{port}: cannot listen: {exc.strerror or exc}") from None
        log.info("serving /metrics on %s:%d (no authentication)", host, port)
        return cls(server, thread)

    def stop(self) -> None:
        """Stop serving and release the port (a scrape in progress finishes)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class StateCollector:
    """Reads the services' own counters and gauges when Prometheus scrapes."""

    def __init__(self, services: Services, reads: ReadPool) -> None:
        self.services = services
        self.reads = reads

    def collect(self) -> Iterator[Metric]:
        services = self.services
        yield GaugeMetricFamily("ccstream_event_log_head", "Position of the last event in the log.",
                                value=services.log.head())
        yield from agent_families(services)
        if services.agent_state is not None:
            yield GaugeMetricFamily("ccstream_archiver_pending_jobs", "Stopped jobs waiting to be archived "
                                    "(retries included).", value=len(services.agent_state.pending("archiver")))
        yield unknown_host_family("ccstream_intake_unknown_host_resources", "Resources of accepted job starts "
                                  "whose host is in no subcluster nodelist, by cluster (hosts: GET "
                                  "/api/admin/status).", services.intake.unknown_hosts.totals())
        if services.metric_store is not None:
            yield from metric_store_families(services.metric_store.stats())
            yield unknown_host_family("ccstream_metricstore_unknown_host_samples", "Samples stored for hosts in "
                                      "no subcluster nodelist of their cluster, by cluster (hosts: GET "
                                      "/api/admin/status).", services.metric_store.unknown_hosts.totals())
        if services.nats is not None:
            yield from nats_families(services.nats.status.state, services.nats.status.subscribed,
                                     services.nats.status.connects,
                                     {s: c.to_json() for s, c in services.nats.counters.items()})
        if services.metric_nats is not None:
            yield from plain_families("ccstream_metricstore_nats", services.metric_nats.counters,
                                      "Metric store NATS subscriber")
        yield from read_pool_families(self.reads)


def agent_families(services: Services) -> Iterator[Metric]:
    """Per agent: checkpoint, lag, running, failures on the event it is held up at, quarantined events."""
    labels = ["agent"]
    checkpoint = GaugeMetricFamily("ccstream_agent_checkpoint", "Log position the agent has applied.", labels=labels)
    lag = GaugeMetricFamily("ccstream_agent_lag_events", "Events in the log the agent has not applied yet.",
                            labels=labels)
    running = GaugeMetricFamily("ccstream_agent_running", "1 while the agent's thread runs.", labels=labels)
    failures = GaugeMetricFamily("ccstream_agent_failures", "Failed attempts at the event the agent is held up "
                                 "at (0 when it is not).", labels=labels)
    quarantined = GaugeMetricFamily("ccstream_agent_quarantined_events", "Events the agent skipped after their "
                                    "retries.", labels=labels)
    for runner in services.runners():
        status = runner.status()
        checkpoint.add_metric([status.name], status.checkpoint)
        lag.add_metric([status.name], status.lag)
        running.add_metric([status.name], int(status.running))
        failures.add_metric([status.name], status.failures)
        quarantined.add_metric([status.name], status.quarantined)
    yield from (checkpoint, lag, running, failures, quarantined)


def unknown_host_family(name: str, documentation: str, totals: Mapping[str, int]) -> Metric:
    """A counter by cluster only: host names are unbounded, so they stay out of labels."""
    family = CounterMetricFamily(name, documentation, labels=["cluster"])
    for cluster, count in sorted(totals.items()):
        family.add_metric([cluster], count)
    return family


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def metric_store_families(stats: Mapping[str, Any]) -> Iterator[Metric]:
    """The metric store's numeric stats: `x_by_reason` dicts become family `x` labelled by reason (their
    sum, `x`, is then left out), booleans 0/1; lists, names and unset values are not metrics."""
    by_reason = {key.removesuffix("_by_reason"): value for key, value in stats.items()
                 if key.endswith("_by_reason") and isinstance(value, Mapping)}
    for key, value in stats.items():
        if key.endswith("_by_reason") or key in by_reason or not (_is_number(value) or isinstance(value, bool)):
            continue
        yield _family(f"ccstream_metricstore_{key}", f"Metric store: {key.replace('_', ' ')}.",
                      _is_store_counter(key), float(value))
    for key, reasons in by_reason.items():
        family = _labelled(f"ccstream_metricstore_{key}", f"Metric store: {key.replace('_', ' ')}, by reason.",
                           _is_store_counter(key), ["reason"])
        for reason, count in reasons.items():
            if _is_number(count):
                family.add_metric([str(reason)], float(count))
        yield family


def nats_families(state: str, subscribed: bool, connects: int,
                  subjects: Mapping[str, Mapping[str, int]]) -> Iterator[Metric]:
    """The NATS intake: connection state, and its per-subject counters as one family per counter."""
    yield GaugeMetricFamily("ccstream_nats_connected", "1 while connected to NATS.", value=int(state == "connected"))
    yield GaugeMetricFamily("ccstream_nats_subscribed", "1 while every subscription is registered on the server.",
                            value=int(subscribed))
    yield CounterMetricFamily("ccstream_nats_connects", "Connections made to NATS.", value=connects)
    names = sorted({name for counters in subjects.values() for name in counters})
    for name in names:
        family = CounterMetricFamily(f"ccstream_nats_{name}", f"NATS intake: {name} (messages or lines), per "
                                     "subject.", labels=["subject"])
        for subject, counters in subjects.items():
            family.add_metric([subject], counters.get(name, 0))
        yield family


def plain_families(prefix: str, values: Mapping[str, Any], what: str) -> Iterator[Metric]:
    """Flat counters: booleans as 0/1 gauges (states), numbers as counters."""
    for key, value in values.items():
        if isinstance(value, bool):
            yield GaugeMetricFamily(f"{prefix}_{key}", f"{what}: {key} (0/1).", value=int(value))
        elif _is_number(value):
            yield CounterMetricFamily(f"{prefix}_{key}", f"{what}: {key.replace('_', ' ')}.", value=value)


def read_pool_families(reads: ReadPool) -> Iterable[Metric]:
    """Reads answered 503 (no worker freed up in time) and 504 (past their time budget)."""
    return (
        CounterMetricFamily("ccstream_read_pool_refused", "Reads refused: no read worker freed up in time (503).",
                            value=reads.refused),
        CounterMetricFamily("ccstream_read_pool_timed_out", "Reads past their time budget (504).",
                            value=reads.timed_out),
    )


def _family(name: str, documentation: str, counter: bool, value: float) -> Metric:
    if counter:
        return CounterMetricFamily(name, documentation, value=value)
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(name: str, documentation: str, counter: bool, labels: list[str]) -> CounterMetricFamily | \
        GaugeMetricFamily:
    if counter:
        return CounterMetricFamily(name, documentation, labels=labels)
    return GaugeMetricFamily(name, documentation, labels=labels)

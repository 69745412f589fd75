"""cc-backend's job REST API: start, stop, list, get."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import RowMapping
from starlette.responses import Response

from api import jobdata
from api.bootstrap import Services
from api.errors import ApiError
from api.jobjson import job_json
from api.joblist import job_page
from api.readpool import ChunkedAnswer, ReadRoute, json_array, read_pool
from api.responses import JSON
from api.routes.common import (
    full_job_json,
    job_by_id,
    job_by_subject,
    parse_bool,
    parse_int,
    parse_json_body,
    reject_unknown_params,
    rejection,
    services_of,
)
from projections import queries
from streams.events import parse_job_subject
from streams.events.bounds import INT64_MAX
from streams.events.payloads import JobState
from streams.ingest.outcomes import Rejected
from streams.ingest.requests import normalise_job_state

JOB_STATES = set(JobState.__args__)  # type: ignore[attr-defined]
#: Routes served by `api.direct.DirectDispatch`: their endpoints take only the request, behind the `api` role.
DIRECT_OPERATIONS = {"start_job", "start_job_put", "stop_job", "stop_job_put"}
LIST_PARAMS = {"state", "cluster", "project", "user", "start-time", "page", "items-per-page", "with-metadata"}


def build_router(api_auth: Any) -> APIRouter:
    """The job routes, each behind the `api` role; the reads (plain functions) run in the read pool."""
    router = APIRouter(dependencies=[Depends(api_auth)], route_class=ReadRoute)

    @router.post("/api/jobs/start_job/", status_code=201, operation_id="start_job")
    @router.put("/api/jobs/start_job/", status_code=201, operation_id="start_job_put")
    async def start_job(request: Request) -> JSON:
        """Add a running job; answers once it is durable and visible, with its database id."""
        services = services_of(request)
        try:
            accepted = await services.intake.start_job(await request.body(), source="rest:/api/jobs/start_job/")
        except Rejected as exc:
            raise await rejection(services, exc) from None
        if not await services.visible(accepted.position):
            # Durable in the log (a retry is answered the same), not in the job table yet: say why.
            return JSON({"msg": "success", "warning": "the job is stored but not listed yet: "
                         + services.not_visible_because(accepted.position)}, status_code=201)
        db_id = services.projection.recent_id(accepted.subject)
        if db_id is None:
            row = job_by_subject(services, accepted.subject)
            db_id = None if row is None else int(row["id"])
        return JSON({"msg": "success", "id": db_id}, status_code=201)

    @router.post("/api/jobs/stop_job/", operation_id="stop_job")
    @router.put("/api/jobs/stop_job/", operation_id="stop_job_put")
    async def stop_job(request: Request) -> JSON:
        """Mark a job as stopped; a stop whose start has not arrived is parked (202)."""
        services = services_of(request)
        try:
            accepted = await services.intake.stop_job(await request.body(), source="rest:/api/jobs/stop_job/")
        except Rejected as exc:
            raise await rejection(services, exc) from None
        if accepted.parked:
            await services.visible(accepted.position)  # listed by /api/admin/parked-stops once answered
            return JSON(
                {"msg": f"stop parked: job not started yet ({accepted.subject}); applied when its start arrives"},
                status_code=202,
            )
        if not await services.visible(accepted.position):
            return JSON({"msg": "stop stored; the job table does not show it yet: "
                         + services.not_visible_because(accepted.position)}, status_code=202)
        cluster, job_id, start_time = parse_job_subject(accepted.subject)
        found = services.job_lookup.job_with_tags(cluster, job_id, start_time or 0)
        if found is None:
            return JSON({"msg": f"stop stored; job {accepted.subject} is not in the job table (deleted?)"},
                        status_code=202)
        row, tags = found
        return JSON(job_json(row, tags or None))

    @router.get("/api/jobs/used_nodes")
    def used_nodes(request: Request) -> JSON:
        """Hosts of jobs running since before `ts`, per cluster."""
        reject_unknown_params(request, {"ts"})
        raw = request.query_params.get("ts")
        if raw is None:
            raise ApiError(400, "missing required query parameter: ts")
        ts = parse_int(raw, "ts")
        with services_of(request).reader.connect() as conn:
            return JSON({"usedNodes": queries.used_nodes(conn, ts)})

    @router.get("/api/jobs/")
    def list_jobs(request: Request) -> JSON | ChunkedAnswer:
        """A page of jobs, newest first, filtered like cc-backend's getJobs (large pages are streamed)."""
        reject_unknown_params(request, LIST_PARAMS)
        flt, page, per_page, with_meta = _list_arguments(request)
        return job_page(services_of(request).reader, flt, page, per_page, with_meta)

    @router.get("/api/jobs/metrics/{db_id}")
    def job_metrics(db_id: str, request: Request) -> JSON | ChunkedAnswer:
        """Selected metrics (`metric`, repeatable) at selected scopes (`scope`), cc-backend's shape."""
        reject_unknown_params(request, {"metric", "scope"})
        services = services_of(request)
        row = job_by_id(services, parse_int(db_id, "job id"))
        metrics = request.query_params.getlist("metric") or None
        scopes = request.query_params.getlist("scope") or ["node"]
        try:
            entries = jobdata.named_metrics(services, row, metrics, scopes, services.settings.reads.max_job_points)
            first = next(entries, None)  # the first load happens here: a failing source is answered below
        except ApiError as exc:
            if exc.status == 400:
                raise
            return JSON({"data": None, "error": {"message": exc.message}})
        rest = entries if first is None else itertools.chain([first], entries)
        return ChunkedAnswer(json_array(b'{"data":{"jobMetrics":[', rest, b']},"error":null}', jobdata.dumps))

    @router.get("/api/jobs/{db_id}")
    def get_job(db_id: str, request: Request) -> JSON | ChunkedAnswer:
        """A job's metadata by database id; with `all-metrics=true` all its metrics at node scope."""
        reject_unknown_params(request, {"all-metrics"})
        all_metrics = parse_bool(request.query_params.get("all-metrics"), "all-metrics")
        services = services_of(request)
        row = job_by_id(services, parse_int(db_id, "job id"))
        if not all_metrics:
            return JSON({"meta": full_job_json(services, row), "data": None})
        return _job_with_metrics(services, row, None)

    @router.post("/api/jobs/{db_id}")
    async def get_job_metrics(db_id: str, request: Request) -> Response:
        """A job's metadata by database id with the metrics named in the body (an array of names)."""
        raw = await request.body()  # on the loop; the rest in the read pool

        def answer() -> ChunkedAnswer:
            services = services_of(request)
            row = job_by_id(services, parse_int(db_id, "job id"))
            names = parse_json_body(raw)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ApiError(400, "parsing request body failed: expected an array of metric names")
            return _job_with_metrics(services, row, names)

        return await read_pool(request).respond(answer)

    return router


def _job_with_metrics(services: Services, row: RowMapping, names: list[str] | None) -> ChunkedAnswer:
    """`{"meta": job, "data": [JobMetricWithName]}` at node scope, written metric by metric."""
    entries = jobdata.named_metrics(services, row, names, ["node"], services.settings.reads.max_job_points)
    head = b'{"meta":' + jobdata.dumps(full_job_json(services, row)) + b',"data":['
    return ChunkedAnswer(json_array(head, entries, b"]}", jobdata.dumps))


def _first(request: Request, key: str) -> str | None:
    # Go's handler reads vals[0]; Starlette's .get() would answer the last of repeated parameters.
    values = request.query_params.getlist(key)
    return values[0] if values else None


def _list_arguments(request: Request) -> tuple[queries.JobFilter, int, int, bool]:
    q = request.query_params
    # cc-backend accepts the parameter repeatedly (`state=running&state=failed`) and ORs the states.
    states = tuple(str(normalise_job_state(s)) for s in q.getlist("state"))
    for state in states:
        if state not in JOB_STATES and state != "stopped":
            raise ApiError(400, f"invalid query parameter value: state={state!r}")
    start_from = start_to = None
    if (span := _first(request, "start-time")) is not None:
        parts = span.split("-")
        if len(parts) != 2:
            raise ApiError(400, f"invalid query parameter value: start-time={span!r} (expected FROM-TO)")
        start_from, start_to = parse_int(parts[0], "start-time"), parse_int(parts[1], "start-time")
    page = parse_int(_first(request, "page") or "1", "page")
    per_page = parse_int(_first(request, "items-per-page") or "25", "items-per-page")
    if page < 1 or per_page < 1 or per_page > 100_000:
        raise ApiError(400, "page must be >= 1 and items-per-page between 1 and 100000")
    if (page - 1) * per_page > INT64_MAX:  # the row offset is a 64-bit integer in SQL
        raise ApiError(400, f"page {page} of {per_page} items starts past the 64-bit row offset range")
    flt = queries.JobFilter(
        states=states,
        cluster=_first(request, "cluster"),
        project=_first(request, "project"),
        user=_first(request, "user"),
        start_from=start_from,
        start_to=start_to,
    )
    # cc-backend turns metadata on whenever the parameter is present, so a bare `?with-metadata` means true.
    raw_meta = _first(request, "with-metadata")
    with_meta = raw_meta == "" or parse_bool(raw_meta, "with-metadata")
    return flt, page, per_page, with_meta

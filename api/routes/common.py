"""Helpers shared by the route modules: services access, strict bodies, ids, job lookups."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError
from sqlalchemy import RowMapping

from api.bootstrap import Services
from api.errors import ApiError
from api.jobjson import job_json
from projections import queries
from streams.events import parse_job_subject
from streams.events.bounds import INT64_MAX, INT64_MIN
from streams.ingest.outcomes import JobConflict, Rejected
from streams.ingest.requests import describe

Model = TypeVar("Model", bound=BaseModel)

STATUS_OF_KIND = {"invalid": 400, "not_found": 404, "conflict": 422}


def services_of(request: Request) -> Services:
    """The Services the app was built with."""
    services: Services = request.app.state.services
    return services


async def json_body(request: Request) -> Any:
    """The request body as JSON; a precise 400 when it is not."""
    return parse_json_body(await request.body())


def parse_json_body(raw: bytes) -> Any:
    """A body already read, as JSON (for work done off the event loop, see api.readpool)."""
    if not raw.strip():
        raise ApiError(400, "parsing request body failed: empty body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"parsing request body failed: {exc}") from None


async def model_body(request: Request, model: type[Model]) -> Model:
    """The body validated strictly against a model (unknown fields are errors)."""
    value = await json_body(request)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ApiError(400, f"parsing request body failed: {describe(exc)}") from None


def parse_int(value: str, what: str) -> int:
    """An integer path or query value, or a 400 naming it."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"invalid {what}: {value!r} is not an integer") from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise ApiError(400, f"invalid {what}: {value!r} is outside the 64-bit integer range")
    return number


def parse_bool(value: str | None, what: str) -> bool:
    """A boolean query value as Go's strconv.ParseBool reads it."""
    if value is None:
        return False
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise ApiError(400, f"invalid query parameter value: {what}={value!r} is not a boolean")


def reject_unknown_params(request: Request, allowed: set[str]) -> None:
    """cc-backend answers unknown query parameters with 400; so do we."""
    for key in request.query_params:
        if key not in allowed:
            raise ApiError(400, f"invalid query parameter: {key}")


def job_by_id(services: Services, db_id: int) -> RowMapping:
    """A job row by database id, or 404."""
    with services.reader.connect() as conn:
        row = queries.find_job(conn, db_id)
    if row is None:
        raise ApiError(404, f"finding job with db id {db_id} failed: sql: no rows in result set")
    return row


def job_by_subject(services: Services, subject: str) -> RowMapping | None:
    """A job row by its log subject."""
    cluster, job_id, start_time = parse_job_subject(subject)
    if start_time is None:
        return None
    with services.reader.connect() as conn:
        return queries.find_job_by_key(conn, cluster, job_id, start_time)


def full_job_json(services: Services, row: RowMapping) -> dict[str, Any]:
    """A job with its tags and, once archived, its statistics, as the job endpoints answer."""
    db_id = int(row["id"])
    with services.reader.connect() as conn:
        tags = queries.tags_of(conn, [db_id]).get(db_id)
        statistics = queries.statistics_of(conn, [db_id]).get(db_id)
    return job_json(row, tags, statistics=statistics)


async def rejection(services: Services, exc: Rejected) -> ApiError:
    """The API error for an intake rejection, naming the conflicting job's database id."""
    db_id = None
    if isinstance(exc, JobConflict):
        await services.visible(exc.position)
        row = job_by_subject(services, exc.subject)
        db_id = None if row is None else int(row["id"])
    return ApiError(STATUS_OF_KIND.get(exc.kind, 400), exc.describe(db_id))

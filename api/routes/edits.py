"""Changes to known jobs: tags, metadata, deletion. Each answers once the change is visible."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, RootModel
from sqlalchemy import RowMapping

from api.bootstrap import Services
from api.errors import ApiError
from api.responses import JSON
from api.routes.common import (
    full_job_json,
    job_by_id,
    model_body,
    parse_bool,
    parse_int,
    reject_unknown_params,
    services_of,
)
from projections import queries
from streams.events import Event, job_subject, new_event
from streams.events.bounds import Name, NonEmptyName, NonNegativeInt64, Text, Timestamp
from streams.ingest.tagscope import scope_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ApiTag(_Strict):
    type: NonEmptyName
    name: NonEmptyName
    scope: Name = ""


class TagList(RootModel[list[ApiTag]]):
    """The body of tag_job and DELETE /api/tags/: an array of tags."""


class EditMeta(_Strict):
    key: NonEmptyName
    value: Text


class JobMetaRequest(_Strict):
    jobId: NonNegativeInt64
    cluster: Name | None = None
    startTime: Timestamp | None = None
    payload: EditMeta


class DeleteJobRequest(_Strict):
    jobId: NonNegativeInt64
    cluster: Name | None = None
    startTime: Timestamp | None = None


def _subject(row: RowMapping) -> str:
    return job_subject(row["cluster"], int(row["job_id"]), int(row["start_time"]))


async def _record(services: Services, events: list[Event]) -> None:
    position = await services.intake.record(events)
    await services.visible(position)


def _find_by_request(services: Services, job_id: int, cluster: str | None, start_time: int | None) -> RowMapping:
    with services.reader.connect() as conn:
        if start_time is not None and cluster:
            row = queries.find_job_by_key(conn, cluster, job_id, start_time)
        else:
            row = queries.find_newest_job(conn, job_id, cluster)
            if row is not None and start_time is not None and row["start_time"] != start_time:
                row = None
    if row is None:
        raise ApiError(404, f"finding job failed: no job {job_id} on {cluster or 'any cluster'}")
    return row


def build_router(api_auth: Any) -> APIRouter:
    """Routes that change jobs, behind the `api` role."""
    router = APIRouter(dependencies=[Depends(api_auth)])

    @router.post("/api/jobs/tag_job/{db_id}", operation_id="tag_job")
    @router.patch("/api/jobs/tag_job/{db_id}", operation_id="tag_job_patch")
    async def tag_job(db_id: str, request: Request) -> JSON:
        """Attach tags (created on first use; scope defaults to global)."""
        return await _change_tags(request, db_id, "job.tag_added")

    @router.delete("/api/jobs/tag_job/{db_id}")
    async def untag_job(db_id: str, request: Request) -> JSON:
        """Detach tags from a job."""
        return await _change_tags(request, db_id, "job.tag_removed")

    @router.delete("/api/tags/")
    async def delete_tags(request: Request) -> PlainTextResponse:
        """Remove tags from the system and from every job."""
        services = services_of(request)
        tags = (await model_body(request, TagList)).root
        events: list[Event] = []
        with services.reader.connect() as conn:
            for t in tags:
                if queries.tag_exists(conn, t.type, t.name, t.scope or "global"):
                    data = {"type": t.type, "name": t.name, "scope": t.scope or "global"}
                    events.append(new_event("tag.deleted", "tags", data, source="rest:/api/tags/"))
        if events:
            await _record(services, events)
        return PlainTextResponse(f"Deleted Tags from DB: {len(events)} successfull of {len(tags)} requested\n")

    @router.patch("/api/jobs/edit_meta/{db_id}")
    async def edit_meta(db_id: str, request: Request) -> JSON:
        """Set one metaData key of a job."""
        services = services_of(request)
        row = job_by_id(services, parse_int(db_id, "job id"))
        edit = await model_body(request, EditMeta)
        await _record(services, [_meta_event(row, edit)])
        return JSON(full_job_json(services, job_by_id(services, int(row["id"]))))

    @router.patch("/api/jobs/edit_meta/")
    async def edit_meta_by_request(request: Request) -> JSON:
        """Set one metaData key of the job named by jobId, cluster and startTime."""
        services = services_of(request)
        body = await model_body(request, JobMetaRequest)
        row = _find_by_request(services, body.jobId, body.cluster, body.startTime)
        await _record(services, [_meta_event(row, body.payload)])
        return JSON(full_job_json(services, job_by_id(services, int(row["id"]))))

    @router.delete("/api/jobs/delete_job/{db_id}")
    async def delete_job(db_id: str, request: Request) -> JSON:
        """Remove a job from the job database (the archive keeps it)."""
        services = services_of(request)
        row = job_by_id(services, parse_int(db_id, "job id"))
        await _record(services, [_delete_event(row, "rest:/api/jobs/delete_job/")])
        return JSON({"msg": f"Successfully deleted job {row['id']}"})

    @router.delete("/api/jobs/delete_job/")
    async def delete_job_by_request(request: Request) -> JSON:
        """Remove the job named by jobId, cluster and startTime."""
        services = services_of(request)
        body = await model_body(request, DeleteJobRequest)
        row = _find_by_request(services, body.jobId, body.cluster, body.startTime)
        await _record(services, [_delete_event(row, "rest:/api/jobs/delete_job/")])
        return JSON({"msg": f"Successfully deleted job {row['id']}"})

    @router.delete("/api/jobs/delete_job_before/{ts}")
    async def delete_jobs_before(ts: str, request: Request) -> JSON:
        """Remove every job that started before a time, optionally keeping tagged ones."""
        services = services_of(request)
        reject_unknown_params(request, {"omit-tagged"})
        before = parse_int(ts, "timestamp")
        omit_tagged = parse_bool(request.query_params.get("omit-tagged"), "omit-tagged")
        with services.reader.connect() as conn:
            rows = queries.jobs_started_before(conn, before, omit_tagged)
        events = [_delete_event(r, "rest:/api/jobs/delete_job_before/") for r in rows]
        for start in range(0, len(events), 5000):
            await _record(services, events[start : start + 5000])
        return JSON({"msg": f"Successfully deleted {len(events)} jobs"})

    return router


async def _change_tags(request: Request, db_id: str, event_type: str) -> JSON:
    """One event per tag in the body; answers with the job as it is stored afterwards."""
    services = services_of(request)
    row = job_by_id(services, parse_int(db_id, "job id"))
    tags = (await model_body(request, TagList)).root
    if event_type == "job.tag_added":
        for t in tags:
            _check_scope(services, t.scope or "global")
    events = [
        new_event(event_type, _subject(row), {"type": t.type, "name": t.name, "scope": t.scope or "global"},
                  source="rest:/api/jobs/tag_job/")
        for t in tags
    ]
    await _record(services, events)
    return JSON(full_job_json(services, job_by_id(services, int(row["id"]))))


def _check_scope(services: Services, scope: str) -> None:
    """A scope naming nobody is refused before anything is written (streams.ingest.tagscope)."""
    problem = scope_error(scope, services.intake.user_exists)
    if problem is not None:
        raise ApiError(400, problem)


def _meta_event(row: RowMapping, edit: EditMeta) -> Event:
    return new_event("job.metadata_updated", _subject(row), {"key": edit.key, "value": edit.value},
                     source="rest:/api/jobs/edit_meta/")


def _delete_event(row: RowMapping, source: str) -> Event:
    return new_event("job.deleted", _subject(row), {"reason": source}, source=source)

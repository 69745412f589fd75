"""The schema's mutations: each change is an event through the intake, visible when it is answered.

They run on the event loop (appending awaits the log) and read with short connections of their own, so
that what they answer is the job database after their events (read-your-writes, as the REST edits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from ariadne import MutationType
from graphql import GraphQLResolveInfo
from sqlalchemy import RowMapping, and_, select

from api.auth import ANONYMOUS
from api.graphql.context import Context, tag_object
from api.graphql.jobquery import QueryError, database_id
from api.graphql.viewer import Forbidden, job_visibility, may_delete_tag_scope, may_write_tag_scope, tag_visibility
from projections import schema
from streams.events import Event, job_subject, new_event
from streams.ingest.outcomes import Rejected
from streams.ingest.tagscope import scope_error

job, tag, jobtag = schema.job, schema.tag, schema.jobtag
mutation = MutationType()

#: Tag ids one mutation may name: far more than a person picks, few enough to check one by one.
MAX_TAG_IDS = 1000
SOURCE = "graphql:/query"


def _context(info: GraphQLResolveInfo) -> Context:
    ctx: Context = info.context
    return ctx


async def _record(ctx: Context, events: Sequence[Event]) -> None:
    """Append the events and wait until the job database shows them."""
    try:
        position = await ctx.services.intake.record(events)
    except Rejected as exc:
        raise QueryError(str(exc)) from None
    await ctx.services.visible(position)


_id = database_id


def _tags(ctx: Context, ids: Sequence[Any]) -> list[RowMapping]:
    """The tags by id, in the order given; an unknown (or unreadable) id is an error naming it."""
    if len(ids) > MAX_TAG_IDS:
        raise QueryError(f"at most {MAX_TAG_IDS} tag ids per request")
    wanted = [_id(i, "tag") for i in ids]
    with ctx.services.reader.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(
            select(tag).where(and_(tag.c.id.in_(wanted), tag_visibility(ctx.viewer)))).mappings()}
    missing = next((i for i in wanted if i not in rows), None)
    if missing is not None:
        raise QueryError(f"tag does not exist (ID): {missing}")
    return [rows[i] for i in wanted]


def _job(ctx: Context, value: Any) -> RowMapping:
    db_id = _id(value, "job")
    with ctx.services.reader.connect() as conn:
        row = conn.execute(select(job).where(and_(job.c.id == db_id, job_visibility(ctx.viewer)))).mappings().first()
    if row is None:
        raise QueryError(f"no job with id {db_id}")
    return row


def _job_tags(ctx: Context, db_id: int) -> list[dict[str, Any]]:
    with ctx.services.reader.connect() as conn:
        stmt = (select(tag.c.id, tag.c.tag_type, tag.c.tag_name, tag.c.tag_scope)
                .join(jobtag, jobtag.c.tag_id == tag.c.id)
                .where(and_(jobtag.c.job_id == db_id, tag_visibility(ctx.viewer))).order_by(tag.c.id))
        return [tag_object(r) for r in conn.execute(stmt)]


def _tag_data(row: RowMapping) -> dict[str, str]:
    return {"type": row["tag_type"], "name": row["tag_name"], "scope": row["tag_scope"]}


@mutation.field("createTag")
async def resolve_create_tag(_: Any, info: GraphQLResolveInfo, type: str, name: str,
                             scope: str) -> dict[str, Any]:
    """Create a tag, or answer the existing one of that type, name and scope (cc-backend fails on it)."""
    ctx = _context(info)
    if not may_write_tag_scope(ctx.viewer, scope):
        raise Forbidden(f"not authorized to create tag {type}:{name} with scope {scope}")
    problem = scope_error(scope, ctx.services.intake.user_exists)
    if problem is not None:
        raise QueryError(problem)
    await _record(ctx, [new_event("tag.created", "tags", {"type": type, "name": name, "scope": scope},
                                  source=SOURCE)])
    with ctx.services.reader.connect() as conn:
        row = conn.execute(select(tag).where(and_(tag.c.tag_type == type, tag.c.tag_name == name,
                                                  tag.c.tag_scope == scope))).mappings().one()
    return tag_object_of(row)


def tag_object_of(row: RowMapping) -> dict[str, Any]:
    return {"id": row["id"], "type": row["tag_type"], "name": row["tag_name"], "scope": row["tag_scope"]}


async def _change_job_tags(info: GraphQLResolveInfo, job_id: Any, tag_ids: Sequence[Any], event_type: str,
                           verb: str) -> list[dict[str, Any]]:
    ctx = _context(info)
    row = _job(ctx, job_id)
    tags = _tags(ctx, tag_ids)
    for t in tags:
        if not may_write_tag_scope(ctx.viewer, t["tag_scope"]):
            raise Forbidden(f"not authorized to {verb} tag {t['tag_type']}:{t['tag_name']} "
                            f"with scope {t['tag_scope']}")
    subject = job_subject(row["cluster"], int(row["job_id"]), int(row["start_time"]))
    if tags:
        await _record(ctx, [new_event(event_type, subject, _tag_data(t), source=SOURCE) for t in tags])
    return _job_tags(ctx, int(row["id"]))


@mutation.field("addTagsToJob")
async def resolve_add_tags_to_job(_: Any, info: GraphQLResolveInfo, job: Any, tagIds: list[Any]
                                  ) -> list[dict[str, Any]]:
    return await _change_job_tags(info, job, tagIds, "job.tag_added", "add")


@mutation.field("removeTagsFromJob")
async def resolve_remove_tags_from_job(_: Any, info: GraphQLResolveInfo, job: Any, tagIds: list[Any]
                                       ) -> list[dict[str, Any]]:
    return await _change_job_tags(info, job, tagIds, "job.tag_removed", "remove")


async def _delete_tags(info: GraphQLResolveInfo, tag_ids: Sequence[Any]) -> list[int]:
    """Delete tags and their links, all or none: one the viewer may not delete refuses the request."""
    ctx = _context(info)
    tags = _tags(ctx, tag_ids)
    for t in tags:
        if not may_delete_tag_scope(ctx.viewer, t["tag_scope"]):
            raise Forbidden(f"not authorized to remove tag {t['tag_type']}:{t['tag_name']} "
                            f"with scope {t['tag_scope']}")
    if tags:
        await _record(ctx, [new_event("tag.deleted", "tags", _tag_data(t), source=SOURCE) for t in tags])
    return [int(t["id"]) for t in tags]


@mutation.field("removeTagFromList")
async def resolve_remove_tag_from_list(_: Any, info: GraphQLResolveInfo, tagIds: list[Any]
                                       ) -> list[int]:
    return await _delete_tags(info, tagIds)


@mutation.field("deleteTag")
async def resolve_delete_tag(_: Any, info: GraphQLResolveInfo, id: Any) -> str:
    """cc-backend's resolver is unimplemented (it panics); here it deletes as `removeTagFromList` does."""
    deleted = await _delete_tags(info, [id])
    return str(deleted[0])


@mutation.field("updateConfiguration")
async def resolve_update_configuration(_: Any, info: GraphQLResolveInfo, name: str, value: str) -> None:
    """Store one key of the viewer's UI configuration; the value must be JSON, as the UI reads it back."""
    ctx = _context(info)
    if ctx.viewer is ANONYMOUS:  # authentication disabled: nobody to store it for, as in cc-backend
        return None
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise QueryError(f"the value of {name[:64]!r} is not JSON: {exc}") from None
    data = {"username": ctx.viewer.username, "key": name, "value": value}
    await _record(ctx, [new_event("user.configuration_updated", f"users/{ctx.viewer.username}", data,
                                  source=SOURCE)])
    return None

"""Tag handlers: tags attached to and detached from jobs, and tags created or removed altogether."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, and_, delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from projections import schema
from projections.handlers import HandlerTable
from projections.keys import job_row_id
from streams.events import Event


def _tag_clause(tag_type: str, name: str, scope: str) -> ColumnElement[bool]:
    return and_(
        schema.tag.c.tag_type == tag_type,
        schema.tag.c.tag_name == name,
        schema.tag.c.tag_scope == scope,
    )


def ensure_tag(conn: Connection, tag_type: str, name: str, scope: str) -> int:
    """Id of the tag (type, name, scope), creating it on first use."""
    conn.execute(
        sqlite_insert(schema.tag)
        .values(tag_type=tag_type, tag_name=name, tag_scope=scope)
        .on_conflict_do_nothing()
    )
    tag_id = conn.execute(select(schema.tag.c.id).where(_tag_clause(tag_type, name, scope))).scalar_one()
    return int(tag_id)


def attach_tag(conn: Connection, job_id: int, tag_type: str, name: str, scope: str) -> None:
    """Link a job to a tag (creating the tag if needed); linking twice changes nothing."""
    tag_id = ensure_tag(conn, tag_type, name, scope)
    conn.execute(sqlite_insert(schema.jobtag).values(job_id=job_id, tag_id=tag_id).on_conflict_do_nothing())


def record_tag_added(conn: Connection, event: Event) -> None:
    job_id = job_row_id(conn, event.subject)
    if job_id is None:
        return
    d = event.data
    attach_tag(conn, job_id, d["type"], d["name"], d.get("scope") or "global")


def record_tag_removed(conn: Connection, event: Event) -> None:
    job_id = job_row_id(conn, event.subject)
    d = event.data
    tag_id = conn.execute(
        select(schema.tag.c.id).where(_tag_clause(d["type"], d["name"], d.get("scope") or "global"))
    ).scalar()
    if job_id is None or tag_id is None:
        return
    conn.execute(
        delete(schema.jobtag).where(and_(schema.jobtag.c.job_id == job_id, schema.jobtag.c.tag_id == tag_id))
    )


def record_tag_created(conn: Connection, event: Event) -> None:
    d = event.data
    ensure_tag(conn, d["type"], d["name"], d.get("scope") or "global")


def record_tag_deleted(conn: Connection, event: Event) -> None:
    d = event.data
    tag_id = conn.execute(
        select(schema.tag.c.id).where(_tag_clause(d["type"], d["name"], d.get("scope") or "global"))
    ).scalar()
    if tag_id is None:
        return
    conn.execute(delete(schema.jobtag).where(schema.jobtag.c.tag_id == tag_id))
    conn.execute(delete(schema.tag).where(schema.tag.c.id == tag_id))


HANDLERS: HandlerTable = {
    "job.tag_added": record_tag_added,
    "job.tag_removed": record_tag_removed,
    "tag.created": record_tag_created,
    "tag.deleted": record_tag_deleted,
}

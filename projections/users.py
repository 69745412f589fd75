"""User handlers: the `hpc_user` table as cc-backend lays it out."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from projections import schema
from projections.handlers import HandlerTable
from streams.events import Event


def record_user_created(conn: Connection, event: Event) -> None:
    d = event.data
    values = {
        "username": d["username"],
        "password": d.get("password"),
        "ldap": d.get("authSource", 0),
        "name": d.get("name"),
        "roles": orjson.dumps(d.get("roles") or []).decode(),
        "email": d.get("email"),
        "projects": orjson.dumps(d.get("projects") or []).decode(),
    }
    stmt = sqlite_insert(schema.hpc_user).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["username"], set_=values))


def record_user_updated(conn: Connection, event: Event) -> None:
    d = event.data
    changes: dict[str, str] = {}
    if d.get("roles") is not None:
        changes["roles"] = orjson.dumps(d["roles"]).decode()
    if d.get("projects") is not None:
        changes["projects"] = orjson.dumps(d["projects"]).decode()
    if changes:
        row = schema.hpc_user.c.username == d["username"]
        conn.execute(update(schema.hpc_user).where(row).values(**changes))


def record_user_deleted(conn: Connection, event: Event) -> None:
    username = event.data["username"]
    conn.execute(delete(schema.configuration).where(schema.configuration.c.username == username))
    conn.execute(delete(schema.hpc_user).where(schema.hpc_user.c.username == username))


def record_configuration_updated(conn: Connection, event: Event) -> None:
    """cc-backend's `REPLACE INTO configuration`; a key of an account deleted meanwhile is dropped with it."""
    d = event.data
    known = conn.execute(select(schema.hpc_user.c.username).where(schema.hpc_user.c.username == d["username"]))
    if known.first() is None:
        return
    values = {"username": d["username"], "confkey": d["key"], "value": d["value"]}
    stmt = sqlite_insert(schema.configuration).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["username", "confkey"], set_={"value": d["value"]}))


HANDLERS: HandlerTable = {
    "user.created": record_user_created,
    "user.updated": record_user_updated,
    "user.deleted": record_user_deleted,
    "user.configuration_updated": record_configuration_updated,
}

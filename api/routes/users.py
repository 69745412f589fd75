"""Users (cc-backend's `/api/users/` and `/api/user/{id}`), admins only; every change is an event."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from api.bootstrap import Services
from api.errors import ApiError
from api.jobjson import user_json
from api.passwords import hash_password
from api.readpool import ReadRoute
from api.responses import JSON
from api.routes.common import parse_bool, reject_unknown_params, rejection, services_of
from projections import queries
from streams.events import Event, new_event
from streams.ingest.outcomes import Rejected

ROLES = ("anonymous", "api", "user", "manager", "support", "admin")


async def _record(services: Services, events: list[Event]) -> None:
    """Append and wait until visible; a form value the user events cannot hold (a control character in a
    name, a name over 255 characters) is a 400 naming the field, and nothing is written."""
    try:
        position = await services.intake.record(events)
    except Rejected as exc:
        raise await rejection(services, exc) from None
    await services.visible(position)


def build_router(admin_auth: Any) -> APIRouter:
    """User management routes, behind the `admin` role; the listing runs in the read pool."""
    router = APIRouter(dependencies=[Depends(admin_auth)], route_class=ReadRoute)

    @router.get("/api/users/")
    def list_users(request: Request) -> JSON:
        """All users; with `not-just-user=true` only those with more than the `user` role."""
        reject_unknown_params(request, {"not-just-user"})
        only_special = parse_bool(request.query_params.get("not-just-user"), "not-just-user")
        with services_of(request).reader.connect() as conn:
            rows = queries.users(conn, only_special)
        return JSON([user_json(r) for r in rows])

    @router.post("/api/users/")
    async def create_user(request: Request) -> PlainTextResponse:
        """Create a local user from form fields username, password, role, name, email, project."""
        form = await request.form()
        username = str(form.get("username") or "")
        password = str(form.get("password") or "")
        role = str(form.get("role") or "")
        if not username:
            raise ApiError(400, "no username given")
        if role not in ROLES:
            raise ApiError(400, f"invalid role: {role!r} (one of {', '.join(ROLES)})")
        if not password and role != "api":
            raise ApiError(400, "only API users are allowed to have a blank password (login will be impossible)")
        project = str(form.get("project") or "")
        if project and role != "manager":
            raise ApiError(400, "only managers require a project (can be changed later)")
        if not project and role == "manager":
            raise ApiError(400, "managers require a project to manage (can be changed later)")
        services = services_of(request)
        try:
            hashed = hash_password(password) if password else None
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        data = {
            "username": username,
            "password": hashed,
            "roles": [role],
            "projects": [project] if project else [],
            "name": str(form.get("name") or "") or None,
            "email": str(form.get("email") or "") or None,
            "authSource": 0,
        }
        with services.reader.connect() as conn:
            if queries.find_user(conn, username) is not None:
                raise ApiError(422, f"user {username!r} already exists")
        await _record(services, [new_event("user.created", f"users/{username}", data,
                                                           source="rest:/api/users/")])
        return PlainTextResponse(f"User {username} successfully created!\n")

    @router.delete("/api/users/")
    async def delete_user(request: Request) -> PlainTextResponse:
        """Delete the user named by the form field `username`."""
        form = await request.form()
        username = str(form.get("username") or "")
        services = services_of(request)
        with services.reader.connect() as conn:
            if not username or queries.find_user(conn, username) is None:
                raise ApiError(422, f"user {username!r} does not exist")
        await _record(services, [new_event("user.deleted", f"users/{username}",
                                                           {"username": username}, source="rest:/api/users/")])
        return PlainTextResponse("")

    @router.post("/api/user/{username}")
    async def update_user(username: str, request: Request) -> PlainTextResponse:
        """Add or remove one role or project (form fields add-role, remove-role, add-project, remove-project)."""
        form = await request.form()
        services = services_of(request)
        with services.reader.connect() as conn:
            row = queries.find_user(conn, username)
        if row is None:
            raise ApiError(422, f"user {username!r} does not exist")
        roles = list(orjson.loads(row["roles"] or "[]"))
        projects = list(orjson.loads(row["projects"] or "[]"))
        message = _apply_user_change(dict(form), roles, projects)
        data = {"username": username, "roles": roles, "projects": projects}
        await _record(services, [new_event("user.updated", f"users/{username}", data,
                                                           source="rest:/api/user/")])
        return PlainTextResponse(message)

    return router


def _apply_user_change(form: dict[str, Any], roles: list[str], projects: list[str]) -> str:
    """Mutates roles/projects as one form change asks; returns cc-backend's confirmation text."""
    if role := str(form.get("add-role") or ""):
        if role not in ROLES or role in roles:
            raise ApiError(422, f"cannot add role {role!r}")
        roles.append(role)
        return f"Add Role Success: {role}"
    if role := str(form.get("remove-role") or ""):
        if role not in roles:
            raise ApiError(422, f"cannot remove role {role!r}: user does not have it")
        roles.remove(role)
        return f"Remove Role Success: {role}"
    if project := str(form.get("add-project") or ""):
        if "manager" not in roles or project in projects:
            raise ApiError(422, f"cannot add project {project!r} (only managers have projects)")
        projects.append(project)
        return f"Add Project Success: {project}"
    if project := str(form.get("remove-project") or ""):
        if project not in projects:
            raise ApiError(422, f"cannot remove project {project!r}: user does not have it")
        projects.remove(project)
        return f"Remove Project Success: {project}"
    raise ApiError(400, "expected one of add-role, remove-role, add-project, remove-project")

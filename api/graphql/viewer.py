"""Who is asking, and which jobs, tags and nodes that lets them see (cc-backend's SecurityCheck, §3.1)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, true

from api.auth import Principal, Role
from projections import schema

job = schema.job
tag = schema.tag

#: Roles that see every job; an account whose only role is `api` does too (the adapters' and scripts' view).
_SEE_ALL = {Role.ADMIN.value, Role.SUPPORT.value}


class Forbidden(Exception):
    """The viewer may not see or change this; the message is the GraphQL error's."""


def sees_all_jobs(viewer: Principal) -> bool:
    return viewer.has_any_role(_SEE_ALL) or viewer.roles == {Role.API.value}


def job_visibility(viewer: Principal) -> ColumnElement[bool]:
    """The condition a job row must meet to be visible to `viewer`.

    Admin, support and api-only accounts see every job; a manager the jobs of their projects and their
    own; a user their own. Anyone else sees nothing, which cc-backend answers with an error.
    """
    if sees_all_jobs(viewer):
        return true()
    if viewer.has_role(Role.MANAGER.value):
        own = job.c.hpc_user == viewer.username
        return or_(job.c.project.in_(viewer.projects), own) if viewer.projects else own
    if viewer.has_role(Role.USER.value):
        return job.c.hpc_user == viewer.username
    raise Forbidden("user has no or unknown roles")


def may_see_other_users(viewer: Principal) -> bool:
    """Whether `userData` / `user(...)` of someone else is answered (cc-backend: admin, support, manager)."""
    return viewer.has_any_role({Role.ADMIN.value, Role.SUPPORT.value, Role.MANAGER.value})


def require_node_access(viewer: Principal) -> None:
    """Node data is for admin and support only."""
    if not viewer.has_any_role(_SEE_ALL):
        raise Forbidden("user has no or unknown roles")


def tag_visibility(viewer: Principal) -> ColumnElement[bool]:
    """Tags a viewer reads: `global`, `admin` for admin/support, and their own private ones."""
    scopes = ["global", viewer.username]
    if viewer.has_any_role(_SEE_ALL):
        scopes.append("admin")
    return tag.c.tag_scope.in_(scopes)


def may_write_tag_scope(viewer: Principal, scope: str) -> bool:
    """Creating or attaching a tag: admin for `admin`, admin/support for `global`, anyone for their own."""
    if scope == "admin":
        return viewer.has_role(Role.ADMIN.value)
    if scope == "global":
        return viewer.has_any_role(_SEE_ALL)
    return scope == viewer.username


def may_delete_tag_scope(viewer: Principal, scope: str) -> bool:
    """Deleting a tag: admin for `global` and `admin`, anyone for their own private tags."""
    if scope in ("global", "admin"):
        return viewer.has_role(Role.ADMIN.value)
    return scope == viewer.username


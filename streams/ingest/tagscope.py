"""Which scopes a tag may have: cc-backend's `global`, `admin`, or the name of a user (a private tag).

A tag in a scope that names nobody is one that no one can see or remove in the web UI, so intake
refuses it (start_job's `tags`, tag_job) before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable

#: Scopes shared by everyone; any other scope is a user's name.
SHARED_SCOPES = ("global", "admin")


def scope_error(scope: str, user_exists: Callable[[str], bool] | None) -> str | None:
    """Why `scope` is not a valid tag scope, or None when it is. Without `user_exists` (no user table
    at hand, as in tests of the intake alone) a private scope is taken as valid."""
    if scope in SHARED_SCOPES or user_exists is None or user_exists(scope):
        return None
    return f"tag scope {scope!r} is neither global, admin nor the name of an existing user"

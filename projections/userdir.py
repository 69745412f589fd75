"""Every account's current roles and projects, held in memory for the API's authentication.

A token says who is calling; the user table says what that account may do now. Looking the account up on
every request makes a deleted user or a removed role take effect at once, not when the token expires, and
it costs a dict lookup: the table is read once, and again only after the job database has applied a
user event (`JobDatabaseProjection` tells the directory) or when an unknown name is asked for.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import Engine, select

from projections import schema

#: Seconds between two reloads caused by unknown names (a client with a stale token must not reload per request).
_MISS_RELOAD_INTERVAL = 1.0


@dataclass(frozen=True)
class Account:
    """An account as the user table holds it."""

    username: str
    roles: frozenset[str]
    projects: tuple[str, ...]


class UserDirectory:
    """The user table in memory; thread-safe, reloaded lazily after `invalidate`."""

    def __init__(self, reader: Engine) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] | None = None
        self._missed_at = 0.0

    def invalidate(self) -> None:
        """The table changed: the next lookup reads it again."""
        self._accounts = None

    def lookup(self, username: str) -> Account | None:
        """The account, or None when there is no such user."""
        accounts = self._accounts if self._accounts is not None else self._load()
        found = accounts.get(username)
        if found is None and time.monotonic() - self._missed_at >= _MISS_RELOAD_INTERVAL:
            # Added by another process and not yet seen here? Look once more, at most once a second.
            self._missed_at = time.monotonic()
            found = self._load().get(username)
        return found

    def _load(self) -> dict[str, Account]:
        with self._lock:
            with self._reader.connect() as conn:
                rows = conn.execute(select(schema.hpc_user.c.username, schema.hpc_user.c.roles,
                                           schema.hpc_user.c.projects)).all()
            accounts = {
                str(name): Account(str(name), frozenset(_strings(roles)), tuple(_strings(projects)))
                for name, roles, projects in rows
            }
            self._accounts = accounts
            return accounts


def _strings(raw: str | None) -> list[str]:
    try:
        value = orjson.loads(raw or "[]")
    except orjson.JSONDecodeError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []

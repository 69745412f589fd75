"""Quarantined events and operators' requests about them, kept beside each agent's checkpoint.

An event that an agent cannot apply after its retries is quarantined: recorded with the error, in the
same transaction that moves the agent's checkpoint past it, so the read model itself says what it
skipped, and the agent goes on. An operator then retries the event (after a fix) or confirms the skip;
a skip can also be asked for before the retries run out (`ccstream agents skip POSITION`). Requests
are rows in the agent's own store, so the CLI files them whether or not the server runs, and the
server's runner acts on them.

The SQL is the same for every agent's store (SQLite through sqlite3 or SQLAlchemy): functions here take
an `execute(sql, params)` callable of the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from streams.events import Event

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ccstream_quarantine (
    agent TEXT NOT NULL,
    position INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    quarantined_at REAL NOT NULL,
    PRIMARY KEY (agent, position)
)""",
    """CREATE TABLE IF NOT EXISTS ccstream_agent_request (
    agent TEXT NOT NULL,
    position INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('skip', 'retry')),
    requested_at REAL NOT NULL,
    PRIMARY KEY (agent, position)
)""",
)

Action = Literal["skip", "retry"]
#: The longest error text kept per quarantined event (a traceback-sized message is cut).
ERROR_MAX = 2000


class Cursor(Protocol):
    def fetchall(self) -> Sequence[Any]: ...


Execute = Callable[[str, tuple[Any, ...]], Cursor]


@dataclass(frozen=True)
class QuarantinedEvent:
    """An event an agent skipped, and why."""

    agent: str
    position: int
    event_id: str
    type: str
    subject: str
    error: str
    attempts: int
    quarantined_at: float


@dataclass(frozen=True)
class AgentRequest:
    """An operator's request about one position of one agent, not yet acted on."""

    agent: str
    position: int
    action: Action
    requested_at: float


def put(execute: Execute, agent: str, event: Event, error: str, attempts: int, now: float) -> None:
    """Record (or update) the quarantine of `event`."""
    execute(
        "INSERT INTO ccstream_quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent, position) DO UPDATE"
        " SET error = excluded.error, attempts = excluded.attempts, quarantined_at = excluded.quarantined_at",
        (agent, event.position or 0, event.id, event.type, event.subject, error[:ERROR_MAX], attempts, now),
    )


def release(execute: Execute, agent: str, position: int) -> None:
    """Lift the quarantine of one position (its event was applied after all)."""
    execute("DELETE FROM ccstream_quarantine WHERE agent = ? AND position = ?", (agent, position))


def entries(execute: Execute, agent: str) -> list[QuarantinedEvent]:
    """What the agent has skipped, oldest first."""
    rows = execute(
        "SELECT agent, position, event_id, type, subject, error, attempts, quarantined_at"
        " FROM ccstream_quarantine WHERE agent = ? ORDER BY position", (agent,),
    ).fetchall()
    return [QuarantinedEvent(*row) for row in rows]


def file_request(execute: Execute, agent: str, position: int, action: Action, now: float) -> None:
    """File an operator's request (a newer one for the same position replaces the older)."""
    execute(
        "INSERT INTO ccstream_agent_request VALUES (?, ?, ?, ?) ON CONFLICT (agent, position) DO UPDATE"
        " SET action = excluded.action, requested_at = excluded.requested_at",
        (agent, position, action, now),
    )


def requests(execute: Execute, agent: str) -> list[AgentRequest]:
    """Requests not acted on yet, oldest first."""
    rows = execute(
        "SELECT agent, position, action, requested_at FROM ccstream_agent_request WHERE agent = ?"
        " ORDER BY requested_at", (agent,),
    ).fetchall()
    return [AgentRequest(*row) for row in rows]


def settle(execute: Execute, agent: str, position: int) -> None:
    """A request was acted on (or found obsolete)."""
    execute("DELETE FROM ccstream_agent_request WHERE agent = ? AND position = ?", (agent, position))

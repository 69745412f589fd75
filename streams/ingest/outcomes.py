"""What the job intake answers: acceptances and the precise reasons for rejections."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Accepted:
    """The request's events are durable in the log, the last at `position`."""

    subject: str
    position: int
    #: The identical request had been accepted before; nothing new was appended.
    repeated: bool = False
    #: A stop that waited for this start was applied together with it.
    resolved_parked_stop: bool = False
    #: The stop was parked: its job has not started (as far as the log knows).
    parked: bool = False


class Rejected(Exception):
    """A request the intake refuses; `kind` maps to a status: invalid 400, not_found 404, conflict 422."""

    kind = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def describe(self, db_id: int | None = None) -> str:
        """The message, completed with the job's database id where the client expects it."""
        return self.message


class Invalid(Rejected):
    """Malformed or insane request (400)."""


class NotFound(Rejected):
    """The job the request refers to does not exist (404)."""

    kind = "not_found"


class JobConflict(Rejected):
    """The request contradicts a run already in the log (422, or 400 for an impossible stop time).

    The message template has a `{db_id}` slot: the database id is only known to the read model.
    """

    kind = "conflict"

    def __init__(self, template: str, subject: str, position: int, kind: str = "conflict") -> None:
        super().__init__(template)
        self.subject = subject
        self.position = position
        self.kind = kind

    def describe(self, db_id: int | None = None) -> str:
        return self.message.format(db_id="?" if db_id is None else db_id)

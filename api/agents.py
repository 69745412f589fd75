"""Operators' view of the agents over the log: status, quarantined events, skip and retry requests.

The same for the admin API (inside the server) and `ccstream agents` (beside it, on the agents' own
stores): a request is filed in the agent's store, the server's runner acts on it, and the caller waits a
little for the outcome, which the store then shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from streams.runtime.quarantine import Action, AgentRequest, QuarantinedEvent


class AgentControl(Protocol):
    """What an operator's request needs of an agent: its store's checkpoint, quarantine and requests."""

    name: str

    def checkpoint(self) -> int: ...

    def quarantined(self) -> list[QuarantinedEvent]: ...

    def requests(self) -> list[AgentRequest]: ...

    def file_request(self, position: int, action: Action) -> None: ...


class RequestRefused(ValueError):
    """A skip or retry that cannot apply as asked (the message says why)."""


@dataclass(frozen=True)
class RequestOutcome:
    """Where a filed request stands once the caller stopped waiting for it."""

    agent: str
    position: int
    action: Action
    #: True once the runner acted on it; False when nothing acted within the wait (no server running).
    settled: bool
    #: The event's quarantine entry afterwards: present after a skip or a failed retry, absent after a retry
    #: that applied it.
    quarantine: QuarantinedEvent | None
    checkpoint: int

    def message(self) -> str:
        """One line for the operator."""
        where = f"{self.agent} position {self.position}"
        if not self.settled:
            return (f"{self.action} of {where} is filed; the server acts on it when its agent gets there "
                    "(is the server running?)")
        if self.action == "skip":
            if self.quarantine is None:
                return f"skip of {where} was moot: the agent had applied it (checkpoint {self.checkpoint})"
            return f"{where} skipped and quarantined; the agent goes on from {self.checkpoint}"
        if self.quarantine is None:
            return f"{where} applied on retry"
        return f"retry of {where} failed, still quarantined: {self.quarantine.error}"

    def as_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "position": self.position, "action": self.action, "settled": self.settled,
            "quarantine": None if self.quarantine is None else asdict(self.quarantine),
            "checkpoint": self.checkpoint, "message": self.message(),
        }


def check_request(control: AgentControl, position: int, action: Action, head: int) -> None:
    """Refuse what can never apply: a position outside the log, a retry of a position not quarantined."""
    if not 1 <= position <= head:
        raise RequestRefused(f"position {position} is not in the log (1 to {head})")
    if action == "retry" and all(q.position != position for q in control.quarantined()):
        raise RequestRefused(f"position {position} is not quarantined by agent {control.name}")
    if action == "skip" and position <= control.checkpoint() and all(
        q.position != position for q in control.quarantined()
    ):
        raise RequestRefused(
            f"agent {control.name} has already applied position {position} (checkpoint {control.checkpoint()})"
        )


def file_and_wait(control: AgentControl, position: int, action: Action, wait: float,
                  notify: Callable[[], None] | None = None) -> RequestOutcome:
    """File the request, tell the runner (`notify`, in the server), then wait up to `wait` seconds for it."""
    control.file_request(position, action)
    if notify is not None:
        notify()
    clock, pause = time.monotonic, time.sleep
    deadline = clock() + wait
    settled = False
    while True:
        settled = all(r.position != position for r in control.requests())
        if settled or clock() >= deadline:
            break
        pause(0.05)
    entry = next((q for q in control.quarantined() if q.position == position), None)
    return RequestOutcome(control.name, position, action, settled, entry, control.checkpoint())

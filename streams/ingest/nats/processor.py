"""Applies interpreted NATS lines through the same intakes as REST, and keeps what they refuse.

Transport-free: core NATS, JetStream and `ccstream rejected retry` all go through `apply`. A refusal
is an answer (kept as a dead letter, the message is done); any other exception means ccstream could
not decide, and the caller must not acknowledge the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Literal

from streams.deadletter import DeadLetterStore
from streams.ingest.intake import JobIntake
from streams.ingest.nats.messages import Command, Delivery, Refusal, interpret, rejection_kind
from streams.ingest.nodestate import NodeStateIntake
from streams.ingest.outcomes import Accepted, Rejected

log = logging.getLogger(__name__)

Status = Literal["applied", "duplicate", "rejected"]


@dataclass(frozen=True)
class LineOutcome:
    """What became of one line (or of a message refused as a whole)."""

    number: int | None
    status: Status
    kind: str = ""
    reason: str = ""
    raw: bytes = b""
    position: int = 0


@dataclass
class SubjectCounters:
    """Per-subject counters: messages received, and lines applied, duplicate or rejected."""

    received: int = 0
    redelivered: int = 0
    applied: int = 0
    duplicate: int = 0
    rejected: int = 0
    #: Messages ccstream could not process (not acknowledged: JetStream redelivers them).
    failed: int = 0

    def count(self, outcomes: list[LineOutcome]) -> None:
        for outcome in outcomes:
            if outcome.status == "applied":
                self.applied += 1
            elif outcome.status == "duplicate":
                self.duplicate += 1
            else:
                self.rejected += 1

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class NatsProcessor:
    """Lines to intake calls; refusals to the dead-letter store."""

    def __init__(self, jobs: JobIntake, nodes: NodeStateIntake, dead_letters: DeadLetterStore) -> None:
        self.jobs = jobs
        self.nodes = nodes
        self.dead_letters = dead_letters

    async def apply(self, items: list[Command | Refusal], delivery: Delivery) -> list[LineOutcome]:
        """Run every command through its intake; refusals and rejections become outcomes, in order."""
        outcomes = []
        for item in items:
            if isinstance(item, Refusal):
                outcomes.append(LineOutcome(item.number, "rejected", item.kind, item.reason, item.raw))
                continue
            try:
                accepted = await self._call(item, delivery)
            except Rejected as exc:
                kind = rejection_kind(exc.kind, exc.message)
                reason = f"line {item.number}: {item.function}: {exc.describe(None)}"
                outcomes.append(LineOutcome(item.number, "rejected", kind, reason, item.raw.encode()))
                continue
            status: Status = "duplicate" if accepted.repeated else "applied"
            outcomes.append(LineOutcome(item.number, status, position=accepted.position))
        return outcomes

    async def _call(self, command: Command, delivery: Delivery) -> Accepted:
        source = f"nats:{delivery.subject}"
        if command.function == "start_job":
            return await self.jobs.start_job(command.body, source=source, event_id=command.event_id)
        if command.function == "stop_job":
            return await self.jobs.stop_job(command.body, source=source, event_id=command.event_id)
        observed = command.observed_at if command.observed_at is not None else int(delivery.received_at)
        return await self.nodes.report(command.body, source=source, observed_at=observed, event_id=command.event_id)

    async def process(
        self, data: bytes, delivery: Delivery, items: list[Command | Refusal] | None = None
    ) -> list[LineOutcome]:
        """Interpret (unless done already), apply and keep refusals: one message, durable when this returns."""
        outcomes = await self.apply(interpret(data, delivery) if items is None else items, delivery)
        await self.keep(outcomes, delivery)
        return outcomes

    async def keep(self, outcomes: list[LineOutcome], delivery: Delivery) -> None:
        """Store the rejected outcomes as dead letters (durably, before the message is acknowledged)."""
        rejected = [o for o in outcomes if o.status == "rejected"]
        if rejected:
            await asyncio.to_thread(self._store, rejected, delivery)

    def _store(self, rejected: list[LineOutcome], delivery: Delivery) -> None:
        for outcome in rejected:
            key = delivery.line_key(outcome.number or 0)
            entry_id, new = self.dead_letters.add(
                subject=delivery.subject, channel=delivery.channel, raw=outcome.raw, kind=outcome.kind,
                reason=outcome.reason, key=key, msg_id=delivery.msg_id, line=outcome.number,
                received_at=delivery.received_at,
            )
            if new:
                log.warning("NATS %s: rejected (dead letter %d, %s): %s", delivery.subject, entry_id, outcome.kind,
                            outcome.reason)

    def keep_failure(self, data: bytes, delivery: Delivery, error: str) -> None:
        """A message ccstream gave up on (core NATS cannot redeliver; JetStream ran out of deliveries)."""
        key = delivery.line_key(0)
        self.dead_letters.add(
            subject=delivery.subject, channel=delivery.channel, raw=data, kind="internal",
            reason=f"could not be processed: {error}", key=key, msg_id=delivery.msg_id,
            received_at=delivery.received_at,
        )


async def retry_dead_letter(processor: NatsProcessor, entry_id: int) -> tuple[str, list[LineOutcome]]:
    """Run a dead letter through the intake again; resolve it when accepted, else record the new reason.

    The line keeps its message id and line number, so a retried start or stop gets the event id the
    original would have had: retrying twice, or a late redelivery of the original, applies it once.
    """
    store = processor.dead_letters
    entry = store.get(entry_id)
    if entry is None:
        raise KeyError(f"no dead letter with id {entry_id}")
    if entry.status == "resolved":
        return "already resolved", []
    delivery = Delivery(
        subject=entry.subject, channel=entry.channel,  # type: ignore[arg-type]  # stored from a Channel
        msg_id=entry.msg_id, received_at=time.time(), first_line=entry.line or 1,
    )
    outcomes = await processor.apply(interpret(entry.raw, delivery), delivery)
    refused = [o for o in outcomes if o.status == "rejected"]
    if refused:
        store.refused_again(entry_id, refused[0].kind, "; ".join(o.reason for o in refused))
        return "rejected", outcomes
    summary = ", ".join(f"line {o.number}: {o.status}" for o in outcomes)
    store.resolve(entry_id, f"retried {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: {summary}")
    return "resolved", outcomes

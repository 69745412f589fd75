"""What a NATS message means: lines to commands, ids from the delivery, reasons for refusals. Pure.

A message is one or more line-protocol lines. Each line is its own unit: it becomes one intake call
(start, stop or node report) or one refusal with a machine-readable `kind` and a precise message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from streams.events import derived_event_id
from streams.events.bounds import MESSAGE_KEPT, MESSAGE_MAX
from streams.ingest.lineprotocol import Line, LineError, parse_batch, timestamp_seconds

Channel = Literal["job", "node"]
Function = Literal["start_job", "stop_job", "nodestate"]

#: The measurement cc-backend expects on each subject.
MEASUREMENT: dict[str, str] = {"job": "job", "node": "nodestate"}
JOB_FUNCTIONS = ("start_job", "stop_job")

#: Every kind of refusal, for counters, dead letters and tests.
REJECTION_KINDS = (
    "empty",                   # the message has no lines
    "too_large",               # the message is larger than streams.events.bounds.MESSAGE_MAX
    "malformed",               # not line protocol (or not UTF-8)
    "unexpected_measurement",  # `job` expected on the job subject, `nodestate` on the node subject
    "not_event",               # no string field `event`
    "missing_function",        # a job line without the `function` tag
    "unknown_function",        # `function` is neither start_job nor stop_job
    "invalid_json",            # `event` is not a JSON object
    "unknown_field",           # the JSON has a field cc-backend's structs do not
    "invalid",                 # wrong types, failed sanity checks, unknown cluster or subcluster
    "not_found",               # a stop for a job the log does not know (and cannot park)
    "conflict",                # a duplicate start, or a stop of a stopped job
    "internal",                # ccstream could not process it (kept so that nothing is lost)
)


@dataclass(frozen=True)
class Delivery:
    """Where a message came from, and what identifies it across redeliveries."""

    subject: str
    channel: Channel
    #: The publisher's `Nats-Msg-Id` header: the strongest identity of a message.
    msg_id: str | None = None
    #: JetStream (stream, sequence): stable across redeliveries of one stored message.
    stream_seq: tuple[str, int] | None = None
    received_at: float = 0.0
    #: Number given to the first line (a retried dead letter keeps its line's original number).
    first_line: int = 1

    def line_key(self, number: int) -> str | None:
        """Identity of one line across redeliveries (None in core NATS: nothing is redelivered)."""
        if self.msg_id is not None:
            return f"msg:{self.msg_id}:{number}"
        if self.stream_seq is not None:
            return f"seq:{self.stream_seq[0]}:{self.stream_seq[1]}:{number}"
        return None


@dataclass(frozen=True)
class Command:
    """One line understood: call `function` with `body`; `event_id` pins the id of the event it makes."""

    function: Function
    body: dict[str, Any]
    number: int
    raw: str
    event_id: str | None
    #: Unix seconds from the line timestamp, when it had one.
    observed_at: int | None


@dataclass(frozen=True)
class Refusal:
    """One line (or the whole message) refused before reaching an intake."""

    kind: str
    reason: str
    number: int | None
    raw: bytes


def interpret(data: bytes, delivery: Delivery, max_bytes: int = MESSAGE_MAX) -> list[Command | Refusal]:
    """Commands and refusals for every line of a message, in order; one refusal for a message over `max_bytes`
    (only its beginning is kept: the dead letter shows what it was without storing all of it)."""
    if len(data) > max_bytes:
        return [Refusal("too_large", f"message of {len(data)} bytes is larger than the limit of {max_bytes} bytes "
                        "(MESSAGE_MAX)", None, data[:MESSAGE_KEPT])]
    if not data.strip():
        return [Refusal("empty", "empty message", None, data)]
    out: list[Command | Refusal] = []
    for item in parse_batch(data):
        if isinstance(item, LineError):
            number = item.number + delivery.first_line - 1
            raw = data if item.message.startswith("not valid UTF-8") else item.raw.encode()
            out.append(Refusal("malformed", f"line {number}: not line protocol: {item.describe()}", number, raw))
        else:
            out.append(_command(item, delivery))
    return out


def _command(line: Line, delivery: Delivery) -> Command | Refusal:
    number = line.number + delivery.first_line - 1
    raw = line.raw.encode()

    def refuse(kind: str, message: str) -> Refusal:
        return Refusal(kind, f"line {number}: {message}", number, raw)

    expected = MEASUREMENT[delivery.channel]
    if line.measurement != expected:
        return refuse("unexpected_measurement",
                      f"unexpected measurement {line.measurement!r} on {delivery.subject} (expected {expected!r})")
    event = line.fields.get("event")
    if not isinstance(event, str):
        return refuse("not_event", "not an event: no string field 'event' with the JSON payload")
    function: Function
    if delivery.channel == "job":
        tag = line.tags.get("function")
        if tag is None:
            return refuse("missing_function", "job event is missing the tag 'function' (start_job or stop_job)")
        if tag not in JOB_FUNCTIONS:
            return refuse("unknown_function", f"unknown job event function {tag!r} (expected start_job or stop_job)")
        function = tag  # type: ignore[assignment]
    else:
        function = "nodestate"
    try:
        body = orjson.loads(event)
    except orjson.JSONDecodeError as exc:
        return refuse("invalid_json", f"the 'event' field is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return refuse("invalid_json", f"the 'event' field must hold a JSON object, not {type(body).__name__}")
    observed = None if line.timestamp is None else timestamp_seconds(line.timestamp)
    return Command(function, body, number, line.raw, _event_id(function, line, number, delivery), observed)


def _event_id(function: Function, line: Line, number: int, delivery: Delivery) -> str | None:
    """The id of the event a line makes, stable across redeliveries.

    With a `Nats-Msg-Id` the publisher named the message: its id and line number make the event id.
    Without one, job events get the job intake's content-derived ids (None here). A node report is
    only "the same" if it has the same content *and* time, so it hashes the whole line (timestamp
    included); without a timestamp, the JetStream sequence; in core NATS a fresh id.
    """
    if delivery.msg_id is not None:
        return derived_event_id("nats-msg", delivery.msg_id, number)
    if function != "nodestate":
        return None
    if line.timestamp is not None:
        digest = hashlib.sha256(line.raw.encode()).hexdigest()
        return derived_event_id("node.states_reported", delivery.subject, digest)
    if delivery.stream_seq is not None:
        return derived_event_id("nats-seq", delivery.stream_seq[0], delivery.stream_seq[1], number)
    return None


def rejection_kind(kind: str, message: str) -> str:
    """The refusal kind of an intake rejection (`Rejected.kind` plus a look at the decoder's message)."""
    if kind == "not_found":
        return "not_found"
    if kind == "conflict":
        return "conflict"
    if "json: unknown field" in message:
        return "unknown_field"
    return "invalid"


def shard_key(item: Command | Refusal) -> str:
    """Messages of one scheduler job id go to one worker, so its start is applied before its stop."""
    if isinstance(item, Refusal):
        return ""
    if item.function == "nodestate":
        return f"nodes/{item.body.get('cluster')}"
    return f"job/{item.body.get('jobId')}"

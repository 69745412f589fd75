"""Encoding of events to bytes and back; the one place the stored form, and the form readers see, is defined.

Every reader of a log (agents, intake decisions, `get`, the recent-events cache, replay) sees an event
as `as_read` makes it: payload decoded from the stored bytes and lifted to the current version. So an
agent in the server and a replay of the log see the very same payload, and an event this build cannot
read (unknown type, version newer than the build) reaches every reader unchanged, for its runner to
quarantine rather than to crash on.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.events.envelope import Event
from streams.events.payloads import CURRENT_VERSION, UnknownEventType
from streams.events.upcasters import upcast


def encode_data(data: dict[str, Any]) -> bytes:
    """Payload bytes as stored in the log (compact JSON, keys in producer order)."""
    return orjson.dumps(data)


def decode_data(raw: bytes | str) -> dict[str, Any]:
    """Payload dict from stored bytes."""
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("event payload is not a JSON object")
    return value


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON form of an event (export files, Kafka records)."""
    return {
        "id": event.id,
        "type": event.type,
        "version": event.version,
        "subject": event.subject,
        "time": event.time,
        "source": event.source,
        "causation_id": event.causation_id,
        "data": event.data,
        "position": event.position,
        "recorded_at": event.recorded_at,
    }


def event_from_dict(raw: dict[str, Any], *, upcast_payload: bool = True) -> Event:
    """An event from its JSON form, lifted to the current payload version."""
    version = int(raw.get("version", 1))
    data = raw["data"]
    if upcast_payload:
        version, data = upcast(raw["type"], version, data)
    return Event(
        id=str(raw["id"]),
        type=str(raw["type"]),
        subject=str(raw["subject"]),
        data=data,
        version=version,
        time=float(raw.get("time") or 0.0),
        source=str(raw.get("source") or ""),
        causation_id=raw.get("causation_id"),
        position=raw.get("position"),
        recorded_at=raw.get("recorded_at"),
    )


def encode_event(event: Event) -> bytes:
    """One event as a JSON line."""
    return orjson.dumps(event_to_dict(event))


def decode_event(raw: bytes | str) -> Event:
    """One event from a JSON line."""
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("event is not a JSON object")
    return event_from_dict(value)


def unreadable(event: Event) -> str | None:
    """Why this build cannot hand `event` to an agent (unknown type, newer version), or None."""
    current = CURRENT_VERSION.get(event.type)
    if current is None:
        return f"unknown event type {event.type!r}"
    if event.version != current:
        return f"{event.type!r} version {event.version} is not one this build reads (current: {current})"
    return None


def lift(event: Event) -> Event:
    """The event at its type's current payload version; one this build cannot lift is returned as it is."""
    if CURRENT_VERSION.get(event.type) == event.version:
        return event
    try:
        version, data = upcast(event.type, event.version, event.data)
    except (UnknownEventType, KeyError, TypeError, ValueError):
        return event  # `unreadable` says why; the runner quarantines it
    return Event(
        id=event.id, type=event.type, subject=event.subject, data=data, version=version, time=event.time,
        source=event.source, causation_id=event.causation_id, position=event.position,
        recorded_at=event.recorded_at,
    )


def as_read(event: Event, encoded: bytes | str, position: int | None, recorded_at: float | None) -> Event:
    """`event` as a reader of the log sees it once stored as `encoded`: decoded from those bytes, lifted."""
    stored = Event(
        id=event.id, type=event.type, subject=event.subject, data=decode_data(encoded), version=event.version,
        time=event.time, source=event.source, causation_id=event.causation_id, position=position,
        recorded_at=recorded_at,
    )
    return lift(stored)

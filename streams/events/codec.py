"""Encoding of events to bytes and back; the one place the stored form is defined."""

from __future__ import annotations

from typing import Any

import orjson

from streams.events.envelope import Event
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

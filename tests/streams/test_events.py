"""Events: every published (type, version) has a fixture that still decodes and validates."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.events import PAYLOADS, derived_event_id, job_subject, parse_job_subject, partition_key
from streams.events.codec import decode_event, encode_event
from streams.events.envelope import EVENT_ID_NAMESPACE
from streams.events.payloads import UnknownEventType, validate_payload
from streams.events.upcasters import UPCASTERS, upcast

FIXTURES = Path(__file__).parent.parent / "fixtures" / "events"


@pytest.mark.parametrize(("type_", "version"), sorted(PAYLOADS))
def test_every_published_version_has_a_fixture_that_validates(type_: str, version: int) -> None:
    path = FIXTURES / f"{type_}.v{version}.json"
    assert path.exists(), f"missing fixture {path.name}: every published payload version needs one"
    event = decode_event(path.read_bytes())
    assert event.type == type_
    validate_payload(event.type, event.version, event.data)


def test_no_fixture_without_a_published_model() -> None:
    for path in FIXTURES.glob("*.json"):
        type_, version = path.name.removesuffix(".json").rsplit(".v", 1)
        assert (type_, int(version)) in PAYLOADS, f"{path.name} has no payload model"


def test_codec_round_trip() -> None:
    event = decode_event((FIXTURES / "job.started.v1.json").read_bytes())
    assert decode_event(encode_event(event)) == event


def test_payload_models_reject_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        validate_payload("job.tag_added", 1, {"type": "a", "name": "b", "colour": "red"})


def test_unknown_type_is_refused() -> None:
    with pytest.raises(UnknownEventType):
        validate_payload("job.exploded", 1, {})
    with pytest.raises(UnknownEventType):
        upcast("job.exploded", 1, {})


def test_newer_version_than_known_is_refused() -> None:
    with pytest.raises(UnknownEventType, match="newer"):
        upcast("job.deleted", 9, {})


def test_upcasters_lift_step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.events import payloads

    monkeypatch.setitem(payloads.CURRENT_VERSION, "job.deleted", 3)
    monkeypatch.setitem(UPCASTERS, ("job.deleted", 1), lambda d: {**d, "by": "v2"})
    monkeypatch.setitem(UPCASTERS, ("job.deleted", 2), lambda d: {**d, "also": "v3"})
    assert upcast("job.deleted", 1, {"reason": "x"}) == (3, {"reason": "x", "by": "v2", "also": "v3"})
    monkeypatch.delitem(UPCASTERS, ("job.deleted", 2))
    with pytest.raises(UnknownEventType, match="no upcaster"):
        upcast("job.deleted", 1, {})


def test_derived_ids_are_deterministic_and_distinct() -> None:
    assert derived_event_id("a", 1) == derived_event_id("a", 1)
    assert derived_event_id("a", 1) != derived_event_id("a", 2)
    assert derived_event_id("ab", "c") != derived_event_id("a", "bc")


@pytest.mark.parametrize("parts", [("a", 1), ("job.started", "job/fritz/1/1700000000", "e3b0c442"), ("ü€\x1f", -7, ""),
                                   (), ("x" * 5000,)])
def test_derived_ids_are_uuid5_of_the_joined_parts(parts: tuple[object, ...]) -> None:
    """Ids already in logs were made by uuid.uuid5; every later id for the same cause must match them."""
    expected = str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(str(p) for p in parts)))
    assert derived_event_id(*parts) == expected


def test_job_subjects() -> None:
    subject = job_subject("fritz", 398764, 1675954353)
    assert subject == "job/fritz/398764/1675954353"
    assert parse_job_subject(subject) == ("fritz", 398764, 1675954353)
    assert parse_job_subject("job/fritz/1/*") == ("fritz", 1, None)
    assert partition_key(subject) == partition_key("job/fritz/398764/*") == "job/fritz/398764"
    assert partition_key("users/demo") == "users/demo"
    with pytest.raises(ValueError):
        parse_job_subject("users/demo")

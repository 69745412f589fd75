"""Events: the envelope, payload models, codec and upcasters. Pure: imports nothing of ours."""

from streams.events.envelope import (
    Event,
    derived_event_id,
    job_family_prefix,
    job_subject,
    new_event,
    parse_job_subject,
    partition_key,
)
from streams.events.payloads import PAYLOADS, UnknownEventType, validate_payload

__all__ = [
    "PAYLOADS",
    "Event",
    "UnknownEventType",
    "derived_event_id",
    "job_family_prefix",
    "job_subject",
    "new_event",
    "parse_job_subject",
    "partition_key",
    "validate_payload",
]

"""Parked stops that waited too long for their start: the events that expire them (a pure decision).

A stop that arrives before its start is kept (`job.stop_parked`) and applied when the start comes. One
whose start never comes (a job the scheduler lost, a stop sent to the wrong cluster) must not wait
forever: after `intake.parked-stop-max-age` it is expired with an event, so the log says why it was
dropped, every read model drops it alike, and a late start is no longer stopped by it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.events import Event, derived_event_id, job_family_prefix, new_event

SOURCE = "maintenance:parked-stops"


@dataclass(frozen=True)
class ParkedStop:
    """A stop waiting for its start, as the read model lists it."""

    event_id: str
    cluster: str
    job_id: int
    start_time: int | None
    received_at: float


def expiry_events(parked: Iterable[ParkedStop], now: float, max_age: int) -> list[Event]:
    """One `job.parked_stop_expired` per parked stop received more than `max_age` seconds before `now`.

    Ids derive from the parked stop: a run repeated before the read model caught up appends nothing new.
    """
    events = []
    for stop in parked:
        waited = now - stop.received_at
        if waited <= max_age:
            continue
        start = "*" if stop.start_time is None else stop.start_time
        events.append(new_event(
            "job.parked_stop_expired", f"{job_family_prefix(stop.cluster, stop.job_id)}{start}",
            {"parkedStopId": stop.event_id,
             "reason": f"waited {int(waited)} s for its start (intake.parked-stop-max-age is {max_age} s)"},
            id=derived_event_id("job.parked_stop_expired", stop.event_id), source=SOURCE,
            causation_id=stop.event_id, at=now,
        ))
    return events

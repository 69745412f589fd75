"""Settings owned by the streams package: the event log and the job intake."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EventLogSettings(_Section):
    """`event-log` section: where the source of truth lives."""

    kind: Literal["sqlite", "memory"] = Field(
        default="sqlite",
        description="Event log implementation: `sqlite` (embedded file, durable) or `memory` (tests only).",
    )
    path: str = Field(default="./var/events.db", description="SQLite file of the embedded event log.")


class IntakeSettings(_Section):
    """`intake` section: how job events are accepted."""

    duplicate_window: int = Field(
        default=86400,
        alias="duplicate-window",
        ge=0,
        description="A start of a job id already started within this many seconds is a duplicate (422).",
    )
    park_early_stops: bool = Field(
        default=True,
        alias="park-early-stops",
        description="Keep a stop whose job has not started yet and apply it when the start arrives "
        "(cc-backend drops it with 404).",
    )
    max_parked_stops: int = Field(
        default=10_000,
        alias="max-parked-stops",
        ge=0,
        description="Most stops kept waiting for their start at once; a stop beyond is refused (400).",
    )
    parked_stop_max_age: int = Field(
        default=7 * 86400,
        alias="parked-stop-max-age",
        ge=60,
        description="Seconds a parked stop waits for its start; then it expires (event `job.parked_stop_expired`, "
        "checked hourly).",
    )
    read_your_writes_timeout: float = Field(
        default=10.0,
        alias="read-your-writes-timeout",
        gt=0,
        description="Seconds an API answer waits for the read model to show what was just written.",
    )


class AgentSettings(_Section):
    """`agents` section: how the agents over the log (job database, archiver) deal with failing events."""

    max_attempts: int = Field(
        default=5,
        alias="max-attempts",
        ge=1,
        le=1000,
        description="Tries of one event before an agent quarantines it and moves on (`ccstream agents status`). "
        "Failures of the environment (a locked database, a full disk) are retried for as long as they last.",
    )
    max_backoff: float = Field(
        default=30.0,
        alias="max-backoff",
        gt=0,
        le=3600,
        description="Longest pause, in seconds, between two tries of a failing event.",
    )
    stop_timeout: float = Field(
        default=3.0,
        alias="stop-timeout",
        gt=0,
        le=60,
        description="Seconds the server waits at shutdown for an agent to finish the batch in hand.",
    )

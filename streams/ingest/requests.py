"""Validation of what scheduler adapters send: cc-backend's `schema.Job` and `StopJobApiRequest`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streams.events.bounds import (
    Count,
    FiniteFloat,
    HostName,
    Int64,
    JsonObject,
    Name,
    NonEmptyName,
    NonNegativeInt64,
    Text,
    Timestamp,
)
from streams.events.payloads import JobState, SharedMode, UnknownEventType, payload_model


class _Strict(BaseModel):
    # Go's decoder with DisallowUnknownFields: unknown keys and wrongly typed values are errors.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def normalise_job_state(value: object) -> object:
    """cc-lib spells it `out_of_memory` (what adapters send), cc-backend's job table `out-of-memory`."""
    return "out-of-memory" if value == "out_of_memory" else value


class ResourceIn(_Strict):
    """One node of a job as the scheduler reports it."""

    hostname: HostName
    hwthreads: list[Count] | None = None
    # Free text from the scheduler (cc-slurm-adapter takes them from the job's comment): bounded, not refused.
    accelerators: list[Text] | None = None
    configuration: Text | None = None


class TagIn(_Strict):
    """A tag as sent with a job or to `tag_job`."""

    id: Int64 | None = None
    type: NonEmptyName
    name: NonEmptyName
    scope: Name | None = None


class JobLinkList(_Strict):
    """`concurrentJobs` as cc-slurm-adapter marshals it (always empty on start)."""

    items: list[JsonObject] | None = None
    count: Count = 0
    listQuery: Text | None = None


class StartJobRequest(_Strict):
    """cc-backend's `schema.Job` as accepted by `start_job`, every field it marshals included."""

    id: Int64 | None = None
    jobId: NonNegativeInt64
    user: Name = ""
    project: Name = ""
    cluster: Name = ""
    subCluster: Name = ""
    partition: Name = ""
    arrayJobId: NonNegativeInt64 = 0
    numNodes: Count = 0
    numHwthreads: Count = 0
    numAcc: Count = 0
    shared: SharedMode | Literal[""] = "none"
    exclusive: Int64 | None = None
    monitoringStatus: int = Field(default=1, ge=0, le=3)
    smt: Count = 1
    jobState: JobState | Literal[""] = ""
    duration: NonNegativeInt64 = 0

    _state = field_validator("jobState", mode="before")(normalise_job_state)
    walltime: Count = 0
    requestedMemory: NonNegativeInt64 = 0
    submitTime: Timestamp = 0
    startTime: Timestamp = 0
    resources: list[ResourceIn] | None = None
    metaData: dict[NonEmptyName, Text] | None = None
    tags: list[TagIn] | None = None
    footprint: dict[Name, FiniteFloat] | None = None
    energyFootprint: dict[Name, FiniteFloat] | None = None
    energy: FiniteFloat = 0.0
    statistics: JsonObject | None = None
    concurrentJobs: JobLinkList | None = None


class StopJobRequest(_Strict):
    """cc-backend's `StopJobApiRequest`; cc-slurm-adapter omits `startTime`."""

    jobId: NonNegativeInt64 | None = None
    cluster: Name | None = None
    startTime: Timestamp | None = None
    jobState: JobState | Literal[""] = ""
    stopTime: Timestamp

    _state = field_validator("jobState", mode="before")(normalise_job_state)


class InvalidRequest(ValueError):
    """A request that can never succeed as sent (HTTP 400)."""


def describe(exc: ValidationError) -> str:
    """One line naming each offending field, like Go's decoder errors name the key."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            parts.append(f"json: unknown field {where!r}")
        elif kind == "missing":
            parts.append(f"the field {where!r} is required")
        else:
            parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts)


def parse_start(raw: bytes | str | dict[str, Any]) -> StartJobRequest:
    """Decode and validate a start_job body strictly; InvalidRequest names what is wrong."""
    try:
        if isinstance(raw, dict):
            return StartJobRequest.model_validate(raw)
        return StartJobRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidRequest(f"parsing request body failed: {describe(exc)}") from None


def parse_stop(raw: bytes | str | dict[str, Any]) -> StopJobRequest:
    """Decode and validate a stop_job body strictly."""
    try:
        if isinstance(raw, dict):
            return StopJobRequest.model_validate(raw)
        return StopJobRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidRequest(f"parsing request body failed: {describe(exc)}") from None


def check_payload(type: str, version: int, data: dict[str, Any]) -> None:
    """Hold an event built from a request to its payload model (bounds included) before it is appended.

    Request models already name most faults in the client's words; this is the guarantee that nothing a
    read model cannot store is appended, whatever route built the event.
    """
    try:
        payload_model(type, version).model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid {type} event: {describe(exc)}") from None
    except UnknownEventType as exc:
        raise InvalidRequest(str(exc)) from None

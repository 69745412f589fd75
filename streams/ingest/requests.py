"""Validation of what scheduler adapters send: cc-backend's `schema.Job` and `StopJobApiRequest`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streams.events.payloads import JobState, SharedMode


class _Strict(BaseModel):
    # Go's decoder with DisallowUnknownFields: unknown keys and wrongly typed values are errors.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def normalise_job_state(value: object) -> object:
    """cc-lib spells it `out_of_memory` (what adapters send), cc-backend's job table `out-of-memory`."""
    return "out-of-memory" if value == "out_of_memory" else value


class ResourceIn(_Strict):
    """One node of a job as the scheduler reports it."""

    hostname: str = Field(min_length=1)
    hwthreads: list[int] | None = None
    accelerators: list[str] | None = None
    configuration: str | None = None


class TagIn(_Strict):
    """A tag as sent with a job or to `tag_job`."""

    id: int | None = None
    type: str
    name: str
    scope: str | None = None


class JobLinkList(_Strict):
    """`concurrentJobs` as cc-slurm-adapter marshals it (always empty on start)."""

    items: list[dict[str, Any]] | None = None
    count: int = 0
    listQuery: str | None = None


class StartJobRequest(_Strict):
    """cc-backend's `schema.Job` as accepted by `start_job`, every field it marshals included."""

    id: int | None = None
    jobId: int
    user: str = ""
    project: str = ""
    cluster: str = ""
    subCluster: str = ""
    partition: str = ""
    arrayJobId: int = 0
    numNodes: int = 0
    numHwthreads: int = 0
    numAcc: int = 0
    shared: SharedMode | Literal[""] = "none"
    exclusive: int | None = None
    monitoringStatus: int = Field(default=1, ge=0, le=3)
    smt: int = 1
    jobState: JobState | Literal[""] = ""
    duration: int = 0

    _state = field_validator("jobState", mode="before")(normalise_job_state)
    walltime: int = 0
    requestedMemory: int = 0
    submitTime: int = 0
    startTime: int = 0
    resources: list[ResourceIn] | None = None
    metaData: dict[str, str] | None = None
    tags: list[TagIn] | None = None
    footprint: dict[str, float] | None = None
    energyFootprint: dict[str, float] | None = None
    energy: float = 0.0
    statistics: dict[str, Any] | None = None
    concurrentJobs: JobLinkList | None = None


class StopJobRequest(_Strict):
    """cc-backend's `StopJobApiRequest`; cc-slurm-adapter omits `startTime`."""

    jobId: int | None = None
    cluster: str | None = None
    startTime: int | None = None
    jobState: JobState | Literal[""] = ""
    stopTime: int

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

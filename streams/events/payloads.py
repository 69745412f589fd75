"""Frozen payload models, one per published (event type, version); a published model never changes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from streams.events.bounds import (
    FiniteFloat,
    Int32,
    Int64,
    JsonObject,
    Name,
    NonEmptyName,
    NonNegativeInt64,
    Text,
    Timestamp,
)

JobState = Literal[
    "boot_fail", "cancelled", "completed", "deadline", "failed", "node_fail",
    "out-of-memory", "pending", "preempted", "running", "suspended", "timeout",
]
SharedMode = Literal["none", "single_user", "multi_user"]


class Payload(BaseModel):
    """Base of every payload: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Resource(Payload):
    """One node of a job and what the job holds on it (cc-backend `schema.Resource`)."""

    hostname: Name
    hwthreads: list[Int32] | None = None
    # Free text from the scheduler (cc-slurm-adapter takes them from the job's comment): bounded, not refused.
    accelerators: list[Text] | None = None
    configuration: Text | None = None


class JobTag(Payload):
    """A tag as carried inside a job record (cc-backend `schema.Tag`)."""

    id: Int64 | None = None
    type: NonEmptyName
    name: NonEmptyName
    scope: Name = "global"


class JobStartedV1(Payload):
    """A job began running; the fields and names of cc-backend's `schema.Job` (archive `meta.json`)."""

    jobId: Int64
    # Empty user and project are refused at intake (cc-backend's rule), not in imported history.
    user: Name
    project: Name
    cluster: NonEmptyName
    subCluster: Name
    partition: Name = ""
    arrayJobId: Int64 = 0
    numNodes: Int32
    numHwthreads: Int32 = 0
    numAcc: Int32 = 0
    shared: SharedMode = "none"
    monitoringStatus: int = Field(default=1, ge=0, le=3)
    smt: Int32 = 1
    walltime: Int32 = 0
    requestedMemory: Int64 = 0
    submitTime: Int64 = 0
    startTime: Int64
    resources: list[Resource]
    metaData: dict[NonEmptyName, Text] = Field(default_factory=dict)
    tags: list[JobTag] = Field(default_factory=list)
    footprint: dict[Name, FiniteFloat] | None = None
    energyFootprint: dict[Name, FiniteFloat] | None = None
    energy: FiniteFloat = 0.0
    statistics: JsonObject | None = None
    #: Database id to keep, for jobs imported from an existing cc-backend database.
    dbId: Int64 | None = None


class JobStoppedV1(Payload):
    """A running job ended."""

    jobState: JobState
    stopTime: Int64
    duration: NonNegativeInt64
    #: The parked stop this stop resolves, when the stop arrived before its start.
    parkedStopId: Name | None = None


class JobStopParkedV1(Payload):
    """A stop arrived for a job not started yet; kept until its start arrives."""

    cluster: NonEmptyName
    jobId: Int64
    startTime: Int64 | None = None
    jobState: JobState
    stopTime: Int64


class JobParkedStopExpiredV1(Payload):
    """A parked stop waited longer than `intake.parked-stop-max-age` for its start and was dropped."""

    parkedStopId: NonEmptyName
    reason: Text = ""


class JobTagAddedV1(Payload):
    """A tag was attached to a job."""

    type: NonEmptyName
    name: NonEmptyName
    scope: Name = "global"


class JobTagRemovedV1(Payload):
    """A tag was detached from a job."""

    type: NonEmptyName
    name: NonEmptyName
    scope: Name = "global"


class TagDeletedV1(Payload):
    """A tag was removed from the system, and from every job that had it."""

    type: NonEmptyName
    name: NonEmptyName
    scope: Name = "global"


class TagCreatedV1(Payload):
    """A tag was created without being attached to a job (GraphQL `createTag`)."""

    type: NonEmptyName
    name: NonEmptyName
    scope: Name = "global"


class UserConfigurationUpdatedV1(Payload):
    """A user changed one key of their web UI configuration; the value is the JSON text the UI sent."""

    username: NonEmptyName
    key: NonEmptyName
    value: Text


class JobMetadataUpdatedV1(Payload):
    """One key of a job's metaData was set (an existing key is overwritten)."""

    key: NonEmptyName
    value: Text


class JobDeletedV1(Payload):
    """A job was removed from the job database (its archive entry stays)."""

    reason: Text = ""


class JobArchivedV1(Payload):
    """A stopped job's metrics were captured into the job archive; the facts derived from them."""

    #: Per-metric statistics as in meta.json: {metric: {"unit": {...}, "avg": .., "min": .., "max": ..}}.
    statistics: JsonObject = Field(default_factory=dict)
    #: `<metric>_<stat>` values of the subcluster's footprint metrics.
    footprint: dict[Name, FiniteFloat] = Field(default_factory=dict)
    #: Energy in kWh per energy metric, and their sum in `energy`.
    energyFootprint: dict[Name, FiniteFloat] = Field(default_factory=dict)
    energy: FiniteFloat = 0.0
    #: Where the archive entry lives (backend-specific path or key).
    location: Text = ""
    #: Metrics configured for the job but absent from the metric store.
    missingMetrics: list[Name] = Field(default_factory=list)


class JobArchivingFailedV1(Payload):
    """Archiving a job failed; it is retried with back-off up to a limit."""

    reason: Text
    attempt: Int32 = Field(ge=1)
    #: True once the retry limit is reached: the job is left with monitoring status 2 (failed).
    final: bool = False


class UserCreatedV1(Payload):
    """A user account was created or replaced (password holds a bcrypt hash, never the password)."""

    username: NonEmptyName
    password: Name | None = None
    roles: list[NonEmptyName] = Field(default_factory=list)
    projects: list[NonEmptyName] = Field(default_factory=list)
    name: Name | None = None
    email: Name | None = None
    #: cc-backend's `ldap` column: 0 local, 1 LDAP, 2 token, 3 OIDC.
    authSource: int = Field(default=0, ge=0, le=3)


class UserUpdatedV1(Payload):
    """A user's roles or projects changed; absent fields stay as they are."""

    username: NonEmptyName
    roles: list[NonEmptyName] | None = None
    projects: list[NonEmptyName] | None = None


class UserDeletedV1(Payload):
    """A user account was removed."""

    username: NonEmptyName


#: Most footprint or energy entries an update carries (a subcluster has a few dozen metrics at most).
FOOTPRINT_ENTRIES_MAX = 256


class JobDurationsUpdatedV1(Payload):
    """The duration of every job still running was brought up to `asOf` (cc-backend's duration worker).

    One event for all running jobs, not one per job: the worker runs every few minutes, and an event
    per running job and run would soon be most of the log. The projection sets `asOf - start_time`
    on the jobs running when it applies the event; a job stopped before keeps its final duration."""

    asOf: Timestamp


class JobFootprintUpdatedV1(Payload):
    """The footprint of a running job from its metrics so far (cc-backend's footprint worker).

    The same facts `job.archived` carries at the end; ignored once the job is no longer running."""

    footprint: dict[Name, FiniteFloat] = Field(default_factory=dict, max_length=FOOTPRINT_ENTRIES_MAX)
    energyFootprint: dict[Name, FiniteFloat] = Field(default_factory=dict, max_length=FOOTPRINT_ENTRIES_MAX)
    energy: FiniteFloat = 0.0
    #: Unix seconds up to which the metrics were read.
    asOf: Timestamp


class NodeStatesRetiredV1(Payload):
    """Node-state history older than `before` left the job database (`main.nodestate-retention`).

    The reports stay in the log; this event is what keeps a rebuild from bringing the rows back: the
    projection deletes the rows older than `before` when it applies it, in log order, so rows of
    reports applied later (even older ones) are judged by the next retirement, live and in a rebuild
    alike. `location` names the Parquet file(s) the rows were moved to (empty for `delete`)."""

    before: Timestamp
    policy: Literal["delete", "move"]
    rows: NonNegativeInt64 = 0
    location: list[Text] = Field(default_factory=list, max_length=10_000)


SchedulerState = Literal["allocated", "reserved", "idle", "mixed", "down", "unknown"]
MonitoringState = Literal["full", "partial", "failed"]


class ReportedNode(Payload):
    """One node of a node-state report, resolved at intake (subcluster, scheduler and health state)."""

    hostname: NonEmptyName
    subCluster: Name
    #: The states as the scheduler reported them (e.g. `["IDLE", "DRAIN"]`).
    states: list[Name] = Field(default_factory=list)
    nodeState: SchedulerState
    healthState: MonitoringState
    #: `{"missing": [...], "degraded": [...]}` from the metric store; None when not checked (down nodes).
    healthMetrics: dict[Name, list[Name]] | None = None
    cpusAllocated: Int32 = 0
    memoryAllocated: Int64 = 0
    gpusAllocated: Int32 = 0
    jobsRunning: Int32 = 0


class NodeStatesReportedV1(Payload):
    """A scheduler reported the state of some nodes of a cluster (cc-backend `UpdateNodeStatesRequest`).

    Health is computed at intake and carried here, so replaying the event never asks a metric store.
    """

    cluster: NonEmptyName
    #: Unix seconds the states were observed (the line timestamp, else when the report arrived).
    timeStamp: Int64
    nodes: list[ReportedNode]
    #: Hosts the cluster's nodelists do not know: kept for the record, not stored in the node table.
    unknownHosts: list[Name] = Field(default_factory=list)


#: Every published (type, version) and its model. Adding a version means adding an upcaster too.
PAYLOADS: dict[tuple[str, int], type[Payload]] = {
    ("job.started", 1): JobStartedV1,
    ("job.stopped", 1): JobStoppedV1,
    ("job.stop_parked", 1): JobStopParkedV1,
    ("job.parked_stop_expired", 1): JobParkedStopExpiredV1,
    ("job.tag_added", 1): JobTagAddedV1,
    ("job.tag_removed", 1): JobTagRemovedV1,
    ("tag.deleted", 1): TagDeletedV1,
    ("tag.created", 1): TagCreatedV1,
    ("user.configuration_updated", 1): UserConfigurationUpdatedV1,
    ("job.metadata_updated", 1): JobMetadataUpdatedV1,
    ("job.deleted", 1): JobDeletedV1,
    ("job.archived", 1): JobArchivedV1,
    ("job.archiving_failed", 1): JobArchivingFailedV1,
    ("user.created", 1): UserCreatedV1,
    ("user.updated", 1): UserUpdatedV1,
    ("user.deleted", 1): UserDeletedV1,
    ("node.states_reported", 1): NodeStatesReportedV1,
    ("job.durations_updated", 1): JobDurationsUpdatedV1,
    ("job.footprint_updated", 1): JobFootprintUpdatedV1,
    ("node.states_retired", 1): NodeStatesRetiredV1,
}

#: The version producers write today for each type.
CURRENT_VERSION: dict[str, int] = {}
for _type, _version in PAYLOADS:
    CURRENT_VERSION[_type] = max(_version, CURRENT_VERSION.get(_type, 0))


class UnknownEventType(ValueError):
    """An event type or version this build does not know."""


def payload_model(type: str, version: int) -> type[Payload]:
    """The model of one published (type, version)."""
    try:
        return PAYLOADS[(type, version)]
    except KeyError:
        raise UnknownEventType(f"unknown event type {type!r} version {version}") from None


def validate_payload(type: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Check a payload against its model; returns it normalised (defaults filled in)."""
    return payload_model(type, version).model_validate(data).model_dump(mode="json", exclude_none=False)

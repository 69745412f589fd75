"""Answers of the REST API as pydantic models: documentation only, never used to re-validate answers.

The routes build their JSON directly (orjson, streamed pages) for speed; these models describe that
JSON, with cc-backend's swagger names (`schema.Job`, `api.StartJobApiResponse`, `api.ErrorResponse` …)
where cc-backend has the same answer. Objects that cc-backend extends over versions allow extra keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class _Open(BaseModel):
    """An answer object that may gain keys (clients must ignore unknown keys)."""

    model_config = ConfigDict(extra="allow")


class ErrorResponse(BaseModel):
    """Every error answer: cc-backend's `api.ErrorResponse`."""

    status: str = Field(description="The HTTP status text, e.g. `Bad Request`.")
    error: str = Field(description="What was wrong, naming the field, parameter or limit.")


class Resource(_Open):
    hostname: str
    hwthreads: list[int] | None = None
    accelerators: list[str] | None = None
    configuration: str | None = None


class Tag(_Open):
    id: int
    type: str
    name: str
    scope: str


class JobLinkResultList(_Open):
    items: list[dict[str, Any]] | None = None
    count: int


class Job(_Open):
    """A job as cc-backend marshals `schema.Job` (keys with empty values are omitted as cc-backend does)."""

    id: int = Field(description="Database id.")
    jobId: int
    cluster: str
    subCluster: str
    partition: str
    project: str
    user: str
    shared: str
    jobState: str
    resources: list[Resource]
    startTime: int
    submitTime: int | None = None
    duration: int
    walltime: int | None = None
    numNodes: int
    numHwthreads: int
    numAcc: int | None = None
    arrayJobId: int | None = None
    smt: int | None = None
    monitoringStatus: int
    energy: float
    energyFootprint: dict[str, float] | None = None
    footprint: dict[str, float] | None = None
    metaData: dict[str, str] | None = None
    tags: list[Tag] | None = None
    concurrentJobs: JobLinkResultList | None = None
    statistics: dict[str, Any] | None = None


class GetJobsApiResponse(BaseModel):
    """`GET /api/jobs/`: cc-backend's `api.GetJobsApiResponse`."""

    jobs: list[Job]
    items: int = Field(description="Jobs on this page.")
    page: int


class GetJobApiResponse(BaseModel):
    """`GET|POST /api/jobs/{id}`: cc-backend's `api.GetJobApiResponse` (`data` is null without metrics)."""

    meta: Job
    data: list[dict[str, Any]] | None


class JobMetricsData(BaseModel):
    jobMetrics: list[dict[str, Any]]


class JobMetricsError(BaseModel):
    message: str


class GetJobMetricsApiResponse(BaseModel):
    """`GET /api/jobs/metrics/{id}`: the metrics, or `data: null` with the error of a failing source."""

    data: JobMetricsData | None
    error: JobMetricsError | None


class StartJobApiResponse(BaseModel):
    """Answer of start_job: the database id, or a warning when the job is stored but not listed yet."""

    msg: str
    id: int | None = None
    warning: str | None = None


class DefaultApiResponse(BaseModel):
    """An answer that is a message only (cc-backend's `api.DefaultApiResponse`/`DeleteJobApiResponse`)."""

    msg: str


class UsedNodes(BaseModel):
    usedNodes: dict[str, list[str]]


class GetClustersApiResponse(BaseModel):
    """cc-backend's `api.GetClustersApiResponse`: cluster.json configurations."""

    clusters: list[dict[str, Any]]


class NodeStates(BaseModel):
    items: list[dict[str, Any]]
    count: int


class NodeStateSeries(_Open):
    state: str
    counts: list[int]
    times: list[int]


class ApiReturnedUser(BaseModel):
    """cc-backend's `api.ApiReturnedUser`."""

    username: str
    name: str
    roles: list[str]
    email: str
    projects: list[str]


class AgentStatus(_Open):
    name: str
    checkpoint: int
    head: int
    lag: int
    running: bool
    failures: int
    last_error: str | None
    blocked_at: int | None
    quarantined: int
    quarantine: list[dict[str, Any]]
    requests: list[dict[str, Any]]


class LogHead(BaseModel):
    head: int


class AdminStatus(_Open):
    log: LogHead
    agents: list[AgentStatus]
    archiverPending: int | None = None
    metricStore: dict[str, Any] | None = None


class AgentRequestOutcome(_Open):
    """A skip or retry: `settled` (200) once the agent acted on it, else 202 and still pending."""

    agent: str
    position: int
    action: Literal["skip", "retry"]
    settled: bool
    quarantine: dict[str, Any] | None
    checkpoint: int
    message: str


class ParkedStop(BaseModel):
    eventId: str
    cluster: str
    jobId: int
    startTime: int | None
    jobState: str
    stopTime: int
    receivedAt: int | float


class DeadLetter(_Open):
    id: int
    receivedAt: int | float
    subject: str
    channel: str
    kind: str
    reason: str
    raw: str
    msgId: str | None
    line: int | None
    attempts: int
    status: str
    resolvedAt: int | float | None
    resolution: str | None


class DeadLetters(BaseModel):
    items: list[DeadLetter]
    count: int
    counts: dict[str, dict[str, int]]


class DeadLetterRetry(BaseModel):
    result: Literal["resolved", "rejected", "already resolved"]
    entry: DeadLetter | None
    lines: list[dict[str, Any]]


class NatsStatus(_Open):
    configured: bool


class WriteLineError(BaseModel):
    line: int
    reason: str
    error: str


class WriteReport(_Open):
    """`/api/write/`: what happened to the lines of the body."""

    accepted: int
    rejected: int
    rejected_by_reason: dict[str, int] = Field(description="Refused lines per reason.")
    dropped_old: int
    dropped_unknown_metric: int
    unknown_metrics: list[str]
    errors: list[WriteLineError]


class ApiQueryResponse(BaseModel):
    """`/api/query/`: cc-metric-store's `ApiQueryResponse`, one list of entries per query."""

    queries: list[dict[str, Any]] | None = None
    results: list[list[dict[str, Any]]]


class NodeHealth(BaseModel):
    State: str
    HealthMetrics: str = Field(description="JSON text: `{\"degraded\": [...], \"missing\": [...]}`.")


class HealthCheck(RootModel[dict[str, NodeHealth]]):
    """`/api/healthcheck/`: the health of each node asked for, by host name."""


class DebugDump(_Open):
    """`/api/debug/`: store statistics, and the clusters, hosts or buffers the selector names."""

    stats: dict[str, Any]

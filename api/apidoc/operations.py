"""What each route accepts and answers, declared next to nothing else so that it reads as a table.

Bodies name the pydantic models the routes validate with (one source of truth); parameters carry the
types and bounds the routes enforce (`api.routes.common.parse_int`: 64-bit integers); answers name the
models of `api.apidoc.models`; `errors` lists every error status the route can answer, all in the
`{"status", "error"}` shape. A route missing here makes `api.apidoc.document.build` fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from api.apidoc import models as m
from api.metricstore_routes import HealthCheckRequest
from api.routes.edits import DeleteJobRequest, EditMeta, JobMetaRequest, TagList
from metricstore.query import APIQueryRequest
from streams.events.bounds import INT64_MAX, INT64_MIN
from streams.events.payloads import JobState
from streams.ingest.nodestate import NodeStatesRequest
from streams.ingest.requests import StartJobRequest, StopJobRequest

Role = Literal["api", "admin"]


@dataclass(frozen=True)
class Param:
    """A path or query parameter with its JSON schema."""

    name: str
    where: Literal["path", "query"]
    schema: dict[str, Any]
    description: str
    required: bool = False
    #: Repeatable query parameter (`?metric=a&metric=b`).
    repeated: bool = False
    #: A value that finds something on a typical installation (tried first by generated tests).
    example: Any = None


@dataclass(frozen=True)
class Body:
    """A request body: a model's JSON schema (or a literal schema for non-JSON bodies) and its media type."""

    #: A model or type (its JSON schema, as pydantic validates it), or a literal JSON schema.
    schema: Any
    media_type: str = "application/json"
    required: bool = True


@dataclass(frozen=True)
class Answer:
    """A success answer: a model or type, a literal JSON schema, or None for an empty body."""

    description: str
    schema: Any
    media_type: str = "application/json"


@dataclass(frozen=True)
class Operation:
    role: Role
    answers: dict[int, Answer]
    errors: tuple[int, ...]
    body: Body | None = None
    params: tuple[Param, ...] = field(default=())


INT64 = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
TEXT = {"type": "string"}
#: Go's strconv.ParseBool spellings, as `api.routes.common.parse_bool` accepts them.
BOOL = {"type": "string", "enum": ["1", "t", "T", "true", "TRUE", "True", "0", "f", "F", "false", "FALSE", "False"]}
AUTH = (401, 403)
#: Answered by routes that run in the read pool (api.readpool): busy (503) and over the time budget (504).
POOL = (503, 504)
#: A cluster and host name that are safe file names (host-name characters, no leading dot).
NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$", "maxLength": 255}
MACHINE = (Param("cluster", "path", NAME, "Cluster name.", required=True, example="fritz"),
           Param("host", "path", NAME, "Host name.", required=True, example="f0101"))
STATES = sorted([*JobState.__args__, "stopped"])  # type: ignore[attr-defined]


def _db_id(what: str = "Database id of the job.") -> Param:
    return Param("db_id", "path", INT64, what, required=True, example=1)


class MetricNames(RootModel[list[str]]):
    """The body of `POST /api/jobs/{db_id}`: names of the metrics to load."""


class Selectors(RootModel[list[list[str]]]):
    """The body of `/api/free/`: selectors (cluster, host, …) whose buffers are freed."""

    root: list[list[str]] = Field(json_schema_extra={"items": {"minItems": 1}})


class _Form(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class CreateUserForm(_Form):
    """Form fields of `POST /api/users/`."""

    username: str = Field(min_length=1)
    password: str = ""
    role: Literal["anonymous", "api", "user", "manager", "support", "admin"]
    name: str = ""
    email: str = ""
    project: str = Field("", description="Required for managers, refused for everyone else.")


class DeleteUserForm(_Form):
    """Form field of `DELETE /api/users/`."""

    username: str = Field(min_length=1)


class UpdateUserForm(_Form):
    """Form fields of `POST /api/user/{username}`: exactly one change is applied."""

    add_role: str | None = Field(None, alias="add-role")
    remove_role: str | None = Field(None, alias="remove-role")
    add_project: str | None = Field(None, alias="add-project")
    remove_project: str | None = Field(None, alias="remove-project")


FORM = "application/x-www-form-urlencoded"
PLAIN = "text/plain"
START = Answer("The job is durable and listed (`id`), or durable and not listed yet (`warning`).",
               m.StartJobApiResponse)
STOP_PARKED = Answer("The stop is durable; its job is not started (parked) or not listed yet.", m.DefaultApiResponse)
JOB = Answer("The job as stored afterwards.", m.Job)
INTAKE_ERRORS = (400, *AUTH, 404, 413, 422)
CLUSTER = Param("cluster", "query", TEXT, "Cluster name.", required=True, example="fritz")
SUBCLUSTER = Param("subcluster", "query", TEXT, "Only nodes of this subcluster.")

OPERATIONS: dict[tuple[str, str], Operation] = {
    # -- job intake (api.direct) -------------------------------------------------------------------
    **{
        (method, "/api/jobs/start_job/"): Operation("api", {201: START}, INTAKE_ERRORS, Body(StartJobRequest))
        for method in ("POST", "PUT")
    },
    **{
        (method, "/api/jobs/stop_job/"): Operation(
            "api", {200: Answer("The stopped job.", m.Job), 202: STOP_PARKED}, INTAKE_ERRORS, Body(StopJobRequest))
        for method in ("POST", "PUT")
    },
    # -- job reads ---------------------------------------------------------------------------------
    ("GET", "/api/jobs/"): Operation(
        "api", {200: Answer("A page of jobs, newest first.", m.GetJobsApiResponse)}, (400, *AUTH, *POOL),
        params=(
            Param("state", "query", {"type": "string", "enum": STATES}, "Job state (repeatable: any of them).",
                  repeated=True),
            Param("cluster", "query", TEXT, "Cluster name."),
            Param("project", "query", TEXT, "Project."),
            Param("user", "query", TEXT, "User name."),
            Param("start-time", "query", {"type": "string", "pattern": r"^-?[0-9]{1,19}--?[0-9]{1,19}$"},
                  "Start time range `FROM-TO` in unix seconds."),
            Param("page", "query", {"type": "integer", "minimum": 1, "maximum": INT64_MAX}, "Page (from 1)."),
            Param("items-per-page", "query", {"type": "integer", "minimum": 1, "maximum": 100_000},
                  "Jobs per page (default 25)."),
            Param("with-metadata", "query", {"type": "string", "enum": [*BOOL["enum"], ""]},
                  "Include `metaData` (present without a value means true)."),
        ),
    ),
    ("GET", "/api/jobs/used_nodes"): Operation(
        "api", {200: Answer("Hosts per cluster.", m.UsedNodes)}, (400, *AUTH, *POOL),
        params=(Param("ts", "query", INT64, "Unix time: jobs running since before it.", required=True),),
    ),
    ("GET", "/api/jobs/metrics/{db_id}"): Operation(
        "api", {200: Answer("The metrics (or `data: null` and the error of their source).",
                            m.GetJobMetricsApiResponse)},
        (400, *AUTH, 404, *POOL),
        params=(_db_id(), Param("metric", "query", TEXT, "Metric name (repeatable; default all).", repeated=True),
                Param("scope", "query", {"type": "string", "enum": ["node", "socket", "memoryDomain", "core",
                                                                   "hwthread", "accelerator"]},
                      "Metric scope (repeatable; default node).", repeated=True)),
    ),
    ("GET", "/api/jobs/{db_id}"): Operation(
        "api", {200: Answer("The job, with all its metrics at node scope if asked.", m.GetJobApiResponse)},
        (400, *AUTH, 404, *POOL),
        params=(_db_id(), Param("all-metrics", "query", BOOL, "Include all metrics at node scope.")),
    ),
    ("POST", "/api/jobs/{db_id}"): Operation(
        "api", {200: Answer("The job with the metrics named in the body.", m.GetJobApiResponse)},
        (400, *AUTH, 404, *POOL), Body(MetricNames), params=(_db_id(),),
    ),
    # -- job edits ---------------------------------------------------------------------------------
    **{
        (method, "/api/jobs/tag_job/{db_id}"): Operation("api", {200: JOB}, (400, *AUTH, 404), Body(TagList),
                                                         params=(_db_id(),))
        for method in ("POST", "PATCH", "DELETE")
    },
    ("DELETE", "/api/tags/"): Operation(
        "api", {200: Answer("How many tags were deleted.", TEXT, PLAIN)}, (400, *AUTH), Body(TagList)),
    ("PATCH", "/api/jobs/edit_meta/{db_id}"): Operation("api", {200: JOB}, (400, *AUTH, 404), Body(EditMeta),
                                                        params=(_db_id(),)),
    ("PATCH", "/api/jobs/edit_meta/"): Operation("api", {200: JOB}, (400, *AUTH, 404), Body(JobMetaRequest)),
    ("DELETE", "/api/jobs/delete_job/{db_id}"): Operation(
        "api", {200: Answer("The job is deleted from the job table.", m.DefaultApiResponse)}, (400, *AUTH, 404),
        params=(_db_id(),)),
    ("DELETE", "/api/jobs/delete_job/"): Operation(
        "api", {200: Answer("The job is deleted from the job table.", m.DefaultApiResponse)}, (400, *AUTH, 404),
        Body(DeleteJobRequest)),
    ("DELETE", "/api/jobs/delete_job_before/{ts}"): Operation(
        "api", {200: Answer("How many jobs were deleted.", m.DefaultApiResponse)}, (400, *AUTH),
        params=(Param("ts", "path", INT64, "Unix time: jobs started before it are deleted.", required=True),
                Param("omit-tagged", "query", BOOL, "Keep jobs that have tags."))),
    # -- clusters, node states ---------------------------------------------------------------------
    ("GET", "/api/clusters/"): Operation(
        "api", {200: Answer("cluster.json configurations.", m.GetClustersApiResponse)}, (400, *AUTH, *POOL),
        params=(Param("cluster", "query", TEXT, "Only this cluster."),)),
    **{
        (method, path): Operation(
            "api", {200: Answer("The states are durable and visible (empty body, as cc-backend).", None)},
            (400, *AUTH, 404, 422, 503), Body(NodeStatesRequest))
        for method, path in (("POST", "/api/nodestate/"), ("PUT", "/api/nodestate/"), ("POST", "/api/nodestats/"))
    },
    ("GET", "/api/nodestate/"): Operation(
        "api", {200: Answer("The newest state of every node.", m.NodeStates)}, (400, *AUTH, *POOL),
        params=(CLUSTER, SUBCLUSTER)),
    ("GET", "/api/nodestate/history"): Operation(
        "api", {200: Answer("Node counts per state over time.", list[m.NodeStateSeries])}, (400, *AUTH, *POOL),
        params=(CLUSTER, SUBCLUSTER, Param("from", "query", INT64, "Unix seconds (default: `to` minus a day)."),
                Param("to", "query", INT64, "Unix seconds (default: now)."),
                Param("type", "query", {"type": "string", "enum": ["node", "health"]}, "Which state (default node)."))),
    # -- users -------------------------------------------------------------------------------------
    ("GET", "/api/users/"): Operation(
        "admin", {200: Answer("The users.", list[m.ApiReturnedUser])},
        (400, *AUTH, *POOL), params=(Param("not-just-user", "query", BOOL, "Only users with more than `user`."),)),
    ("POST", "/api/users/"): Operation(
        "admin", {200: Answer("Confirmation.", TEXT, PLAIN)}, (400, *AUTH, 422), Body(CreateUserForm, FORM)),
    ("DELETE", "/api/users/"): Operation(
        "admin", {200: Answer("The user is deleted (empty text).", TEXT, PLAIN)}, (400, *AUTH, 422),
        Body(DeleteUserForm, FORM)),
    ("POST", "/api/user/{username}"): Operation(
        "admin", {200: Answer("Confirmation.", TEXT, PLAIN)}, (400, *AUTH, 422), Body(UpdateUserForm, FORM),
        params=(Param("username", "path", TEXT, "User name.", required=True),)),
    # -- operators ---------------------------------------------------------------------------------
    ("GET", "/api/admin/status"): Operation("admin", {200: Answer("Log head and agents.", m.AdminStatus)}, AUTH),
    **{
        ("POST", f"/api/admin/agents/{{agent}}/{action}/{{position}}"): Operation(
            "admin", {200: Answer("The agent acted on the request.", m.AgentRequestOutcome),
                      202: Answer("The request is filed; the agent has not acted on it yet.", m.AgentRequestOutcome)},
            (400, *AUTH, 404),
            params=(Param("agent", "path", TEXT, "Agent name.", required=True),
                    Param("position", "path", INT64, "Log position of the event.", required=True)))
        for action in ("skip", "retry")
    },
    ("GET", "/api/admin/parked-stops"): Operation(
        "admin", {200: Answer("Stops waiting for their start.", list[m.ParkedStop])}, AUTH),
    ("GET", "/api/admin/rejected"): Operation(
        "admin", {200: Answer("Refused NATS messages.", m.DeadLetters)}, (400, *AUTH, 404, *POOL),
        params=(Param("status", "query", {"type": "string", "enum": ["open", "resolved", "all"]}, "Default open."),
                Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10_000}, "Default 100."),
                Param("offset", "query", {"type": "integer", "minimum": 0, "maximum": INT64_MAX}, "Default 0."))),
    ("GET", "/api/admin/rejected/{entry_id}"): Operation(
        "admin", {200: Answer("One refused message.", m.DeadLetter)}, (400, *AUTH, 404, *POOL),
        params=(Param("entry_id", "path", INT64, "Id of the refused message.", required=True),)),
    ("POST", "/api/admin/rejected/{entry_id}/retry"): Operation(
        "admin", {200: Answer("The outcome of the retry.", m.DeadLetterRetry)}, (400, *AUTH, 404),
        params=(Param("entry_id", "path", INT64, "Id of the refused message.", required=True),)),
    ("GET", "/api/admin/nats"): Operation(
        "admin", {200: Answer("NATS connection state and counters.", m.NatsStatus)}, (*AUTH, *POOL)),
    ("GET", "/metrics"): Operation(
        "api", {200: Answer("Prometheus text format.", TEXT, "text/plain; version=0.0.4; charset=utf-8")},
        (*AUTH, *POOL)),
    # -- machine state (main.machine-state-dir) ---------------------------------------------------------
    **{
        (method, "/api/machine_state/{cluster}/{host}"): Operation(
            "api", {201: Answer("Stored; the body is empty.", None, PLAIN)}, (400, *AUTH, 413),
            Body({"type": "object", "description": "Any JSON document (at most 1 MiB)."}), params=MACHINE)
        for method in ("PUT", "POST")
    },
    ("GET", "/api/machine_state/{cluster}/{host}"): Operation(
        "api", {200: Answer("The stored JSON document.", {"type": "object"})}, (400, *AUTH, 404, *POOL),
        params=MACHINE),
    # -- metric store ------------------------------------------------------------------------------
    ("POST", "/api/write/"): Operation(
        "api", {200: Answer("Stored (with `write-mode: durable` also fsync'ed to the write-ahead log). Lines "
                            "refused are counted in `rejected` by reason and the first 20 named in `errors`; the "
                            "others are stored. 400 only when nothing was stored; 503 (durable mode) when the "
                            "write-ahead log write failed: send the batch again.", m.WriteReport)},
        (400, *AUTH, 413, 503),
        Body({"type": "string", "description": "InfluxDB line protocol."}, PLAIN),
        params=(Param("cluster", "query", TEXT, "Cluster of lines without a `cluster` tag."),)),
    **{
        (method, "/api/query/"): Operation(
            "api", {200: Answer("One list of entries per query.", m.ApiQueryResponse)}, (400, *AUTH, 413, *POOL),
            Body(APIQueryRequest))
        for method in ("GET", "POST")
    },
    ("POST", "/api/free/"): Operation(
        "api", {200: Answer("How many buffers were freed.", TEXT, PLAIN)}, (400, *AUTH, 413), Body(Selectors),
        params=(Param("to", "query", INT64, "Free data older than this unix time.", required=True),)),
    **{
        (method, "/api/debug/"): Operation(
            "api", {200: Answer("The dump.", m.DebugDump)}, (400, *AUTH, *POOL),
            params=(Param("selector", "query", TEXT, "`cluster[:host[:level…]]`; empty for the overview."),))
        for method in ("GET", "POST")
    },
    ("GET", "/api/healthcheck/"): Operation(
        "api", {200: Answer("Health per node.", m.HealthCheck)}, (400, *AUTH, 413, *POOL),
        params=(Param("cluster", "query", TEXT, "Cluster name."), Param("node", "query", TEXT, "Host name."))),
    ("POST", "/api/healthcheck/"): Operation(
        "api", {200: Answer("Health per node.", m.HealthCheck)}, (400, *AUTH, 413, *POOL),
        Body(HealthCheckRequest, required=False),
        params=(Param("cluster", "query", TEXT, "Cluster (without a body)."),
                Param("node", "query", TEXT, "Host name (without a body)."))),
}

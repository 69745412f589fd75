"""config.json in cc-backend's format plus ccstream's own sections, validated strictly at start.

Every package owns its section's model; this module only assembles them, so a typo anywhere is
reported with the file and the dotted key before anything starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.unsupported import refusals
from metricstore.settings import ExternalMetricStore, MetricStoreSettings
from streams.settings import AgentSettings, EventLogSettings, IntakeSettings


class Section(BaseModel):
    """A config section: immutable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ApiSubjects(Section):
    subject_job_event: str = Field(default="", alias="subject-job-event", description="NATS subject of job events.")
    subject_node_state: str = Field(default="", alias="subject-node-state", description="NATS subject of node states.")
    job_concurrency: int = Field(default=8, alias="job-concurrency", description="Job event handlers in parallel.")
    node_concurrency: int = Field(default=2, alias="node-concurrency", description="Node state handlers in parallel.")


class Resampling(Section):
    minimum_points: int = Field(default=600, alias="minimum-points", description="Points before resampling.")
    trigger: int = Field(default=180, description="Zoom in below this many visible points.")
    resolutions: list[int] = Field(default_factory=lambda: [600, 300, 120, 60], description="Resolutions (s).")
    targetPoints: int | None = Field(default=None, description="Set by the UI, not by config.")


class RetentionTarget(Section):
    """Where retired data goes: cc-backend's `target-*` keys, shared by job and node-state retention."""

    target_kind: str = Field(default="file", alias="target-kind", description="`file` or `s3`.")
    target_path: str = Field(default="", alias="target-path", description="Target folder.")
    target_endpoint: str = Field(default="", alias="target-endpoint", description="S3 endpoint.")
    target_bucket: str = Field(default="", alias="target-bucket", description="S3 bucket.")
    target_access_key: str = Field(default="", alias="target-access-key", description="S3 access key.")
    target_secret_key: str = Field(default="", alias="target-secret-key", description="S3 secret key.")
    target_region: str = Field(default="", alias="target-region", description="S3 region.")
    target_use_path_style: bool = Field(default=False, alias="target-use-path-style", description="S3 path style.")
    max_file_size_mb: int = Field(default=0, alias="max-file-size-mb", description=(
        "Split Parquet files above this size (MB; 0: 512 for jobs, 128 for node states)."))


class NodeStateRetention(RetentionTarget):
    """`main.nodestate-retention`: run hourly inside `serve` (see api.nodestate_retention)."""

    policy: str = Field(default="delete", description=(
        "`delete` old node-state rows, or `move` them: written as zstd Parquet files (cc-backend's columns) "
        "to the target first, deleted once every file is complete. Either way a `node.states_retired` event "
        "records the cutoff, so a rebuild of the job database does not bring the rows back."))
    age: int = Field(default=24, description="Hours to keep node-state rows (checked hourly; > 0).")


class DbConfig(Section):
    """`main.db-config`: memory and connection limits of the job database (cc-backend's keys; 0 keeps ccstream's
    default, which is not cc-backend's: SQLite's own 2 MB cache, no heap limit)."""

    cache_size_mb: int = Field(default=0, alias="cache-size-mb", ge=0,
                               description="SQLite page cache per connection in MB (PRAGMA cache_size) of every job "
                               "database connection; up to this x (max-open-connections + 2) MB in all. 0: SQLite's "
                               "default (2 MB). Rule of thumb: database size / max-open-connections.")
    soft_heap_limit_mb: int = Field(default=0, alias="soft-heap-limit-mb", ge=0,
                                    description="Process-wide SQLite soft heap limit in MB (PRAGMA soft_heap_limit): "
                                    "SQLite frees cache pages to stay below it. Should be at least cache-size-mb x "
                                    "max-open-connections. 0: no limit.")
    max_open_connections: int = Field(default=0, alias="max-open-connections", ge=0,
                                      description="Most read connections to the job database at once; a read beyond "
                                      "waits for one (up to reads.timeout). At least reads.workers. 0: 15.")
    max_idle_connections: int = Field(default=0, alias="max-idle-connections", ge=0,
                                      description="Read connections kept open between reads (at most "
                                      "max-open-connections). 0: 5.")
    max_idle_time_minutes: int = Field(default=0, alias="max-idle-time-minutes", ge=0,
                                       description="Minutes a read connection may sit idle; an older one is closed and "
                                       "replaced when next taken, releasing its cache. 0: no limit.")
    busy_timeout_ms: int = Field(default=0, alias="busy-timeout-ms", ge=0,
                                 description="How long (ms) a read waits on a locked job database (PRAGMA "
                                 "busy_timeout) before it fails. The projection's own writes keep their 1 s, as they "
                                 "run where every event append waits behind them. 0: 30000.")


class MainSettings(Section):
    """`main`: cc-backend's ProgramConfig keys."""

    addr: str = Field(default="localhost:8080", description="host:port the HTTP server listens on.")
    api_allowed_ips: list[str] = Field(default_factory=lambda: ["*"], alias="api-allowed-ips",
                                       description="Client IPs (or CIDR networks) allowed on /api/; `*` for all.")
    api_subjects: ApiSubjects | None = Field(default=None, alias="api-subjects", description="NATS API subjects.")
    user: str = Field(default="", description="A server started as root switches to this user (and its primary "
                      "group unless `group` is set) once the listening socket is bound, before any file is opened: "
                      "var/, the archive and the checkpoint directories must be this user's. Refused at start when "
                      "not running as root or the user does not exist. Empty: a root server stays root.")
    group: str = Field(default="", description="The group to switch to (see `user`; given alone, the uid stays "
                       "root's, as in cc-backend). Refused at start when not root or the group does not exist.")
    disable_authentication: bool = Field(default=False, alias="disable-authentication",
                                         description="Serve everything without authentication (testing only).")
    embed_static_files: bool = Field(default=True, alias="embed-static-files", description="Serve bundled UI.")
    static_files: str = Field(default="", alias="static-files", description="UI files to serve instead.")
    db: str = Field(default="./var/job.db", description="SQLite file of the job database read model.")
    enable_job_taggers: bool = Field(default=False, alias="enable-job-taggers", description="Run taggers.")
    validate_: bool = Field(default=False, alias="validate",
                            description="`import-archive` and `import-job` refuse (count as failed) a job whose "
                            "meta.json deviates from the job archive schema; without it such jobs are imported and "
                            "their deviations reported.")
    session_max_age: str = Field(default="168h", alias="session-max-age", description="Web session lifetime.")
    https_cert_file: str = Field(default="", alias="https-cert-file",
                                 description="TLS certificate (PEM, with its chain): with `https-key-file` the server "
                                 "answers HTTPS only. Read before root is dropped; an unreadable one stops the start.")
    https_key_file: str = Field(default="", alias="https-key-file",
                                description="TLS private key (PEM) of `https-cert-file`; both or neither.")
    redirect_http_to: str = Field(default="", alias="redirect-http-to",
                                  description="An absolute URL: port 80 (every interface) then answers every "
                                  "request with a 301 to it, e.g. the HTTPS address. Bound before root is dropped.")
    machine_state_dir: str = Field(default="./var/machine-state", alias="machine-state-dir", description=(
        "Folder of `GET|PUT /api/machine_state/{cluster}/{host}` (files `<cluster>/<host>.json`, JSON bodies "
        "up to 1 MiB); empty: the routes are not served."))
    stop_jobs_exceeding_walltime: int = Field(default=0, alias="stop-jobs-exceeding-walltime", description=(
        "Seconds of grace past walltime: daily at 03:00, running jobs with a walltime older than "
        "walltime + this are stopped with state `failed` at start + walltime + grace (and archived). 0: off."))
    short_running_jobs_duration: int = Field(default=300, alias="short-running-jobs-duration",
                                             description="Jobs shorter than this are 'short' in views.")
    emission_constant: int = Field(default=0, alias="emission-constant", description="g CO2 per kWh.")
    resampling: Resampling | None = Field(default=None, description="Dynamic zoom of metric plots.")
    systemd_unit: str = Field(default="clustercockpit", alias="systemd-unit", description="Log viewer unit.")
    nodestate_retention: NodeStateRetention | None = Field(default=None, alias="nodestate-retention",
                                                           description="Retention of node state history.")
    db_config: DbConfig | None = Field(default=None, alias="db-config",
                                       description="Memory and connection limits of the job database.")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, alias="max-body-bytes", ge=1,
        description="Largest request body of every route without a limit of its own (edits, tags, users, "
        "node states, GraphQL, metric store queries): a larger one is refused with 413 naming this setting, "
        "before it is read. The default holds a metadata value of the largest size a field may have "
        "(see Limits) with JSON escaping.")
    max_job_body_bytes: int = Field(
        default=64 * 1024 * 1024, alias="max-job-body-bytes", ge=1,
        description="Largest body of `start_job` and `stop_job` (REST, both methods), refused with 413 "
        "naming this setting: a start of a 10,000-node job with hardware threads and a job script is a few MB.")


class JwtSettings(Section):
    max_age: str = Field(default="0", alias="max-age", description="Lifetime of issued JWTs (Go duration).")
    cookieName: str = Field(default="", description="Cookie carrying a JWT for the web UI.")
    validateUser: bool = Field(default=False, description="Check JWT users against the user table.")
    trustedIssuer: str = Field(default="", description="Issuer of JWTs accepted for login.")
    syncUserOnLogin: bool = Field(default=False, description="Create users from JWTs on login.")
    updateUserOnLogin: bool = Field(default=False, description="Update users from JWTs on login.")


class AuthSettings(Section):
    jwts: JwtSettings = Field(default_factory=JwtSettings, description="JWT settings.")
    ldap: dict[str, Any] | None = Field(default=None, description="LDAP settings (cc-backend's keys).")
    oidc: dict[str, Any] | None = Field(default=None, description="OpenID Connect settings.")


class RetentionSettings(RetentionTarget):
    policy: Literal["none", "delete", "copy", "move"] = Field(default="none", description="What to do with old jobs.")
    format: Literal["json", "parquet"] = Field(default="json", description="Format of retired jobs.")
    include_db: bool = Field(default=True, alias="include-db", description="Also remove jobs from the database.")
    omit_tagged: bool = Field(default=False, alias="omit-tagged", description="Keep tagged jobs.")
    age: int = Field(default=7, description="Days after which a job is retired.")
    location: str = Field(default="", description="Target folder (older cc-backend key).")


class ArchiveSettings(Section):
    """`archive`: where finished jobs and cluster.json files live."""

    kind: Literal["file", "s3", "sqlite"] = Field(default="file", description="Archive backend.")
    path: str = Field(default="./var/job-archive", description="Root of a file archive, or the SQLite file.")
    db_path: str = Field(default="", alias="db-path", description="SQLite archive file (kind sqlite).")
    compression: int = Field(default=0, description="Gzip data.json of jobs older than this many days "
                             "(0 or less: 7 days, as cc-backend; runs daily at 05:00).")
    retention: RetentionSettings | None = Field(default=None, description="Retirement of old jobs.")
    endpoint: str = Field(default="", description="S3 endpoint URL.")
    bucket: str = Field(default="", description="S3 bucket.")
    region: str = Field(default="", description="S3 region.")
    access_key: str = Field(default="", alias="access-key", description="S3 access key.")
    secret_key: str = Field(default="", alias="secret-key", description="S3 secret key.")
    use_path_style: bool = Field(default=False, alias="use-path-style", description="S3 path-style addressing.")


class JetStreamSettings(Section):
    """`nats.jetstream`: the stream and durable consumers of `nats.mode` = `jetstream` (ccstream's own)."""

    stream: str = Field(default="CCSTREAM_API", min_length=1, pattern=r"^[^.*> ]+$",
                        description="JetStream stream over the API subjects; created if missing, our subjects "
                        "added if it exists.")
    durable: str = Field(default="ccstream", min_length=1, pattern=r"^[^.*> ]+$",
                         description="Durable consumer name prefix; consumers are `<durable>-job` and "
                         "`<durable>-node`, shared by every ccstream process.")
    ack_wait: float = Field(default=30.0, alias="ack-wait", gt=0,
                            description="Seconds before an unacknowledged message is delivered again.")
    max_deliver: int = Field(default=10, alias="max-deliver", ge=-1,
                             description="Deliveries of a message ccstream cannot process before it is kept as "
                             "an `internal` dead letter and terminated (-1: unlimited).")
    max_ack_pending: int = Field(default=1000, alias="max-ack-pending", ge=1,
                                 description="Messages in flight (delivered, not yet acknowledged) per consumer.")
    fetch_batch: int = Field(default=256, alias="fetch-batch", ge=1,
                             description="Messages requested per pull.")
    duplicate_window: float = Field(default=120.0, alias="duplicate-window", ge=0,
                                    description="Seconds the stream drops republished messages with a known "
                                    "`Nats-Msg-Id` (when creating the stream).")
    max_age: float = Field(default=0.0, alias="max-age", ge=0,
                           description="Seconds the stream keeps messages (0: unlimited; when creating the stream).")
    storage: Literal["file", "memory"] = Field(default="file",
                                                description="Stream storage (when creating the stream).")
    replicas: int = Field(default=1, ge=1, le=5, description="Stream replicas (when creating the stream).")


class NatsSettings(Section):
    address: str = Field(default="", description="NATS server URL, e.g. nats://localhost:4222.")
    username: str = Field(default="", description="NATS user.")
    password: str = Field(default="", description="NATS password.")
    creds_file_path: str = Field(default="", alias="creds-file-path", description="NATS credentials file.")
    mode: Literal["core", "jetstream"] = Field(
        default="core",
        description="How job events and node states are consumed: `core` (as cc-backend: at most once, a queue "
        "group shares the load) or `jetstream` (at least once from a durable consumer, applied exactly once).",
    )
    queue_group: str = Field(default="ccstream", alias="queue-group",
                             description="Core NATS queue group, so several ccstream processes share the "
                             "messages ('' subscribes without a group: every process gets every message).")
    connect_timeout: float = Field(default=2.0, alias="connect-timeout", gt=0,
                                   description="Seconds to wait for a NATS server to answer a connection attempt.")
    reconnect_wait: float = Field(default=0.5, alias="reconnect-wait", gt=0,
                                  description="First delay (seconds) before reconnecting; doubles per failure.")
    max_reconnect_wait: float = Field(default=30.0, alias="max-reconnect-wait", gt=0,
                                      description="Longest delay (seconds) between reconnection attempts.")
    dead_letter_path: str = Field(default="./var/rejected.db", alias="dead-letter-path",
                                  description="SQLite file of refused NATS messages (`ccstream rejected list`).")
    jetstream: JetStreamSettings = Field(default_factory=JetStreamSettings,
                                         description="Stream and consumer settings for mode `jetstream`.")


class ArchiverSettings(Section):
    """`archiver`: capturing stopped jobs into the job archive."""

    enabled: bool = Field(default=True, description="Archive stopped jobs (monitoring status 1).")
    max_attempts: int = Field(default=5, alias="max-attempts", ge=1,
                              description="Attempts before a job is given up (monitoring status 2).")
    retry_backoff: float = Field(default=30.0, alias="retry-backoff", gt=0,
                                 description="Seconds before the first retry; doubles per attempt, at most 1 h.")
    state_path: str = Field(default="./var/agents.db", alias="state-path",
                            description="SQLite file with the checkpoints and retry queue of emitting agents.")


class ReadSettings(Section):
    """`reads`: how the API serves reads, off the event loop that answers start/stop and NATS (ccstream's own)."""

    workers: int = Field(default=4, ge=1, le=256,
                         description="Threads that run reads (job lists, job metrics, clusters, users, node states, "
                         "rejected messages, metric store queries); also the most reads served at once.")
    queue_wait: float = Field(default=5.0, alias="queue-wait", ge=0,
                              description="Seconds a read waits for a free worker before it is answered 503.")
    timeout: float = Field(default=30.0, gt=0,
                           description="Seconds a read may run; then it is answered 504 and stops at its next step "
                           "(a streamed answer is cut off).")
    max_job_points: int = Field(default=20_000_000, alias="max-job-points", ge=1,
                                description="Most points (series x samples) of one job's metric data from the "
                                "metric store (`GET /api/jobs/{id}?all-metrics=true`, `POST /api/jobs/{id}`, "
                                "`GET /api/jobs/metrics/{id}`); above, 400. 64 nodes x 25 metrics x 7 days at 60 s "
                                "is 16 M.")


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, `:port` or `port` as (host, port); no host means loopback, never every interface.

    The listener serves without authentication, so only an address spelled out exposes it beyond this host.
    """
    host, _, port = text.strip().rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if not port.isdigit() or not 0 < int(port) < 65536 or (":" in host and not bracketed):
        raise ValueError(f"{text!r} is not an address like 127.0.0.1:9102 or [::1]:9102 (port 1-65535)")
    host = (host[1:-1] if bracketed else host) or "127.0.0.1"
    return host, int(port)


class PrometheusSettings(Section):
    """`prometheus`: the `/metrics` endpoint a Prometheus server scrapes (ccstream's own)."""

    enabled: bool = Field(default=True, description="Serve `/metrics` (state read at scrape time, refusals, "
                          "request latency).")
    listen: str = Field(default="", description="Address of a separate listener serving `/metrics` without "
                        "authentication, e.g. `127.0.0.1:9102` (no host: loopback). Empty: `/metrics` is served "
                        "on the main server, behind the `api` role.")

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if value.strip():
            parse_listen(value)
        return value.strip()

    def address(self) -> tuple[str, int] | None:
        """(host, port) of the separate listener, or None to serve on the main server."""
        return parse_listen(self.listen) if self.listen else None


class CronSettings(Section):
    commit_job_worker: str = Field(default="1m", alias="commit-job-worker", description="Job commit interval.")
    duration_worker: str = Field(default="5m", alias="duration-worker", description=(
        "Go duration between updates of running jobs' `duration` (one `job.durations_updated` event a run)."))
    footprint_worker: str = Field(default="10m", alias="footprint-worker", description=(
        "Go duration between footprint updates of running jobs from the metric store (a "
        "`job.footprint_updated` event for each job whose footprint or energy changed)."))


class Settings(Section):
    """The whole config.json."""

    main: MainSettings = Field(default_factory=MainSettings, description="Server settings.")
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings, description="Job archive.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Authentication.")
    nats: NatsSettings | None = Field(default=None, description="NATS connection.")
    metric_store: MetricStoreSettings = Field(
        default_factory=MetricStoreSettings, alias="metric-store",
        description="The embedded metric store (used unless `metric-store-external` is set).",
    )
    metric_store_external: list[ExternalMetricStore] | None = Field(
        default=None, alias="metric-store-external", description="External metric stores."
    )
    cron: CronSettings = Field(default_factory=CronSettings, description="Background worker intervals.")
    ui: dict[str, Any] | None = Field(default=None, description="UI defaults (cc-backend's `ui` section).")
    ui_file: str = Field(default="", alias="ui-file", description="File with UI defaults.")
    event_log: EventLogSettings = Field(default_factory=EventLogSettings, alias="event-log",
                                        description="ccstream's event log.")
    intake: IntakeSettings = Field(default_factory=IntakeSettings, description="ccstream's job intake.")
    agents: AgentSettings = Field(default_factory=AgentSettings, description="ccstream's agents over the log.")
    archiver: ArchiverSettings = Field(default_factory=ArchiverSettings, description="ccstream's archiver agent.")
    reads: ReadSettings = Field(default_factory=ReadSettings, description="ccstream's read pool and answer limits.")
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings,
                                           description="ccstream's Prometheus metrics endpoint.")


class ConfigError(ValueError):
    """A config file that cannot be used, with the file and key named."""


def _explain(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err.get("loc", ()))
        if err.get("type") == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}'")
        else:
            lines.append(f"{source}: key '{key}': {err.get('msg')}")
    return "\n".join(lines)


def parse_settings(raw: bytes | str, source: str = "config.json") -> Settings:
    """Settings from config.json text; ConfigError names the file and every bad key.

    A key ccstream does not act on yet (`api.unsupported.NOT_SUPPORTED`) set to anything but its default is
    refused here too, so a server never starts while silently ignoring what its config asks for.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: the top level must be a JSON object")
    try:
        settings = Settings.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None
    refused = refusals(settings)
    if refused:
        raise ConfigError("\n".join(f"{source}: {line}" for line in refused))
    return settings


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a file; defaults when no file is given. Relative paths stay relative to the cwd."""
    if path is None:
        return Settings()
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from None
    return parse_settings(raw, str(file))


def load_env(path: str | Path = ".env") -> None:
    """Secrets (JWT keys, session key, LDAP password) from `.env` into the environment, as cc-backend does.

    Values already set in the environment win, so deployments can override the file.
    """
    from dotenv import load_dotenv

    if Path(path).exists():
        load_dotenv(path, override=False)


def secret(name: str) -> str:
    """A secret from the environment ('' when unset)."""
    return os.environ.get(name, "")

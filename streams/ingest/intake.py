"""The job intake: validate, decide against the log, append. The one write path for job events.

REST and NATS both call it. Decisions that span events (duplicate starts, which run a stop ends,
parked stops) are taken from the log's events of one (cluster, jobId), under a lock for that key,
so concurrent requests for one job are serialised while different jobs proceed and group-commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from streams.events import Event, derived_event_id, job_family_prefix, job_subject, new_event, parse_job_subject
from streams.events.payloads import JobStartedV1
from streams.ingest.family import JobFamily
from streams.ingest.locks import KeyedLocks
from streams.ingest.outcomes import Accepted, Invalid, JobConflict, NotFound
from streams.ingest.requests import (
    InvalidRequest,
    StartJobRequest,
    StopJobRequest,
    check_payload,
    describe,
    parse_start,
    parse_stop,
)
from streams.ingest.tagscope import scope_error
from streams.log import EventLog
from streams.settings import IntakeSettings
from streams.unknownhosts import UnknownHosts


class Clusters(Protocol):
    """What the intake needs to know about clusters (see streams.clusters.ClusterRegistry)."""

    def has(self, name: str) -> bool: ...

    def names(self) -> list[str]: ...

    def subcluster(self, cluster: str, name: str) -> dict[str, Any] | None: ...

    def subcluster_of(self, cluster: str, hostname: str) -> str | None: ...

    def get(self, name: str) -> dict[str, Any] | None: ...

    def outside_nodelists(self, cluster: str, hostname: str) -> bool: ...


#: Requests decided at once from which the intake counts as busy (see JobIntake.busy).
BURST = 4


def _content_hash(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _run_event_id(kind: str, subject: str, generation: int, *parts: object) -> str:
    """The id of a run's start or stop. A job deleted and then started again (same subject, maybe
    the same content) is a new generation: its events need fresh ids, or the log would take them for
    retries of the deleted run's events and drop them. Generation 0 keeps the original derivation."""
    if generation == 0:
        return derived_event_id(kind, subject, *parts)
    return derived_event_id(kind, subject, *parts, f"generation:{generation}")


class JobIntake:
    """Turns start/stop requests into job events, exactly once per distinct request."""

    def __init__(self, log: EventLog, clusters: Clusters, settings: IntakeSettings | None = None,
                 parked_count: Callable[[], int] | None = None,
                 user_exists: Callable[[str], bool] | None = None) -> None:
        self.log = log
        self.clusters = clusters
        self.settings = settings or IntakeSettings()
        #: How many stops wait for their start now (the read model's count; None: not bounded).
        self.parked_count = parked_count
        #: Whether a user name exists: private tag scopes must name one (streams.ingest.tagscope).
        self.user_exists = user_exists
        self._locks = KeyedLocks()
        self._in_flight = 0
        #: Hosts of accepted starts that no subcluster nodelist lists (accepted as by cc-backend, counted).
        self.unknown_hosts = UnknownHosts("job intake")

    def busy(self) -> bool:
        """Whether starts and stops arrive in a burst (several decided at once): background agents give
        way then. A lone request at a time leaves the machine room for them."""
        return self._in_flight >= BURST

    @contextmanager
    def _deciding(self) -> Iterator[None]:
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    def _family(self, cluster: str, job_id: int) -> JobFamily:
        """What the log says about one scheduler job id (read under that id's lock)."""
        return JobFamily.fold_stored(self.log.read_prefix_stored(job_family_prefix(cluster, job_id)))

    # -- start ----------------------------------------------------------------------------------

    async def start_job(
        self, body: bytes | str | dict[str, Any], *, source: str, event_id: str | None = None
    ) -> Accepted:
        """Accept a job start (cc-backend `start_job`), or raise a Rejected subclass.

        `event_id` overrides the content-derived id, for transports that name their messages (a
        JetStream `Nats-Msg-Id`): a redelivery of the same message is then answered `repeated`.
        """
        with self._deciding():
            return await self._start_job(body, source, event_id)

    async def _start_job(self, body: bytes | str | dict[str, Any], source: str, event_id: str | None) -> Accepted:
        try:
            request = parse_start(body)
        except InvalidRequest as exc:
            raise Invalid(str(exc)) from None
        payload = self.normalise_start(request)
        subject = job_subject(payload["cluster"], payload["jobId"], payload["startTime"])
        async with self._locks.hold(payload["jobId"]):
            family = self._family(payload["cluster"], payload["jobId"])
            generation = family.generation(subject)
            event_id = event_id or _run_event_id("job.started", subject, generation, _content_hash(payload))
            if event_id in family.kinds:
                return Accepted(subject, family.positions[event_id], repeated=True)
            conflict = family.conflicting_run(payload["startTime"], self.settings.duplicate_window)
            if conflict is not None:
                raise JobConflict(
                    "a job with that jobId, cluster and startTime already exists: "
                    f"dbid: {{db_id}}, jobid: {payload['jobId']}",
                    conflict.subject,
                    conflict.position,
                )
            started = new_event("job.started", subject, payload, id=event_id, source=source)
            events = [started]
            parked = family.parked_stop_for(payload["startTime"])
            if parked is not None:
                events.append(
                    self._stop_event(subject, payload["startTime"], parked.data, source, parked.id, generation)
                )
            results = await self.log.append_async(events)
        self._note_unknown_hosts(payload)
        return Accepted(subject, results[-1].position, resolved_parked_stop=parked is not None)

    def _note_unknown_hosts(self, payload: dict[str, Any]) -> None:
        """Count the resources of a newly accepted start whose host is in no subcluster's nodelist."""
        cluster = payload["cluster"]
        for resource in payload["resources"]:
            host = resource["hostname"]
            if self.clusters.outside_nodelists(cluster, host):
                self.unknown_hosts.record(cluster, host)

    def normalise_start(self, request: StartJobRequest) -> dict[str, Any]:
        """cc-backend's sanity checks and defaults; the result is a valid `job.started` payload."""
        if request.jobState not in ("", "running"):
            raise Invalid(f"a started job must be running, not {request.jobState!r}")
        if not request.resources or not request.user or not request.cluster or not request.project:
            raise Invalid("'resources', 'user', 'project' and 'cluster' are required")
        if not self.clusters.has(request.cluster):
            raise Invalid(f"no such cluster: {request.cluster}")
        if request.numNodes != len(request.resources):
            raise Invalid(f"job has {len(request.resources)} resources but numNodes is {request.numNodes}")
        if request.startTime <= 0:
            raise Invalid("'startTime' is required and must be a unix timestamp in seconds")
        if request.numAcc < 0 or request.numHwthreads < 0 or request.walltime < 0:
            raise Invalid("numAcc, numHwthreads and walltime must not be negative")
        subcluster = self._assign_subcluster(request)
        data = request.model_dump(mode="json", exclude={"id", "exclusive", "jobState", "duration", "concurrentJobs"})
        data["subCluster"] = subcluster
        data["shared"] = request.shared or "none"
        data["metaData"] = request.metaData or {}
        data["tags"] = [
            {"type": t.type, "name": t.name, "scope": t.scope or "global"} for t in (request.tags or [])
        ]
        for tag in data["tags"]:
            problem = scope_error(tag["scope"], self.user_exists)
            if problem is not None:
                raise Invalid(problem)
        data["resources"] = [
            {k: v for k, v in r.model_dump(mode="json").items() if v is not None} for r in request.resources
        ]
        if request.exclusive is not None and request.shared == "none" and request.exclusive != 1:
            # Older adapters send `exclusive` (1 exclusive, 0 shared, 2 single user) instead of `shared`.
            data["shared"] = {0: "multi_user", 2: "single_user"}.get(request.exclusive, "none")
        try:
            return JobStartedV1.model_validate(data).model_dump(mode="json", exclude={"dbId"})
        except ValidationError as exc:
            raise Invalid(f"invalid job: {describe(exc)}") from None

    def _assign_subcluster(self, request: StartJobRequest) -> str:
        cluster = request.cluster
        if request.subCluster:
            if self.clusters.subcluster(cluster, request.subCluster) is None:
                raise Invalid(f"subcluster {request.subCluster!r} is unknown on cluster {cluster!r}")
            return request.subCluster
        assert request.resources
        host = request.resources[0].hostname
        found = self.clusters.subcluster_of(cluster, host)
        if found is not None:
            return found
        config = self.clusters.get(cluster) or {}
        subclusters = config.get("subClusters") or []
        if subclusters and not subclusters[0].get("nodes"):
            return str(subclusters[0]["name"])
        raise Invalid(f"no subcluster found for cluster {cluster} and host {host}")

    # -- stop -----------------------------------------------------------------------------------

    async def stop_job(
        self, body: bytes | str | dict[str, Any], *, source: str, event_id: str | None = None
    ) -> Accepted:
        """Accept a job stop (cc-backend `stop_job`); a stop before its start is parked.

        `event_id` (see `start_job`) names the stop or parked-stop event this request makes.
        """
        with self._deciding():
            return await self._stop_job(body, source, event_id)

    async def _stop_job(self, body: bytes | str | dict[str, Any], source: str, event_id: str | None) -> Accepted:
        try:
            request = parse_stop(body)
        except InvalidRequest as exc:
            raise Invalid(str(exc)) from None
        if request.jobId is None:
            raise Invalid("the field 'jobId' is required")
        if request.jobState == "running":
            raise Invalid("a stopped job's jobState cannot be 'running'")
        if request.cluster is not None and not self.clusters.has(request.cluster):
            raise NotFound(f"finding job failed: no such cluster: {request.cluster}")
        clusters = [request.cluster] if request.cluster else self.clusters.names()
        async with self._locks.hold(request.jobId):
            # A named request seen before is answered as before. With the cluster given, every event
            # the request can have made is in that cluster's family, read below anyway.
            if event_id is not None and request.cluster is None and (known := self.log.get(event_id)) is not None:
                return Accepted(known.subject, known.position or 0, repeated=True,
                                parked=known.type == "job.stop_parked")
            for cluster in clusters:
                family = self._family(cluster, request.jobId)
                if event_id is not None and event_id in family.kinds:
                    kind, subject = family.kinds[event_id]
                    return Accepted(subject, family.positions[event_id], repeated=True,
                                    parked=kind == "job.stop_parked")
                run = family.run_to_stop(request.startTime)
                if run is not None:
                    return await self._stop_run(family, run.subject, request, source, event_id)
            if not self.settings.park_early_stops or not request.cluster:
                raise NotFound(f"finding job failed: no job {request.jobId} on {request.cluster or 'any cluster'}")
            return await self._park(request, source, event_id)

    async def _stop_run(
        self, family: JobFamily, subject: str, request: StopJobRequest, source: str, event_id: str | None = None
    ) -> Accepted:
        run = family.runs[subject]
        state = request.jobState or "completed"
        generation = family.generation(subject)
        event_id = event_id or _run_event_id("job.stopped", subject, generation, state, request.stopTime)
        cluster, job_id, _ = parse_job_subject(subject)
        if run.stopped is not None:
            if run.stopped.id == event_id:
                return Accepted(subject, family.positions[event_id], repeated=True)
            raise JobConflict(
                f"jobId {job_id} (id {{db_id}}) on {cluster} : job has already been stopped "
                f"(state is: {run.stopped.data['jobState']})",
                subject,
                run.position,
            )
        if request.stopTime < run.start_time:
            raise JobConflict(
                f"jobId {job_id} (id {{db_id}}) on {cluster} : stopTime {request.stopTime} must be "
                f"larger/equal than startTime {run.start_time}",
                subject,
                run.position,
                kind="invalid",
            )
        data = {"jobState": state, "stopTime": request.stopTime}
        event = self._stop_event(subject, run.start_time, data, source, None, generation, event_id)
        results = await self.log.append_async([event])
        return Accepted(subject, results[0].position, repeated=results[0].duplicate)

    async def _park(self, request: StopJobRequest, source: str, event_id: str | None = None) -> Accepted:
        assert request.cluster is not None and request.jobId is not None
        if request.startTime is not None and request.stopTime < request.startTime:
            raise Invalid(f"stopTime {request.stopTime} must be larger/equal than startTime {request.startTime}")
        limit = self.settings.max_parked_stops
        if self.parked_count is not None and self.parked_count() >= limit:
            raise Invalid(f"finding job failed: no job {request.jobId} on {request.cluster}, and {limit} stops "
                          "already wait for their start (intake.max-parked-stops)")
        start = "*" if request.startTime is None else request.startTime
        subject = f"{job_family_prefix(request.cluster, request.jobId)}{start}"
        data = {
            "cluster": request.cluster,
            "jobId": request.jobId,
            "startTime": request.startTime,
            "jobState": request.jobState or "completed",
            "stopTime": request.stopTime,
        }
        event_id = event_id or derived_event_id("job.stop_parked", subject, _content_hash(data))
        event = new_event("job.stop_parked", subject, data, id=event_id, source=source)
        results = await self.log.append_async([event])
        return Accepted(subject, results[0].position, repeated=results[0].duplicate, parked=True)

    @staticmethod
    def _stop_event(
        subject: str, start_time: int, stop: dict[str, Any], source: str, parked_id: str | None, generation: int,
        event_id: str | None = None,
    ) -> Event:
        state = stop.get("jobState") or "completed"
        stop_time = int(stop["stopTime"])
        data: dict[str, Any] = {
            "jobState": state,
            "stopTime": stop_time,
            "duration": max(stop_time - start_time, 0),
            "parkedStopId": parked_id,
        }
        event_id = event_id or _run_event_id("job.stopped", subject, generation, state, stop_time)
        return new_event("job.stopped", subject, data, id=event_id, source=source)

    # -- edits of known jobs --------------------------------------------------------------------

    async def record(self, events: Sequence[Event]) -> int:
        """Append events built by the caller (tags, metadata, deletion, users); returns the last position.

        Each is held to its payload model first: an event the read models cannot store is refused here.
        """
        for event in events:
            try:
                check_payload(event.type, event.version, event.data)
            except InvalidRequest as exc:
                raise Invalid(str(exc)) from None
        results = await self.log.append_async(events)
        return results[-1].position if results else self.log.head()


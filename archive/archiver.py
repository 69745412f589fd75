"""The archiver agent: a stopped job's metrics go into the job archive before the metric store forgets them.

For every `job.stopped` it folds the job's events (start, tags and metadata edited while it ran, stop),
loads the job's series from the metric store, computes statistics, footprint and energy, writes
meta.json and data.json, and reports `job.archived` with those facts, which the job projection
records. A failure is reported as `job.archiving_failed` and retried with back-off up to a limit.
Output event ids derive from the stop event, so a crash anywhere only ever repeats idempotent work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from archive.agentstate import AgentStateStore, Pending
from archive.backends.protocol import ArchiveBackend
from archive.jobjson import job_from_events, meta_from_job
from archive.stats import energy, footprint, job_statistics, missing_metrics
from metricstore.jobdata import JobDataRequest, JobResource
from metricstore.source import MetricSource
from streams.events import Event, derived_event_id, new_event
from streams.events.payloads import JobArchivedV1
from streams.log import EventLog
from streams.runtime.quarantine import Action, AgentRequest, QuarantinedEvent

log = logging.getLogger(__name__)

AGENT = "archiver"
SOURCE = "agent:archiver"
#: Longest wait, in seconds, between archiving a job and reporting it (jobs of one batch are reported together).
REPORT_EVERY = 1.0
#: Longest wait, in seconds, of one job for the intake to fall quiet (see Archiver.give_way_to).
GIVE_WAY = 0.2


class MetricConfigs(Protocol):
    """What the archiver needs to know of clusters (see streams.clusters.ClusterRegistry).

    The answer for a (cluster, subcluster) must not change once given: the archiver keeps it rather
    than ask per job, because the registry deep-copies every answer (~0.15 ms for fritz, a tenth of
    archiving a job without metric data). The registry only ever adds clusters, so that holds.
    """

    def metric_config(self, cluster: str, subcluster: str | None = None) -> list[dict[str, Any]]: ...


def scopes_for(job: Mapping[str, Any]) -> tuple[str, ...]:
    """cc-backend's archive scopes: node; core for jobs of up to 8 nodes; accelerator when it has any."""
    scopes = ["node"]
    if int(job.get("numNodes") or 0) <= 8:
        scopes.append("core")
    if int(job.get("numAcc") or 0) > 0:
        scopes.append("accelerator")
    return tuple(scopes)


def data_request(job: Mapping[str, Any]) -> JobDataRequest:
    """The metric store query for a whole job.

    Series come as float64 arrays, not lists: the archive's JSON is byte for byte the same, and no
    Python float is made (and freed) per sample, which was most of the time spent on a large job.
    """
    resources = tuple(
        JobResource(
            r["hostname"],
            tuple(r["hwthreads"]) if r.get("hwthreads") else None,
            tuple(str(a) for a in r["accelerators"]) if r.get("accelerators") else None,
        )
        for r in job["resources"]
    )
    start = int(job["startTime"])
    return JobDataRequest(
        cluster=job["cluster"], resources=resources, start=start, stop=start + int(job.get("duration") or 0),
        scopes=scopes_for(job), subcluster=job.get("subCluster") or None, as_lists=False, exact_arrays=True,
    )


def archive_entry(
    job: Mapping[str, Any], data: Mapping[str, Any], metric_config: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """meta.json and the `job.archived` payload (without location) of a job and its data. Pure."""
    stats = job_statistics(data, int(job.get("numNodes") or 1))
    per_metric_energy, total_energy = energy(data, metric_config, int(job.get("duration") or 0))
    facts = {
        "statistics": stats,
        "footprint": footprint(stats, metric_config),
        "energyFootprint": per_metric_energy,
        "energy": total_energy,
        "missingMetrics": missing_metrics(data, [m["name"] for m in metric_config]),
    }
    archived = {**job, **{k: facts[k] for k in ("footprint", "energyFootprint", "energy")}, "monitoringStatus": 3}
    return meta_from_job(archived, stats), facts


class Archiver:
    """A checkpointed agent over the log (see streams.runtime.AgentRunner); `retry_due` runs when idle."""

    name = AGENT

    def __init__(
        self,
        log_: EventLog,
        archive: ArchiveBackend,
        source: MetricSource,
        clusters: MetricConfigs,
        state: AgentStateStore,
        *,
        max_attempts: int = 5,
        backoff: float = 30.0,
        clock: Callable[[], float] = time.time,
        give_way_to: Callable[[], bool] | None = None,
    ) -> None:
        self.log = log_
        self.archive = archive
        self.source = source
        self.clusters = clusters
        self.state = state
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.clock = clock
        #: True while latency-critical work (an intake burst) is running; each job then waits for it, up to
        #: GIVE_WAY seconds. All agents share one interpreter lock, and a scheduler waits for its
        #: start/stop answer while nobody waits for an archive entry; the bound keeps archiving going
        #: (at least 1/GIVE_WAY jobs per second) under sustained intake.
        self.give_way_to = give_way_to
        self._configs: dict[tuple[str, str | None], list[dict[str, Any]]] = {}

    def checkpoint(self) -> int:
        return self.state.checkpoint(self.name)

    def apply(self, events: Sequence[Event]) -> None:
        """Archive the batch's stopped jobs, report them in one append, then move the checkpoint.

        Reports go out together, at most REPORT_EVERY seconds apart, not one append per job: each
        append is a commit of the log and a wake-up of every agent, and jobs without much data are
        archived at the intake's pace. A crash before an append archives those jobs again (same
        files, same event ids): idempotent."""
        reports: list[Event] = []
        upserts: list[Pending] = []
        report_at = time.monotonic() + REPORT_EVERY
        for event in events:
            if event.type != "job.stopped":
                continue
            self._give_way()
            report, pending = self._attempt(event, 1)
            reports.extend([report] if report else [])
            upserts.extend([pending] if pending else [])
            if reports and time.monotonic() >= report_at:
                self.log.append(reports)
                reports, report_at = [], time.monotonic() + REPORT_EVERY
        self.log.append(reports)
        self.state.commit(self.name, events[-1].position, upserts)

    # -- quarantine (see streams.runtime.quarantine) ----------------------------------------------

    def skip(self, event: Event, error: str, attempts: int) -> None:
        self.state.skip(self.name, event, error, attempts)

    def reapply(self, event: Event, followers: Sequence[Event]) -> None:
        """Archive the job of a quarantined stop now; a failed attempt leaves it quarantined (and says why)."""
        report, pending = self._attempt(event, 1) if event.type == "job.stopped" else (None, None)
        self.log.append([report] if report else [])
        if report is not None and report.type == "job.archiving_failed":
            raise RuntimeError(str(report.data.get("reason")))
        self.state.commit(self.name, None, [pending] if pending else [])
        self.state.release(self.name, event.position or 0)

    def quarantined(self) -> list[QuarantinedEvent]:
        return self.state.quarantined(self.name)

    def requests(self) -> list[AgentRequest]:
        return self.state.requests(self.name)

    def file_request(self, position: int, action: Action) -> None:
        self.state.file_request(self.name, position, action)

    def settle_request(self, position: int) -> None:
        self.state.settle_request(self.name, position)

    def _give_way(self) -> None:
        if self.give_way_to is None:
            return
        until = time.monotonic() + GIVE_WAY
        while self.give_way_to() and time.monotonic() < until:
            time.sleep(GIVE_WAY / 10)

    def retry_due(self) -> None:
        """Try again what failed before and is due now."""
        for pending in self.state.pending(self.name, due_before=self.clock()):
            stop = self.log.get(pending.cause_id)
            report, retry = (None, None) if stop is None else self._attempt(stop, pending.attempt + 1)
            self.log.append([report] if report else [])
            self.state.commit(self.name, None, [retry] if retry else [], [] if retry else [pending.subject])

    # -- one job ---------------------------------------------------------------------------------

    def _attempt(self, stop: Event, attempt: int) -> tuple[Event | None, Pending | None]:
        """Archive the job of a stop event: the event reporting the outcome (none when the job is not
        to be archived) and the retry to schedule, if any."""
        history = self.log.read_subject(stop.subject)
        if not self._wanted(history):
            return None, None
        try:
            # Held to the payload model (finite numbers, bounded names) before anything is appended.
            payload = self._archive(history)
            JobArchivedV1.model_validate(payload)
        except Exception as exc:
            return self._failed(stop, attempt, exc)
        event = new_event("job.archived", stop.subject, payload, id=derived_event_id(SOURCE, stop.id),
                          source=SOURCE, causation_id=stop.id)
        return event, None

    @staticmethod
    def _wanted(history: Sequence[Event]) -> bool:
        started = next((e for e in history if e.type == "job.started"), None)
        if started is None or started.source.startswith("import"):
            return False  # imported jobs arrive archived
        if int(started.data.get("monitoringStatus", 1)) == 0:
            return False  # monitoring disabled for this job
        return not any(e.type in ("job.archived", "job.deleted") for e in history)

    def _archive(self, history: Sequence[Event]) -> dict[str, Any]:
        job = job_from_events(history)
        config = self._metric_config(job["cluster"], job.get("subCluster") or None)
        data = self.source.load_job_data(data_request(job))
        meta, facts = archive_entry(job, data, config)
        location = self.archive.store_job(meta, data)
        if facts["missingMetrics"]:
            log.info("archived %s without data for %s", meta["jobId"], ", ".join(facts["missingMetrics"]))
        return {**facts, "location": location}

    def _metric_config(self, cluster: str, subcluster: str | None) -> list[dict[str, Any]]:
        """The cluster's metric config, kept per (cluster, subcluster); [] for an unknown one, which is
        asked again next time (the cluster may be added meanwhile). Only read, never changed, here."""
        key = (cluster, subcluster)
        config = self._configs.get(key)
        if config is None:
            try:
                config = self._configs[key] = self.clusters.metric_config(cluster, subcluster)
            except KeyError:
                return []
        return config

    def _failed(self, stop: Event, attempt: int, exc: Exception) -> tuple[Event, Pending | None]:
        reason = f"{type(exc).__name__}: {exc}"
        final = attempt >= self.max_attempts
        event = new_event(
            "job.archiving_failed", stop.subject, {"reason": reason[:2000], "attempt": attempt, "final": final},
            id=derived_event_id(SOURCE, stop.id, "failed", attempt), source=SOURCE, causation_id=stop.id,
        )
        log.warning("archiving %s failed (attempt %d of %d): %s", stop.subject, attempt, self.max_attempts, reason)
        if final:
            return event, None
        due = self.clock() + min(self.backoff * 2 ** (attempt - 1), 3600.0)
        return event, Pending(stop.subject, stop.id, attempt, due, reason)

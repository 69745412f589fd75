"""cc-backend's `cron.duration-worker` and `cron.footprint-worker`, as events.

cc-backend updates the `duration` of running jobs and their `footprint` (and energy) in place, every
few minutes. Here the job table is a read model of the log, so each run appends what it found, and
the job projection applies it like any other event (a rebuild of the table gives the same columns):

- the duration worker appends one `job.durations_updated` per run, with the run's time: the
  projection sets `asOf - start_time` on every job running then (one event, not one per job);
- the footprint worker reads each running job's metrics so far from the metric store, derives the
  footprint and energy with the archiver's own functions (`archive.stats`), and appends a
  `job.footprint_updated` for each job whose values changed since the last one (none when equal).

Neither changes a stopped job: its stop sets the final duration, its archiving the final footprint.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import Engine, RowMapping

from api.auth import parse_go_duration
from archive.stats import energy, footprint, job_statistics
from metricstore.jobdata import JobDataRequest, JobResource
from metricstore.source import MetricSource
from projections import queries
from streams.events import Event, job_subject, new_event, validate_payload
from streams.log import EventLog

log = logging.getLogger(__name__)

DURATION_SOURCE = "task:duration-worker"
FOOTPRINT_SOURCE = "task:footprint-worker"
#: Subject of `job.durations_updated`: it is about every running job, not one.
DURATIONS_SUBJECT = "jobs"


class MetricConfigs(Protocol):
    def metric_config(self, cluster: str, subcluster: str | None = None) -> list[dict[str, Any]]: ...


def interval(text: str, key: str) -> timedelta:
    """A `cron.*` interval (Go duration); a ValueError naming the key when it is no positive duration."""
    try:
        value = parse_go_duration(text)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None
    if value <= timedelta(0):
        raise ValueError(f'{key}: the interval must be positive, not "{text}"')
    return value


# -- duration ------------------------------------------------------------------------------------


def update_durations(events: EventLog, reader: Engine, now: int) -> Event | None:
    """Append `job.durations_updated` as of `now` when any job runs; the event, or None."""
    with reader.connect() as conn:
        if not queries.running_jobs(conn):
            return None
    event = new_event("job.durations_updated", DURATIONS_SUBJECT, {"asOf": int(now)}, source=DURATION_SOURCE)
    events.append([event])
    return event


# -- footprint -----------------------------------------------------------------------------------


def footprint_metrics(metric_config: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The metrics a footprint needs: those with `footprint` set, and the power metrics of energy."""
    return tuple(m["name"] for m in metric_config if m.get("footprint") or m.get("energy") == "power")


def data_request(row: RowMapping, metrics: tuple[str, ...], now: int) -> JobDataRequest:
    """Node-scope series of `metrics` for a running job, from its start to `now`."""
    resources = tuple(JobResource(r["hostname"]) for r in orjson.loads(row["resources"]))
    return JobDataRequest(cluster=row["cluster"], resources=resources, start=int(row["start_time"]),
                          stop=max(int(now), int(row["start_time"])), metrics=metrics, scopes=("node",),
                          subcluster=row["subcluster"] or None, as_lists=False, exact_arrays=True)


def running_footprint(data: Mapping[str, Any], metric_config: Sequence[Mapping[str, Any]], num_nodes: int,
                      duration: int) -> dict[str, Any]:
    """The `job.footprint_updated` facts of a job's data so far: the archiver's statistics and footprint."""
    stats = job_statistics(data, num_nodes)
    per_metric, total = energy(data, metric_config, duration)
    return {"footprint": footprint(stats, metric_config), "energyFootprint": per_metric, "energy": total}


def _stored(row: RowMapping) -> dict[str, Any]:
    return {"footprint": orjson.loads(row["footprint"]) if row["footprint"] else {},
            "energyFootprint": orjson.loads(row["energy_footprint"]) if row["energy_footprint"] else {},
            "energy": float(row["energy"] or 0.0)}


def footprint_events(rows: Sequence[RowMapping], source: MetricSource, configs: MetricConfigs,
                     now: int) -> list[Event]:
    """A `job.footprint_updated` for each running job whose footprint differs from the stored one."""
    out = []
    for row in rows:
        try:
            config = configs.metric_config(row["cluster"], row["subcluster"] or None)
        except KeyError:
            continue  # a cluster no longer configured: nothing to measure against
        metrics = footprint_metrics(config)
        if not metrics or int(row["monitoring_status"]) == 0:
            continue
        try:
            data = source.load_job_data(data_request(row, metrics, now))
        except Exception as exc:  # one job's metrics failing must not stop the others
            log.warning("footprint of job %s on %s not updated: %s", row["job_id"], row["cluster"], exc)
            continue
        facts = running_footprint(data, config, int(row["num_nodes"] or 1), max(now - int(row["start_time"]), 0))
        if not facts["footprint"] and not facts["energyFootprint"]:
            continue  # no data yet
        if facts == _stored(row):
            continue
        subject = job_subject(row["cluster"], int(row["job_id"]), int(row["start_time"]))
        payload = {**facts, "asOf": int(now)}
        try:
            validate_payload("job.footprint_updated", 1, payload)
        except ValueError as exc:  # e.g. more footprint metrics than an event may carry
            log.warning("footprint of %s not updated: %s", subject, exc)
            continue
        out.append(new_event("job.footprint_updated", subject, payload, source=FOOTPRINT_SOURCE))
    return out


def update_footprints(events: EventLog, reader: Engine, source: MetricSource, configs: MetricConfigs,
                      now: int) -> list[Event]:
    """One footprint run over every running job; the events appended."""
    with reader.connect() as conn:
        rows = queries.running_jobs(conn)
    appended = footprint_events(rows, source, configs, now)
    if appended:
        events.append(appended)
        log.info("updated the footprint of %d of %d running job(s)", len(appended), len(rows))
    return appended

"""Read queries on the job database, for the API; each takes a read-only connection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, RowMapping, and_, bindparam, exists, func, or_, select

from projections import schema

job = schema.job


@dataclass(frozen=True)
class JobFilter:
    """Filters of `GET /api/jobs/`."""

    #: Any of these states (OR); "stopped" stands for every state but running. Empty: all states.
    states: tuple[str, ...] = ()
    cluster: str | None = None
    project: str | None = None
    user: str | None = None
    start_from: int | None = None
    start_to: int | None = None


def find_job(conn: Connection, db_id: int) -> RowMapping | None:
    """One job row by database id."""
    return conn.execute(select(job).where(job.c.id == db_id)).mappings().first()


# Built once: every start/stop answer looks its job up, and building the statement per call cost
# SQLAlchemy more than SQLite spends running it.
_JOB_BY_KEY = select(job).where(
    and_(job.c.cluster == bindparam("cluster"), job.c.job_id == bindparam("job_id"),
         job.c.start_time == bindparam("start_time"))
)


def find_job_by_key(conn: Connection, cluster: str, job_id: int, start_time: int) -> RowMapping | None:
    """One job row by cc-backend's identity (cluster, jobId, startTime)."""
    params = {"cluster": cluster, "job_id": job_id, "start_time": start_time}
    return conn.execute(_JOB_BY_KEY, params).mappings().first()


def find_newest_job(conn: Connection, job_id: int, cluster: str | None) -> RowMapping | None:
    """The newest job with a scheduler id (and cluster), as cc-backend's Find without startTime."""
    stmt = select(job).where(job.c.job_id == job_id)
    if cluster:
        stmt = stmt.where(job.c.cluster == cluster)
    return conn.execute(stmt.order_by(job.c.id.desc()).limit(1)).mappings().first()


def list_jobs(conn: Connection, flt: JobFilter, page: int, per_page: int) -> list[RowMapping]:
    """A page of jobs, newest start first."""
    stmt = select(job)
    if flt.states:
        named = [s for s in flt.states if s != "stopped"]
        clauses: list[ColumnElement[bool]] = [job.c.job_state.in_(named)] if named else []
        if "stopped" in flt.states:
            clauses.append(job.c.job_state != "running")
        stmt = stmt.where(or_(*clauses))
    if flt.cluster:
        stmt = stmt.where(job.c.cluster == flt.cluster)
    if flt.project:
        stmt = stmt.where(job.c.project == flt.project)
    if flt.user:
        stmt = stmt.where(job.c.hpc_user == flt.user)
    if flt.start_from is not None:
        stmt = stmt.where(job.c.start_time >= flt.start_from)
    if flt.start_to is not None:
        stmt = stmt.where(job.c.start_time <= flt.start_to)
    stmt = stmt.order_by(job.c.start_time.desc()).limit(per_page).offset(max(page - 1, 0) * per_page)
    return list(conn.execute(stmt).mappings())


def statistics_of(conn: Connection, job_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The archived statistics of several jobs at once: {job db id: meta.json's `statistics`}; jobs not
    archived (monitoring status 3) have none, as cc-backend answers them."""
    if not job_ids:
        return {}
    j, s = schema.job, schema.job_statistics
    stmt = (
        select(j.c.id, s.c.statistics)
        .join(s, (s.c.cluster == j.c.cluster) & (s.c.job_id == j.c.job_id) & (s.c.start_time == j.c.start_time))
        .where(j.c.id.in_(list(job_ids)), j.c.monitoring_status == 3)
    )
    return {int(job_id): orjson.loads(raw) for job_id, raw in conn.execute(stmt)}


def tags_of(conn: Connection, job_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Tags of several jobs at once: {job db id: [{id, type, name, scope}]}."""
    if not job_ids:
        return {}
    stmt = (
        select(schema.jobtag.c.job_id, schema.tag.c.id, schema.tag.c.tag_type, schema.tag.c.tag_name,
               schema.tag.c.tag_scope)
        .join(schema.tag, schema.tag.c.id == schema.jobtag.c.tag_id)
        .where(schema.jobtag.c.job_id.in_(list(job_ids)))
        .order_by(schema.tag.c.id)
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for job_id, tag_id, tag_type, tag_name, tag_scope in conn.execute(stmt):
        out.setdefault(job_id, []).append({"id": tag_id, "type": tag_type, "name": tag_name, "scope": tag_scope})
    return out


def tag_exists(conn: Connection, tag_type: str, name: str, scope: str) -> bool:
    """Whether a tag (type, name, scope) exists."""
    clause = and_(schema.tag.c.tag_type == tag_type, schema.tag.c.tag_name == name, schema.tag.c.tag_scope == scope)
    return bool(conn.execute(select(exists().where(clause))).scalar())


def used_nodes(conn: Connection, before: int) -> dict[str, list[str]]:
    """Hosts of running jobs that started before `before`, per cluster, sorted and unique."""
    stmt = select(job.c.cluster, job.c.resources).where(
        and_(job.c.job_state == "running", job.c.start_time < before)
    )
    hosts: dict[str, set[str]] = {}
    for cluster, resources in conn.execute(stmt):
        for resource in orjson.loads(resources):
            hosts.setdefault(cluster, set()).add(resource["hostname"])
    return {cluster: sorted(names) for cluster, names in sorted(hosts.items())}


def hosts_awaiting_archive(conn: Connection, cluster: str) -> set[str]:
    """Hosts of jobs whose metrics are still needed: running, or stopped and not archived yet.

    cc-backend's monitoring status 1 means exactly that ("running or archiving").
    """
    stmt = select(job.c.resources).where(and_(job.c.monitoring_status == 1, job.c.cluster == cluster))
    hosts: set[str] = set()
    for (resources,) in conn.execute(stmt):
        hosts.update(r["hostname"] for r in orjson.loads(resources))
    return hosts


def jobs_started_before(conn: Connection, ts: int, omit_tagged: bool) -> list[RowMapping]:
    """Jobs that started before `ts` (for delete_job_before), optionally without tagged ones."""
    stmt = select(job.c.id, job.c.cluster, job.c.job_id, job.c.start_time).where(job.c.start_time < ts)
    if omit_tagged:
        stmt = stmt.where(~exists().where(schema.jobtag.c.job_id == job.c.id))
    return list(conn.execute(stmt).mappings())


def tagged_job_keys(conn: Connection, before: int) -> list[tuple[str, int, int]]:
    """(cluster, jobId, startTime) of the tagged jobs that started before `before` (retention's omit-tagged)."""
    stmt = select(job.c.cluster, job.c.job_id, job.c.start_time).where(
        and_(job.c.start_time < before, exists().where(schema.jobtag.c.job_id == job.c.id))
    )
    return [(c, int(j), int(s)) for c, j, s in conn.execute(stmt)]


def users(conn: Connection, not_just_user: bool = False) -> list[RowMapping]:
    """User rows; with `not_just_user`, only those with a role beyond `user`."""
    rows = list(conn.execute(select(schema.hpc_user).order_by(schema.hpc_user.c.username)).mappings())
    if not not_just_user:
        return rows
    return [r for r in rows if set(orjson.loads(r["roles"] or "[]")) - {"user"}]


def find_user(conn: Connection, username: str) -> RowMapping | None:
    """One user row."""
    return conn.execute(select(schema.hpc_user).where(schema.hpc_user.c.username == username)).mappings().first()


def parked_stops(conn: Connection) -> list[RowMapping]:
    """Stops waiting for their start, oldest first."""
    stmt = select(schema.parked_stop).order_by(schema.parked_stop.c.received_at)
    return list(conn.execute(stmt).mappings())


def count_parked_stops(conn: Connection) -> int:
    """Number of stops waiting for their start."""
    return int(conn.execute(select(func.count()).select_from(schema.parked_stop)).scalar_one())


def count_jobs(conn: Connection) -> int:
    """Number of jobs in the table."""
    return int(conn.execute(select(func.count()).select_from(job)).scalar_one())


def job_ids_of(rows: Iterable[RowMapping]) -> list[int]:
    """Database ids of rows."""
    return [int(r["id"]) for r in rows]


def running_jobs(conn: Connection, cluster: str | None = None) -> list[RowMapping]:
    """Running jobs (every column), optionally of one cluster, in database-id order."""
    stmt = select(job).where(job.c.job_state == "running").order_by(job.c.id)
    if cluster is not None:
        stmt = stmt.where(job.c.cluster == cluster)
    return list(conn.execute(stmt).mappings())


def jobs_exceeding_walltime(conn: Connection, now: int, grace: int) -> list[RowMapping]:
    """Running jobs with a walltime that started more than walltime + `grace` seconds before `now`.

    cc-backend's condition (`StopJobsExceedingWalltimeBy`): `now - start_time > walltime + grace`."""
    stmt = select(job.c.id, job.c.cluster, job.c.job_id, job.c.start_time, job.c.walltime).where(
        and_(job.c.job_state == "running", job.c.walltime > 0,
             (now - job.c.start_time) > (job.c.walltime + grace))
    ).order_by(job.c.id)
    return list(conn.execute(stmt).mappings())

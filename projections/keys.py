"""Finding a job's row from its subject, shared by the job and tag handlers."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, and_

from projections import schema
from streams.events import parse_job_subject


def job_key_clause(subject: str) -> ColumnElement[bool]:
    """The WHERE clause selecting the job row of a job subject."""
    cluster, job_id, start_time = parse_job_subject(subject)
    return and_(
        schema.job.c.cluster == cluster,
        schema.job.c.job_id == job_id,
        schema.job.c.start_time == start_time,
    )


#: The same condition as plain SQL with (cluster, job_id, start_time) parameters, for the hot handlers:
#: compiling a SQLAlchemy statement per event costs more than SQLite spends on the row.
JOB_KEY_SQL = "cluster = ? AND job_id = ? AND start_time = ?"


def job_row_id(conn: Connection, subject: str) -> int | None:
    """Database id of the job of a subject, if it is in the table."""
    value = conn.exec_driver_sql(f"SELECT id FROM job WHERE {JOB_KEY_SQL}", parse_job_subject(subject)).scalar()
    return None if value is None else int(value)

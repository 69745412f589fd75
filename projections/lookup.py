"""The job row a stop_job answer shows, looked up without SQLAlchemy.

Every stop answers with its job as the read model now has it. Through SQLAlchemy that lookup (a pooled
connection, an execution context, result metadata) cost the event loop several times what SQLite
spends on it, on the intake's hot path. Here it is one plain read-only sqlite3 connection per thread
and one prepared statement.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from projections.db import DEFAULT_TUNING, SqliteTuning

_JOB_WITH_TAGS_BY_KEY = (
    "SELECT job.*, (SELECT json_group_array(json_object('id', t.id, 'type', t.tag_type, 'name', t.tag_name,"
    " 'scope', t.tag_scope)) FROM (SELECT tag.* FROM jobtag JOIN tag ON tag.id = jobtag.tag_id"
    " WHERE jobtag.job_id = job.id ORDER BY tag.id) AS t) AS tags_json"
    " FROM job WHERE cluster = ? AND job_id = ? AND start_time = ?"
)


class JobLookup:
    """Job rows with their tags by cc-backend's key (cluster, jobId, startTime), read-only."""

    def __init__(self, path: str | Path, tuning: SqliteTuning = DEFAULT_TUNING) -> None:
        self.path = Path(path)
        self.tuning = tuning
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
            for pragma in self.tuning.reader_pragmas():
                conn.execute(pragma)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def job_with_tags(self, cluster: str, job_id: int, start_time: int) -> tuple[dict[str, Any],
                                                                               list[dict[str, Any]]] | None:
        """The job's row (column → value) and its tags ({id, type, name, scope}, by tag id), or None."""
        cursor = self._connection().execute(_JOB_WITH_TAGS_BY_KEY, (cluster, job_id, start_time))
        values = cursor.fetchone()
        if values is None:
            return None
        row = dict(zip([column[0] for column in cursor.description], values, strict=True))
        return row, orjson.loads(row.pop("tags_json") or "[]")

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()

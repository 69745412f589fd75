"""`GET /api/jobs/` written as it is read: a large page goes in batches, inside one read transaction.

A page of 100,000 jobs with their metadata (job scripts included) is gigabytes once every row, its
JSON object and the serialised answer are in memory together. A page larger than BATCH rows is read
BATCH rows at a time instead, each batch turned into JSON and handed to the server before the next is
read, so a request holds one batch. All batches are read in one SQLite transaction: they see one
snapshot of the job table (WAL: the writer goes on meanwhile), so a job started during the answer
neither shifts the rows nor shows up twice. The bytes are those of the answer serialised at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping

from api.jobdata import dumps
from api.jobjson import job_json
from api.readpool import ChunkedAnswer, checkpoint, json_array
from api.responses import JSON
from projections import queries

#: Rows read per batch of a large page: about 4 ms of row building between two checkpoints (see
#: api.readpool; reading 100,000 rows in batches of 200 costs 7% more than in one query, measured).
BATCH = 200


def job_page(reader: Engine, flt: queries.JobFilter, page: int, per_page: int, with_meta: bool) -> JSON | ChunkedAnswer:
    """The answer of `GET /api/jobs/`: `{"jobs": [...], "items": n, "page": page}`."""
    if per_page <= BATCH:
        with reader.connect() as conn:
            rows = queries.list_jobs(conn, flt, page, per_page)
            jobs = _jobs(conn, rows, with_meta)
        return JSON({"jobs": jobs, "items": len(jobs), "page": page})
    return ChunkedAnswer(_batched(reader, flt, page, per_page, with_meta))


def _jobs(conn: Connection, rows: list[RowMapping], with_meta: bool) -> list[dict[str, Any]]:
    ids = queries.job_ids_of(rows)
    tags, statistics = queries.tags_of(conn, ids), queries.statistics_of(conn, ids)
    return [job_json(r, tags.get(int(r["id"])), with_metadata=with_meta, statistics=statistics.get(int(r["id"])))
            for r in rows]


def _batched(reader: Engine, flt: queries.JobFilter, page: int, per_page: int, with_meta: bool) -> Iterator[bytes]:
    count = 0

    def jobs() -> Iterator[dict[str, Any]]:
        nonlocal count
        with reader.connect() as conn:
            conn.exec_driver_sql("BEGIN")  # one snapshot for every batch; ended when the connection goes back
            for rows in _rows(conn, flt, (page - 1) * per_page, per_page):
                checkpoint()
                batch = _jobs(conn, rows, with_meta)
                count += len(batch)
                yield from batch

    held = b""  # the last piece waits for the count, which ends the answer
    for piece in json_array(b'{"jobs":[', jobs(), b"", dumps):
        if held:
            yield held
        held = piece
    yield held + b'],"items":%d,"page":%d}' % (count, page)


def _rows(conn: Connection, flt: queries.JobFilter, offset: int, limit: int) -> Iterator[list[RowMapping]]:
    """Rows offset .. offset+limit of the listing, as batches of BATCH-aligned pages of `list_jobs` (the
    first and last cut to the range): every batch is the same statement, so the same plan and order."""
    number = offset // BATCH  # 0-based batch holding the first row
    skip = offset - number * BATCH
    while limit > 0:
        rows = queries.list_jobs(conn, flt, number + 1, BATCH)
        kept = rows[skip : skip + limit]
        if kept:
            yield kept
        limit -= len(kept)
        if len(rows) < BATCH:
            return
        number, skip = number + 1, 0

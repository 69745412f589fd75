"""`main.stop-jobs-exceeding-walltime`: stop jobs still running that long past their walltime.

cc-backend runs `StopJobsExceedingWalltimeBy` daily at 03:00 (local time): an UPDATE that sets
`job_state = failed`, `monitoring_status = 2` (archiving failed) and `duration = 0` on every running
job with `walltime > 0` and `now - start_time > walltime + grace`, with no stop time and no archive
entry. ccstream has one way into the job table, the log, so the task sends each such job the stop a
scheduler would have sent, through the intake path of `POST /api/jobs/stop_job/`: state `failed`,
stop time `start + walltime + grace` (the moment the job was known to be over its limit). The stop
is then an ordinary one: it resolves nothing twice (its event id derives from the job and the stop,
so a second run appends nothing), the archiver archives the job with the metrics it has, reads that
follow the run see it, and a real stop arriving later is answered as cc-backend answers a stop for
an already stopped job (422 "job has already been stopped").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from projections import queries
from streams.ingest.intake import JobIntake
from streams.ingest.outcomes import JobConflict, Rejected

log = logging.getLogger(__name__)

#: The state a job stopped by this task gets (cc-backend's `schema.JobStateFailed`).
STOP_STATE = "failed"
#: Source of the stop events, so that `ccstream events` tells them from a scheduler's stops.
SOURCE = "task:stop-jobs-exceeding-walltime"
#: Hour (local time) of the daily run, as cc-backend's task manager.
HOUR = 3


@dataclass(frozen=True)
class OverdueJob:
    """A running job past walltime + grace, and the stop request that ends it."""

    cluster: str
    job_id: int
    start_time: int
    walltime: int

    def stop_request(self, grace: int) -> dict[str, object]:
        """The stop_job body for this job: cc-backend's state, stopped when its grace ran out."""
        return {"jobId": self.job_id, "cluster": self.cluster, "startTime": self.start_time,
                "jobState": STOP_STATE, "stopTime": self.start_time + self.walltime + grace}


def overdue_jobs(reader: Engine, now: int, grace: int) -> list[OverdueJob]:
    """Running jobs of the read model past walltime + grace at `now`."""
    with reader.connect() as conn:
        rows = queries.jobs_exceeding_walltime(conn, now, grace)
    return [OverdueJob(r["cluster"], int(r["job_id"]), int(r["start_time"]), int(r["walltime"])) for r in rows]


async def stop_jobs_exceeding_walltime(intake: JobIntake, reader: Engine, grace: int, now: int) -> list[int]:
    """Stop every job past walltime + `grace`; the log positions of the stops appended (repeats excluded).

    The read model may lag the log: a job it still shows running may have been stopped already. The
    intake decides against the log, so such a job gets a conflict here and is left as it is."""
    positions = []
    for job in overdue_jobs(reader, now, grace):
        try:
            accepted = await intake.stop_job(job.stop_request(grace), source=SOURCE)
        except JobConflict:
            continue  # stopped meanwhile: its own stop stands
        except Rejected as exc:
            log.warning("could not stop job %d on %s past its walltime: %s", job.job_id, job.cluster, exc)
            continue
        if not accepted.repeated:
            positions.append(accepted.position)
    if positions:
        log.warning("stopped %d job(s) running more than %ds past their walltime (state %s)",
                    len(positions), grace, STOP_STATE)
    return positions

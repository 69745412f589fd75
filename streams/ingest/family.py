"""What the log says about one scheduler job id: its runs, their stops, and stops still parked.

Every decision of the job intake (duplicate start, stop of which run, parked stop) is a pure function
of these events, keyed by cluster and job id, so it works the same on a partitioned log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.events import Event, parse_job_subject
from streams.log.protocol import StoredEvent

_DECODED = frozenset({"job.stopped", "job.stop_parked", "job.parked_stop_expired"})


@dataclass
class JobRun:
    """One run (cluster, jobId, startTime) of a scheduler job id."""

    subject: str
    started: Event
    stopped: Event | None = None
    deleted: bool = False

    @property
    def start_time(self) -> int:
        return parse_job_subject(self.subject)[2] or 0

    @property
    def position(self) -> int:
        return self.started.position or 0


@dataclass
class JobFamily:
    """All runs and unresolved parked stops sharing one (cluster, jobId)."""

    runs: dict[str, JobRun] = field(default_factory=dict)
    parked: dict[str, Event] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    #: (type, subject) of every event id, to answer a redelivered request from the family alone.
    kinds: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: How often each subject's job was deleted: a run started again after that is a new generation.
    deletions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fold(cls, events: Iterable[Event]) -> JobFamily:
        family = cls()
        for event in events:
            family.apply(event)
        return family

    @classmethod
    def fold_stored(cls, rows: Iterable[StoredEvent]) -> JobFamily:
        """The same from stored rows, decoding only the payloads a decision reads (stops).

        A start's payload (resources, job script) is the largest part of a family and never needed:
        its start time is in the subject. This is on the path of every start and stop request.
        """
        family = cls()
        for row in rows:
            if row.type in _DECODED:
                family.apply(row.event())
            else:
                family.apply(Event(id=row.id, type=row.type, subject=row.subject, data={}, version=row.version,
                                   time=row.time, source=row.source, position=row.position))
        return family

    def apply(self, event: Event) -> None:
        self.positions[event.id] = event.position or 0
        self.kinds[event.id] = (event.type, event.subject)
        run = self.runs.get(event.subject)
        if event.type == "job.started":
            self.runs[event.subject] = JobRun(event.subject, event)
        elif event.type == "job.stopped" and run is not None:
            run.stopped = event
            parked_id = event.data.get("parkedStopId")
            if parked_id:
                self.parked.pop(parked_id, None)
        elif event.type == "job.deleted" and run is not None:
            run.deleted = True
            self.deletions[event.subject] = self.deletions.get(event.subject, 0) + 1
        elif event.type == "job.stop_parked":
            self.parked[event.id] = event
        elif event.type == "job.parked_stop_expired":
            self.parked.pop(str(event.data.get("parkedStopId")), None)

    def generation(self, subject: str) -> int:
        """0 for a subject never deleted; n after n deletions of its job."""
        return self.deletions.get(subject, 0)

    def live_runs(self) -> list[JobRun]:
        """Runs still in the job table, oldest start first in log order."""
        return [r for r in self.runs.values() if not r.deleted]

    def conflicting_run(self, start_time: int, window: int) -> JobRun | None:
        """A run that a start within `window` seconds of it would duplicate (cc-backend's rule, refined).

        cc-backend refuses any start of a job id within a day of an earlier one. That also refuses a
        requeued job (Slurm keeps its id) once its first run has ended. Here a run that has stopped
        conflicts only with a start at the very same time; a running one within the window does.
        """
        for run in self.live_runs():
            if run.start_time == start_time:
                return run
            if run.stopped is None and abs(start_time - run.start_time) < window:
                return run
        return None

    def run_to_stop(self, start_time: int | None) -> JobRun | None:
        """The run a stop means: the exact start time if given, else the newest run (cc-backend)."""
        runs = self.live_runs()
        if start_time is not None:
            runs = [r for r in runs if r.start_time == start_time]
        if not runs:
            return None
        return max(runs, key=lambda r: r.position)

    def parked_stop_for(self, start_time: int) -> Event | None:
        """The oldest parked stop that a run starting at `start_time` resolves."""
        for event in self.parked.values():
            wanted = event.data.get("startTime")
            if wanted is not None and wanted != start_time:
                continue
            if wanted is None and int(event.data["stopTime"]) < start_time:
                continue
            return event
        return None


def subject_start_time(subject: str) -> int | None:
    """The start time encoded in a job subject."""
    return parse_job_subject(subject)[2]

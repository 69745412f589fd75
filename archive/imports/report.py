"""What an import did: counts, the first error and warning messages, and appending with counting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streams.events import Event
from streams.log import EventLog

#: Keep this many messages of each kind; the counts stay exact beyond it.
MAX_MESSAGES = 1000


@dataclass
class ImportReport:
    """Counts of one import run. `unchanged` jobs were all in the log already (an import run twice)."""

    seen: int = 0
    imported: int = 0
    unchanged: int = 0
    failed: int = 0
    with_problems: int = 0
    events_appended: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: Things found and deliberately not imported, by kind (e.g. `configuration rows`).
    skipped: dict[str, int] = field(default_factory=dict)
    #: Other things imported besides jobs, by kind (e.g. `users`).
    extra: dict[str, int] = field(default_factory=dict)
    #: `main.validate`: a job whose meta.json deviates from the schema is not imported (cc-backend's
    #: behaviour with validate on), instead of being imported and reported.
    validate: bool = False

    def error(self, message: str) -> None:
        """Count a job that could not be imported."""
        self.failed += 1
        if len(self.errors) < MAX_MESSAGES:
            self.errors.append(message)

    def problem(self, where: str, problems: Sequence[str]) -> None:
        """Count a job imported despite deviations from the schema."""
        if not problems:
            return
        self.with_problems += 1
        if len(self.problems) < MAX_MESSAGES:
            self.problems.append(f"{where}: {'; '.join(problems)}")

    def refuses(self, where: str, schema_problems: Sequence[str]) -> bool:
        """With `validate`, count a job whose meta.json deviates from the schema as failed; True if refused."""
        if not self.validate or not schema_problems:
            return False
        self.error(f"{where}: meta.json does not match the job archive schema (main.validate): "
                   f"{'; '.join(schema_problems[:5])}")
        return True

    def skip(self, kind: str, count: int) -> None:
        if count:
            self.skipped[kind] = self.skipped.get(kind, 0) + count

    @property
    def rate(self) -> float:
        """Jobs per second."""
        return self.seen / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the operator."""
        line = (
            f"{self.seen} jobs: {self.imported} imported, {self.unchanged} already there, {self.failed} failed, "
            f"{self.with_problems} with schema problems; {self.events_appended} events appended "
            f"in {self.seconds:.1f}s ({self.rate:,.0f} jobs/s)"
        )
        if self.extra:
            line += "; also " + ", ".join(f"{n} {kind}" for kind, n in self.extra.items())
        if self.skipped:
            line += "; not imported: " + ", ".join(f"{n} {kind}" for kind, n in self.skipped.items())
        return line


def append_jobs(log: EventLog, jobs: Sequence[Sequence[Event]], report: ImportReport) -> None:
    """Append many jobs' events in one atomic append and count which jobs were new."""
    results = log.append([e for events in jobs for e in events])
    at = 0
    for events in jobs:
        new = sum(1 for r in results[at : at + len(events)] if not r.duplicate)
        at += len(events)
        report.events_appended += new
        if new:
            report.imported += 1
        else:
            report.unchanged += 1

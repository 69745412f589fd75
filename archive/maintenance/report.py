"""What one maintenance run (compression or retention) did: counts, failures, files and timing."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from archive.paths import JobKey

#: Failure messages kept per report; the count stays exact, the list stays small enough to log.
MAX_FAILURES_KEPT = 100
_LABELS = {
    "compressed": ("compressed", "compress"),
    "copied": ("copied", "copy"),
    "deleted": ("deleted", "delete"),
    "db_deleted": ("removed from the job database", "remove from the job database"),
}


@dataclass
class MaintenanceReport:
    """Counts of one run. In a dry run the counts say what a real run would have done.

    Operators read these from the log after a nightly run and from the CLI; a run never stops at a
    broken job, so the failures are listed here instead of raised.
    """

    task: str
    dry_run: bool = False
    examined: int = 0
    compressed: int = 0
    copied: int = 0
    deleted: int = 0
    #: `job.deleted` events appended to the log (include-db).
    db_deleted: int = 0
    skipped: int = 0
    failed: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    #: Files written to the target (Parquet files, relative to the target).
    files: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    seconds: float = 0.0
    _began: float = field(default_factory=time.perf_counter, repr=False)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count jobs left alone on purpose (tagged, already done, already compressed)."""
        self.skipped += count
        self.skip_reasons[reason] += count

    def fail(self, key: JobKey | str, error: object) -> None:
        """Count one job that could not be handled; the run goes on with the next."""
        self.failed += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(f"{key}: {error}")

    def finish(self) -> MaintenanceReport:
        """Stop the clock; returns self for chaining."""
        self.seconds = round(time.perf_counter() - self._began, 3)
        return self

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        parts = [f"{self.task}: examined {self.examined}"]
        for name, (done, would) in _LABELS.items():
            value = getattr(self, name)
            if value:
                parts.append(f"would {would} {value}" if self.dry_run else f"{done} {value}")
        if self.skipped:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.skip_reasons.items()))
            parts.append(f"skipped {self.skipped} ({reasons})")
        parts.append(f"failed {self.failed}")
        if self.files:
            parts.append(f"{len(self.files)} file(s) written")
        return ", ".join(parts) + f" in {self.seconds:.1f}s" + (" (dry run)" if self.dry_run else "")

    def log_to(self, logger: logging.Logger) -> None:
        """The summary at INFO (WARNING when jobs failed) and each kept failure at WARNING."""
        logger.log(logging.INFO if self.ok else logging.WARNING, "%s", self.summary())
        for message in self.failures:
            logger.warning("%s failed: %s", self.task, message)
        if self.failed > len(self.failures):
            logger.warning("%s: %d more failures not listed", self.task, self.failed - len(self.failures))

    def to_json(self) -> dict[str, object]:
        """The counts as a JSON-ready mapping (CLI --json)."""
        return {
            "task": self.task, "dryRun": self.dry_run, "examined": self.examined, "compressed": self.compressed,
            "copied": self.copied, "deleted": self.deleted, "dbDeleted": self.db_deleted, "skipped": self.skipped,
            "skipReasons": dict(self.skip_reasons), "failed": self.failed, "failures": list(self.failures),
            "files": list(self.files), "startedAt": self.started_at, "seconds": self.seconds,
        }

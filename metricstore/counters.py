"""Ingest reports and the store's counters (what operators watch to see data going missing)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_REPORTED_ERRORS = 20


@dataclass(slots=True)
class IngestReport:
    """Outcome of one batch. `errors` are bad lines (line number, reason, message), all still counted."""

    accepted: int = 0
    dropped_old: int = 0
    dropped_unknown_metric: int = 0
    unknown_metrics: set[str] = field(default_factory=set)
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    #: The write-ahead log mark of the batch's last record (0: nothing logged); see WalWriter.wait_durable.
    wal_mark: int = 0

    @property
    def rejected(self) -> int:
        return len(self.errors)

    @property
    def ok(self) -> bool:
        """True when no line was malformed (old samples and unknown metrics are not the sender's error)."""
        return not self.errors

    def message(self) -> str:
        """One human-readable line naming the first bad lines."""
        shown = "; ".join(f"line {line}: {msg}" for line, _reason, msg in self.errors[:MAX_REPORTED_ERRORS])
        more = len(self.errors) - MAX_REPORTED_ERRORS
        if more > 0:
            shown += f"; and {more} more"
        return (f"{len(self.errors)} line(s) rejected, {self.accepted} sample(s) stored: {shown}"
                if self.errors else f"{self.accepted} sample(s) stored")

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_by_reason": dict(Counter(reason for _line, reason, _msg in self.errors)),
            "dropped_old": self.dropped_old,
            "dropped_unknown_metric": self.dropped_unknown_metric,
            "unknown_metrics": sorted(self.unknown_metrics),
            "errors": [{"line": line, "reason": reason, "error": msg}
                       for line, reason, msg in self.errors[:MAX_REPORTED_ERRORS]],
        }


class Counters:
    """Monotonic counters, safe to bump from the ingest path and read from anywhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples_accepted = 0
        self.lines_rejected: Counter[str] = Counter()
        self.dropped_old = 0
        self.dropped_unknown_metric = 0
        self.unknown_metrics: set[str] = set()
        self.batches = 0
        self.batches_partial = 0  # some lines refused, the rest stored (answered 200, naming the refused)
        self.batches_refused = 0  # lines refused and nothing stored (answered 400)
        self.freed: Counter[str] = Counter()  # chunks freed by reason: retention, memory_cap, free_api
        self.values: dict[str, Any] = {"last_checkpoint": None, "last_checkpoint_seconds": None,
                                       "last_restore_seconds": None, "wal_torn_bytes": 0,
                                       "wal_replayed_records": 0, "archived_files": 0, "archived_samples": 0}

    def add_report(self, report: IngestReport) -> None:
        with self._lock:
            self.batches += 1
            if report.errors:
                if report.accepted:
                    self.batches_partial += 1
                else:
                    self.batches_refused += 1
            self.samples_accepted += report.accepted
            self.dropped_old += report.dropped_old
            self.dropped_unknown_metric += report.dropped_unknown_metric
            if report.unknown_metrics and len(self.unknown_metrics) < 1000:
                self.unknown_metrics |= report.unknown_metrics
            for _line, reason, _msg in report.errors:
                self.lines_rejected[reason] += 1

    def add_freed(self, reason: str, count: int) -> None:
        with self._lock:
            self.freed[reason] += count

    def set(self, name: str, value: Any) -> None:
        with self._lock:
            self.values[name] = value

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "samples_accepted": self.samples_accepted,
                "lines_rejected": sum(self.lines_rejected.values()),
                "lines_rejected_by_reason": dict(self.lines_rejected),
                "samples_dropped_old": self.dropped_old,
                "samples_dropped_unknown_metric": self.dropped_unknown_metric,
                "unknown_metrics": sorted(self.unknown_metrics),
                "batches": self.batches,
                "batches_partial": self.batches_partial,
                "batches_refused": self.batches_refused,
                "chunks_freed_by_reason": dict(self.freed),
                **self.values,
            }

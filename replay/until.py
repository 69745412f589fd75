"""`--until`: a log position or a moment, naming the prefix of the log a time-travel rebuild replays."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Until:
    """Replay up to and including `position`, or every event recorded at or before `time` (unix seconds)."""

    position: int | None = None
    time: float | None = None

    def describe(self) -> str:
        if self.position is not None:
            return f"position {self.position}"
        assert self.time is not None
        return f"{datetime.fromtimestamp(self.time, UTC).isoformat()} ({self.time:g})"


def parse_until(text: str) -> Until:
    """A plain integer is a log position; `@<unix seconds>`, a decimal fraction or ISO 8601 is a time.

    Times compare with the log's `recorded_at`, when an event was stored, not when it happened at the
    source: that is what makes the result "the read model as it stood then". ISO 8601 without an offset
    is taken as UTC.
    """
    value = text.strip()
    if value.isdigit():
        return Until(position=int(value))
    number = value[1:] if value.startswith("@") else value
    try:
        seconds = float(number)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"--until {text!r}: not a time (unix seconds are finite and not negative)")
        return Until(time=seconds)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(
            f"--until {text!r}: expected a position (integer), @<unix seconds>, or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Until(time=moment.timestamp())

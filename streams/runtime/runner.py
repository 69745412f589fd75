"""Runs one checkpointed agent over the log: read from its checkpoint, apply in batches, repeat.

The agent applies a batch and stores its new checkpoint atomically (one transaction), so a crash at
any point resumes exactly where the last commit left off. A failing batch is retried with back-off,
shrinking to one event to isolate the culprit. An event that still fails after `max_attempts` tries is
quarantined: the agent records it with the error in the same transaction that moves its checkpoint
past it, and goes on, so one bad event can never stop a read model, and the read model says what it
skipped (`ccstream agents status`). Failures of the environment (a locked database, a full disk) are
not the event's fault: they are retried for as long as they last and never quarantine anything. An
event this build cannot read (unknown type, newer version) is quarantined at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from streams.events import Event
from streams.events.codec import unreadable
from streams.log import EventLog
from streams.runtime.quarantine import Action, AgentRequest, QuarantinedEvent

log = logging.getLogger(__name__)

#: Most events `AgentRunner.apply_committed` applies in the log writer's thread; more are left to the agent's own.
INLINE_LIMIT = 256
#: Tries of one event before it is quarantined (failures of the environment excepted).
MAX_ATTEMPTS = 5
#: Seconds between two looks at operators' requests while the agent is idle.
REQUEST_POLL = 1.0
#: Recently quarantined positions remembered, so read-your-writes waits can say their event was skipped.
_SKIPPED_MEMORY = 1024
#: Quarantines in a row (no event applied in between) after which the runner stops quarantining and stays
#: blocked: so many failing events in a row says the read model, not the events, is broken.
QUARANTINE_STREAK_LIMIT = 20


class CheckpointMoved(RuntimeError):
    """The agent's stored checkpoint is not where the runner thought (a read model was swapped in).

    Raised by `apply`; the runner re-reads the checkpoint and carries on from there, no failure counted.
    """


class CheckpointedAgent(Protocol):
    """Something that consumes events and remembers, atomically with its effects, how far it got."""

    name: str

    def checkpoint(self) -> int:
        """Position of the last event whose effects are committed."""
        ...

    def apply(self, events: Sequence[Event]) -> None:
        """Apply the events and store events[-1].position as checkpoint, all or nothing."""
        ...

    def skip(self, event: Event, error: str, attempts: int) -> None:
        """Quarantine `event` with its error and move the checkpoint to it (never back), all or nothing."""
        ...

    def reapply(self, event: Event, followers: Sequence[Event]) -> None:
        """Apply a quarantined event now, out of order, then `followers` (its subject's later events, already
        passed), and lift its quarantine, all or nothing."""
        ...

    def quarantined(self) -> list[QuarantinedEvent]:
        """The events this agent has skipped."""
        ...

    def requests(self) -> list[AgentRequest]:
        """Operators' requests not acted on yet."""
        ...

    def file_request(self, position: int, action: Action) -> None:
        """File an operator's request (the CLI and the admin API do)."""
        ...

    def settle_request(self, position: int) -> None:
        """Mark a request as acted on."""
        ...


@dataclass(frozen=True)
class AgentStatus:
    """What an operator needs to know about one agent."""

    name: str
    checkpoint: int
    head: int
    lag: int
    running: bool
    failures: int
    last_error: str | None
    blocked_at: int | None
    #: Events skipped after their retries (or unreadable); each is listed by `AgentRunner.quarantined`.
    quarantined: int
    max_attempts: int


#: SQLite result codes that say the environment failed, not the event: a busy or locked database, a full or
#: failing disk, a file that cannot be opened or written, a damaged file. Retried for as long as they last.
_ENVIRONMENT_CODES = frozenset({
    "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_NOMEM",
    "SQLITE_PROTOCOL", "SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_NOLFS", "SQLITE_PERM",
})


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is the environment's (locked, full, unreadable or damaged database, I/O), not the event's.

    Judged by SQLite's result code, not the exception class: an OperationalError may also be the event's
    fault (too many SQL variables). SQLAlchemy wraps the driver's exception (`orig`); both are looked at,
    and the cause.
    """
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        if isinstance(candidate, OSError | TimeoutError):
            return True
        code = getattr(candidate, "sqlite_errorname", None)
        if isinstance(code, str) and (code in _ENVIRONMENT_CODES or code.startswith("SQLITE_IOERR")):
            return True
    return False


class AgentRunner:
    """A thread that keeps one agent caught up with the log and lets callers wait for it."""

    def __init__(
        self,
        log_: EventLog,
        agent: CheckpointedAgent,
        *,
        batch_size: int = 2000,
        max_backoff: float = 30.0,
        on_idle: Callable[[], None] | None = None,
        types: Collection[str] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        serves_requests: bool = True,
    ) -> None:
        self.log = log_
        self.agent = agent
        #: Called by the thread whenever it has caught up (e.g. the archiver's retries that fall due).
        self.on_idle = on_idle
        #: Only these event types are read (an index lookup), for agents that ignore everything else.
        self.types = frozenset(types) if types else None
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.max_attempts = max(1, max_attempts)
        #: Whether this runner acts on operators' requests (the server's do; a CLI's catch-up does not).
        self.serves_requests = serves_requests
        self._position = agent.checkpoint()
        self._scanned = self._position
        self._progress = threading.Condition()
        #: Held while a batch is applied, by the agent's thread or by `apply_committed`. Re-entrant: the agent's
        #: thread acts on operators' requests while it backs off inside a step.
        self._stepping = threading.RLock()
        self._stop = threading.Event()
        #: Cuts a back-off short: set on stop and when an operator files a request.
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._last_error: str | None = None
        self._blocked_at: int | None = None
        self._blocked_event: Event | None = None
        self._transient = False
        self._quarantine_streak = 0
        self._acting = False
        self._skipped: deque[int] = deque(maxlen=_SKIPPED_MEMORY)
        self._requests_seen = 0.0
        self._narrow_until = 0
        self._async_waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def position(self) -> int:
        """How far the agent's committed effects reach."""
        return self._position

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the runner thread."""
        self._thread = threading.Thread(target=self._run, name=f"agent-{self.agent.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in hand; `timeout` bounds the wait for it (the thread is a daemon)."""
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._wake_all()

    def run_until_caught_up(self) -> int:
        """Process synchronously up to the current head (tools and tests, without a thread)."""
        progressed = True
        while progressed:
            progressed = self.step()
        return self._position

    # -- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                progressed = self.step()
            except Exception as exc:  # reading the log or the checkpoint failed: the thread must live on
                log.exception("agent %s: step failed", self.agent.name)
                self._failures += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._back_off()
                continue
            if not progressed:
                if time.monotonic() - self._requests_seen >= REQUEST_POLL:
                    self.act_on_requests()
                    self._wakeup.clear()  # a nudge answered here must not cut the next back-off short
                if self.on_idle is not None:
                    self._run_idle_hook()
                # Short waits keep stop() prompt; an idle runner wakes ten times a second.
                self.log.wait(max(self._position, self._scanned), 0.1)

    def _run_idle_hook(self) -> None:
        assert self.on_idle is not None
        try:
            self.on_idle()
        except Exception as exc:  # reported like a failing batch; the loop goes on
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.exception("idle work of agent %s failed", self.agent.name)

    def step(self) -> bool:
        """Apply one batch; False when there was nothing to do."""
        with self._stepping:
            return self._step(back_off=True)

    def apply_committed(self, head: int) -> None:
        """Apply what the log has just committed, up to `head`, in the caller's thread (the log's writer).

        Read-your-writes answers wait for the agent. Applied by the writer right after its commit, the
        new events skip a hand-over to the agent's thread, which first has to win the interpreter lock
        from the event loop: measured, about a fifth more acknowledged start/stops per second at 16 clients.
        Only the cheap, healthy case is taken here: not stopped, not failing (retries and their back-off
        belong to the agent's thread), at most INLINE_LIMIT events to apply, and the agent not already
        busy with a batch in its own thread, which then takes these too.
        """
        behind = head - self._position
        failing = self._failures or self._position < self._narrow_until
        if self._stop.is_set() or failing or not 0 < behind <= INLINE_LIMIT:
            return
        if not self._stepping.acquire(blocking=False):
            return
        try:
            self._step(back_off=False)
        finally:
            self._stepping.release()

    def _step(self, *, back_off: bool) -> bool:
        size = 1 if self._position < self._narrow_until else self.batch_size
        if self.types is None:
            events = self.log.read(self._position, size)
        else:
            head = self.log.head()
            events = self.log.read_types(self.types, self._position, size)
            if not events:
                self._scanned = head
        if not events:
            return False
        batch = self._readable_prefix(events)
        if not batch:  # the first event is one this build cannot read: no retry can change that
            if not back_off:
                return False
            self._quarantine(events[0], unreadable(events[0]) or "unreadable event", 1)
            return not self._stop.is_set()
        try:
            self.agent.apply(batch)
        except CheckpointMoved:
            # `replay rebuild` swapped the read model, or an operator's skip moved it: its stored
            # checkpoint is the truth now.
            self._position = self.agent.checkpoint()
            self._clear_failure()
            return True
        except Exception as exc:
            self._record_failure(batch, exc)
            if len(batch) == 1 and back_off and self._failures >= self.max_attempts and self._may_quarantine(exc):
                self._quarantine(batch[0], f"{type(exc).__name__}: {exc}", self._failures)
                return not self._stop.is_set()
            if back_off:
                self._back_off()
            return not self._stop.is_set()
        if self._blocked_at is not None:
            log.warning("agent %s recovered at position %s", self.agent.name, self._blocked_at)
        self._clear_failure()
        self._quarantine_streak = 0
        self._advance(batch[-1].position or self._position)
        return True

    def _may_quarantine(self, exc: Exception) -> bool:
        """Not for the environment's failures, and not once many events in a row failed (the read model is
        broken, not the events: stay blocked, for an operator to look at, rather than skip them all)."""
        if is_transient(exc):
            return False
        if self._quarantine_streak >= QUARANTINE_STREAK_LIMIT:
            if self._failures == self.max_attempts:
                log.critical("agent %s: %d events in a row could not be applied; not quarantining more, blocked "
                             "at position %s until an operator acts", self.agent.name, self._quarantine_streak,
                             self._blocked_at)
            return False
        return True

    @staticmethod
    def _readable_prefix(events: list[Event]) -> list[Event]:
        for index, event in enumerate(events):
            if unreadable(event) is not None:
                return events[:index]
        return events

    def _back_off(self) -> None:
        """Wait before the next try; an operator's skip of the blocked event is acted on meanwhile."""
        self._wakeup.wait(min(self.max_backoff, 0.05 * (2 ** min(self._failures, 10))))
        self._wakeup.clear()
        if not self._stop.is_set():
            self.act_on_requests()

    def nudge(self) -> None:
        """Look at operators' requests now, not after the back-off or poll interval in progress."""
        self._requests_seen = 0.0
        self._wakeup.set()

    def _clear_failure(self) -> None:
        self._blocked_at = None
        self._blocked_event = None
        self._failures = 0

    def _record_failure(self, batch: list[Event], exc: Exception) -> None:
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._transient = is_transient(exc)
        if len(batch) == 1:
            self._blocked_at = batch[0].position
            self._blocked_event = batch[0]
            log.error(
                "agent %s cannot apply event %s (%s at position %s), attempt %d of %d: %s",
                self.agent.name, batch[0].id, batch[0].type, batch[0].position, self._failures,
                self.max_attempts, exc,
            )
            if not self._transient or self._failures >= 2:
                self._wake_blocked(batch[0].position or 0)
        else:
            # Narrow down: go one event at a time through this batch until the culprit is found.
            self._narrow_until = batch[-1].position or 0
            self._failures = 0

    def _quarantine(self, event: Event, error: str, attempts: int) -> bool:
        """Skip `event` for good, recorded with its error; False when even that fails (tried again later)."""
        try:
            self.agent.skip(event, error, attempts)
        except Exception as exc:
            log.error("agent %s: quarantining position %s failed: %s", self.agent.name, event.position, exc)
            self._last_error = f"{type(exc).__name__}: {exc}"
            return False
        log.error(
            "agent %s quarantined event %s (%s at position %s) after %d attempt(s): %s",
            self.agent.name, event.id, event.type, event.position, attempts, error,
        )
        self._last_error = f"quarantined position {event.position}: {error}"
        self._clear_failure()
        self._quarantine_streak += 1
        self._skipped.append(event.position or 0)
        self._advance(max(self._position, event.position or 0))
        return True

    # -- operators' requests ----------------------------------------------------------------------

    def act_on_requests(self) -> None:
        """Act on filed skips and retries: a skip once the agent is blocked at its position, a retry at once."""
        self._requests_seen = time.monotonic()
        if self._acting or not self.serves_requests:  # re-entered from a back-off inside a request; or a CLI
            return
        self._acting = True
        try:
            self._act_on_all()
        finally:
            self._acting = False

    def _act_on_all(self) -> None:
        try:
            pending = self.agent.requests()
        except Exception as exc:  # the store is unreachable now; the requests wait
            log.warning("agent %s: reading operators' requests failed: %s", self.agent.name, exc)
            return
        for request in pending:
            try:
                self._act_on(request)
            except Exception:
                log.exception("agent %s: acting on %s of position %s failed", self.agent.name, request.action,
                              request.position)

    def _act_on(self, request: AgentRequest) -> None:
        if request.action == "skip":
            if request.position <= self._position:
                log.info("agent %s: skip of position %s is moot, the agent is past it", self.agent.name,
                         request.position)
                self.agent.settle_request(request.position)
            elif self._blocked_at == request.position and self._blocked_event is not None:
                with self._stepping:
                    done = self._quarantine(self._blocked_event,
                                            f"skipped by an operator; last error: {self._last_error}", self._failures)
                if done:  # else the request stays filed and is tried again
                    self.agent.settle_request(request.position)
            return
        entry = next((q for q in self.agent.quarantined() if q.position == request.position), None)
        event = self._event_at(request.position)
        if entry is None or event is None:
            log.info("agent %s: position %s is not quarantined, nothing to retry", self.agent.name, request.position)
        else:
            with self._stepping:
                self._reapply(event, entry)
        self.agent.settle_request(request.position)

    def _reapply(self, event: Event, entry: QuarantinedEvent) -> None:
        """Apply a quarantined event, then the events of its subject the agent passed since: they were applied
        without it (a stop of a job whose start was quarantined changed nothing) and must be again."""
        reason = unreadable(event)
        position = event.position or 0
        followers = [e for e in self.log.read_subject(event.subject)
                     if position < (e.position or 0) <= self._position and unreadable(e) is None]
        try:
            if reason is not None:
                raise ValueError(reason)
            self.agent.reapply(event, followers)
        except Exception as exc:
            log.error("agent %s: retry of quarantined position %s failed: %s", self.agent.name, position, exc)
            self.agent.skip(event, f"{type(exc).__name__}: {exc}", entry.attempts + 1)
            return
        with contextlib.suppress(ValueError):
            self._skipped.remove(position)
        log.warning("agent %s: quarantined position %s applied on retry (with %d later event(s) of %s)",
                    self.agent.name, position, len(followers), event.subject)

    def _event_at(self, position: int) -> Event | None:
        events = self.log.read(position - 1, 1) if position > 0 else []
        return events[0] if events and events[0].position == position else None

    def quarantined(self) -> list[QuarantinedEvent]:
        """The events the agent has skipped, as its store records them."""
        return self.agent.quarantined()

    def _advance(self, position: int) -> None:
        with self._progress:
            self._position = position
            self._progress.notify_all()
            ready = [w for w in self._async_waiters if w[0] <= position]
            self._async_waiters = [w for w in self._async_waiters if w[0] > position]
        _resolve_threadsafe(ready)

    def _wake_blocked(self, position: int) -> None:
        """Waiters for `position` or later give up at once: the agent cannot get there for now."""
        with self._progress:
            blocked = [w for w in self._async_waiters if w[0] >= position]
            self._async_waiters = [w for w in self._async_waiters if w[0] < position]
            self._progress.notify_all()
        _resolve_threadsafe(blocked)

    def _reaches(self, position: int) -> bool:
        """Whether a wait for `position` is over: applied, or held up behind a failing event: at once when the
        event is at fault, after a second failure when the environment is (one locked moment is waited out)."""
        blocked = self._blocked_at
        return self._position >= position or (
            blocked is not None and blocked <= position and (self._failures >= 2 or not self._transient)
        )

    def holdup(self) -> tuple[int | None, int, str | None]:
        """Where the agent is blocked (if it is), how often it tried, and the last error: no I/O."""
        return self._blocked_at, self._failures, self._last_error

    def was_quarantined(self, position: int) -> bool:
        """Whether the event at `position` was quarantined by this runner lately."""
        return position in self._skipped

    def shows(self, position: int) -> bool:
        """Whether the event at `position` has been applied (reached and not quarantined)."""
        return self._position >= position and position not in self._skipped

    def _wake_all(self) -> None:
        with self._progress:
            waiters, self._async_waiters = self._async_waiters, []
            self._progress.notify_all()
        _resolve_threadsafe(waiters)

    # -- waiting (read-your-writes) ---------------------------------------------------------------

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until the agent has applied `position` (tools and tests: failures are waited through); False on
        timeout or when the event was quarantined."""
        with self._progress:
            self._progress.wait_for(lambda: self._position >= position, timeout)
        return self.shows(position)

    async def wait_for_async(self, position: int, timeout: float) -> bool:
        """Await until the agent has applied `position`; False on timeout, and at once while the agent is
        blocked at or before it (a failing event ahead: waiting would only stall the answer), or when the
        event was quarantined.

        A timer on the loop rather than `asyncio.wait_for`: every start/stop answer waits here, and
        wait_for's extra future, callbacks and cancellation handling cost the event loop more than this.
        """
        if self._reaches(position):
            return self.shows(position)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._progress:
            if self._reaches(position):
                return self.shows(position)
            self._async_waiters.append((position, loop, future))
        timer = loop.call_later(timeout, _expire, future)
        resolved = False
        try:
            await future
            resolved = True
        except TimeoutError:
            return False
        finally:
            timer.cancel()
            if not resolved:  # timed out or cancelled: nobody will resolve it
                with self._progress:
                    self._async_waiters = [w for w in self._async_waiters if w[2] is not future]
        return self.shows(position)

    def status(self) -> AgentStatus:
        """Checkpoint, head, lag and the last failure."""
        head = self.log.head()
        return AgentStatus(
            name=self.agent.name,
            checkpoint=self._position,
            head=head,
            lag=max(head - max(self._position, self._scanned), 0),
            running=self._thread is not None and self._thread.is_alive(),
            failures=self._failures,
            last_error=self._last_error,
            blocked_at=self._blocked_at,
            quarantined=self._quarantined_count(),
            max_attempts=self.max_attempts,
        )

    def _quarantined_count(self) -> int:
        try:
            return len(self.agent.quarantined())
        except Exception:  # the status must answer even when the agent's store does not
            return -1


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def _resolve_threadsafe(waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    """Wake the waiters with one call per event loop (each call writes to the loop's wake-up pipe)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, loop, future in waiters:
        by_loop.setdefault(loop, []).append(future)
    for loop, futures in by_loop.items():
        # The waiter's loop may have closed meanwhile (its request was cancelled); nothing to wake then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, futures)


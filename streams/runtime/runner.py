"""Runs one checkpointed agent over the log: read from its checkpoint, apply in batches, repeat.

The agent applies a batch and stores its new checkpoint atomically (one transaction), so a crash at
any point resumes exactly where the last commit left off. A failing batch is retried with back-off,
shrinking to one event to isolate the culprit; it is reported in the status and the log, never
skipped: a read model that silently missed an event would be wrong forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from streams.events import Event
from streams.events.upcasters import upcast
from streams.log import EventLog

log = logging.getLogger(__name__)

#: Most events `AgentRunner.apply_committed` applies in the log writer's thread; more are left to the agent's own.
INLINE_LIMIT = 256


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


def upcast_event(event: Event) -> Event:
    """Hand agents only current payload versions."""
    version, data = upcast(event.type, event.version, event.data)
    if version == event.version:
        return event
    return Event(
        id=event.id, type=event.type, subject=event.subject, data=data, version=version, time=event.time,
        source=event.source, causation_id=event.causation_id, position=event.position,
        recorded_at=event.recorded_at,
    )


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
    ) -> None:
        self.log = log_
        self.agent = agent
        #: Called by the thread whenever it has caught up (e.g. the archiver's retries that fall due).
        self.on_idle = on_idle
        #: Only these event types are read (an index lookup), for agents that ignore everything else.
        self.types = frozenset(types) if types else None
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self._position = agent.checkpoint()
        self._scanned = self._position
        self._progress = threading.Condition()
        #: Held while a batch is applied, by the agent's thread or by `apply_committed`.
        self._stepping = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._last_error: str | None = None
        self._blocked_at: int | None = None
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
        """Stop after the batch in hand."""
        self._stop.set()
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
            if not self.step():
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
        if self._stop.is_set() or self._failures or not 0 < behind <= INLINE_LIMIT:
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
        batch = [upcast_event(e) for e in events]
        try:
            self.agent.apply(batch)
        except CheckpointMoved:
            # `replay rebuild` swapped the read model: its stored checkpoint is the truth now.
            self._position = self.agent.checkpoint()
            return True
        except Exception as exc:
            self._record_failure(batch, exc)
            if back_off:
                self._stop.wait(min(self.max_backoff, 0.05 * (2 ** min(self._failures, 10))))
            return not self._stop.is_set()
        if self._blocked_at is not None:
            log.warning("agent %s recovered at position %s", self.agent.name, self._blocked_at)
        self._blocked_at = None
        self._failures = 0
        self._advance(batch[-1].position or self._position)
        return True

    def _record_failure(self, batch: list[Event], exc: Exception) -> None:
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        if len(batch) == 1:
            self._blocked_at = batch[0].position
            log.error(
                "agent %s cannot apply event %s (%s at position %s), attempt %d: %s",
                self.agent.name, batch[0].id, batch[0].type, batch[0].position, self._failures, exc,
            )
        else:
            # Narrow down: go one event at a time through this batch until the culprit is found.
            self._narrow_until = batch[-1].position or 0

    def _advance(self, position: int) -> None:
        with self._progress:
            self._position = position
            self._progress.notify_all()
            ready = [w for w in self._async_waiters if w[0] <= position]
            self._async_waiters = [w for w in self._async_waiters if w[0] > position]
        _resolve_threadsafe(ready)

    def _wake_all(self) -> None:
        with self._progress:
            waiters, self._async_waiters = self._async_waiters, []
            self._progress.notify_all()
        _resolve_threadsafe(waiters)

    # -- waiting (read-your-writes) ---------------------------------------------------------------

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until the agent has applied `position`; False on timeout."""
        with self._progress:
            return self._progress.wait_for(lambda: self._position >= position, timeout)

    async def wait_for_async(self, position: int, timeout: float) -> bool:
        """Await until the agent has applied `position`; False on timeout.

        A timer on the loop rather than `asyncio.wait_for`: every start/stop answer waits here, and
        wait_for's extra future, callbacks and cancellation handling cost the event loop more than this.
        """
        if self._position >= position:
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._progress:
            if self._position >= position:
                return True
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
        return self._position >= position

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
        )


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


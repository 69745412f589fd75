"""Reads off the event loop: a fixed pool of worker threads, a short wait for one, a time budget.

The server's one event loop also answers start/stop and consumes NATS. Anything a read route blocks on
there (SQLite, archive files or S3, an external metric store, numpy under the metric store's lock)
stops every intake answer for as long as it takes. Read routes give their work to this pool instead:

- at most `reads.workers` reads run at once; a request finding them all taken waits `reads.queue-wait`
  seconds for one, then is answered 503 (the loop itself never waits on a thread);
- a read that runs longer than `reads.timeout` is answered 504. Python cannot stop a thread, so the
  work goes on until its next `checkpoint()` (long reads call it between steps) and keeps its
  worker until then: the bound on concurrent reads holds even for abandoned ones;
- large answers are written piece by piece (`ChunkedAnswer`), each piece made on a worker, so neither
  the answer nor its serialisation has to fit in memory at once.

A dedicated ThreadPoolExecutor rather than anyio's shared default limiter (40 threads for every
`def` endpoint, file response and `run_in_threadpool` of the process, no wait limit, no budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from api.config import ReadSettings
from api.errors import ApiError

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Bytes gathered before a piece of a chunked answer is handed to the server.
CHUNK_BYTES = 1 << 20
#: While starts and stops arrive in a burst (the intake's `busy`), a read works WORK_SLICE seconds at
#: a time and then pauses, up to PAUSE seconds or until the burst is over: one interpreter lock serves
#: both, and the intake's answers come first. Reads slow down under a burst, they never stop.
WORK_SLICE = 0.005
PAUSE = 0.2


class _Budget:
    """What `checkpoint` knows of the read running on this thread."""

    __slots__ = ("budget", "deadline", "give_way_to", "worked_since")

    def __init__(self, deadline: float, budget: float, give_way_to: Callable[[], bool] | None) -> None:
        self.deadline, self.budget, self.give_way_to = deadline, budget, give_way_to
        self.worked_since = time.monotonic()


_local = threading.local()


def checkpoint() -> None:
    """Long reads call this between steps: 504 once the read is past its time budget (its work stops
    here), and a pause while the intake has a burst to answer (see WORK_SLICE)."""
    current: _Budget | None = getattr(_local, "budget", None)
    if current is None:
        return
    now = time.monotonic()
    if now > current.deadline:
        raise ApiError(504, f"the read took longer than {current.budget:g} s (reads.timeout) and was stopped")
    if current.give_way_to is None or now - current.worked_since < WORK_SLICE:
        return
    until = min(now + PAUSE, current.deadline)
    while current.give_way_to() and time.monotonic() < until:
        time.sleep(PAUSE / 10)
    current.worked_since = time.monotonic()


def _running(budget: _Budget | None) -> None:
    _local.budget = budget


class ChunkedAnswer:
    """An answer made piece by piece on the pool's workers: `chunks` yields its bytes in order.

    A read returns one instead of a Response when the answer may be large. The pool makes the first
    two pieces straight away, so errors before any byte is sent are still answered with a status, and
    an answer of one piece goes out as a plain response with a length."""

    def __init__(self, chunks: Iterator[bytes], media_type: str = "application/json") -> None:
        self.chunks = chunks
        self.media_type = media_type
        self.head: list[bytes] = []

    def close(self) -> None:
        """Stop the producer (its `finally` blocks run: connections closed, transactions ended)."""
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


class _Lease:
    """One admitted read's slot, released exactly once, from whichever thread finishes with it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore) -> None:
        self._loop, self._slots = loop, slots
        self._lock = threading.Lock()
        self._released = False

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        with contextlib.suppress(RuntimeError):  # a closed loop: the server stopped, nobody waits for the slot
            self._loop.call_soon_threadsafe(self._slots.release)


class ReadPool:
    """The bounded read pool of one app (see the module docstring); `close` ends its threads."""

    def __init__(self, settings: ReadSettings, give_way_to: Callable[[], bool] | None = None) -> None:
        self.settings = settings
        #: True while the intake has a burst to answer (`JobIntake.busy`): reads pause at their checkpoints.
        self.give_way_to = give_way_to
        self._executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="ccstream-read")
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Reads refused because no worker freed up in time, and reads past their time budget.
        self.refused = 0
        self.timed_out = 0

    def close(self) -> None:
        """Let running reads finish, start no new one."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` on a worker: 503 when none frees up within `queue-wait`, 504 past `timeout`."""
        lease = await self._admit()
        deadline = time.monotonic() + self.settings.timeout
        future = self._submit(lease, work, deadline)
        result = await self._wait(future, lease, deadline)
        return result

    async def respond(self, work: Callable[[], Response | ChunkedAnswer]) -> Response:
        """Like `run` for a route's answer: a ChunkedAnswer is streamed, each piece made on a worker."""
        lease = await self._admit()
        deadline = time.monotonic() + self.settings.timeout
        result = await self._wait(self._submit(lease, work, deadline), lease, deadline)
        if not isinstance(result, ChunkedAnswer):
            return result
        if len(result.head) < 2:  # one piece: a plain response, with a length
            _close_then(self._executor, result, lease)
            return Response(result.head[0] if result.head else b"", media_type=result.media_type)
        return _PooledStream(self, lease, result, deadline)

    def _budget(self, deadline: float) -> _Budget:
        return _Budget(deadline, self.settings.timeout, self.give_way_to)

    async def _admit(self) -> _Lease:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop = asyncio.Semaphore(self.settings.workers), loop
        slots = self._slots
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), self.settings.queue_wait)
            except TimeoutError:
                self.refused += 1
                raise ApiError(503, f"server busy: all {self.settings.workers} read workers (reads.workers) "
                               f"stayed taken for {self.settings.queue_wait:g} s (reads.queue-wait); "
                               "retry later") from None
        else:
            await slots.acquire()
        return _Lease(loop, slots)

    def _submit(self, lease: _Lease, work: Callable[[], T], deadline: float) -> Future[T]:
        def call() -> T:
            _running(self._budget(deadline))
            try:
                result = work()
                if isinstance(result, ChunkedAnswer):
                    _first_pieces(result)
                return result
            finally:
                _running(None)

        try:
            future = self._executor.submit(call)
        except RuntimeError:  # shut down
            lease.release()
            raise ApiError(503, "the server is shutting down") from None

        def done(f: Future[T]) -> None:
            # A chunked answer keeps its worker slot until it is written (or abandoned, see _wait).
            if f.cancelled() or f.exception() is not None or not isinstance(f.result(), ChunkedAnswer):
                lease.release()

        future.add_done_callback(done)
        return future

    async def _wait(self, future: Future[T], lease: _Lease, deadline: float) -> T:
        waited = asyncio.wrap_future(future)
        waited.add_done_callback(_consume)
        try:
            return await asyncio.wait_for(asyncio.shield(waited), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            self.timed_out += 1
            future.add_done_callback(functools.partial(self._abandon, lease))
            raise ApiError(504, f"the read took longer than {self.settings.timeout:g} s (reads.timeout); "
                           "try a smaller request or retry later") from None

    def _abandon(self, lease: _Lease, future: Future[Any]) -> None:
        """A finished read nobody waits for any more: a chunked answer is closed, then its slot freed."""
        if future.cancelled() or future.exception() is not None or not isinstance(future.result(), ChunkedAnswer):
            return
        answer: ChunkedAnswer = future.result()
        _close_then(self._executor, answer, lease)


def _first_pieces(answer: ChunkedAnswer) -> None:
    """Make the first two pieces: one piece means a plain response; an error here still gets a status."""
    for piece in answer.chunks:
        answer.head.append(piece)
        if len(answer.head) == 2:
            return


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned read's outcome, so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _close_then(executor: ThreadPoolExecutor, answer: ChunkedAnswer, lease: _Lease) -> None:
    def close() -> None:
        try:
            answer.close()
        finally:
            lease.release()

    try:
        executor.submit(close)
    except RuntimeError:  # shut down: close here
        close()


class _PooledStream(StreamingResponse):
    """A chunked answer written as it is made; it holds its read's slot until the last piece is sent,
    the client goes away or the time budget runs out (then the connection is cut: the status is sent)."""

    def __init__(self, pool: ReadPool, lease: _Lease, answer: ChunkedAnswer, deadline: float) -> None:
        self._pool, self._lease, self._answer, self._deadline = pool, lease, answer, deadline
        self._pending: Future[bytes | None] | None = None
        self._finished = False
        super().__init__(self._pieces(), media_type=answer.media_type)

    async def _pieces(self) -> AsyncIterator[bytes]:
        for made in self._answer.head:
            yield made
        while True:
            self._pending = pending = self._pool._executor.submit(self._next)
            try:
                piece: bytes | None = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(pending)),
                                                             max(0.0, self._deadline - time.monotonic()))
            except TimeoutError:
                self._pool.timed_out += 1
                log.warning("a streamed answer took longer than reads.timeout; its connection is cut")
                raise
            if piece is None:
                return
            yield piece

    def _next(self) -> bytes | None:
        _running(self._pool._budget(self._deadline))
        try:
            checkpoint()
            return next(self._answer.chunks, None)
        finally:
            _running(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        pending = self._pending
        if pending is not None and not pending.done():
            # The piece in hand is still being made: close after it, on its worker.
            pending.add_done_callback(lambda _f: _close_then(self._pool._executor, self._answer, self._lease))
        else:
            _close_then(self._pool._executor, self._answer, self._lease)


def read_pool(request: Request) -> ReadPool:
    """The read pool of the app serving `request` (set up by `api.app.create_app`)."""
    pool: ReadPool = request.app.state.read_pool
    return pool


def pooled(endpoint: Callable[..., Any]) -> Callable[..., Awaitable[Response]]:
    """An async endpoint running the plain-function `endpoint` in the app's read pool.

    It keeps the endpoint's signature (FastAPI reads parameters, and OpenAPI the docstring, through
    `__wrapped__`); the endpoint must take the `Request`, which names the app and so the pool."""
    names = [n for n, p in inspect.signature(endpoint).parameters.items() if p.annotation in (Request, "Request")]
    if not names:
        raise TypeError(f"read endpoint {endpoint.__name__} needs a `request: Request` parameter")

    @functools.wraps(endpoint)
    async def run(**kwargs: Any) -> Response:
        return await read_pool(kwargs[names[0]]).respond(functools.partial(endpoint, **kwargs))

    # It answers a Response whatever the endpoint returns (a ChunkedAnswer becomes one): no response model.
    run.__signature__ = inspect.signature(endpoint).replace(return_annotation=Response)  # type: ignore[attr-defined]
    return run


class ReadRoute(APIRoute):
    """The route class of routers with read endpoints: a plain-function (`def`) endpoint runs in the
    app's read pool, an `async def` one on the event loop as usual (it must not block)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = pooled(endpoint)
        super().__init__(path, endpoint, **kwargs)


def json_array(head: bytes, items: Iterator[Any], tail: bytes, dumps: Callable[[Any], bytes]) -> Iterator[bytes]:
    """`head`, the items serialised one by one with commas, `tail`: a JSON document in pieces of about
    CHUNK_BYTES, byte for byte what serialising the whole document at once gives (orjson is compact)."""
    out = bytearray(head)
    for n, item in enumerate(items):
        checkpoint()
        if n:
            out += b","
        out += dumps(item)
        if len(out) >= CHUNK_BYTES:
            yield bytes(out)
            out.clear()
    out += tail
    if out:
        yield bytes(out)

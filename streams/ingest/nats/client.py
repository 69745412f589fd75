"""The NATS adapter: connection with back-off, and consumers for core NATS (queue group) or JetStream.

Messages are interpreted as they arrive and handed to workers sharded by scheduler job id, so one
job's start and stop are applied in order while different jobs proceed (and group-commit) together.
In JetStream mode a message is acknowledged only after its events are durable in the log and its
refusals durable in the dead-letter store; anything else (a crash, a full disk) leaves it
unacknowledged, and JetStream delivers it again. Deterministic event ids make that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from streams.ingest.nats.deliveries import DeliveryCounts
from streams.ingest.nats.messages import Channel, Command, Delivery, Refusal, interpret, shard_key
from streams.ingest.nats.processor import NatsProcessor, SubjectCounters

log = logging.getLogger(__name__)

Mode = Literal["core", "jetstream"]


@dataclass(frozen=True)
class NatsOptions:
    """Everything the adapter needs, built by the composition root from config.json."""

    servers: list[str]
    job_subject: str = ""
    node_subject: str = ""
    mode: Mode = "core"
    username: str = ""
    password: str = ""
    creds_file: str = ""
    queue_group: str = "ccstream"
    job_concurrency: int = 8
    node_concurrency: int = 2
    connect_timeout: float = 2.0
    reconnect_wait: float = 0.5
    max_reconnect_wait: float = 30.0
    stream: str = "CCSTREAM_API"
    durable: str = "ccstream"
    ack_wait: float = 30.0
    max_deliver: int = 10
    max_ack_pending: int = 1000
    fetch_batch: int = 256
    duplicate_window: float = 120.0
    max_age: float = 0.0
    storage: Literal["file", "memory"] = "file"
    replicas: int = 1

    def subjects(self) -> list[tuple[Channel, str, int]]:
        """(channel, subject, workers) of each configured subject."""
        out: list[tuple[Channel, str, int]] = []
        if self.job_subject:
            out.append(("job", self.job_subject, max(1, self.job_concurrency)))
        if self.node_subject:
            out.append(("node", self.node_subject, max(1, self.node_concurrency)))
        return out


@dataclass
class ConnectionStatus:
    """What `GET /api/admin/nats` shows about the connection."""

    state: str = "stopped"
    since: float = field(default_factory=time.time)
    connects: int = 0
    last_error: str | None = None
    server: str | None = None
    #: Every subscription is registered on the server (core NATS) or every consumer bound (JetStream):
    #: a message published from now on is received. `connected` alone does not promise that.
    subscribed: bool = False


_Work = tuple[bytes, list[Command | Refusal], Delivery, Callable[[bool], Awaitable[None]] | None]


class _Shards:
    """Worker tasks of one subject; a message goes to the worker its first line's job id hashes to."""

    def __init__(self, name: str, workers: int, handle: Callable[[_Work], Awaitable[None]], depth: int) -> None:
        self.queues: list[asyncio.Queue[_Work]] = [asyncio.Queue(depth) for _ in range(workers)]
        self.tasks = [asyncio.create_task(self._work(q, handle), name=f"nats-{name}-{i}")
                      for i, q in enumerate(self.queues)]

    @staticmethod
    async def _work(queue: asyncio.Queue[_Work], handle: Callable[[_Work], Awaitable[None]]) -> None:
        while True:
            work = await queue.get()
            try:
                await handle(work)
            finally:
                queue.task_done()

    async def put(self, key: str, work: _Work) -> None:
        index = zlib.crc32(key.encode()) % len(self.queues) if key else 0
        await self.queues[index].put(work)

    async def drain(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(q.join() for q in self.queues)), timeout)

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


class NatsIngest:
    """Connects (and reconnects), subscribes, and runs messages through the processor."""

    def __init__(self, options: NatsOptions, processor: NatsProcessor) -> None:
        self.options = options
        self.processor = processor
        self.status = ConnectionStatus()
        self.counters: dict[str, SubjectCounters] = {s: SubjectCounters() for _, s, _ in options.subjects()}
        self._task: asyncio.Task[None] | None = None
        self._nc: Client | None = None
        self._lost: asyncio.Event | None = None
        self._stopping = False
        self._deliveries = DeliveryCounts()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting in the background; returns at once, even when NATS is down."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="nats-ingest")

    async def stop(self) -> None:
        """Stop consuming; unacknowledged JetStream messages are delivered again later."""
        self._stopping = True
        if self._lost is not None:
            self._lost.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set_state("stopped")

    def snapshot(self) -> dict[str, Any]:
        """Connection state and per-subject counters, for the admin endpoint."""
        o = self.options
        return {
            "mode": o.mode,
            "servers": o.servers,
            "state": self.status.state,
            "since": self.status.since,
            "connects": self.status.connects,
            "server": self.status.server,
            "lastError": self.status.last_error,
            "queueGroup": o.queue_group if o.mode == "core" else None,
            "stream": o.stream if o.mode == "jetstream" else None,
            "subjects": {s: c.to_json() for s, c in self.counters.items()},
        }

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self.status.state:
            level = logging.WARNING if state in ("disconnected", "connect failed") else logging.INFO
            log.log(level, "NATS %s -> %s%s", self.status.state, state, f": {error}" if error else "")
            self.status.state = state
            self.status.since = time.time()
        if error is not None:
            self.status.last_error = error

    # -- connection loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.options.reconnect_wait
        while not self._stopping:
            self._set_state("connecting")
            try:
                nc = await self._connect()
            except Exception as exc:
                self._set_state("connect failed", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.max_reconnect_wait)
                continue
            delay = self.options.reconnect_wait
            self.status.connects += 1
            self.status.server = str(nc.connected_url.geturl()) if nc.connected_url else None
            self._set_state("connected")
            try:
                await self._consume(nc)
            except asyncio.CancelledError:
                await self._close(nc)
                raise
            except Exception as exc:
                log.exception("NATS consumer failed")
                self._set_state("disconnected", f"{type(exc).__name__}: {exc}")
            await self._close(nc)
            if not self._stopping:
                self._set_state("disconnected")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.max_reconnect_wait)

    async def _connect(self) -> Client:
        o = self.options
        lost = asyncio.Event()
        self._lost = lost

        async def on_disconnect() -> None:
            lost.set()

        async def on_error(exc: Exception) -> None:
            self.status.last_error = f"{type(exc).__name__}: {exc}"

        kwargs: dict[str, Any] = {}
        if o.username:
            kwargs.update(user=o.username, password=o.password)
        if o.creds_file:
            kwargs["user_credentials"] = o.creds_file
        # Reconnection is ours (exponential back-off, fresh subscriptions), not the client's.
        # One attempt per server (the client treats 0 as "forever"), bounded in time as a whole.
        nc = await asyncio.wait_for(nats.connect(
            servers=o.servers, name="ccstream", allow_reconnect=False, max_reconnect_attempts=1,
            reconnect_time_wait=0, connect_timeout=int(max(1, o.connect_timeout)),
            disconnected_cb=on_disconnect, closed_cb=on_disconnect, error_cb=on_error, **kwargs,
        ), timeout=3 * o.connect_timeout * max(1, len(o.servers)))
        self._nc = nc
        return nc

    async def _close(self, nc: Client) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)

    async def _consume(self, nc: Client) -> None:
        assert self._lost is not None
        shards: list[_Shards] = []
        loops: list[asyncio.Task[None]] = []
        try:
            subjects = self.options.subjects()
            if self.options.mode == "jetstream":
                js = nc.jetstream()
                await self._ensure_stream(js)
                bound: list[str] = []

                async def on_bound(subject: str) -> None:
                    bound.append(subject)
                    if len(bound) == len(subjects):
                        await self._confirm_subscribed(nc)

                for channel, subject, workers in subjects:
                    loops.append(asyncio.create_task(self._pull(nc, js, channel, subject, workers, shards, on_bound)))
            else:
                for channel, subject, workers in subjects:
                    await self._subscribe_core(nc, channel, subject, workers, shards)
                await self._confirm_subscribed(nc)
            lost = asyncio.create_task(self._lost.wait())
            done, _ = await asyncio.wait([lost, *loops], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not lost and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            lost.cancel()
        finally:
            self.status.subscribed = False
            for task in loops:
                task.cancel()
            for shard in shards:
                await shard.drain(5.0)
                shard.cancel()

    # -- core NATS ------------------------------------------------------------------------------

    async def _subscribe_core(
        self, nc: Client, channel: Channel, subject: str, workers: int, shards: list[_Shards]
    ) -> None:
        counters = self.counters[subject]

        async def handle(work: _Work) -> None:
            data, items, delivery, _ = work
            try:
                outcomes = await self.processor.process(data, delivery, items)
            except Exception as exc:
                # Core NATS never redelivers: keep the message rather than lose it.
                counters.failed += 1
                log.exception("NATS %s: processing failed; kept as a dead letter", subject)
                await asyncio.to_thread(self.processor.keep_failure, data, delivery, f"{type(exc).__name__}: {exc}")
                return
            counters.count(outcomes)

        shard = _Shards(subject, workers, handle, depth=1024)
        shards.append(shard)

        async def on_message(msg: Msg) -> None:
            counters.received += 1
            delivery = Delivery(subject=msg.subject, channel=channel, msg_id=_msg_id(msg), received_at=time.time())
            items = interpret(msg.data, delivery)
            await shard.put(_key(items), (msg.data, items, delivery, None))

        queue = self.options.queue_group
        await nc.subscribe(subject, queue=queue, cb=on_message, pending_msgs_limit=1_000_000,
                           pending_bytes_limit=1 << 30)
        log.info("NATS: subscribed to %s (queue group %s, %d workers)", subject, queue or "-", workers)

    # -- JetStream ------------------------------------------------------------------------------

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """Create the stream if missing, or add our subjects to it; settings from config."""
        o = self.options
        wanted = [s for _, s, _ in o.subjects()]
        try:
            info = await js.stream_info(o.stream)
        except NotFoundError:
            await js.add_stream(StreamConfig(
                name=o.stream, subjects=wanted, storage=StorageType(o.storage), num_replicas=o.replicas,
                duplicate_window=o.duplicate_window, max_age=o.max_age or None,
            ))
            log.info("NATS: created JetStream stream %s over %s", o.stream, ", ".join(wanted))
            return
        have = list(info.config.subjects or [])
        missing = [s for s in wanted if s not in have]
        if missing:
            info.config.subjects = have + missing
            await js.update_stream(info.config)
            log.info("NATS: added %s to JetStream stream %s", ", ".join(missing), o.stream)

    async def _ensure_consumer(self, js: JetStreamContext, channel: Channel, subject: str) -> str:
        o = self.options
        durable = f"{o.durable}-{channel}"
        try:
            await js.consumer_info(o.stream, durable)
        except NotFoundError:
            await js.add_consumer(o.stream, ConsumerConfig(
                durable_name=durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                ack_wait=o.ack_wait, max_deliver=o.max_deliver, max_ack_pending=o.max_ack_pending,
                filter_subject=subject,
            ))
            log.info("NATS: created durable consumer %s on %s (%s)", durable, o.stream, subject)
        return durable

    async def _confirm_subscribed(self, nc: Client) -> None:
        """A round trip to the server, after which it holds every subscription made before it."""
        await nc.flush()
        self.status.subscribed = True

    async def _pull(
        self, nc: Client, js: JetStreamContext, channel: Channel, subject: str, workers: int,
        shards: list[_Shards], on_bound: Callable[[str], Awaitable[None]],
    ) -> None:
        o = self.options
        counters = self.counters[subject]
        durable = await self._ensure_consumer(js, channel, subject)
        await self._watch_max_deliveries(nc, js, channel, durable)
        psub = await js.pull_subscribe_bind(durable=durable, stream=o.stream)
        await on_bound(subject)
        in_flight = asyncio.Semaphore(max(1, o.max_ack_pending))

        async def handle(work: _Work) -> None:
            data, items, delivery, settle = work
            assert settle is not None
            try:
                outcomes = await self.processor.process(data, delivery, items)
            except Exception as exc:
                counters.failed += 1
                log.exception("NATS %s: processing failed; left for redelivery", subject)
                await settle(False)
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                return
            counters.count(outcomes)
            await settle(True)

        shard = _Shards(subject, workers, handle, depth=max(16, o.max_ack_pending))
        shards.append(shard)
        log.info("NATS: consuming %s from JetStream %s/%s (%d workers)", subject, o.stream, durable, workers)
        while True:
            await in_flight.acquire()
            free = 1
            while free < o.fetch_batch and not in_flight.locked():
                await in_flight.acquire()
                free += 1
            try:
                msgs = await psub.fetch(free, timeout=1.0)
            except (NatsTimeoutError, TimeoutError):
                msgs = []
            except BaseException:
                for _ in range(free):
                    in_flight.release()
                raise
            for _ in range(free - len(msgs)):
                in_flight.release()
            for msg in msgs:
                await self._dispatch(msg, channel, shard, counters, in_flight)

    async def _dispatch(
        self, msg: Msg, channel: Channel, shard: _Shards, counters: SubjectCounters, in_flight: asyncio.Semaphore
    ) -> None:
        meta = msg.metadata
        counters.received += 1
        stream_seq = (meta.stream, meta.sequence.stream)
        number = self._deliveries.delivered(stream_seq, meta.num_delivered)
        if number > 1:
            counters.redelivered += 1
        delivery = Delivery(
            subject=msg.subject, channel=channel, msg_id=_msg_id(msg), stream_seq=stream_seq, received_at=time.time(),
        )
        max_deliver = self.options.max_deliver

        async def settle(done: bool) -> None:
            try:
                if done:
                    await msg.ack()
                    self._deliveries.settled(stream_seq)
                elif max_deliver > 0 and number >= max_deliver:
                    # The last delivery JetStream will make: keep it, then let it go.
                    await asyncio.to_thread(self.processor.keep_failure, msg.data, delivery,
                                            f"gave up after {number} deliveries: {self.status.last_error}")
                    await msg.term()
                    self._deliveries.settled(stream_seq)
                else:
                    await msg.nak(delay=min(2.0 ** number, 60.0))
            except Exception as exc:  # the connection went away: JetStream will redeliver
                log.warning("NATS: cannot settle message %s: %s", delivery.stream_seq, exc)
            finally:
                in_flight.release()

        items = interpret(msg.data, delivery)
        await shard.put(_key(items), (msg.data, items, delivery, settle))


    async def _watch_max_deliveries(self, nc: Client, js: JetStreamContext, channel: Channel, durable: str) -> None:
        """Keep any message JetStream stops redelivering that ccstream did not keep itself.

        The consumer keeps a message on what it counts as the last delivery; this advisory is the
        safety net for the cases it cannot see (another ccstream instance had the earlier deliveries,
        or the server counted differently): the message is read back from the stream and kept as a
        dead letter. A message already kept is recognised by its key and not added twice.
        """
        stream = self.options.stream

        async def on_advisory(msg: Msg) -> None:
            try:
                advisory = json.loads(msg.data)
                seq, deliveries = int(advisory["stream_seq"]), int(advisory.get("deliveries", 0))
                stored = await js.get_msg(stream, seq)
                headers = stored.headers or {}
                delivery = Delivery(
                    subject=stored.subject or "", channel=channel, msg_id=headers.get("Nats-Msg-Id") or None,
                    stream_seq=(stream, seq), received_at=time.time(),
                )
                await asyncio.to_thread(
                    self.processor.keep_failure, stored.data or b"", delivery,
                    f"JetStream stopped redelivering after {deliveries} deliveries: {self.status.last_error}",
                )
                self._deliveries.settled((stream, seq))
            except Exception as exc:  # a bad advisory must not end the consumer
                log.warning("NATS: cannot keep the message of max-deliveries advisory %r: %s", msg.data[:200], exc)

        await nc.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}", cb=on_advisory)


def _msg_id(msg: Msg) -> str | None:
    headers = msg.headers or {}
    value = headers.get("Nats-Msg-Id")
    return value or None


def _key(items: list[Command | Refusal]) -> str:
    """Shard key: the first line's job id (or cluster)."""
    return shard_key(items[0]) if items else ""

"""NATS subscriber for metric lines (nats-py): batches messages and hands them to the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from metricstore.settings import NatsConnection, NatsSubscription
from metricstore.store import MetricStore

log = logging.getLogger(__name__)


#: Bytes of one NATS message of metric lines taken in (as large as the default start_job body): a larger
#: one is not processed but counted as `oversize_messages`, and logged with this limit named.
MESSAGE_MAX = 64 * 1024 * 1024


class NatsMetricSubscriber:
    """Subscribes to `nats-subscriptions`. `start` returns at once and keeps trying to connect with
    back-off, so the server starts while NATS is down. Messages are joined into batches (every
    `batch_interval` seconds or `batch_bytes`) because the store's parser is fast per batch, not per line."""

    def __init__(self, store: MetricStore, subscriptions: Sequence[NatsSubscription],
                 connection: NatsConnection | None = None, *, batch_interval: float = 0.05,
                 batch_bytes: int = 4 << 20, max_pending_bytes: int = 256 << 20,
                 max_backoff: float = 30.0, max_message_bytes: int = MESSAGE_MAX) -> None:
        self.store = store
        self.subscriptions = list(subscriptions)
        self.connection = connection or NatsConnection()
        self.batch_interval = batch_interval
        self.batch_bytes = batch_bytes
        self.max_pending_bytes = max_pending_bytes
        self.max_backoff = max_backoff
        self.max_message_bytes = max_message_bytes
        self._pending: list[list[bytes]] = [[] for _ in self.subscriptions]
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self.counters: dict[str, Any] = {"connected": False, "messages": 0, "bytes": 0, "batches": 0,
                                         "dropped_messages": 0, "oversize_messages": 0,
                                         "connect_attempts": 0}

    def snapshot(self) -> dict[str, Any]:
        """What `GET /api/admin/nats` shows: the server, the subjects and the counters."""
        return {
            "address": self.connection.address,
            "subscriptions": [{"subscribeTo": s.subscribe_to, "clusterTag": s.cluster_tag} for s in self.subscriptions],
            **self.counters,
        }

    async def start(self) -> None:
        if self._task is None and self.subscriptions:
            self._task = asyncio.create_task(self._run(), name="metricstore-nats")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.drain()
            self._client = None
        await self._drain()  # whatever arrived before the drain is stored
        self.counters["connected"] = False

    async def _connect(self) -> Client:
        delay = 0.2
        while True:
            self.counters["connect_attempts"] += 1
            try:
                options: dict[str, Any] = {"servers": [self.connection.address], "connect_timeout": 2,
                                           "allow_reconnect": True, "max_reconnect_attempts": -1,
                                           "reconnect_time_wait": 1}
                if self.connection.username:
                    options.update(user=self.connection.username, password=self.connection.password)
                if self.connection.creds_file_path:
                    options["user_credentials"] = self.connection.creds_file_path
                return await nats.connect(**options)
            except Exception as exc:  # nats-py raises several unrelated types for "not reachable"
                log.warning("metric store: NATS %s not reachable (%s); retrying in %.1fs",
                            self.connection.address, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    async def _run(self) -> None:
        self._client = client = await self._connect()
        for i, sub in enumerate(self.subscriptions):
            await client.subscribe(sub.subscribe_to, cb=self._callback(i))
        # A round trip: once the server has answered it, it holds every subscription, so `connected`
        # means messages published from now on arrive (a publisher racing the SUB would lose them).
        await client.flush()
        self.counters["connected"] = True
        log.info("metric store: subscribed to %s", ", ".join(s.subscribe_to for s in self.subscriptions))
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.batch_interval)
            self._wake.clear()
            self.counters["connected"] = client.is_connected
            await self._drain()

    def _callback(self, index: int) -> Any:
        pending = self._pending[index]

        async def on_message(msg: Msg) -> None:
            size = len(msg.data)
            self.counters["messages"] += 1
            if size > self.max_message_bytes:
                self.counters["oversize_messages"] += 1
                if self.counters["oversize_messages"] % 1000 == 1:  # the first, then one in a thousand
                    log.warning("metric store: NATS %s: message of %d bytes is larger than the limit of %d bytes "
                                "(MESSAGE_MAX), not processed (%d so far)", msg.subject, size, self.max_message_bytes,
                                self.counters["oversize_messages"])
                return
            if self._pending_bytes + size > self.max_pending_bytes:
                self.counters["dropped_messages"] += 1
                return
            pending.append(msg.data)
            self._pending_bytes += size
            if self._pending_bytes >= self.batch_bytes:
                self._wake.set()

        return on_message

    async def _drain(self) -> None:
        for i, sub in enumerate(self.subscriptions):
            pending = self._pending[i]
            if not pending:
                continue
            taken = sum(len(m) for m in pending)
            data = b"\n".join(pending)
            pending.clear()
            self._pending_bytes -= taken
            self.counters["bytes"] += len(data)
            self.counters["batches"] += 1
            report = await asyncio.to_thread(self.store.ingest_lines, data, sub.cluster_tag)
            if not report.ok:
                log.warning("metric store: NATS %s: %s", sub.subscribe_to, report.message())

"""Ingest over a real nats-server: every line kind of metrics.lp, cluster-tag, start while NATS is down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import numpy as np

from metricstore.nats import NatsMetricSubscriber
from metricstore.settings import NatsConnection, NatsSubscription
from metricstore.store import MetricStore
from tests.metricstore.conftest import T0
from tests.support.natsserver import NatsServer, free_port


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def value(store: MetricStore, cluster: str, host: str, metric: str, level: str) -> float:
    bid, row = store.levels(cluster, host, metric)[level]
    return float(store.read(bid, np.array([row]), T0, T0 + 1)[0][0, 0])


async def test_every_line_kind_over_nats(store: MetricStore, nats_url: str, metrics_lp: bytes) -> None:
    subs = [NatsSubscription(subscribe_to="hpc-nats", cluster_tag="fritz")]
    subscriber = NatsMetricSubscriber(store, subs, NatsConnection(address=nats_url))
    await subscriber.start()
    publisher = await nats.connect(nats_url)
    try:
        await wait_for(lambda: subscriber.counters["connected"])
        lines = [line for line in metrics_lp.splitlines() if line and not line.startswith(b"#")]
        for line in lines:  # one line per message, as a collector with batch size 1 sends
            await publisher.publish("hpc-nats", line)
        await publisher.flush()
        await wait_for(lambda: store.stats()["samples_accepted"] + store.stats()["samples_dropped_unknown_metric"]
                       == len(lines))
    finally:
        await publisher.close()
        await subscriber.stop()
    assert store.stats()["samples_accepted"] == 14 and store.stats()["lines_rejected"] == 0
    assert value(store, "fritz", "f0650", "cpu_load", "") == np.float32(18.4)  # cluster from cluster-tag
    assert value(store, "fritz", "f0649", "mem_bw", "memoryDomain3") == np.float32(1.12)
    assert value(store, "alex", "a0603", "acc_power", "accelerator00000000:0E:00.0") == 251.5
    assert subscriber.counters["messages"] == len(lines)


async def test_bad_lines_over_nats_are_counted(store: MetricStore, nats_url: str) -> None:
    subscriber = NatsMetricSubscriber(store, [NatsSubscription(subscribe_to="m")], NatsConnection(address=nats_url))
    await subscriber.start()
    publisher = await nats.connect(nats_url)
    try:
        await wait_for(lambda: subscriber.counters["connected"])
        await publisher.publish("m", f"cpu_load,hostname=x value=1 {T0}\ncpu_load,cluster=fritz,hostname=y value=2 {T0}"
                                .encode())
        await publisher.flush()
        await wait_for(lambda: store.stats()["samples_accepted"] == 1)
    finally:
        await publisher.close()
        await subscriber.stop()
    assert store.stats()["lines_rejected_by_reason"] == {"missing_cluster": 1}


async def test_starts_while_nats_is_down_and_connects_later(store: MetricStore,
                                                            nats_server_factory: Callable[..., NatsServer]) -> None:
    port = free_port()
    subscriber = NatsMetricSubscriber(store, [NatsSubscription(subscribe_to="m", cluster_tag="fritz")],
                                      NatsConnection(address=f"nats://127.0.0.1:{port}"), max_backoff=0.3)
    await subscriber.start()  # returns although nothing listens
    try:
        await wait_for(lambda: subscriber.counters["connect_attempts"] >= 1)
        assert not subscriber.counters["connected"]
        server = await asyncio.to_thread(nats_server_factory, port)
        await wait_for(lambda: subscriber.counters["connected"])
        publisher = await nats.connect(server.url)
        await publisher.publish("m", f"cpu_load,hostname=z value=3 {T0}".encode())
        await publisher.flush()
        await publisher.close()
        await wait_for(lambda: store.stats()["samples_accepted"] == 1)
    finally:
        await subscriber.stop()
    assert value(store, "fritz", "z", "cpu_load", "") == 3.0


async def test_lines_over_nats_for_hosts_outside_the_nodelists_are_counted(store: MetricStore, nats_url: str) -> None:
    subscriber = NatsMetricSubscriber(store, [NatsSubscription(subscribe_to="m", cluster_tag="fritz")],
                                      NatsConnection(address=nats_url))
    await subscriber.start()
    publisher = await nats.connect(nats_url)
    try:
        await wait_for(lambda: subscriber.counters["connected"])
        await publisher.publish("m", "".join(f"cpu_load,hostname={h} value=1 {T0 + t}\n"
                                             for h, t in (("f0101", 0), ("zz01", 0), ("zz01", 60), ("zz02", 0))
                                             ).encode())
        await publisher.flush()
        await wait_for(lambda: store.stats()["samples_accepted"] == 4)
    finally:
        await publisher.close()
        await subscriber.stop()
    view = store.unknown_hosts.snapshot()
    assert view["byCluster"] == {"fritz": 3}
    assert sorted((h["host"], h["count"]) for h in view["hosts"]) == [("zz01", 2), ("zz02", 1)]


async def test_a_message_over_the_size_limit_is_counted_and_not_processed(store: MetricStore, nats_url: str) -> None:
    subscriber = NatsMetricSubscriber(store, [NatsSubscription(subscribe_to="m", cluster_tag="fritz")],
                                      NatsConnection(address=nats_url), max_message_bytes=200)
    await subscriber.start()
    publisher = await nats.connect(nats_url)
    lines = b"\n".join(f"cpu_load,hostname=f{n:04d},type=node value=1 {T0}".encode() for n in range(10))
    assert len(lines) > 200
    try:
        await wait_for(lambda: subscriber.counters["connected"])
        await publisher.publish("m", lines)
        await publisher.publish("m", f"cpu_load,hostname=f0650,type=node value=2 {T0}".encode())
        await publisher.flush()
        await wait_for(lambda: store.stats()["samples_accepted"] == 1)
    finally:
        await publisher.close()
        await subscriber.stop()
    assert subscriber.counters["oversize_messages"] == 1 and subscriber.counters["messages"] == 2
    assert store.stats()["lines_rejected"] == 0, "the over-size message was not parsed at all"

"""The NATS intake against a real nats-server, in core and JetStream mode: every kind of message,
every refusal, redelivery, and connecting to a server that comes up late."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from api.bootstrap import Services, build_services
from api.config import Settings
from api.prometheus import AppMetrics
from api.readpool import ReadPool
from metricstore.settings import NatsSubscription
from tests.ingest.conftest import EXAMPLES, START, job_line, node_line, start_body, stop_body
from tests.support.natsserver import NatsServer, free_port

JOBS, NODES = "cc.job.event", "cc.node.state"
MODES = ["core", "jetstream"]


def settings_for(tmp_path: Path, archive: Path, url: str, mode: str, **jetstream: Any) -> Settings:
    return Settings.model_validate({
        "main": {"db": str(tmp_path / "job.db"), "disable-authentication": True,
                 "api-subjects": {"subject-job-event": JOBS, "subject-node-state": NODES}},
        "archive": {"kind": "file", "path": str(archive)},
        "event-log": {"kind": "sqlite", "path": str(tmp_path / "events.db")},
        "metric-store": {"checkpoints": {"directory": str(tmp_path / "checkpoints")}},
        "archiver": {"state-path": str(tmp_path / "agents.db")},
        "nats": {"address": url, "mode": mode, "dead-letter-path": str(tmp_path / "rejected.db"),
                 "reconnect-wait": 0.1, "max-reconnect-wait": 0.5,
                 "jetstream": {"stream": f"T{int(time.time() * 1e6)}", "ack-wait": 2, **jetstream}},
    })


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Services]:
    services = build_services(settings)
    services.start()
    await services.start_ingest()
    try:
        yield services
    finally:
        await services.stop_ingest()
        await asyncio.to_thread(services.close)


async def until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def counters(services: Services, subject: str) -> dict[str, int]:
    assert services.nats is not None
    return dict(services.nats.snapshot()["subjects"][subject])


async def settled(services: Services, subject: str, lines: int) -> dict[str, int]:
    """Counters once `lines` lines are applied, duplicate or rejected, and the read model caught up."""
    def done() -> bool:
        c = counters(services, subject)
        return c["applied"] + c["duplicate"] + c["rejected"] >= lines
    await until(done, what=f"{lines} lines on {subject}: {counters(services, subject)}")
    await services.visible(services.log.head())
    return counters(services, subject)


def jobs(services: Services) -> dict[int, str]:
    with services.reader.connect() as conn:
        return {int(r[0]): str(r[1]) for r in conn.execute(text("SELECT job_id, job_state FROM job"))}


@asynccontextmanager
async def publisher(url: str, mode: str) -> AsyncIterator[Callable[..., Any]]:
    nc = await nats.connect(url)
    js = nc.jetstream()

    async def publish(subject: str, data: bytes, msg_id: str | None = None) -> None:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        if mode == "jetstream":
            await js.publish(subject, data, headers=headers)
        else:
            await nc.publish(subject, data, headers=headers)
            await nc.flush()

    try:
        yield publish
    finally:
        await nc.close()


async def wait_connected(services: Services) -> None:
    assert services.nats is not None
    await until(lambda: services.nats is not None and services.nats.status.subscribed, what="subscribed")


@pytest.mark.parametrize("mode", MODES)
async def test_every_message_kind(mode: str, tmp_path: Path, archive_root: Path, nats_url: str) -> None:
    async with running(settings_for(tmp_path, archive_root, nats_url, mode)) as services, \
            publisher(nats_url, mode) as publish:
        await wait_connected(services)
        await publish(JOBS, (EXAMPLES / "nats-job-events.lp").read_bytes())            # start + stop, one message
        await publish(JOBS, job_line("stop_job", stop_body(11, START + 90, "failed"), 1))  # before its start: parked
        await publish(JOBS, job_line("start_job", start_body(11), 2))                      # resolves the parked stop
        await publish(JOBS, job_line("start_job", start_body(12), 3), msg_id="m-12")       # named message
        await publish(JOBS, job_line("start_job", start_body(13), 4))
        await publish(JOBS, job_line("start_job", start_body(13), 4))                      # same content again
        await publish(NODES, (EXAMPLES / "nats-nodestate.lp").read_bytes())
        c = await settled(services, JOBS, 7)
        n = await settled(services, NODES, 1)
        assert (c["applied"], c["duplicate"], c["rejected"], c["failed"]) == (6, 1, 0, 0), c
        assert (n["applied"], n["rejected"]) == (1, 0)
        assert jobs(services) == {398764: "completed", 11: "failed", 12: "running", 13: "running"}
        with services.reader.connect() as conn:
            states = dict(conn.execute(text(
                "SELECT n.hostname, s.node_state FROM node_state s JOIN node n ON n.id = s.node_id")).all())
        assert states == {"f0649": "allocated", "f0651": "idle"}
        snapshot = services.nats.snapshot() if services.nats else {}
        assert snapshot["state"] == "connected" and snapshot["mode"] == mode


REFUSED = [
    ("empty", JOBS, b" "),
    ("malformed", JOBS, b"job,function=start_job event="),
    ("unexpected_measurement", JOBS, b'weather event="{}" 1'),
    ("not_event", JOBS, b"job,function=start_job value=1i 1"),
    ("missing_function", JOBS, b'job event="{}" 1'),
    ("unknown_function", JOBS, b'job,function=kill_job event="{}" 1'),
    ("invalid_json", JOBS, job_line("start_job", "{not json", 1)),
    ("unknown_field", JOBS, job_line("start_job", {**start_body(21), "color": "red"}, 1)),
    ("invalid", JOBS, job_line("start_job", start_body(22, numNodes=3), 1)),
    ("not_found", JOBS, job_line("stop_job", {"jobId": 23, "stopTime": START + 9}, 1)),
    ("conflict", JOBS, job_line("start_job", start_body(20, START + 30, user="bob"), 1)),
    ("invalid", NODES, node_line({"cluster": "nope", "nodes": [{"hostname": "f0101"}]}, 1)),
    ("unknown_field", NODES, node_line({"cluster": "fritz", "nodes": [{"hostname": "f0101", "x": 1}]}, 1)),
    ("malformed", NODES, b"nodestate"),
]


@pytest.mark.parametrize("mode", MODES)
async def test_every_refusal_is_a_dead_letter_and_blocks_nothing(
    mode: str, tmp_path: Path, archive_root: Path, nats_url: str
) -> None:
    async with running(settings_for(tmp_path, archive_root, nats_url, mode)) as services, \
            publisher(nats_url, mode) as publish:
        await wait_connected(services)
        await publish(JOBS, job_line("start_job", start_body(20), 1))
        await settled(services, JOBS, 1)
        for _, subject, data in REFUSED:
            await publish(subject, data)
        await publish(JOBS, job_line("start_job", start_body(30), 2))  # behind all the bad ones
        c = await settled(services, JOBS, 1 + 11 + 1)
        n = await settled(services, NODES, 3)
        assert (c["applied"], c["rejected"], n["rejected"]) == (2, 11, 3), (c, n)
        assert set(jobs(services)) == {20, 30}
        store = services.dead_letters
        assert store is not None
        entries = store.entries()
        assert sorted((e.subject, e.kind) for e in entries) == sorted((s, k) for k, s, _ in REFUSED)
        by_kind = {(e.subject, e.kind): e for e in entries}
        assert by_kind[(JOBS, "unknown_field")].raw == REFUSED[7][2]
        assert "json: unknown field 'color'" in by_kind[(JOBS, "unknown_field")].reason
        assert "already exists" in by_kind[(JOBS, "conflict")].reason
        assert all(e.received_at > 0 and e.status == "open" for e in entries)


async def test_jetstream_redelivery_after_a_failure_applies_once(
    tmp_path: Path, archive_root: Path, nats_url: str
) -> None:
    """The log refuses appends: messages stay unacknowledged, come back, and are kept after max-deliver."""
    settings = settings_for(tmp_path, archive_root, nats_url, "jetstream", **{"max-deliver": 2, "ack-wait": 1})
    async with running(settings) as services, publisher(nats_url, "jetstream") as publish:
        await wait_connected(services)
        await publish(JOBS, job_line("start_job", start_body(40), 1), msg_id="m-40")
        await settled(services, JOBS, 1)
        original = services.log.append_async

        async def refuse(*_: Any) -> Any:
            raise OSError("disk full")

        services.log.append_async = refuse  # type: ignore[method-assign]
        await publish(JOBS, job_line("start_job", start_body(41), 2), msg_id="m-41")
        await until(lambda: counters(services, JOBS)["failed"] >= 2, what="two failed deliveries")
        assert services.dead_letters is not None
        # The second delivery comes after a back-off and an ack wait: slow on a loaded machine.
        await until(lambda: services.dead_letters is not None and services.dead_letters.total() == 1,
                    timeout=90, what="internal dead letter")
        [entry] = services.dead_letters.entries()
        assert entry.kind == "internal" and "gave up after 2 deliveries" in entry.reason and "disk full" in entry.reason
        services.log.append_async = original  # type: ignore[method-assign]
        await publish(JOBS, job_line("start_job", start_body(42), 3), msg_id="m-42")
        await settled(services, JOBS, 2)
        assert set(jobs(services)) == {40, 42}
        assert counters(services, JOBS)["redelivered"] >= 1


async def test_message_jetstream_stops_redelivering_is_kept(
    tmp_path: Path, archive_root: Path, nats_url: str
) -> None:
    """Deliveries made to another consumer instance count too: when JetStream gives up, the message is kept."""
    settings = settings_for(tmp_path, archive_root, nats_url, "jetstream", **{"max-deliver": 2, "ack-wait": 1})
    assert settings.nats is not None
    stream, durable = settings.nats.jetstream.stream, f"{settings.nats.jetstream.durable}-job"
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[JOBS, NODES])
        await js.add_consumer(stream, durable_name=durable, ack_policy="explicit", ack_wait=1, max_deliver=2,
                              filter_subject=JOBS)
        line = job_line("start_job", start_body(60), 1)
        await js.publish(JOBS, line, headers={"Nats-Msg-Id": "m-60"})
        other = await js.pull_subscribe_bind(durable=durable, stream=stream)
        for _ in range(2):  # another instance takes both deliveries and never settles them
            [msg] = await other.fetch(1, timeout=5)
            assert msg.data == line
            await asyncio.sleep(1.2)
        async with running(settings) as services:
            await until(lambda: services.dead_letters is not None and services.dead_letters.total() == 1,
                        timeout=30, what="the message JetStream gave up on")
            assert services.dead_letters is not None
            [entry] = services.dead_letters.entries()
            assert (entry.kind, entry.msg_id, entry.raw) == ("internal", "m-60", line)
            assert "JetStream stopped redelivering after 2 deliveries" in entry.reason
            assert jobs(services) == {}
    finally:
        await nc.close()


async def test_core_failure_is_kept_as_a_dead_letter(tmp_path: Path, archive_root: Path, nats_url: str) -> None:
    async with running(settings_for(tmp_path, archive_root, nats_url, "core")) as services, \
            publisher(nats_url, "core") as publish:
        await wait_connected(services)

        async def refuse(*_: Any) -> Any:
            raise OSError("disk full")

        services.log.append_async = refuse  # type: ignore[method-assign]
        await publish(JOBS, job_line("start_job", start_body(50), 1))
        await until(lambda: services.dead_letters is not None and services.dead_letters.total() == 1,
                    what="internal dead letter")
        assert services.dead_letters is not None
        [entry] = services.dead_letters.entries()
        assert entry.kind == "internal" and "disk full" in entry.reason


@pytest.mark.parametrize("mode", MODES)
async def test_starts_while_nats_is_down_and_connects_when_it_comes_up(
    mode: str, tmp_path: Path, archive_root: Path, nats_server_factory: Callable[..., NatsServer]
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    async with running(settings_for(tmp_path, archive_root, url, mode)) as services:
        assert services.nats is not None
        await until(lambda: services.nats is not None and services.nats.status.state == "connect failed",
                    what="a failed connection")
        assert services.nats.status.last_error
        server = await asyncio.to_thread(nats_server_factory, port)
        await wait_connected(services)
        async with publisher(url, mode) as publish:
            await publish(JOBS, job_line("start_job", start_body(60), 1))
            await settled(services, JOBS, 1)
        # The server goes away and comes back on the same port (and, for JetStream, the same store).
        await asyncio.to_thread(server.stop)
        await until(lambda: services.nats is not None and services.nats.status.state != "connected",
                    what="disconnect")
        await asyncio.to_thread(nats_server_factory, port)
        await wait_connected(services)
        async with publisher(url, mode) as publish:
            await publish(JOBS, job_line("start_job", start_body(61), 2))
            await settled(services, JOBS, 2)
        assert set(jobs(services)) == {60, 61}
        assert services.nats.status.connects == 2


@pytest.mark.parametrize("mode", MODES)
async def test_queue_group_shares_messages(mode: str, tmp_path: Path, archive_root: Path, nats_url: str) -> None:
    """Two consumers on one log (core: one queue group; JetStream: one durable) split the work, apply all once."""
    # Small pulls, so that both JetStream consumers take turns instead of one grabbing everything.
    one = settings_for(tmp_path, archive_root, nats_url, mode, **{"fetch-batch": 5})
    async with running(one) as first:
        second_settings = one.model_copy(update={"main": one.main.model_copy(update={"db": str(tmp_path / "b.db")})})
        async with running(second_settings) as second:
            # The second process shares the first one's log file: what either applies lands once.
            await wait_connected(first)
            await wait_connected(second)
            async with publisher(nats_url, mode) as publish:
                for i in range(200):
                    await publish(JOBS, job_line("start_job", start_body(1000 + i), i))
            def total() -> int:
                return sum(counters(s, JOBS)["applied"] + counters(s, JOBS)["duplicate"] for s in (first, second))
            await until(lambda: total() >= 200, what="200 lines between two consumers")
            assert counters(first, JOBS)["applied"] > 0 and counters(second, JOBS)["applied"] > 0
            await first.visible(first.log.head())
            assert len(jobs(first)) == 200


async def test_prometheus_scrape_shows_nats_intake_and_metric_subscriber(
        tmp_path: Path, archive_root: Path, nats_url: str) -> None:
    """What `/metrics` reads from the real NATS intake and the metric store's subscriber (api.prometheus)."""
    base = settings_for(tmp_path, archive_root, nats_url, "core")
    subscription = NatsSubscription.model_validate({"subscribe-to": "hpc-metrics", "cluster-tag": "fritz"})
    settings = base.model_copy(update={"metric_store": base.metric_store.model_copy(
        update={"nats_subscriptions": (subscription,)})})
    async with running(settings) as services, publisher(nats_url, "core") as publish:
        await wait_connected(services)
        assert services.metric_nats is not None
        await until(lambda: services.metric_nats is not None and services.metric_nats.counters["connected"],
                    what="metric subscriber connected")
        await publish(JOBS, job_line("start_job", start_body(21), 1))
        await publish("hpc-metrics", f"cpu_load,hostname=f0101,type=node value=1.5 {START + 60}".encode())
        await settled(services, JOBS, 1)
        await until(lambda: services.metric_nats is not None and services.metric_nats.counters["messages"] >= 1,
                    what="metric message received")
        reads = ReadPool(settings.reads)
        try:
            text_format = await asyncio.to_thread(AppMetrics(services, reads).exposition)
        finally:
            reads.close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text_format.decode()) for s in family.samples}
    assert samples[("ccstream_nats_connected", ())] == 1
    assert samples[("ccstream_nats_subscribed", ())] == 1
    assert samples[("ccstream_nats_received_total", (("subject", JOBS),))] == 1
    assert samples[("ccstream_nats_applied_total", (("subject", JOBS),))] == 1
    assert samples[("ccstream_nats_received_total", (("subject", NODES),))] == 0
    assert samples[("ccstream_metricstore_nats_connected", ())] == 1
    assert samples[("ccstream_metricstore_nats_messages_total", ())] == 1

"""Interpreting NATS messages (pure) and applying them through the real intakes, refusals included."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streams.clusters import ClusterRegistry
from streams.deadletter import DeadLetterStore
from streams.events import derived_event_id
from streams.events.bounds import MESSAGE_KEPT
from streams.ingest.intake import JobIntake
from streams.ingest.nats.messages import REJECTION_KINDS, Command, Delivery, Refusal, interpret
from streams.ingest.nats.processor import NatsProcessor, retry_dead_letter
from streams.ingest.nodestate import NodeStateIntake
from streams.log import MemoryEventLog
from tests.ingest.conftest import EXAMPLES, START, job_line, node_line, start_body, stop_body

JOB = Delivery(subject="cc.job.event", channel="job", received_at=1.0)
NODE = Delivery(subject="cc.node.state", channel="node", received_at=1.0)

#: One message per refusal kind an intake-free check can detect: (kind, delivery, data, fragment).
REFUSED_BEFORE_INTAKE = [
    ("empty", JOB, b"  \n", "empty message"),
    ("malformed", JOB, b"job,function=start_job event=", "not line protocol: line 1, column 30"),
    ("malformed", JOB, b'job event="\xff" 1', "not valid UTF-8"),
    ("unexpected_measurement", JOB, b'nodestate event="{}" 1', "unexpected measurement 'nodestate'"),
    ("unexpected_measurement", NODE, b'job,function=start_job event="{}" 1', "expected 'nodestate'"),
    ("not_event", JOB, b"job,function=start_job value=1i 1", "no string field 'event'"),
    ("missing_function", JOB, b'job event="{}" 1', "missing the tag 'function'"),
    ("unknown_function", JOB, b'job,function=kill_job event="{}" 1', "unknown job event function 'kill_job'"),
    ("invalid_json", JOB, b'job,function=start_job event="{nope" 1', "not valid JSON"),
    ("invalid_json", NODE, b'nodestate event="[1]" 1', "must hold a JSON object, not list"),
]


@pytest.mark.parametrize(("kind", "delivery", "data", "fragment"), REFUSED_BEFORE_INTAKE)
def test_refusals_before_intake(kind: str, delivery: Delivery, data: bytes, fragment: str) -> None:
    [item] = interpret(data, delivery)
    assert isinstance(item, Refusal) and item.kind == kind and kind in REJECTION_KINDS
    assert fragment in item.reason


def test_reference_lines_become_commands() -> None:
    start, stop = interpret((EXAMPLES / "nats-job-events.lp").read_bytes(), JOB)
    assert isinstance(start, Command) and start.function == "start_job" and start.body["jobId"] == 398764
    assert start.observed_at == 1675954353 and start.event_id is None  # content-derived by the intake
    assert isinstance(stop, Command) and stop.function == "stop_job" and stop.number == 2
    [node] = interpret((EXAMPLES / "nats-nodestate.lp").read_bytes(), NODE)
    assert isinstance(node, Command) and node.function == "nodestate" and node.event_id is not None


def test_event_ids_follow_the_message_identity() -> None:
    named = Delivery(subject="s", channel="job", msg_id="m-1")
    [cmd] = interpret(job_line("start_job", start_body(1)), named)
    assert isinstance(cmd, Command) and cmd.event_id == derived_event_id("nats-msg", "m-1", 1)
    assert named.line_key(2) == "msg:m-1:2"
    stored = Delivery(subject="s", channel="node", stream_seq=("S", 7))
    assert stored.line_key(1) == "seq:S:7:1"
    [a] = interpret(node_line({"cluster": "fritz", "nodes": []}), stored)
    [b] = interpret(node_line({"cluster": "fritz", "nodes": []}), Delivery(subject="s", channel="node"))
    assert isinstance(a, Command) and a.event_id == derived_event_id("nats-seq", "S", 7, 1)
    assert isinstance(b, Command) and b.event_id is None  # core NATS, no timestamp: a fresh id
    [c] = interpret(node_line({"cluster": "fritz", "nodes": []}, ts=5), Delivery(subject="s", channel="node"))
    [d] = interpret(node_line({"cluster": "fritz", "nodes": []}, ts=5), Delivery(subject="s", channel="node"))
    assert isinstance(c, Command) and isinstance(d, Command) and c.event_id == d.event_id is not None


@pytest.fixture
def processor(tmp_path: Path, clusters: ClusterRegistry) -> NatsProcessor:
    log = MemoryEventLog()
    return NatsProcessor(JobIntake(log, clusters), NodeStateIntake(log, clusters), DeadLetterStore(tmp_path / "r.db"))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_every_intake_refusal_is_kept_with_its_kind(processor: NatsProcessor) -> None:
    lines = [
        job_line("start_job", start_body(1), 1),                                      # applied
        job_line("start_job", start_body(1), 1),                                      # duplicate
        job_line("start_job", start_body(1, START + 60, user="bob"), 2),              # conflict (24 h window)
        job_line("start_job", {**start_body(2), "bogus": 1}, 3),                      # unknown_field
        job_line("start_job", start_body(3, cluster="nope"), 4),                      # invalid
        job_line("stop_job", {"jobId": 99, "stopTime": START + 10}, 5),               # not_found (no cluster)
        job_line("stop_job", stop_body(1, START + 100), 6),                           # applied
        job_line("stop_job", stop_body(1, START + 200), 7),                           # conflict (stopped)
        job_line("stop_job", stop_body(5, START + 100), 8),                           # applied (parked)
        node_line({"cluster": "fritz", "nodes": [{"hostname": "f0101", "states": ["idle"]}]}, 9),
    ]
    data = b"\n".join(lines)
    delivery = Delivery(subject="cc.job.event", channel="job", received_at=1.0)
    outcomes = run(processor.process(data, delivery))
    summary = [(o.number, o.status, o.kind) for o in outcomes]
    assert summary == [
        (1, "applied", ""), (2, "duplicate", ""), (3, "rejected", "conflict"), (4, "rejected", "unknown_field"),
        (5, "rejected", "invalid"), (6, "rejected", "not_found"), (7, "applied", ""), (8, "rejected", "conflict"),
        (9, "applied", ""), (10, "rejected", "unexpected_measurement"),
    ]
    entries = processor.dead_letters.entries()
    assert [(e.line, e.kind) for e in entries] == [(3, "conflict"), (4, "unknown_field"), (5, "invalid"),
                                                    (6, "not_found"), (8, "conflict"),
                                                    (10, "unexpected_measurement")]
    assert entries[1].raw == lines[3] and "json: unknown field 'bogus'" in entries[1].reason
    assert "no such cluster: nope" in entries[2].reason
    assert "already been stopped" in entries[4].reason


def test_redelivered_rejections_are_kept_once(processor: NatsProcessor) -> None:
    delivery = Delivery(subject="cc.job.event", channel="job", stream_seq=("S", 3), received_at=1.0)
    for _ in range(3):
        run(processor.process(b'job,function=nope event="{}" 1', delivery))
    assert processor.dead_letters.total() == 1


def test_retry_after_the_cause_is_gone(processor: NatsProcessor) -> None:
    delivery = Delivery(subject="cc.job.event", channel="job", msg_id="m-7", received_at=1.0)
    run(processor.process(job_line("stop_job", {"jobId": 7, "stopTime": START + 50}, 1), delivery))
    [entry] = processor.dead_letters.entries()
    assert entry.kind == "not_found" and entry.msg_id == "m-7" and entry.line == 1
    result, _ = run(retry_dead_letter(processor, entry.id))
    assert result == "rejected" and processor.dead_letters.get(entry.id).attempts == 2  # type: ignore[union-attr]
    run(processor.jobs.start_job(start_body(7), source="test"))
    result, outcomes = run(retry_dead_letter(processor, entry.id))
    assert result == "resolved" and outcomes[0].status == "applied"
    resolved = processor.dead_letters.get(entry.id)
    assert resolved is not None and resolved.status == "resolved" and "line 1: applied" in (resolved.resolution or "")
    # The retried stop has the event id the original message would have made.
    assert processor.jobs.log.get(derived_event_id("nats-msg", "m-7", 1)) is not None
    assert run(retry_dead_letter(processor, entry.id))[0] == "already resolved"
    with pytest.raises(KeyError):
        run(retry_dead_letter(processor, 999))


def test_a_message_over_the_size_limit_is_dead_lettered_naming_the_limit_and_not_applied(
        processor: NatsProcessor) -> None:
    data = b"\n".join(job_line("start_job", start_body(n), n) for n in range(1, 40))
    limit = len(data) - 1
    items = interpret(data, JOB, max_bytes=limit)
    [refusal] = items
    assert isinstance(refusal, Refusal) and refusal.kind == "too_large" and "too_large" in REJECTION_KINDS
    assert f"message of {len(data)} bytes is larger than the limit of {limit} bytes (MESSAGE_MAX)" in refusal.reason
    outcomes = run(processor.process(data, JOB, items))
    assert [(o.status, o.kind) for o in outcomes] == [("rejected", "too_large")]
    assert processor.jobs.log.head() == 0, "nothing of it applied"
    [entry] = processor.dead_letters.entries()
    assert entry.kind == "too_large" and f"{limit} bytes" in entry.reason
    assert all(isinstance(item, Command) for item in interpret(data, JOB, max_bytes=len(data)))


def test_only_the_beginning_of_an_over_size_message_is_kept() -> None:
    data = b"x" * (MESSAGE_KEPT * 3)
    [refusal] = interpret(data, JOB, max_bytes=MESSAGE_KEPT)
    assert isinstance(refusal, Refusal) and refusal.raw == data[:MESSAGE_KEPT]

"""The simulated scheduler and node agents: deterministic, realistic, and readable by the metric store."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from metricstore.settings import MetricStoreSettings
from metricstore.store import MetricStore
from replay.simulator.adapter import nats_job_line, start_payload, stop_payload
from replay.simulator.metrics import NodeAgents
from replay.simulator.model import Ended, Scheduler, Started
from replay.simulator.topology import Machine, machine_from_cluster
from streams.ingest.lineprotocol import parse_line
from streams.ingest.requests import parse_start, parse_stop

TEMPLATES = Path(__file__).resolve().parents[2] / "configs" / "clusters"
T0 = 1_700_000_000


def machine(name: str, nodes: int) -> Machine:
    return machine_from_cluster(json.loads((TEMPLATES / f"{name}.json").read_text()), nodes)


def run(seed: int, hours: int = 48, name: str = "atlas", nodes: int = 32) -> list[Started | Ended]:
    return Scheduler(machine(name, nodes), seed=seed, start=T0).advance(T0 + hours * 3600)


def key(e: Started | Ended) -> tuple[object, ...]:
    return (type(e).__name__, e.job.job_id, e.at, e.job.hosts, e.job.profile)


def test_same_seed_same_events_other_seed_other_events() -> None:
    assert [key(e) for e in run(7)] == [key(e) for e in run(7)]
    assert [key(e) for e in run(7)] != [key(e) for e in run(8)]


def test_the_machine_fills_up_and_jobs_wait() -> None:
    scheduler = Scheduler(machine("atlas", 16), seed=3, start=T0, jobs_per_hour=30)
    scheduler.advance(T0 + 24 * 3600)
    assert scheduler.queue, "a queue forms when more is submitted than fits"
    busy = {h for j in scheduler.running_jobs() for h in j.hosts}
    assert len(busy) >= 12


def test_outcomes_sizes_sharing_arrays_and_requeues() -> None:
    events = run(11, hours=24 * 7, nodes=64)
    ended = [e for e in events if isinstance(e, Ended)]
    states = Counter(e.state for e in ended)
    assert states["completed"] > len(ended) / 2
    assert {"failed", "timeout", "out-of-memory", "cancelled", "node_fail"} <= set(states)
    started = [e.job for e in events if isinstance(e, Started)]
    assert any(j.num_nodes == 1 for j in started) and any(j.num_nodes >= 8 for j in started)
    assert any(j.shared == "multi_user" for j in started)
    assert any(j.array_job_id for j in started)
    runs = Counter(j.job_id for j in started)
    requeued = [job_id for job_id, n in runs.items() if n > 1]
    assert requeued, "node failures requeue the job under the same id"
    starts = sorted(j.start_time for j in started if j.job_id == requeued[0])
    assert starts[0] != starts[1]
    # A job's start always comes before its end, and walltime is never exceeded.
    for e in ended:
        assert e.at >= e.job.start_time and e.job.duration <= e.job.walltime


def test_gpu_jobs_hold_accelerators_next_to_their_threads() -> None:
    started = [e.job for e in run(5, name="nova", nodes=8, hours=48) if isinstance(e, Started)]
    shared = [j for j in started if j.shared != "none"]
    assert shared
    for job in shared:
        host = job.hosts[0]
        assert len(job.accelerators[host]) == 4 and len(job.hwthreads[host]) == 32


def test_payloads_pass_the_intake_validation_and_the_nats_encoding_round_trips() -> None:
    m = machine("nova", 8)
    events = run(2, name="nova", nodes=8, hours=12)
    first = next(e for e in events if isinstance(e, Started))
    body = start_payload(first.job, m)
    request = parse_start(json.dumps(body))
    assert request.numAcc == sum(len(a) for a in first.job.accelerators.values())
    assert "srun" in body["metaData"]["jobScript"] or "python" in body["metaData"]["jobScript"]
    line = parse_line(nats_job_line("start_job", body, first.at))
    assert line.tags["function"] == "start_job" and json.loads(line.fields["event"]) == body
    end = next(e for e in events if isinstance(e, Ended))
    assert parse_stop(json.dumps(stop_payload(end.job, m, end.state, end.at))).stopTime == end.at


@pytest.mark.parametrize("detail", ["full", "node"])
def test_metric_lines_are_accepted_by_the_metric_store(tmp_path: Path, detail: str) -> None:
    m = machine("nova", 4)
    scheduler = Scheduler(m, seed=1, start=T0)
    scheduler.advance(T0 + 4 * 3600)
    lines = NodeAgents(m, 1, detail).lines(T0 + 4 * 3600, scheduler.running_jobs())
    settings = MetricStoreSettings.model_validate({"checkpoints": {"directory": str(tmp_path)}})
    cluster = json.loads((TEMPLATES / "nova.json").read_text())
    store = MetricStore(settings, [cluster], clock=lambda: T0 + 4 * 3600 + 10)
    report = store.ingest_lines("\n".join(lines).encode(), None)
    assert report.ok, report.message()
    assert report.as_dict()["accepted"] == len(lines)
    if detail == "full":
        scopes = {line.split("type=")[1].split(",")[0] for line in lines}
        assert scopes == {"hwthread", "socket", "node", "accelerator"}

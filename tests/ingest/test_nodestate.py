"""Node states: cc-backend's state priority, the intake's resolution, the projection and its queries."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from projections import node_queries, schema
from projections.db import writer_engine
from projections.jobdb import JobDatabaseProjection
from projections.node_queries import StatesTimed, counts_over_time
from streams.clusters import ClusterRegistry
from streams.ingest.nodestate import NodeStateIntake, NoMetricsHealth, determine_state
from streams.ingest.outcomes import Invalid
from streams.log import MemoryEventLog
from streams.runtime import AgentRunner
from tests.ingest.conftest import EXAMPLES

FRITZ_MAIN_METRICS = [
    "clock", "cpu_load", "cpu_power", "cpu_user", "flops_any", "flops_dp", "flops_sp", "ib_recv", "ib_recv_pkts",
    "ib_xmit", "ib_xmit_pkts", "ipc", "mem_bw", "mem_power", "mem_used", "nfs4_read", "nfs4_total", "nfs4_write",
    "vectorization_ratio",
]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["ALLOCATED"], "allocated"),
        (["mixed", "allocated"], "allocated"),
        (["RESERVED", "IDLE"], "reserved"),
        (["IDLE", "DOWN"], "down"),
        (["down", "Idle"], "down"),
        (["IDLE", "DRAIN"], "idle"),
        (["IDLE", "MIXED"], "idle"),
        (["DOWN", "NOT_RESPONDING"], "down"),
        (["DOWN", "MIXED"], "down"),
        (["MIXED"], "mixed"),
        (["DRAIN"], "unknown"),
        ([], "unknown"),
    ],
)
def test_scheduler_state_priority(states: list[str], expected: str) -> None:
    assert determine_state(states) == expected


class FakeMetricStore:
    """A real in-memory implementation of the health port with fixed answers."""

    def __init__(self, answers: dict[str, tuple[str, dict[str, Any]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def node_health(self, cluster: str, hostname: str) -> tuple[str, dict[str, Any]]:
        self.asked.append(hostname)
        return self.answers.get(hostname, ("full", {"missing": [], "degraded": []}))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_rest_example_resolves_states_subclusters_and_health(clusters: ClusterRegistry) -> None:
    log = MemoryEventLog()
    health = FakeMetricStore({"f0650": ("partial", {"missing": ["ib_recv"], "degraded": ["mem_bw"]})})
    intake = NodeStateIntake(log, clusters, health)
    accepted = run(intake.report((EXAMPLES / "rest-nodestate.request.json").read_bytes(), source="test",
                                 observed_at=1_700_000_000))
    [event] = log.read()
    assert accepted.position == event.position and event.type == "node.states_reported"
    assert event.subject == "nodes/fritz" and event.data["timeStamp"] == 1_700_000_000
    nodes = {n["hostname"]: n for n in event.data["nodes"]}
    assert {h: n["nodeState"] for h, n in nodes.items()} == {
        "f0649": "allocated", "f0650": "mixed", "f0651": "idle", "f0652": "down",
    }
    assert all(n["subCluster"] == "main" for n in nodes.values())
    assert nodes["f0650"]["healthState"] == "partial"
    assert nodes["f0650"]["healthMetrics"] == {"missing": ["ib_recv"], "degraded": ["mem_bw"]}
    # Down nodes are not checked (cc-backend): no metrics are expected from them.
    assert nodes["f0652"]["healthState"] == "full" and nodes["f0652"]["healthMetrics"] is None
    assert "f0652" not in health.asked
    assert nodes["f0651"]["states"] == ["IDLE", "DRAIN"] and nodes["f0649"]["cpusAllocated"] == 72


def test_without_metric_source_nodes_are_failed_with_every_metric_missing(clusters: ClusterRegistry) -> None:
    assert NoMetricsHealth(clusters).node_health("fritz", "f0649") == (
        "failed", {"missing": FRITZ_MAIN_METRICS, "degraded": []},
    )
    log = MemoryEventLog()
    run(NodeStateIntake(log, clusters).report(
        {"cluster": "fritz", "nodes": [{"hostname": "f0649", "states": ["idle"]}]}, source="t", observed_at=1,
    ))
    [node] = log.read()[0].data["nodes"]
    assert node["healthState"] == "failed" and node["healthMetrics"]["missing"] == FRITZ_MAIN_METRICS


def test_unknown_hosts_are_reported_not_stored(clusters: ClusterRegistry, caplog: pytest.LogCaptureFixture) -> None:
    log = MemoryEventLog()
    body = {"cluster": "fritz", "nodes": [{"hostname": "x0001", "states": ["idle"]},
                                          {"hostname": "f0101", "states": ["idle"]}]}
    run(NodeStateIntake(log, clusters).report(body, source="t", observed_at=1))
    data = log.read()[0].data
    assert [n["hostname"] for n in data["nodes"]] == ["f0101"] and data["unknownHosts"] == ["x0001"]
    assert "x0001" in caplog.text


def test_a_broken_health_port_does_not_lose_the_report(clusters: ClusterRegistry) -> None:
    class Broken:
        def node_health(self, cluster: str, hostname: str) -> tuple[str, dict[str, Any]]:
            raise ConnectionError("metric store away")

    log = MemoryEventLog()
    run(NodeStateIntake(log, clusters, Broken()).report(
        {"cluster": "fritz", "nodes": [{"hostname": "f0101", "states": ["idle"]}]}, source="t", observed_at=1,
    ))
    assert log.read()[0].data["nodes"][0]["healthState"] == "failed"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "parsing request body failed"),
        (b'{"cluster": "fritz", "nodes": [], "extra": 1}', "json: unknown field 'extra'"),
        (b'{"cluster": "fritz", "nodes": [{"hostname": "f0101", "cpusTotal": 3}]}',
         "unknown field 'nodes.0.cpusTotal'"),
        (b'{"cluster": "fritz", "nodes": [{"hostname": "f0101", "cpusAllocated": "3"}]}', "cpusAllocated"),
        (b'{"nodes": [{"hostname": "f0101"}]}', "the field 'cluster' is required"),
        (b'{"cluster": "nope", "nodes": [{"hostname": "f0101"}]}', "no such cluster: nope"),
        (b'{"cluster": "fritz", "nodes": [{"states": ["idle"]}]}', "'nodes.0.hostname' is required"),
    ],
)
def test_bad_reports_are_refused_precisely(clusters: ClusterRegistry, body: bytes, fragment: str) -> None:
    with pytest.raises(Invalid) as info:
        run(NodeStateIntake(MemoryEventLog(), clusters).report(body, source="t", observed_at=1))
    assert fragment in info.value.message


def test_an_empty_report_records_nothing(clusters: ClusterRegistry) -> None:
    log = MemoryEventLog()
    accepted = run(NodeStateIntake(log, clusters).report({"cluster": "fritz", "nodes": []}, source="t", observed_at=1))
    assert accepted.position == 0 and log.read() == []


def test_a_named_report_is_recorded_once(clusters: ClusterRegistry) -> None:
    log = MemoryEventLog()
    intake = NodeStateIntake(log, clusters)
    body = {"cluster": "fritz", "nodes": [{"hostname": "f0101", "states": ["idle"]}]}
    first = run(intake.report(body, source="t", observed_at=1, event_id="e-1"))
    again = run(intake.report(body, source="t", observed_at=1, event_id="e-1"))
    assert again.repeated and again.position == first.position and len(log.read()) == 1


# -- projection and queries ------------------------------------------------------------------------


def _report(intake: NodeStateIntake, at: int, states: dict[str, str]) -> None:
    nodes = [{"hostname": h, "states": [s], "jobsRunning": 1 if s == "allocated" else 0} for h, s in states.items()]
    run(intake.report({"cluster": "fritz", "nodes": nodes}, source="t", observed_at=at))


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return writer_engine(tmp_path / "job.db")


def _project(log: MemoryEventLog, engine: Engine) -> None:
    AgentRunner(log, JobDatabaseProjection(engine)).run_until_caught_up()


def test_projection_keeps_history_and_one_node_row_per_host(clusters: ClusterRegistry, engine: Engine) -> None:
    log = MemoryEventLog()
    intake = NodeStateIntake(log, clusters, FakeMetricStore({}))
    _report(intake, 100, {"f0101": "idle", "f0102": "idle"})
    _report(intake, 200, {"f0101": "allocated"})
    _project(log, engine)
    with engine.connect() as conn:
        nodes = conn.execute(select(schema.node.c.hostname, schema.node.c.subcluster)).all()
        rows = conn.execute(
            select(schema.node_state.c.time_stamp, schema.node_state.c.node_state, schema.node_state.c.health_state,
                   schema.node_state.c.health_metrics, schema.node_state.c.jobs_running)
            .order_by(schema.node_state.c.id)
        ).all()
    assert sorted(nodes) == [("f0101", "main"), ("f0102", "main")]
    assert [(r[0], r[1]) for r in rows] == [(100, "idle"), (100, "idle"), (200, "allocated")]
    assert rows[2][2] == "full" and orjson.loads(rows[2][3]) == {"missing": [], "degraded": []} and rows[2][4] == 1


def test_current_state_of_every_node(clusters: ClusterRegistry, engine: Engine) -> None:
    log = MemoryEventLog()
    intake = NodeStateIntake(log, clusters, FakeMetricStore({"f0103": ("partial", {"missing": ["ipc"]})}))
    _report(intake, 100, {"f0101": "idle", "f0102": "idle", "f0103": "mixed"})
    _report(intake, 200, {"f0101": "allocated", "f2157": "down"})
    _report(intake, 300, {"f0102": "down"})
    _project(log, engine)
    with engine.connect() as conn:
        now = node_queries.current_states(conn, "fritz")
        earlier = node_queries.current_states(conn, "fritz", at=150)
        spr = node_queries.current_states(conn, "fritz", subcluster="spr1tb")
    assert [(n["hostname"], n["schedulerState"], n["timeStamp"]) for n in now] == [
        ("f0101", "allocated", 200), ("f0102", "down", 300), ("f0103", "mixed", 100), ("f2157", "down", 200),
    ]
    assert now[2]["healthState"] == "partial" and now[2]["healthData"] == {"missing": ["ipc"]}
    assert now[0]["subCluster"] == "main" and now[3]["subCluster"] == "spr1tb" and now[0]["jobsRunning"] == 1
    assert [(n["hostname"], n["schedulerState"]) for n in earlier] == [
        ("f0101", "idle"), ("f0102", "idle"), ("f0103", "mixed"),
    ]
    assert [n["hostname"] for n in spr] == ["f2157"]


def test_state_counts_over_time(clusters: ClusterRegistry, engine: Engine) -> None:
    log = MemoryEventLog()
    intake = NodeStateIntake(log, clusters, FakeMetricStore({}))
    _report(intake, 100, {"f0101": "idle", "f0102": "idle", "f0103": "idle"})
    _report(intake, 200, {"f0101": "allocated"})
    _report(intake, 300, {"f0102": "down", "f0103": "allocated"})
    _report(intake, 400, {"f0101": "idle"})
    _project(log, engine)
    with engine.connect() as conn:
        whole = node_queries.state_history(conn, "fritz", 0, 1000)
        window = node_queries.state_history(conn, "fritz", 150, 350)
        health = node_queries.state_history(conn, "fritz", 0, 1000, "health")
    assert whole == [
        StatesTimed("allocated", [0, 1, 2, 1], [100, 200, 300, 400]),
        StatesTimed("idle", [3, 2, 0, 1], [100, 200, 300, 400]),
        StatesTimed("down", [0, 0, 1, 1], [100, 200, 300, 400]),
    ]
    # The window starts from the census before it: f0102 and f0103 are still idle at 200.
    assert window == [
        StatesTimed("allocated", [1, 2], [200, 300]),
        StatesTimed("idle", [2, 0], [200, 300]),
        StatesTimed("down", [0, 1], [200, 300]),
    ]
    assert health == [StatesTimed("full", [3, 3, 3, 3], [100, 200, 300, 400])]


def test_counts_over_time_is_a_pure_sweep() -> None:
    assert counts_over_time({}, [], ["idle"]) == []
    result = counts_over_time({1: "idle"}, [(5, 2, "weird"), (5, 1, "down"), (9, 2, "idle")], ["idle", "down"])
    assert result == [
        StatesTimed("idle", [0, 1], [5, 9]),
        StatesTimed("down", [1, 1], [5, 9]),
        StatesTimed("weird", [1, 0], [5, 9]),
    ]

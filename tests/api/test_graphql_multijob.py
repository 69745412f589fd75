"""GraphQL queries over the metrics of many jobs and of nodes, on a real metric store fed with line protocol:
`jobsFootprints`, `rooflineHeatmap`, `jobsMetricStats`, running jobs' `histMetrics`, `nodeMetrics`,
`nodeMetricsList`, `clusterMetrics`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from api.graphql.multijob import roofline_tiles
from streams.events import job_subject, new_event
from tests.api.conftest import AppFactory, Tokens, job_body
from tests.api.gqlsupport import Gql

NOW = int(time.time())
START = NOW - 600
#: flops_any (GFlops/s) and mem_bw (GB/s) of the two hosts of the running job.
FLOPS = {"f0101": 100, "f0102": 300}
BANDWIDTH = 10
STEPS = 5


@pytest.fixture
def setup(make_client: AppFactory, tokens: Tokens) -> Iterator[tuple[Gql, dict[str, int]]]:
    """A running two-node job with metrics, and a finished job whose archived statistics are in the read model."""
    http = make_client({"archiver": {"enabled": False}})
    # at their native scopes on fritz: flops_any per hardware thread, mem_bw per socket (one of each here)
    lines = [f"{metric},cluster=fritz,hostname={host},{scope} value={value} {START + 60 * i + 30}"
             for i in range(STEPS) for host, flops in FLOPS.items()
             for metric, scope, value in (("flops_any", "type=hwthread,type-id=0", flops),
                                          ("mem_bw", "type=socket,type-id=0", BANDWIDTH))]
    assert http.post("/api/write/?cluster=fritz", content="\n".join(lines).encode(),
                     headers=tokens.headers()).status_code == 200
    running = job_body(jobId=1, startTime=START, numNodes=2, resources=[{"hostname": h} for h in FLOPS])
    finished = job_body(jobId=2, startTime=START - 7200, resources=[{"hostname": "f0103"}])
    ids = {}
    for name, body in (("running", running), ("finished", finished)):
        response = http.post("/api/jobs/start_job/", json=body, headers=tokens.headers())
        assert response.status_code == 201, response.text
        ids[name] = int(response.json()["id"])
    stop = {"jobId": 2, "cluster": "fritz", "startTime": START - 7200, "jobState": "completed",
            "stopTime": START - 3600}
    assert http.post("/api/jobs/stop_job/", json=stop, headers=tokens.headers()).status_code == 200
    services = http.app.state.services  # type: ignore[attr-defined]
    stats = {"flops_any": {"unit": {"base": "Flops/s", "prefix": "G"}, "avg": 50.0, "min": 10.0, "max": 90.0}}
    services.log.append([new_event("job.archived", job_subject("fritz", 2, START - 7200),
                                   {"statistics": stats, "footprint": {"flops_any_avg": 50.0}, "location": "x"},
                                   source="test")])
    assert services.runner.wait_for(services.log.head(), timeout=60)
    yield Gql(http, tokens), ids


def test_footprints_of_a_running_and_a_finished_job(setup: tuple[Gql, dict[str, int]]) -> None:
    client, _ = setup
    data = client.data('query { jobsFootprints(metrics: ["flops_any", "mem_bw"]) { timeWeights { nodeHours accHours'
                       ' coreHours } metrics { metric data } } }')["jobsFootprints"]
    assert data["metrics"] == [{"metric": "flops_any", "data": [400.0, 50.0]},  # Σ of the node averages; archived
                               {"metric": "mem_bw", "data": [20.0, None]}]  # no mem_bw in the archived statistics
    weights = data["timeWeights"]
    assert weights["nodeHours"][1] == 60.0  # node-minutes, as cc-backend: 3600 s on one node
    assert weights["nodeHours"][0] >= 20.0 and weights["accHours"] == [1.0, 1.0]


def test_the_roofline_counts_every_node_and_time_step(setup: tuple[Gql, dict[str, int]]) -> None:
    client, _ = setup
    tiles = client.data("query { rooflineHeatmap(filter: [], rows: 10, cols: 10, minX: 0.01, minY: 1.0, maxX: 1000,"
                        " maxY: 10000) }")["rooflineHeatmap"]
    # f0101: intensity 10 (x = 1), 100 GFlops/s (y = 2); f0102: 30 and 300 (x = 1.48, y = 2.48)
    assert tiles[5][6] == STEPS and tiles[6][6] == STEPS
    assert sum(map(sum, tiles)) == 2 * STEPS  # the finished job has no archive file: left out


def test_roofline_tiles_leave_out_what_lies_outside() -> None:
    tiles = roofline_tiles(np.array([100.0, np.nan, 1e9]), np.array([10.0, 1.0, 1.0]), 4, 4, (0.01, 1.0, 1000, 10000))
    assert tiles.sum() == 1 and tiles[2][2] == 1


def test_metric_statistics_of_every_job(setup: tuple[Gql, dict[str, int]]) -> None:
    client, _ = setup
    stats = client.data('query { jobsMetricStats(metrics: ["flops_any"]) { id jobId startTime numNodes'
                        ' stats { name data { min avg max } } } }')["jobsMetricStats"]
    assert [(s["jobId"], s["startTime"]) for s in stats] == [("2", START - 7200), ("1", START)]  # by start time
    assert stats[0]["stats"] == [{"name": "flops_any", "data": {"min": 10.0, "avg": 50.0, "max": 90.0}}]
    assert stats[1]["stats"] == [{"name": "flops_any", "data": {"min": 100.0, "avg": 200.0, "max": 300.0}}]


def test_metric_histograms_of_running_jobs_use_their_live_values(setup: tuple[Gql, dict[str, int]]) -> None:
    client, _ = setup
    [stats] = client.data('query { jobsStatistics(filter: [{state: ["running"]}], metrics: ["flops_any"])'
                          ' { histMetrics { metric stat data { bin count } } } }')["jobsStatistics"]
    [flops] = stats["histMetrics"]
    assert flops["stat"] is None and {d["bin"]: d["count"] for d in flops["data"] if d["count"]} == {1: 1}


def node_query(name: str, args: str, fields: str) -> str:
    return (f'query($from: Time!, $to: Time!) {{ {name}(cluster: "fritz", from: $from, to: $to{args})'
            f" {{ {fields} }} }}")


def window() -> dict[str, Any]:
    def rfc(t: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return {"from": rfc(START), "to": rfc(START + 60 * STEPS)}


def values(series: dict[str, Any]) -> list[float]:
    return [v for v in series["data"] if v is not None]


def test_node_metrics(setup: tuple[Gql, dict[str, int]]) -> None:
    client, _ = setup
    items = client.data(node_query("nodeMetrics", ', nodes: ["f0102", "f0101"], metrics: ["flops_any", "nope"]',
                                   "host nodeState metricHealth subCluster metrics { name scope metric { timestep"
                                   " series { hostname data } } }"), window())["nodeMetrics"]
    assert [i["host"] for i in items] == ["f0101", "f0102"]
    assert items[0]["nodeState"] == "" and items[0]["subCluster"] == "main"  # never reported: no state
    [flops] = items[1]["metrics"]
    assert flops["name"] == "flops_any" and flops["scope"] == "node" and flops["metric"]["timestep"] == 60
    assert values(flops["metric"]["series"][0]) == [300.0] * STEPS


def test_the_node_list_pages_through_nodes_never_reported(setup: tuple[Gql, dict[str, int]]) -> None:
    client, _ = setup
    args = (', subCluster: "", stateFilter: "notindb", nodeFilter: "F010", metrics: ["flops_any"],'
            " page: {itemsPerPage: 2, page: 1}")
    result = client.data(node_query("nodeMetricsList", args, "items { host metrics { name } } totalNodes"
                                    " hasNextPage"), window())["nodeMetricsList"]
    assert [i["host"] for i in result["items"]] == ["f0101", "f0102"]
    assert result["totalNodes"] == 9 and result["hasNextPage"] is True  # f0101 … f0109
    assert result["items"][0]["metrics"] == [{"name": "flops_any"}]


def test_cluster_metrics_sum_the_nodes_in_tera(setup: tuple[Gql, dict[str, int]]) -> None:
    client, _ = setup
    result = client.data(node_query("clusterMetrics", ', metrics: ["flops_any"]',
                                    "nodeCount metrics { name unit { base prefix } timestep data }"),
                         window())["clusterMetrics"]
    [flops] = result["metrics"]
    assert flops["unit"] == {"base": "Flops/s", "prefix": "T"}
    assert set(flops["data"]) <= {0.4, 0.0} and flops["data"].count(0.4) == STEPS  # (100 + 300) GFlops/s
    assert result["nodeCount"] >= 2


def test_node_metric_data_is_for_staff(setup: tuple[Gql, dict[str, int]]) -> None:
    client, _ = setup
    response = client.http.post("/query", json={"query": node_query("clusterMetrics", "", "nodeCount"),
                                                "variables": window()}, headers=client.tok.headers("user"))
    assert response.json()["errors"][0]["message"] == "you need to be administrator or support staff for this query"

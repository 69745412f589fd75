"""GraphQL node queries over node states reported through the REST API, as cc-slurm-adapter sends them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.api.gqlsupport import Gql, graphql_app
from tests.support.specs import find_specs

REPORT = orjson.loads((find_specs() / "examples" / "rest-nodestate.request.json").read_bytes())
NODE = "id hostname cluster subCluster jobsRunning cpusAllocated memoryAllocated gpusAllocated schedulerState"


@pytest.fixture(scope="module")
def gql(tmp_path_factory: pytest.TempPathFactory, closer: Any) -> Iterator[tuple[Gql, dict[int, int]]]:
    with graphql_app(tmp_path_factory, closer) as (client, ids):
        api = {"X-Auth-Token": client.tok.api}
        assert client.http.post("/api/nodestate/", json=REPORT, headers=api).status_code == 200
        later = {"cluster": "fritz", "nodes": [{**REPORT["nodes"][0], "states": ["IDLE"], "jobsRunning": 0,
                                                "cpusAllocated": 0}]}
        assert client.http.post("/api/nodestate/", json=later, headers=api).status_code == 200
        yield client, ids


def test_nodes_with_their_newest_state(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    data = client.data(f"query {{ nodes(filter: [{{cluster: {{eq: \"fritz\"}}}}]) {{ items {{ {NODE} }} count }} }}")
    items = data["nodes"]["items"]
    assert data["nodes"]["count"] == len(REPORT["nodes"]) == len(items)
    assert [n["hostname"] for n in items] == sorted(n["hostname"] for n in REPORT["nodes"])
    first = items[0]
    assert (first["hostname"], first["schedulerState"], first["jobsRunning"], first["cpusAllocated"]) == (
        "f0649", "idle", 0, 0)  # the later report
    assert items[1]["schedulerState"] == "mixed" and items[1]["memoryAllocated"] == 64000
    assert first["subCluster"] == "main" and isinstance(first["id"], str)
    only_idle = client.data('query { nodes(filter: [{schedulerState: "idle"}]) { items { hostname } } }')
    assert {n["hostname"] for n in only_idle["nodes"]["items"]} >= {"f0649"}
    by_name = client.data('query { nodes(filter: [{hostname: {startsWith: "f065"}}]) { count } }')
    assert by_name["nodes"]["count"] == len(REPORT["nodes"]) - 1


def test_nodes_with_meta_and_one_node(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    items = client.data("query { nodesWithMeta { items { id hostname metaData healthData } } }")["nodesWithMeta"][
        "items"]
    assert all(isinstance(n["metaData"], dict) and isinstance(n["healthData"], dict) for n in items)
    one = client.data(f'query {{ node(id: "{items[0]["id"]}") {{ hostname }} }}')["node"]
    assert one == {"hostname": items[0]["hostname"]}
    assert client.data('query { node(id: "999999") { hostname } }')["node"] is None


def test_state_counts_and_history(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    counts = client.data("query { nodeStates { state count } }")["nodeStates"]
    scheduler = {c["state"]: c["count"] for c in counts if c["state"] not in ("full", "partial", "failed")}
    health = {c["state"]: c["count"] for c in counts if c["state"] in ("full", "partial", "failed")}
    assert sum(scheduler.values()) == sum(health.values()) == len(REPORT["nodes"])
    assert scheduler["idle"] >= 2  # f0649 now, and f0651 (IDLE+DRAIN)
    timed = client.data('query { nodeStatesTimed(filter: [{timeStart: 0}], type: "node") { state counts times } }')
    rows = timed["nodeStatesTimed"]
    assert sum(sum(r["counts"]) for r in rows) == len(REPORT["nodes"]) + 1  # every report row, both reports
    assert all(len(r["counts"]) == len(r["times"]) and r["times"] == sorted(r["times"]) for r in rows)
    errors = client.errors('query { nodeStatesTimed(type: "weird") { state } }')
    assert errors[0]["message"] == "unknown Node State Query Type"


def test_node_data_is_for_admin_and_support(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    assert client.data("query { nodes { count } }", user="sam")["nodes"]["count"] == len(REPORT["nodes"])
    for user in ("alice", "mona", "adapter"):
        assert client.errors("query { nodes { count } }", user=user)[0]["message"] == "user has no or unknown roles"


def test_allocated_nodes_of_running_jobs(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    # job 3 is the only running job: one host of fritz's main subcluster
    assert client.data('query { allocatedNodes(cluster: "fritz") { name count } }', user="alice") == {
        "allocatedNodes": [{"name": "main", "count": 1}]}
    assert client.data('query { allocatedNodes(cluster: "alex") { name count } }')["allocatedNodes"] == []

"""`POST /query` queries: cc-backend's schema and the UI's own documents over a real app and real SQLite
files (tests/api/gqlsupport.py), every answer checked against values worked out by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse

from api.graphql.endpoint import executable_schema
from api.graphql.limits import MAX_COMPLEXITY, MAX_DEPTH, Cost, cost, over_limits
from tests.api.conftest import START
from tests.api.gqlsupport import Gql, graphql_app, token
from tests.support.specs import find_specs

SPECS = find_specs()


@pytest.fixture(scope="module")
def gql(tmp_path_factory: pytest.TempPathFactory, closer: Any) -> Iterator[tuple[Gql, dict[int, int]]]:
    with graphql_app(tmp_path_factory, closer) as app:
        yield app


INIT = """query { clusters { name partitions subClusters { name nodes numberOfNodes processorType socketsPerNode
  coresPerSocket threadsPerCore flopRateScalar{unit{base prefix} value} flopRateSimd{unit{base prefix} value}
  memoryBandwidth{unit{base prefix} value}
  topology{ node socket memoryDomain core accelerators{id} }
  metricConfig{ name unit{base prefix} scope aggregation timestep peak normal caution alert lowerIsBetter }
  footprint } }
  tags { id name type scope }
  globalMetrics { name scope footprint unit{base prefix} availability{cluster subClusters} }
}"""

JOB_LIST = """query($filter:[JobFilter!]!, $sorting:OrderByInput!, $paging:PageRequest!) {
  jobs(filter: $filter, order: $sorting, page: $paging) { items { id jobId user project cluster subCluster
  startTime duration numNodes numHWThreads numAcc walltime resources{hostname} SMT shared partition arrayJobId
  monitoringStatus state tags{id type name scope} userData{name} metaData footprint{name stat value} }
  count hasNextPage } }"""

SORT_START = {"field": "startTime", "type": "col", "order": "DESC"}


def job_ids(gql: Gql, filters: list[dict[str, Any]], *, user: str = "boss",
            order: dict[str, Any] | None = None) -> list[int]:
    data = gql.data(JOB_LIST, {"filter": filters, "sorting": order or SORT_START,
                               "paging": {"itemsPerPage": -1, "page": 1}}, user=user)
    return [item["jobId"] for item in data["jobs"]["items"]]


def test_the_served_schema_is_cc_backends() -> None:
    ours = (Path(__file__).resolve().parents[2] / "api" / "schema.graphqls").read_text()
    assert ours == (SPECS / "api" / "schema.graphqls").read_text()


def test_every_query_and_mutation_has_a_resolver() -> None:
    schema = executable_schema()
    assert schema.mutation_type is not None
    for kind in (schema.query_type, schema.mutation_type):
        for name, field in kind.fields.items():
            assert field.resolve is not None, f"{name} has no resolver: it would answer null"


def test_the_init_query_of_every_page(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    data = client.data(INIT)
    clusters = {c["name"]: c for c in data["clusters"]}
    assert set(clusters) == {"fritz", "alex"}
    assert clusters["fritz"]["partitions"] == ["multinode", "singlenode"]
    assert clusters["alex"]["partitions"] == ["a100", "a40"]
    fritz = {sc["name"]: sc for sc in clusters["fritz"]["subClusters"]}
    # main: ten ranges of 88 hosts (f0101-0188 to f1001-1088) and two of 56 (f1101-1156, f1201-1256)
    assert fritz["main"]["numberOfNodes"] == 992
    assert fritz["spr1tb"]["numberOfNodes"] == 64
    assert fritz["main"]["socketsPerNode"] == 2 and fritz["main"]["coresPerSocket"] == 36
    assert fritz["main"]["flopRateSimd"]["unit"]["base"] == "F/s"
    names = {m["name"] for m in fritz["main"]["metricConfig"]}
    assert {"cpu_load", "flops_any", "mem_bw"} <= names
    assert set(fritz["main"]["footprint"]) <= names and fritz["main"]["footprint"]
    # admin sees global and admin tags, never alice's private one
    assert sorted((t["type"], t["name"], t["scope"]) for t in data["tags"]) == [
        ("app", "gromacs", "global"), ("review", "slow", "admin")]
    flops = next(m for m in data["globalMetrics"] if m["name"] == "flops_any")
    assert {a["cluster"] for a in flops["availability"]} == {"fritz", "alex"}


def test_a_user_sees_global_and_own_tags_only(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    tags = client.data("query { tags { type name scope } }", user="alice")["tags"]
    assert sorted((t["type"], t["name"], t["scope"]) for t in tags) == [
        ("app", "gromacs", "global"), ("note", "mine", "alice")]


def test_the_job_list_page_as_the_ui_sends_it(gql: tuple[Gql, dict[int, int]]) -> None:
    client, ids = gql
    data = client.data(JOB_LIST, {"filter": [{"cluster": {"eq": "fritz"}}], "sorting": SORT_START,
                                  "paging": {"itemsPerPage": 2, "page": 1}})
    jobs = data["jobs"]
    assert [j["jobId"] for j in jobs["items"]] == [3, 2]
    assert jobs["count"] == 3 and jobs["hasNextPage"] is True
    running = jobs["items"][0]
    assert running["id"] == str(ids[3]) and running["state"] == "running" and running["shared"] == "multi_user"
    assert running["startTime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + 200))
    assert running["duration"] >= int(time.time()) - (START + 200) - 5
    assert running["resources"] == [{"hostname": "f0101"}]
    assert running["metaData"] == {"jobName": "bench_a"} and running["userData"] == {"name": "Bob"}
    assert running["footprint"] == [] and running["tags"] == []
    second = client.data(JOB_LIST, {"filter": [{"cluster": {"eq": "fritz"}}], "sorting": SORT_START,
                                    "paging": {"itemsPerPage": 2, "page": 2}})["jobs"]
    assert [j["jobId"] for j in second["items"]] == [1] and second["hasNextPage"] is False
    tagged = second["items"][0]["tags"]
    assert sorted((t["type"], t["name"], t["scope"]) for t in tagged) == [("app", "gromacs", "global"),
                                                                           ("review", "slow", "admin")]


@pytest.mark.parametrize(("filters", "expected"), [
    ([{"user": {"eq": "alice"}}], [1, 2]),
    ([{"user": {"neq": "alice"}}], [3, 4, 5]),
    ([{"project": {"startsWith": "PROJ"}}], [1, 2, 3, 4, 5]),  # LIKE is case-insensitive, as SQLite's
    ([{"project": {"endsWith": "2"}}], [3, 4]),
    ([{"user": {"contains": "li"}}], [1, 2]),
    ([{"user": {"in": ["bob", "mona"]}}], [3, 4, 5]),
    ([{"user": {"eq": "alice", "neq": "alice"}}], [1, 2]),  # the first operator set wins
    ([{"cluster": {"eq": "alex"}, "partition": {"eq": "a40"}}], [4]),
    ([{"subCluster": {"eq": "main"}}], [1, 2, 3]),
    ([{"jobId": {"eq": "4"}}], [4]),
    ([{"jobId": {"in": ["1", "5", "x"]}}], [1, 5]),
    ([{"jobId": {"startsWith": "3"}}], [3]),
    ([{"state": ["completed", "timeout"]}], [1, 4, 5]),
    ([{"state": ["running"]}], [3]),
    ([{"state": ["out_of_memory", "out-of-memory"]}], []),  # cc-lib's spelling is taken too
    ([{"numNodes": {"from": 2, "to": 4}}], [2, 4]),
    ([{"numNodes": {"from": 2, "to": 0}}], [2, 4]),
    ([{"numNodes": {"from": 0, "to": 1}}], [1, 3, 5]),
    ([{"numHWThreads": {"from": 30, "to": 0}}], [2]),
    ([{"duration": {"from": 3600, "to": 7200}}], [2, 4]),
    ([{"shared": "multi_user"}], [3]),
    ([{"shared": "none' OR '1'='1"}], []),  # a value, not SQL
    ([{"jobName": {"eq": "big"}}], [5]),
    ([{"jobName": {"contains": "bench"}}], [3, 4]),
    ([{"schedule": "interactive"}], [2]),
    ([{"schedule": "batch"}], [1, 3, 4, 5]),
    ([{"node": {"eq": "a0121"}}], [4, 5]),
    ([{"node": {"startsWith": "f01"}}], [1, 2, 3]),
    ([{"node": {"contains": "012"}}], [4, 5]),
    ([{"cluster": {"eq": "fritz"}}, {"user": {"eq": "alice"}}], [1, 2]),  # elements are ANDed
    ([{"startTime": {"from": "2023-02-09T14:54:13Z", "to": "2023-02-09T14:57:33Z"}}], [2, 3, 4]),
    ([{"startTime": {"range": "last6h"}}], []),
    ([{"arrayJobId": 0}], [1, 2, 3, 4, 5]),  # no array: stored as 0, as cc-backend stores it
    ([{"arrayJobId": 99}], []),
])
def test_each_filter_field(gql: tuple[Gql, dict[int, int]], filters: list[dict[str, Any]],
                           expected: list[int]) -> None:
    client, _ = gql
    assert sorted(job_ids(client, filters)) == expected


def test_the_tags_filter_matches_any_tag_and_counts_each_job_once(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    tags = {t["name"]: t["id"] for t in client.data("query { tags { id name } }")["tags"]}
    both = [tags["gromacs"], tags["slow"]]
    data = client.data(JOB_LIST, {"filter": [{"tags": both}], "sorting": SORT_START,
                                  "paging": {"itemsPerPage": 10, "page": 1}})["jobs"]
    assert sorted(j["jobId"] for j in data["items"]) == [1, 4] and data["count"] == 2


def test_the_db_id_filter(gql: tuple[Gql, dict[int, int]]) -> None:
    client, ids = gql
    assert sorted(job_ids(client, [{"dbId": [str(ids[2]), str(ids[5])]}])) == [2, 5]


def test_sorting_by_columns_and_footprint_keeps_a_stable_order(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    assert job_ids(client, [], order={"field": "numNodes", "type": "col", "order": "DESC"}) == [2, 4, 5, 3, 1]
    assert job_ids(client, [], order={"field": "duration", "type": "col", "order": "ASC"}) == [3, 1, 4, 2, 5]
    # no job has a footprint here: a footprint sort lists them all (cc-backend would list none)
    assert job_ids(client, [], order={"field": "flops_any_avg", "type": "foot", "order": "DESC"}) == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(("viewer", "expected"), [
    ("alice", [1, 2]), ("bob", [3, 4]), ("mona", [3, 4, 5]), ("sam", [1, 2, 3, 4, 5]),
    ("boss", [1, 2, 3, 4, 5]), ("adapter", [1, 2, 3, 4, 5]),
])
def test_each_role_sees_its_jobs(gql: tuple[Gql, dict[int, int]], viewer: str, expected: list[int]) -> None:
    client, _ = gql
    data = client.data("query { jobs(page: {itemsPerPage: -1, page: 1}) { items { jobId } count } }", user=viewer)
    assert sorted(j["jobId"] for j in data["jobs"]["items"]) == expected and data["jobs"]["count"] == len(expected)


def test_owners_are_named_only_to_privileged_viewers(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    query = "query { jobs(filter: [{user: {eq: \"bob\"}}]) { items { userData { name } } } }"
    assert client.data(query, user="mona")["jobs"]["items"] == [{"userData": {"name": "Bob"}}] * 2
    errors = client.errors(query, user="adapter")  # an api-only account lists every job, but not its owner
    assert {e["message"] for e in errors} == {"forbidden"}


def test_an_account_without_roles_gets_an_error_not_jobs(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    errors = client.errors("query { jobs { count } }", user="nobody")
    assert errors[0]["message"] == "user has no or unknown roles" and errors[0]["path"] == ["jobs"]


def test_one_job_with_every_field_of_the_job_page(gql: tuple[Gql, dict[int, int]]) -> None:
    client, ids = gql
    query = ("query($id: ID!) { job(id: $id) { id jobId user project cluster startTime duration numNodes numHWThreads"
             " numAcc energy SMT shared partition subCluster arrayJobId monitoringStatus state walltime"
             " tags{id type scope name} resources{hostname hwthreads accelerators} metaData userData{name email}"
             " concurrentJobs{items{id jobId} count listQuery} footprint{name stat value}"
             " energyFootprint{hardware metric value} } }")
    job = client.data(query, {"id": str(ids[4])})["job"]
    assert (job["jobId"], job["user"], job["cluster"], job["partition"], job["state"]) == (4, "bob", "alex", "a40",
                                                                                         "completed")
    assert (job["duration"], job["numNodes"], job["numHWThreads"], job["walltime"]) == (3600, 2, 16, 3600)
    assert job["userData"] == {"name": "Bob", "email": "bob@example.org"}
    assert job["concurrentJobs"] is None  # exclusive nodes: nobody ran beside it
    assert job["energyFootprint"] == [] and job["metaData"] == {"jobName": "bench_b"}
    shared = client.data(query, {"id": str(ids[3])})["job"]["concurrentJobs"]
    # on f0101 beside it: jobs 1 and 2 (ended after it started + 200 s), and the job itself, as cc-backend lists it
    assert shared["count"] == 3 and {i["jobId"] for i in shared["items"]} == {1, 2, 3}
    assert shared["listQuery"].startswith("cluster=fritz&jobId=")


def test_a_job_of_someone_else_is_an_error(gql: tuple[Gql, dict[int, int]]) -> None:
    client, ids = gql
    errors = client.errors("query($id: ID!) { job(id: $id) { jobId } }", {"id": str(ids[4])}, user="alice")
    assert errors[0]["path"] == ["job"] and str(ids[4]) in errors[0]["message"]
    assert client.data("query($id: ID!) { job(id: $id) { jobId } }", {"id": str(ids[1])}, user="alice")["job"][
        "jobId"] == 1
    errors = client.errors("query($id: ID!) { job(id: $id) { jobId } }", {"id": str(ids[1])}, user="adapter")
    assert errors[0]["message"] == "you are not allowed to see this job"


def test_user_data_of_others_is_for_privileged_viewers(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    assert client.data('query { user(username: "bob") { username name email } }', user="mona")["user"] == {
        "username": "bob", "name": "Bob", "email": "bob@example.org"}
    assert client.data('query { user(username: "ghost") { name } }')["user"] is None
    assert client.errors('query { user(username: "bob") { name } }', user="alice")[0]["message"] == "forbidden"


@pytest.mark.parametrize(("body", "status", "fragment"), [
    (b"{not json", 400, "could not be decoded"),
    (b"[]", 400, "must be an object"),
    (b'{"query": ""}', 400, "non-empty"),
    (b'{"query": "{ jobs { count }", "variables": 3}', 400, "variables"),
    (b'{"query": "{ jobs { count "}', 422, "Syntax Error"),
    (b'{"query": "{ jobs { nope } }"}', 422, "Cannot query field 'nope'"),
    (b'{"query": "query($p: PageRequest!) { jobs(page: $p) { count } }", "variables": {"p": {"page": "x"}}}', 422,
     "Int cannot represent"),
    (b'{"query": "query A { tags { id } } query B { tags { id } }"}', 422, "operationName"),
])
def test_bad_requests_are_graphql_errors_with_gqlgens_status(gql: tuple[Gql, dict[int, int]], body: bytes,
                                                            status: int, fragment: str) -> None:
    client, _ = gql
    response = client.http.post("/query", content=body, headers=token(client.tok, "boss"))
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert any(fragment in e["message"] for e in errors), errors


def test_over_complex_operations_are_refused(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    fields = " ".join(f"a{i}: tags {{ id }}" for i in range(MAX_COMPLEXITY // 2 + 1))
    assert "complexity" in client.errors(f"query {{ {fields} }}", status=422)[0]["message"]
    # fragments count each time they are spread
    fragment = "fragment T on Tag { " + " ".join(f"f{i}: id" for i in range(100)) + " }\n"
    spreads = " ".join(f"t{i}: tags {{ ...T }}" for i in range(MAX_COMPLEXITY // 100))
    assert "complexity" in client.errors(f"{fragment}query {{ {spreads} }}", status=422)[0]["message"]
    nested = "query { jobs { items { jobId } } clusters { subClusters { topology { accelerators { id } } } } }"
    assert client.data(nested)["clusters"]


def test_depth_and_complexity_are_counted_through_fragments() -> None:
    document = parse("fragment F on X { b { c { d } } } query { a { ...F ... on X { e } } }")
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    assert cost(document, operation) == Cost(depth=4, complexity=5)
    deep = parse("query { " + "a { " * (MAX_DEPTH + 1) + "b" + " }" * (MAX_DEPTH + 1) + " }")
    assert "deeper" in str(over_limits(deep, deep.definitions[0]))  # type: ignore[arg-type]


def test_paging_arguments(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    assert "invalid items-per-page" in client.errors(
        "query { jobs(page: {itemsPerPage: 0, page: 1}) { count } }")[0]["message"]
    data = client.data("query { jobs(page: {itemsPerPage: 2, page: 0}) { items { jobId } count hasNextPage } }")
    assert len(data["jobs"]["items"]) == 2 and data["jobs"]["hasNextPage"] is True  # page < 1 is page 1
    data = client.data('query { jobs(order: {field: "jobId", type: "col"}) { items { jobId } } }')
    assert [j["jobId"] for j in data["jobs"]["items"]] == [1, 2, 3, 4, 5]
    assert "cannot sort" in client.errors(
        'query { jobs(order: {field: "start_time; DROP TABLE job", type: "col"}) { count } }')[0]["message"]


def test_no_token_is_refused_before_anything_runs(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    response = client.http.post("/query", json={"query": "{ tags { id } }"})
    assert response.status_code == 401 and set(response.json()) == {"status", "error"}


def test_ints_are_64_bits_wide_as_in_cc_backend(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    int_type = executable_schema().type_map["Int"]
    assert int_type.serialize(3_000_000_000) == 3_000_000_000  # type: ignore[attr-defined]  # a site's core hours
    big = client.data("query { jobs(filter: [{arrayJobId: 3000000000}]) { count } }")
    assert big["jobs"]["count"] == 0
    errors = client.errors(f"query {{ jobs(filter: [{{arrayJobId: {2**63}}}]) {{ count }} }}", status=422)
    assert "outside 64 bits" in errors[0]["message"]

"""Poison payloads over REST: every one is refused with a 400 naming the field, nothing is appended, and a
normal start afterwards still answers at once with its id.

2^63 in every integer field, NaN and infinities, names with control characters or too long, nesting too
deep: each of these was once validated, appended and acknowledged, and then stopped the job database.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import START, Tokens, assert_error, job_body, start_job

TOO_BIG = 2**63
START_INTEGERS = [
    "jobId", "arrayJobId", "numHwthreads", "numAcc", "smt", "walltime", "requestedMemory", "submitTime",
    "startTime", "exclusive", "duration", "id", "monitoringStatus",
]


def post_raw(http: TestClient, tok: Tokens, path: str, body: bytes) -> Any:
    return http.post(path, content=body, headers={**tok.headers(), "Content-Type": "application/json"})


@pytest.fixture
def checked(client: tuple[TestClient, Tokens]) -> Any:
    """Posts a poison body, asserts the 400 and that the log did not grow, then that a normal start works."""
    http, tok = client

    def check(path: str, body: bytes | dict[str, Any], *fragments: str, status: int = 400) -> None:
        services = http.app.state.services  # type: ignore[attr-defined]
        head = services.log.head()
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        assert_error(post_raw(http, tok, path, raw), status, *fragments)
        assert services.log.head() == head, "a refused request appends nothing"

    return check


@pytest.mark.parametrize("field", START_INTEGERS)
def test_out_of_range_integers_of_a_start_are_refused(client: tuple[TestClient, Tokens], checked: Any,
                                                       field: str) -> None:
    checked("/api/jobs/start_job/", job_body(**{field: TOO_BIG}), field)
    http, tok = client
    assert start_job(http, tok, jobId=77) > 0, "intake goes on"


@pytest.mark.parametrize(("field", "value"), [
    ("numNodes", TOO_BIG), ("numNodes", -1), ("walltime", -1), ("jobId", -5), ("startTime", -1),
])
def test_counts_and_ids_must_not_be_negative_or_huge(checked: Any, field: str, value: int) -> None:
    checked("/api/jobs/start_job/", job_body(**{field: value}), field)


@pytest.mark.parametrize("resources", [
    [{"hostname": "f0101", "hwthreads": [TOO_BIG]}],
    [{"hostname": "f01\x0001"}],
    [{"hostname": "f" * 300}],
])
def test_bad_resources_are_refused(checked: Any, resources: list[dict[str, Any]]) -> None:
    checked("/api/jobs/start_job/", job_body(resources=resources), "resources")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_refused(checked: Any, literal: bytes) -> None:
    body = orjson.dumps(job_body(energy=0.5)).replace(b"0.5", literal)
    checked("/api/jobs/start_job/", body, "energy")
    body = orjson.dumps(job_body(footprint={"flops_any_avg": 0.5})).replace(b"0.5", literal)
    checked("/api/jobs/start_job/", body, "footprint")
    body = orjson.dumps(job_body(statistics={"flops_any": {"avg": 0.5}})).replace(b"0.5", literal)
    checked("/api/jobs/start_job/", body, "statistics")


def test_names_with_control_characters_or_too_long_are_refused(checked: Any) -> None:
    checked("/api/jobs/start_job/", job_body(user="al\x00ice"), "user")
    checked("/api/jobs/start_job/", job_body(project="p\nforged log line"), "project")
    checked("/api/jobs/start_job/", job_body(user="a" * 256), "user")
    checked("/api/jobs/start_job/", job_body(metaData={"": "empty key"}), "metaData")
    checked("/api/jobs/start_job/", job_body(tags=[{"type": "t" * 300, "name": "n"}]), "tags")


def test_free_form_json_is_bounded(checked: Any) -> None:
    deep: dict[str, Any] = {"v": 1}
    for _ in range(40):
        deep = {"d": deep}
    checked("/api/jobs/start_job/", job_body(statistics=deep), "statistics", "nested deeper")
    body = orjson.dumps(job_body(statistics={"x": {"avg": 12345}})).replace(b"12345", str(2**64).encode())
    checked("/api/jobs/start_job/", body, "statistics")


def test_stops_with_out_of_range_integers_are_refused(client: tuple[TestClient, Tokens], checked: Any) -> None:
    http, tok = client
    start_job(http, tok, jobId=1000)
    checked("/api/jobs/stop_job/", {"jobId": 1000, "cluster": "fritz", "stopTime": TOO_BIG}, "stopTime")
    checked("/api/jobs/stop_job/", {"jobId": TOO_BIG, "cluster": "fritz", "stopTime": START + 9}, "jobId")
    checked("/api/jobs/stop_job/", {"jobId": 1000, "cluster": "fritz", "startTime": TOO_BIG,
                                    "stopTime": START + 9}, "startTime")


def test_node_states_with_out_of_range_integers_are_refused(checked: Any) -> None:
    for field in ("cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning"):
        body = {"cluster": "fritz", "nodes": [{"hostname": "f0101", "states": ["idle"], field: TOO_BIG}]}
        checked("/api/nodestate/", body, field)


def test_edits_and_paths_with_out_of_range_integers_are_400(client: tuple[TestClient, Tokens], checked: Any) -> None:
    http, tok = client
    db_id = start_job(http, tok, jobId=1000)
    assert_error(http.get(f"/api/jobs/{TOO_BIG}", headers=tok.headers()), 400, "64-bit")
    assert_error(http.get(f"/api/jobs/used_nodes?ts={TOO_BIG}", headers=tok.headers()), 400, "64-bit")
    response = http.patch("/api/jobs/edit_meta/", json={"jobId": TOO_BIG, "payload": {"key": "k", "value": "v"}},
                          headers=tok.headers())
    assert_error(response, 400, "jobId")
    response = http.patch(f"/api/jobs/edit_meta/{db_id}", json={"key": "k\x00", "value": "v"}, headers=tok.headers())
    assert_error(response, 400, "key")
    response = http.post(f"/api/jobs/tag_job/{db_id}", json=[{"type": "app", "name": "x" * 300}], headers=tok.headers())
    assert_error(response, 400, "name")


def test_after_all_of_it_a_start_answers_at_once_with_its_id(client: tuple[TestClient, Tokens], checked: Any) -> None:
    for field in START_INTEGERS:
        checked("/api/jobs/start_job/", job_body(**{field: TOO_BIG}), field)
    http, tok = client
    response = http.post("/api/jobs/start_job/", json=job_body(jobId=4242), headers=tok.headers())
    assert response.status_code == 201 and response.json()["id"] > 0, response.text
    services = http.app.state.services  # type: ignore[attr-defined]
    assert services.runner.status().quarantined == 0 and services.runner.status().failures == 0

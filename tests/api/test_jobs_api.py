"""The job REST API as a cc-backend client sees it: start, stop, list, get, used nodes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from streams.events import job_subject, new_event
from tests.api.conftest import EXAMPLES, START, Tokens, assert_error, example_bytes, module_app, start_job

START_PATH = "/api/jobs/start_job/"
STOP_PATH = "/api/jobs/stop_job/"


def raw_post(http: Any, path: str, body: bytes | str, headers: dict[str, str], method: str = "POST") -> Any:
    return http.request(method, path, content=body, headers={**headers, "Content-Type": "application/json"})


# ---------------------------------------------------------------- start_job


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_start_job_answers_201_with_the_id_and_the_job_is_listed_at_once(client, job_payload, method) -> None:
    http, tok = client
    response = http.request(method, START_PATH, json=job_payload(), headers=tok.headers())
    assert response.status_code == 201
    body = response.json()
    assert body["msg"] == "success"
    assert isinstance(body["id"], int)
    assert set(body) == {"msg", "id"}

    listed = http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]
    assert [(j["id"], j["jobId"], j["cluster"], j["jobState"]) for j in listed] == [
        (body["id"], 1000, "fritz", "running")
    ]


def test_started_job_reads_back_as_sent(client, job_payload) -> None:
    http, tok = client
    sent = job_payload(arrayJobId=77, walltime=7200, numAcc=0, partition="multinode")
    db_id = http.post(START_PATH, json=sent, headers=tok.headers()).json()["id"]
    job = http.get(f"/api/jobs/{db_id}", headers=tok.headers()).json()["meta"]
    expected = {
        "id": db_id, "jobId": 1000, "cluster": "fritz", "subCluster": "main", "partition": "multinode",
        "user": "alice", "project": "proj1", "jobState": "running", "shared": "none", "numNodes": 1,
        "numHwthreads": 72, "smt": 1, "walltime": 7200, "arrayJobId": 77, "monitoringStatus": 1,
        "startTime": START, "submitTime": START - 60, "metaData": {"jobName": "test"},
        "resources": [{"hostname": "f0101", "hwthreads": list(range(72))}],
        "concurrentJobs": {"items": None, "count": 0}, "statistics": None, "energy": 0,
    }
    assert {k: job[k] for k in expected} == expected
    assert "numAcc" not in job  # omitempty, as Go marshals schema.Job
    assert "tags" not in job


@pytest.mark.parametrize("name", ["slurm-adapter-start_job.request.json", "rest-start_job.request.json"])
def test_exact_bytes_of_reference_start_payloads_are_accepted(client, name) -> None:
    http, tok = client
    response = raw_post(http, START_PATH, example_bytes(name), tok.headers())
    assert response.status_code == 201, response.text
    job = http.get(f"/api/jobs/{response.json()['id']}", headers=tok.headers()).json()["meta"]
    assert (job["jobId"], job["cluster"], job["subCluster"], job["startTime"]) == (398764, "fritz", "main", 1675954353)
    assert (job["user"], job["project"], job["partition"], job["jobState"]) == ("k106eb10", "k106eb", "singlenode",
                                                                                 "running")
    assert job["resources"] == [{"hostname": "f0649", "hwthreads": list(range(72))}]
    assert job["metaData"]["jobName"] == "ams_pipeline"
    assert job["metaData"]["jobScript"].startswith("#!/bin/bash  -l\n#SBATCH")


def test_slurm_adapter_metadata_keeps_submit_time_as_a_string(client) -> None:
    http, tok = client
    response = raw_post(http, START_PATH, example_bytes("slurm-adapter-start_job.request.json"), tok.headers())
    job = http.get(f"/api/jobs/{response.json()['id']}", headers=tok.headers()).json()["meta"]
    assert job["metaData"]["submitTime"] == "1675954300"


def test_reference_start_stop_round_trip_answers_the_reference_stop_response(client) -> None:
    http, tok = client
    start = raw_post(http, START_PATH, example_bytes("rest-start_job.request.json"), tok.headers())
    assert start.status_code == 201
    stop = raw_post(http, STOP_PATH, example_bytes("rest-stop_job.request.json"), tok.headers())
    assert stop.status_code == 200, stop.text
    expected = orjson.loads((EXAMPLES / "rest-stop_job.response.json").read_bytes())
    got = stop.json()
    assert got["id"] == start.json()["id"]
    # The database keeps neither requestedMemory (no column in cc-backend's job table) nor an id of 5711.
    for key in ("id", "requestedMemory", "metaData"):
        expected.pop(key)
        got.pop(key, None)
    assert got == expected


def test_unknown_field_is_refused(shared_client, job_payload) -> None:
    http, tok = shared_client
    response = http.post(START_PATH, json=job_payload(color="blue"), headers=tok.headers())
    assert_error(response, 400, "unknown field", "color")
    assert http.get("/api/jobs/", headers=tok.headers()).json()["jobs"] == []


@pytest.mark.parametrize(("field", "value"), [("jobId", "1000"), ("numNodes", 1.0), ("numNodes", 1.5),
                                              ("startTime", "1675954353"), ("resources", {"hostname": "f0101"}),
                                              ("metaData", {"jobName": 5}), ("smt", True)])
def test_wrongly_typed_fields_are_refused_naming_the_field(shared_client, job_payload, field, value) -> None:
    http, tok = shared_client
    response = http.post(START_PATH, json=job_payload(**{field: value}), headers=tok.headers())
    assert_error(response, 400, field)


@pytest.mark.parametrize("body", [b"", b"   ", b"{", b"not json", b"[]", b"null", b'{"jobId": 1000,}'])
def test_empty_or_malformed_bodies_are_refused(shared_client, body) -> None:
    http, tok = shared_client
    assert_error(raw_post(http, START_PATH, body, tok.headers()), 400)


def test_unknown_cluster_is_refused(shared_client, job_payload) -> None:
    http, tok = shared_client
    assert_error(http.post(START_PATH, json=job_payload(cluster="nowhere"), headers=tok.headers()), 400, "nowhere")


def test_num_nodes_must_match_the_resources(shared_client, job_payload) -> None:
    http, tok = shared_client
    response = http.post(START_PATH, json=job_payload(numNodes=2), headers=tok.headers())
    assert_error(response, 400, "numNodes")


@pytest.mark.parametrize("field", ["user", "project", "resources", "cluster"])
def test_missing_required_fields_are_refused(shared_client, job_payload, field) -> None:
    http, tok = shared_client
    payload = job_payload()
    del payload[field]
    assert_error(http.post(START_PATH, json=payload, headers=tok.headers()), 400, field)
    assert_error(http.post(START_PATH, json=job_payload(**{field: "" if field != "resources" else []}),
                           headers=tok.headers()), 400, field)


def test_missing_job_id_or_start_time_is_refused(shared_client, job_payload) -> None:
    http, tok = shared_client
    payload = job_payload()
    del payload["jobId"]
    assert_error(http.post(START_PATH, json=payload, headers=tok.headers()), 400, "jobId")
    payload = job_payload()
    del payload["startTime"]
    assert_error(http.post(START_PATH, json=payload, headers=tok.headers()), 400, "startTime")


def test_start_in_a_final_state_is_refused(shared_client, job_payload) -> None:
    http, tok = shared_client
    assert_error(http.post(START_PATH, json=job_payload(jobState="completed"), headers=tok.headers()), 400)


def test_unknown_subcluster_is_refused(shared_client, job_payload) -> None:
    http, tok = shared_client
    response = http.post(START_PATH, json=job_payload(subCluster="gpu9000"), headers=tok.headers())
    assert_error(response, 400, "gpu9000")


def test_host_in_no_subcluster_is_refused(shared_client, job_payload) -> None:
    http, tok = shared_client
    payload = job_payload(resources=[{"hostname": "zz9999"}])
    assert_error(http.post(START_PATH, json=payload, headers=tok.headers()), 400, "zz9999")


@pytest.mark.parametrize(
    ("cluster", "hosts", "subcluster"),
    [
        ("fritz", ["f0649"], "main"),
        ("fritz", ["f2160"], "spr1tb"),
        ("fritz", ["f2181"], "spr1tb"),  # in spr1tb and spr2tb: the first listed wins, deterministically
        ("fritz", ["f2160", "f0101"], "spr1tb"),  # the first host decides
        ("fritz", ["f0101", "f2160"], "main"),
        ("alex", ["a0601"], "a100"),
        ("alex", ["a0125"], "a40"),
        ("alex", ["a0831"], "a100m80"),
    ],
)
def test_subcluster_is_assigned_from_the_first_host(client, job_payload, cluster, hosts, subcluster) -> None:
    http, tok = client
    payload = job_payload(cluster=cluster, numNodes=len(hosts), resources=[{"hostname": h} for h in hosts])
    payload.pop("numHwthreads")
    response = http.post(START_PATH, json=payload, headers=tok.headers())
    assert response.status_code == 201, response.text
    job = http.get(f"/api/jobs/{response.json()['id']}", headers=tok.headers()).json()["meta"]
    assert job["subCluster"] == subcluster
    assert [r["hostname"] for r in job["resources"]] == hosts


def test_explicit_subcluster_is_kept(client, job_payload) -> None:
    http, tok = client
    response = http.post(START_PATH, json=job_payload(subCluster="spr2tb"), headers=tok.headers())
    job = http.get(f"/api/jobs/{response.json()['id']}", headers=tok.headers()).json()["meta"]
    assert job["subCluster"] == "spr2tb"


def test_gpu_job_keeps_its_accelerators(client, job_payload) -> None:
    http, tok = client
    resources = [{"hostname": "a0601", "hwthreads": [0, 1], "accelerators": ["00000000:0E:00.0"]}]
    payload = job_payload(cluster="alex", numAcc=1, numHwthreads=2, resources=resources)
    db_id = http.post(START_PATH, json=payload, headers=tok.headers()).json()["id"]
    job = http.get(f"/api/jobs/{db_id}", headers=tok.headers()).json()["meta"]
    assert job["resources"] == resources
    assert job["numAcc"] == 1


@pytest.mark.parametrize("offset", [0, 10, 86399, -86399])
def test_duplicate_start_within_a_day_is_refused_naming_the_dbid(client, job_payload, offset) -> None:
    http, tok = client
    first = http.post(START_PATH, json=job_payload(), headers=tok.headers()).json()["id"]
    # Different content (another user), so it is not a retry of the first request.
    again = job_payload(startTime=START + offset, user="mallory")
    body = assert_error(http.post(START_PATH, json=again, headers=tok.headers()), 422, f"dbid: {first}", "1000")
    assert "already exists" in body["error"]
    jobs = http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]
    assert [(j["id"], j["user"]) for j in jobs] == [(first, "alice")]


def test_same_job_id_a_day_later_is_a_new_job(client, job_payload) -> None:
    http, tok = client
    first = http.post(START_PATH, json=job_payload(), headers=tok.headers()).json()["id"]
    second = http.post(START_PATH, json=job_payload(startTime=START + 86400), headers=tok.headers())
    assert second.status_code == 201
    assert second.json()["id"] != first
    jobs = http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]
    assert [j["startTime"] for j in jobs] == [START + 86400, START]


def test_same_job_id_on_another_cluster_is_a_new_job(client, job_payload) -> None:
    http, tok = client
    http.post(START_PATH, json=job_payload(), headers=tok.headers())
    other = job_payload(cluster="alex", resources=[{"hostname": "a0601"}])
    assert http.post(START_PATH, json=other, headers=tok.headers()).status_code == 201
    assert len(http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]) == 2


def test_retried_identical_start_is_idempotent(client, job_payload) -> None:
    http, tok = client
    first = http.post(START_PATH, json=job_payload(), headers=tok.headers())
    retry = http.put(START_PATH, json=job_payload(), headers=tok.headers())
    assert first.status_code == retry.status_code == 201
    assert first.json() == retry.json() == {"msg": "success", "id": first.json()["id"]}
    assert len(http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]) == 1


def test_retry_with_the_exact_reference_bytes_is_idempotent(client) -> None:
    http, tok = client
    body = example_bytes("slurm-adapter-start_job.request.json")
    ids = {raw_post(http, START_PATH, body, tok.headers()).json()["id"] for _ in range(3)}
    assert len(ids) == 1
    assert len(http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]) == 1


def test_tags_in_the_start_payload_are_attached(client, job_payload) -> None:
    http, tok = client
    tags = [{"type": "app", "name": "gromacs"}, {"type": "debug", "name": "x", "scope": "admin"}]
    db_id = http.post(START_PATH, json=job_payload(tags=tags), headers=tok.headers()).json()["id"]
    job = http.get(f"/api/jobs/{db_id}", headers=tok.headers()).json()["meta"]
    assert [(t["type"], t["name"], t["scope"]) for t in job["tags"]] == [("app", "gromacs", "global"),
                                                                          ("debug", "x", "admin")]
    assert all(isinstance(t["id"], int) for t in job["tags"])


def test_legacy_exclusive_field_maps_to_shared(client, job_payload) -> None:
    http, tok = client
    payload = job_payload(exclusive=0)
    payload.pop("shared")
    db_id = http.post(START_PATH, json=payload, headers=tok.headers()).json()["id"]
    assert http.get(f"/api/jobs/{db_id}", headers=tok.headers()).json()["meta"]["shared"] == "multi_user"


# ---------------------------------------------------------------- stop_job


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_stop_job_answers_the_stopped_job(client, start, method) -> None:
    http, tok = client
    db_id = start()
    body = {"jobId": 1000, "cluster": "fritz", "startTime": START, "jobState": "failed", "stopTime": START + 177}
    response = http.request(method, STOP_PATH, json=body, headers=tok.headers())
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["id"], job["jobId"], job["jobState"], job["duration"]) == (db_id, 1000, "failed", 177)
    listed = http.get("/api/jobs/", headers=tok.headers()).json()["jobs"][0]
    assert (listed["jobState"], listed["duration"]) == ("failed", 177)


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled", "timeout", "preempted", "node_fail"])
def test_stop_accepts_final_states(client, start, stop, state) -> None:
    start()
    assert stop(jobState=state)["jobState"] == state


def test_empty_job_state_means_completed(client, start, stop) -> None:
    start()
    assert stop(jobState="")["jobState"] == "completed"


def test_absent_job_state_means_completed(client, start, stop) -> None:
    start()
    assert stop()["jobState"] == "completed"


@pytest.mark.parametrize("state", ["bogus", "COMPLETED", 3])
def test_invalid_job_state_is_refused(client, start, state) -> None:
    http, tok = client
    start()
    body = {"jobId": 1000, "cluster": "fritz", "jobState": state, "stopTime": START + 10}
    assert_error(http.post(STOP_PATH, json=body, headers=tok.headers()), 400, "jobState")
    assert http.get("/api/jobs/", headers=tok.headers()).json()["jobs"][0]["jobState"] == "running"


def test_stopping_a_stopped_job_again_is_refused(client, start, stop) -> None:
    http, tok = client
    db_id = start()
    stop(stop_time=START + 100)
    body = {"jobId": 1000, "cluster": "fritz", "stopTime": START + 200, "jobState": "failed"}
    error = assert_error(http.post(STOP_PATH, json=body, headers=tok.headers()), 422, "already been stopped",
                         f"(id {db_id})", "completed")
    assert "1000" in error["error"]
    job = http.get(f"/api/jobs/{db_id}", headers=tok.headers()).json()["meta"]
    assert (job["jobState"], job["duration"]) == ("completed", 100)


def test_retried_identical_stop_answers_the_same_job(client, start, stop) -> None:
    start()
    first = stop(jobState="completed")
    again = stop(jobState="completed")
    # The archiver may have finished in between: monitoring status moves on from 1 (archiving) to 3 (archived).
    assert again.pop("monitoringStatus") in (first.pop("monitoringStatus"), 3)
    assert again == first


def test_stop_time_before_start_time_is_refused(client, start) -> None:
    http, tok = client
    db_id = start()
    body = {"jobId": 1000, "cluster": "fritz", "startTime": START, "stopTime": START - 1}
    assert_error(http.post(STOP_PATH, json=body, headers=tok.headers()), 400, "larger/equal", f"(id {db_id})")
    assert http.get(f"/api/jobs/{db_id}", headers=tok.headers()).json()["meta"]["jobState"] == "running"


def test_stop_time_equal_to_start_time_gives_zero_duration(client, start, stop) -> None:
    start()
    assert stop(stop_time=START)["duration"] == 0


@pytest.mark.parametrize("body", [{"cluster": "fritz", "stopTime": START + 1},
                                  {"jobId": None, "cluster": "fritz", "stopTime": START + 1}])
def test_stop_without_job_id_is_refused(shared_client, body) -> None:
    http, tok = shared_client
    assert_error(http.post(STOP_PATH, json=body, headers=tok.headers()), 400, "jobId")


@pytest.mark.parametrize("body", [b"", b"{", b'{"jobId": 1000, "cluster": "fritz"}',
                                  b'{"jobId": 1000, "cluster": "fritz", "stopTime": 1, "extra": 1}',
                                  b'{"jobId": "1000", "cluster": "fritz", "stopTime": 1675954453}'])
def test_malformed_stop_bodies_are_refused(shared_client, body) -> None:
    http, tok = shared_client
    assert_error(raw_post(http, STOP_PATH, body, tok.headers()), 400)


def test_stop_without_start_time_stops_the_newest_run(client, start, stop, list_jobs) -> None:
    old = start()
    new = start(startTime=START + 100_000)
    stopped = stop(stop_time=START + 100_050)
    assert (stopped["id"], stopped["duration"]) == (new, 50)
    states = {j["id"]: j["jobState"] for j in list_jobs()}
    assert states == {old: "running", new: "completed"}


def test_stop_with_start_time_stops_that_run(client, start, stop, list_jobs) -> None:
    old = start()
    new = start(startTime=START + 100_000)
    stopped = stop(stop_time=START + 10, startTime=START)
    assert (stopped["id"], stopped["duration"]) == (old, 10)
    assert {j["id"]: j["jobState"] for j in list_jobs()} == {old: "completed", new: "running"}


def test_stop_without_cluster_finds_the_job(client, start) -> None:
    http, tok = client
    db_id = start(cluster="alex", resources=[{"hostname": "a0601"}])
    response = http.post(STOP_PATH, json={"jobId": 1000, "stopTime": START + 5}, headers=tok.headers())
    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["cluster"]) == (db_id, "alex")


def test_stop_before_start_is_parked_and_applied_when_the_start_arrives(client, job_payload) -> None:
    http, tok = client
    body = {"jobId": 1000, "cluster": "fritz", "startTime": START, "jobState": "timeout", "stopTime": START + 300}
    parked = http.post(STOP_PATH, json=body, headers=tok.headers())
    assert parked.status_code == 202, parked.text
    assert "parked" in parked.json()["msg"]
    assert http.get("/api/jobs/", headers=tok.headers()).json()["jobs"] == []

    waiting = http.get("/api/admin/parked-stops", headers=tok.headers("admin"))
    assert waiting.status_code == 200
    [entry] = waiting.json()
    assert {k: entry[k] for k in ("cluster", "jobId", "startTime", "jobState", "stopTime")} == {
        "cluster": "fritz", "jobId": 1000, "startTime": START, "jobState": "timeout", "stopTime": START + 300,
    }

    started = http.post(START_PATH, json=job_payload(), headers=tok.headers())
    assert started.status_code == 201
    job = http.get(f"/api/jobs/{started.json()['id']}", headers=tok.headers()).json()["meta"]
    assert (job["jobState"], job["duration"]) == ("timeout", 300)
    assert http.get("/api/admin/parked-stops", headers=tok.headers("admin")).json() == []


def test_parked_stop_without_start_time_is_applied_to_the_next_start(client, job_payload) -> None:
    http, tok = client
    body = {"jobId": 1000, "cluster": "fritz", "stopTime": START + 42}
    assert http.post(STOP_PATH, json=body, headers=tok.headers()).status_code == 202
    db_id = http.post(START_PATH, json=job_payload(), headers=tok.headers()).json()["id"]
    job = http.get(f"/api/jobs/{db_id}", headers=tok.headers()).json()["meta"]
    assert (job["jobState"], job["duration"]) == ("completed", 42)
    assert http.get("/api/admin/parked-stops", headers=tok.headers("admin")).json() == []


def test_retried_parked_stop_is_parked_once(client) -> None:
    http, tok = client
    body = {"jobId": 1000, "cluster": "fritz", "startTime": START, "stopTime": START + 1}
    assert [http.post(STOP_PATH, json=body, headers=tok.headers()).status_code for _ in range(2)] == [202, 202]
    assert len(http.get("/api/admin/parked-stops", headers=tok.headers("admin")).json()) == 1


def test_parked_stop_for_another_start_time_stays_parked(client, job_payload) -> None:
    http, tok = client
    body = {"jobId": 1000, "cluster": "fritz", "startTime": START + 5, "stopTime": START + 50}
    assert http.post(STOP_PATH, json=body, headers=tok.headers()).status_code == 202
    db_id = http.post(START_PATH, json=job_payload(), headers=tok.headers()).json()["id"]
    assert http.get(f"/api/jobs/{db_id}", headers=tok.headers()).json()["meta"]["jobState"] == "running"
    assert len(http.get("/api/admin/parked-stops", headers=tok.headers("admin")).json()) == 1


def test_stop_on_unknown_cluster_is_not_found(shared_client) -> None:
    http, tok = shared_client
    body = {"jobId": 1000, "cluster": "nowhere", "stopTime": START + 1}
    assert_error(http.post(STOP_PATH, json=body, headers=tok.headers()), 404, "nowhere")


def test_stop_of_unknown_job_without_cluster_is_not_found(shared_client) -> None:
    http, tok = shared_client
    assert_error(http.post(STOP_PATH, json={"jobId": 4242, "stopTime": START}, headers=tok.headers()), 404, "4242")


def test_without_parking_a_stop_of_an_unknown_job_is_not_found(make_client, tokens) -> None:
    http = make_client({"intake": {"park-early-stops": False}})
    body = {"jobId": 1000, "cluster": "fritz", "startTime": START, "stopTime": START + 1}
    assert_error(http.post(STOP_PATH, json=body, headers=tokens.headers()), 404, "1000")
    assert http.get("/api/admin/parked-stops", headers=tokens.headers("admin")).json() == []


# ---------------------------------------------------------------- GET /api/jobs/


@pytest.fixture(scope="module")
def listing_app(tmp_path_factory, closer) -> Iterator[tuple[Any, Tokens, dict[str, int]]]:
    """One app per module with three jobs, for the read-only listing tests:
    fritz/proj1 running at START, fritz/proj2 completed at START+1000, alex/proj1 running at START+2000."""
    with module_app(tmp_path_factory, closer) as (http, tok):
        ids = {"fritz_running": start_job(http, tok, jobId=1, project="proj1")}
        ids["fritz_done"] = start_job(http, tok, jobId=2, project="proj2", startTime=START + 1000)
        stop = {"jobId": 2, "cluster": "fritz", "stopTime": START + 1500}
        assert http.post(STOP_PATH, json=stop, headers=tok.headers()).status_code == 200
        ids["alex_running"] = start_job(http, tok, jobId=3, cluster="alex", startTime=START + 2000, numNodes=2,
                                        resources=[{"hostname": "a0601"}, {"hostname": "a0602"}])
        yield http, tok, ids


@pytest.fixture
def listing(listing_app) -> tuple[Any, Tokens]:
    return listing_app[0], listing_app[1]


@pytest.fixture
def three_jobs(listing_app) -> dict[str, int]:
    return listing_app[2]


def test_list_is_sorted_by_start_time_descending(listing, three_jobs) -> None:
    http, tok = listing
    body = http.get("/api/jobs/", headers=tok.headers()).json()
    assert [j["id"] for j in body["jobs"]] == [three_jobs["alex_running"], three_jobs["fritz_done"],
                                               three_jobs["fritz_running"]]
    assert (body["items"], body["page"]) == (3, 1)
    assert set(body) == {"jobs", "items", "page"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "running"}, ["alex_running", "fritz_running"]),
        ({"state": "completed"}, ["fritz_done"]),
        ({"state": "failed"}, []),
        ({"cluster": "fritz"}, ["fritz_done", "fritz_running"]),
        ({"cluster": "alex"}, ["alex_running"]),
        ({"cluster": "nowhere"}, []),
        ({"project": "proj2"}, ["fritz_done"]),
        ({"project": "proj1", "cluster": "fritz"}, ["fritz_running"]),
        ({"start-time": f"{START}-{START + 1000}"}, ["fritz_done", "fritz_running"]),
        ({"start-time": f"{START + 1}-{START + 5000}"}, ["alex_running", "fritz_done"]),
        ({"start-time": f"{START + 1}-{START + 999}"}, []),
        ({"state": "running", "start-time": f"{START + 1}-{START + 5000}"}, ["alex_running"]),
    ],
)
def test_list_filters(listing, three_jobs, params, expected) -> None:
    http, tok = listing
    body = http.get("/api/jobs/", params=params, headers=tok.headers()).json()
    assert [j["id"] for j in body["jobs"]] == [three_jobs[name] for name in expected]
    assert body["items"] == len(expected)


def test_list_pages(listing, three_jobs) -> None:
    http, tok = listing
    pages = [http.get("/api/jobs/", params={"items-per-page": 2, "page": p}, headers=tok.headers()).json()
             for p in (1, 2, 3)]
    assert [[j["id"] for j in p["jobs"]] for p in pages] == [
        [three_jobs["alex_running"], three_jobs["fritz_done"]], [three_jobs["fritz_running"]], []
    ]
    assert [(p["page"], p["items"]) for p in pages] == [(1, 2), (2, 1), (3, 0)]


def test_metadata_is_only_listed_when_asked_for(listing, three_jobs) -> None:
    http, tok = listing
    plain = http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]
    assert all("metaData" not in j for j in plain)
    off = http.get("/api/jobs/", params={"with-metadata": "false"}, headers=tok.headers()).json()["jobs"]
    assert all("metaData" not in j for j in off)
    rich = http.get("/api/jobs/", params={"with-metadata": "true"}, headers=tok.headers()).json()["jobs"]
    assert [j["metaData"] for j in rich] == [{"jobName": "test"}] * 3


def test_bare_with_metadata_flag_means_true(listing, three_jobs) -> None:
    http, tok = listing
    jobs = http.get("/api/jobs/?with-metadata", headers=tok.headers()).json()["jobs"]
    assert [j["metaData"] for j in jobs] == [{"jobName": "test"}] * 3


def test_repeated_state_parameters_are_alternatives(listing, three_jobs) -> None:
    http, tok = listing
    response = http.get("/api/jobs/?state=completed&state=failed&state=running", headers=tok.headers())
    assert sorted(j["id"] for j in response.json()["jobs"]) == sorted(three_jobs.values())
    response = http.get("/api/jobs/?state=completed&state=failed", headers=tok.headers())
    assert [j["id"] for j in response.json()["jobs"]] == [three_jobs["fritz_done"]]
    assert_error(http.get("/api/jobs/?state=completed&state=nope", headers=tok.headers()), 400, "nope")


def test_listed_jobs_carry_their_tags(client, start) -> None:
    http, tok = client
    start(tags=[{"type": "app", "name": "vasp"}])
    [job] = http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]
    assert [(t["type"], t["name"], t["scope"]) for t in job["tags"]] == [("app", "vasp", "global")]


def test_empty_list(shared_client) -> None:
    http, tok = shared_client
    assert http.get("/api/jobs/", headers=tok.headers()).json() == {"jobs": [], "items": 0, "page": 1}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"state": "bogus"}, "state"),
        ({"start-time": "1-2-3"}, "start-time"),
        ({"start-time": "abc-def"}, "start-time"),
        ({"start-time": str(START)}, "start-time"),
        ({"page": "x"}, "page"),
        ({"page": "0"}, "page"),
        ({"items-per-page": "-1"}, "items-per-page"),
        ({"items-per-page": "1.5"}, "items-per-page"),
        ({"with-metadata": "maybe"}, "with-metadata"),
        ({"page": "602940083786150272", "items-per-page": "1506"}, "64-bit row offset"),
        ({"colour": "red"}, "colour"),
        ({"startTime": "1-2"}, "startTime"),
    ],
)
def test_invalid_list_parameters_are_refused(shared_client, params, fragment) -> None:
    http, tok = shared_client
    assert_error(http.get("/api/jobs/", params=params, headers=tok.headers()), 400, fragment)


# ---------------------------------------------------------------- GET / POST /api/jobs/{id}


def test_get_job_by_id(client, start) -> None:
    http, tok = client
    db_id = start(tags=[{"type": "app", "name": "lammps"}])
    response = http.get(f"/api/jobs/{db_id}", headers=tok.headers())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"meta", "data"}
    meta = body["meta"]
    assert (meta["id"], meta["jobId"], meta["metaData"]) == (db_id, 1000, {"jobName": "test"})
    assert [t["name"] for t in meta["tags"]] == ["lammps"]
    assert http.get(f"/api/jobs/{db_id}", params={"all-metrics": "true"}, headers=tok.headers()).status_code == 200


def test_running_job_duration_counts_up(client, start) -> None:
    http, tok = client
    db_id = start()
    assert http.get(f"/api/jobs/{db_id}", headers=tok.headers()).json()["meta"]["duration"] > 0


def test_get_unknown_job_is_not_found(shared_client) -> None:
    http, tok = shared_client
    assert_error(http.get("/api/jobs/999", headers=tok.headers()), 404, "999")


@pytest.mark.parametrize("raw", ["abc", "1.5", "0x10"])
def test_get_job_with_non_integer_id_is_refused(shared_client, raw) -> None:
    http, tok = shared_client
    assert_error(http.get(f"/api/jobs/{raw}", headers=tok.headers()), 400, raw)
    assert_error(http.post(f"/api/jobs/{raw}", json=["flops_any"], headers=tok.headers()), 400, raw)


def test_post_job_with_metric_names(client, start) -> None:
    http, tok = client
    db_id = start()
    response = http.post(f"/api/jobs/{db_id}", json=["flops_any", "mem_bw"], headers=tok.headers())
    assert response.status_code == 200
    assert response.json()["meta"]["id"] == db_id


@pytest.mark.parametrize("body", [b'{"metric": "flops_any"}', b'"flops_any"', b"[1, 2]", b"[", b"flops_any"])
def test_post_job_needs_an_array_of_metric_names(client, start, body) -> None:
    http, tok = client
    db_id = start()
    assert_error(raw_post(http, f"/api/jobs/{db_id}", body, tok.headers()), 400)


def test_post_unknown_job_is_not_found(shared_client) -> None:
    http, tok = shared_client
    assert_error(http.post("/api/jobs/77", json=["flops_any"], headers=tok.headers()), 404)


# ---------------------------------------------------------------- used_nodes


def test_used_nodes_lists_hosts_of_running_jobs_started_before_ts(client, start, stop) -> None:
    http, tok = client
    start(jobId=1, numNodes=2, resources=[{"hostname": "f0102"}, {"hostname": "f0101"}])
    start(jobId=2, resources=[{"hostname": "f0101"}], startTime=START + 10)  # shares a host
    start(jobId=3, resources=[{"hostname": "f0201"}], startTime=START + 20)
    stop(job_id=3, stop_time=START + 30)  # stopped: its host is free
    start(jobId=4, cluster="alex", resources=[{"hostname": "a0601"}], startTime=START + 40)
    start(jobId=5, resources=[{"hostname": "f0301"}], startTime=START + 1000)  # starts after ts

    response = http.get("/api/jobs/used_nodes", params={"ts": START + 500}, headers=tok.headers())
    assert response.status_code == 200
    assert response.json() == {"usedNodes": {"alex": ["a0601"], "fritz": ["f0101", "f0102"]}}

    early = http.get("/api/jobs/used_nodes", params={"ts": START}, headers=tok.headers())
    assert early.json() == {"usedNodes": {}}


@pytest.mark.parametrize(("params", "fragment"), [({}, "ts"), ({"ts": "soon"}, "ts"), ({"ts": "1", "x": "2"}, "x")])
def test_used_nodes_needs_an_integer_ts(shared_client, params, fragment) -> None:
    http, tok = shared_client
    assert_error(http.get("/api/jobs/used_nodes", params=params, headers=tok.headers()), 400, fragment)


# ---------------------------------------------------------------- durability and concurrency


def _stable(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A running job's duration counts up with the wall clock.
    return [{k: v for k, v in j.items() if not (k == "duration" and j["jobState"] == "running")} for j in jobs]


def caught_up(http: TestClient) -> TestClient:
    """The app once its job database has caught up with the log (a started server serves at once; its agents
    catch up in their own threads)."""
    services = http.app.state.services  # type: ignore[attr-defined]
    assert services.runner.wait_for(services.log.head(), timeout=60)
    return http


def test_jobs_survive_a_restart_and_duplicates_are_still_detected(make_client, tokens, job_payload) -> None:
    http = make_client()
    first = http.post(START_PATH, json=job_payload(), headers=tokens.headers()).json()["id"]
    parked = {"jobId": 7, "cluster": "fritz", "startTime": START, "stopTime": START + 9}
    assert http.post(STOP_PATH, json=parked, headers=tokens.headers()).status_code == 202
    make_client.close(http)

    again = caught_up(make_client())
    assert [j["id"] for j in again.get("/api/jobs/", headers=tokens.headers()).json()["jobs"]] == [first]
    retry = again.post(START_PATH, json=job_payload(), headers=tokens.headers())
    assert retry.json() == {"msg": "success", "id": first}
    assert_error(again.post(START_PATH, json=job_payload(user="x", startTime=START + 1), headers=tokens.headers()),
                 422, f"dbid: {first}")
    started = again.post(START_PATH, json=job_payload(jobId=7), headers=tokens.headers()).json()["id"]
    job = again.get(f"/api/jobs/{started}", headers=tokens.headers()).json()["meta"]
    assert (job["jobState"], job["duration"]) == ("completed", 9)


def test_job_database_is_rebuilt_from_the_log(make_client, tokens, job_payload, tmp_path) -> None:
    http = make_client()
    h = tokens.headers()
    http.post(START_PATH, json=job_payload(jobId=1, tags=[{"type": "app", "name": "vasp"}]), headers=h)
    second = http.post(START_PATH, json=job_payload(jobId=2, startTime=START + 5), headers=h).json()["id"]
    http.post(STOP_PATH, json={"jobId": 2, "cluster": "fritz", "stopTime": START + 50}, headers=h)
    http.patch(f"/api/jobs/edit_meta/{second}", json={"key": "k", "value": "v"}, headers=h)
    third = http.post(START_PATH, json=job_payload(jobId=3, startTime=START + 9), headers=h).json()["id"]
    assert http.delete(f"/api/jobs/delete_job/{third}", headers=h).status_code == 200
    before = http.get("/api/jobs/", params={"with-metadata": "true"}, headers=h).json()["jobs"]
    make_client.close(http)

    for path in tmp_path.glob("job.db*"):
        path.unlink()
    rebuilt = caught_up(make_client())
    after = rebuilt.get("/api/jobs/", params={"with-metadata": "true"}, headers=h).json()["jobs"]
    assert _stable(after) == _stable(before)
    assert len(after) == 2


def test_concurrent_identical_starts_create_one_job(client, job_payload) -> None:
    http, tok = client
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: http.post(START_PATH, json=job_payload(), headers=tok.headers()),
                                  range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]) == 1


def test_concurrent_conflicting_starts_admit_exactly_one(client, job_payload) -> None:
    http, tok = client

    def post(i: int) -> Any:
        return http.post(START_PATH, json=job_payload(user=f"user{i}", startTime=START + i), headers=tok.headers())

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    assert sorted(r.status_code for r in responses) == [201] + [422] * 7
    [winner] = [r.json()["id"] for r in responses if r.status_code == 201]
    assert all(f"dbid: {winner}" in r.json()["error"] for r in responses if r.status_code == 422)
    assert len(http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]) == 1


# ---------------------------------------------------------------- archived statistics

ARCHIVED_STATS = {"cpu_load": {"unit": {"base": ""}, "avg": 1.5, "min": 0.5, "max": 2.0},
                  "mem_used": {"unit": {"base": "B", "prefix": "G"}, "avg": 40.0, "min": 10.0, "max": 64.0}}


def test_archived_jobs_answer_their_statistics_from_the_read_model(make_client, tokens) -> None:
    """cc-backend fills `statistics` of archived jobs from meta.json; ccstream keeps them from `job.archived`
    (here written by the test, with the archiver off: no archive file exists to read them from)."""
    http, tok = make_client({"archiver": {"enabled": False}}), tokens
    services = http.app.state.services
    archived, running = start_job(http, tok, jobId=501), start_job(http, tok, jobId=502)
    stopped = http.post("/api/jobs/stop_job/", json={"jobId": 501, "cluster": "fritz", "startTime": START,
                                                     "jobState": "completed", "stopTime": START + 600},
                        headers=tok.headers())
    assert stopped.status_code == 200, stopped.text
    services.log.append([new_event("job.archived", job_subject("fritz", 501, START),
                                   {"statistics": ARCHIVED_STATS, "location": "fritz/501"}, source="test")])
    assert services.runner.wait_for(services.log.head(), timeout=60)
    assert services.archive is None or not services.archive.exists("fritz", 501, START)
    one = http.get(f"/api/jobs/{archived}", headers=tok.headers()).json()["meta"]
    assert (one["monitoringStatus"], one["statistics"]) == (3, ARCHIVED_STATS)
    listed = {j["id"]: j["statistics"] for j in http.get("/api/jobs/", headers=tok.headers()).json()["jobs"]}
    assert listed == {archived: ARCHIVED_STATS, running: None}
    page = http.get("/api/jobs/", params={"items-per-page": 1000}, headers=tok.headers()).json()["jobs"]
    assert {j["id"]: j["statistics"] for j in page} == listed  # the streamed page says the same
    assert http.get(f"/api/jobs/{running}", headers=tok.headers()).json()["meta"]["statistics"] is None


FULLWIDTH_HOST = "\uff46\uff10\uff11\uff10\uff11"  # looks like f0101


def test_a_start_on_a_confusable_host_name_is_refused_with_the_character_named(client, job_payload) -> None:
    http, tok = client
    body = job_payload(resources=[{"hostname": FULLWIDTH_HOST}])
    response = http.post("/api/jobs/start_job/", json=body, headers=tok.headers())
    assert_error(response, 400, "U+FF46 FULLWIDTH LATIN SMALL LETTER F",
                 "host names are ASCII letters, digits, '-', '_' and '.'")
    assert http.get("/api/jobs/", headers=tok.headers()).json()["jobs"] == []


def test_a_node_state_of_a_confusable_host_name_is_refused(client) -> None:
    http, tok = client
    body = {"cluster": "fritz", "nodes": [{"hostname": FULLWIDTH_HOST, "states": ["idle"], "cpusAllocated": 0,
                                           "memoryAllocated": 0, "gpusAllocated": 0, "jobsRunning": 0}]}
    response = http.post("/api/nodestate/", json=body, headers=tok.headers())
    assert_error(response, 400, "U+FF46 FULLWIDTH LATIN SMALL LETTER F")

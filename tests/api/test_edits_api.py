"""Changes to known jobs through the REST API: tags, metadata, deletion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import START, Tokens, assert_error, job_body, module_app, start_job


def tags_of(job: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(t["type"], t["name"], t["scope"]) for t in job.get("tags", [])]


def get_job(http: Any, tok: Any, db_id: int) -> dict[str, Any]:
    response = http.get(f"/api/jobs/{db_id}", headers=tok.headers())
    assert response.status_code == 200, response.text
    return dict(response.json()["meta"])


@pytest.fixture(scope="module")
def target(tmp_path_factory, closer) -> Iterator[tuple[Any, Tokens, int]]:
    """One app per module holding one job (1000 on fritz, untagged), for requests that must change nothing."""
    with module_app(tmp_path_factory, closer) as (http, tok):
        yield http, tok, start_job(http, tok)


def assert_unchanged(target: tuple[Any, Tokens, int]) -> None:
    http, tok, db_id = target
    jobs = http.get("/api/jobs/", params={"with-metadata": "true"}, headers=tok.headers()).json()["jobs"]
    assert [(j["id"], j["jobState"], j["metaData"], "tags" in j) for j in jobs] == [
        (db_id, "running", {"jobName": "test"}, False)
    ]


# ---------------------------------------------------------------- tag_job


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_tag_job_attaches_tags_and_answers_the_job(client, start, method) -> None:
    http, tok = client
    db_id = start()
    body = [{"type": "app", "name": "gromacs"}, {"type": "review", "name": "slow", "scope": "admin"}]
    response = http.request(method, f"/api/jobs/tag_job/{db_id}", json=body, headers=tok.headers())
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["id"] == db_id
    assert tags_of(job) == [("app", "gromacs", "global"), ("review", "slow", "admin")]
    assert all(isinstance(t["id"], int) for t in job["tags"])
    assert tags_of(get_job(http, tok, db_id)) == tags_of(job)


def test_a_tag_private_to_an_existing_user_is_attached(client, start) -> None:
    http, tok = client
    db_id = start()
    body = [{"type": "note", "name": "look", "scope": "alice"}]
    response = http.post(f"/api/jobs/tag_job/{db_id}", json=body, headers=tok.headers())
    assert response.status_code == 200, response.text
    assert tags_of(response.json()) == [("note", "look", "alice")]


def test_a_tag_scope_naming_nobody_is_refused_and_nothing_is_written(target) -> None:
    http, tok, db_id = target
    body = [{"type": "app", "name": "ok"}, {"type": "app", "name": "x", "scope": "nobody"}]
    response = http.post(f"/api/jobs/tag_job/{db_id}", json=body, headers=tok.headers())
    assert_error(response, 400, "tag scope 'nobody' is neither global, admin nor the name of an existing user")
    assert_unchanged(target)


def test_a_start_with_a_tag_scope_naming_nobody_is_refused(target) -> None:
    http, tok, _db_id = target
    job = job_body(jobId=4711, tags=[{"type": "app", "name": "x", "scope": "mallory"}])
    response = http.post("/api/jobs/start_job/", json=job, headers=tok.headers())
    assert_error(response, 400, "tag scope 'mallory' is neither global, admin nor the name of an existing user")
    assert_unchanged(target)


def test_tags_accumulate_and_are_attached_once(client, start) -> None:
    http, tok = client
    db_id = start(tags=[{"type": "app", "name": "vasp"}])
    http.post(f"/api/jobs/tag_job/{db_id}", json=[{"type": "app", "name": "vasp"}], headers=tok.headers())
    response = http.post(f"/api/jobs/tag_job/{db_id}", json=[{"type": "debug", "name": "x"}], headers=tok.headers())
    assert tags_of(response.json()) == [("app", "vasp", "global"), ("debug", "x", "global")]


def test_tags_are_shared_between_jobs(client, start) -> None:
    http, tok = client
    first, second = start(jobId=1), start(jobId=2)
    for db_id in (first, second):
        http.post(f"/api/jobs/tag_job/{db_id}", json=[{"type": "app", "name": "lammps"}], headers=tok.headers())
    assert get_job(http, tok, first)["tags"] == get_job(http, tok, second)["tags"]


def test_same_tag_in_another_scope_is_another_tag(client, start) -> None:
    http, tok = client
    db_id = start()
    body = [{"type": "app", "name": "x", "scope": "global"}, {"type": "app", "name": "x", "scope": "admin"}]
    job = http.post(f"/api/jobs/tag_job/{db_id}", json=body, headers=tok.headers()).json()
    assert tags_of(job) == [("app", "x", "global"), ("app", "x", "admin")]
    assert len({t["id"] for t in job["tags"]}) == 2


def test_tagging_a_stopped_job_works(client, start, stop) -> None:
    http, tok = client
    db_id = start()
    stop()
    job = http.post(f"/api/jobs/tag_job/{db_id}", json=[{"type": "a", "name": "b"}], headers=tok.headers()).json()
    assert (job["jobState"], tags_of(job)) == ("completed", [("a", "b", "global")])


def test_empty_tag_list_changes_nothing(client, start) -> None:
    http, tok = client
    db_id = start()
    response = http.post(f"/api/jobs/tag_job/{db_id}", json=[], headers=tok.headers())
    assert response.status_code == 200
    assert "tags" not in response.json()


def test_tag_unknown_job_is_not_found(shared_client) -> None:
    http, tok = shared_client
    assert_error(http.post("/api/jobs/tag_job/42", json=[{"type": "a", "name": "b"}], headers=tok.headers()), 404)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"type": "a", "name": "b"}',
        b'[{"type": "a"}]',
        b'[{"name": "b"}]',
        b'[{"type": "", "name": "b"}]',
        b'[{"type": "a", "name": "b", "colour": "red"}]',
        b'[{"type": 1, "name": "b"}]',
        b'["a:b"]',
    ],
)
def test_tag_job_with_a_bad_body_is_refused(target, body) -> None:
    http, tok, db_id = target
    response = http.post(f"/api/jobs/tag_job/{db_id}", content=body, headers=tok.headers())
    assert_error(response, 400)
    assert_unchanged(target)


def test_tag_job_with_a_non_integer_id_is_refused(shared_client) -> None:
    http, tok = shared_client
    response = http.post("/api/jobs/tag_job/abc", json=[{"type": "a", "name": "b"}], headers=tok.headers())
    assert_error(response, 400, "abc")


def test_delete_tag_job_removes_only_the_named_tags(client, start) -> None:
    http, tok = client
    db_id = start(tags=[{"type": "app", "name": "vasp"}, {"type": "debug", "name": "x"}])
    response = http.request("DELETE", f"/api/jobs/tag_job/{db_id}", json=[{"type": "debug", "name": "x",
                                                                          "scope": "global"}],
                            headers=tok.headers())
    assert response.status_code == 200, response.text
    assert tags_of(response.json()) == [("app", "vasp", "global")]
    assert tags_of(get_job(http, tok, db_id)) == [("app", "vasp", "global")]


def test_delete_tag_job_only_touches_that_job(client, start) -> None:
    http, tok = client
    first = start(jobId=1, tags=[{"type": "app", "name": "vasp"}])
    second = start(jobId=2, tags=[{"type": "app", "name": "vasp"}])
    http.request("DELETE", f"/api/jobs/tag_job/{first}", json=[{"type": "app", "name": "vasp"}],
                 headers=tok.headers())
    assert "tags" not in get_job(http, tok, first)
    assert tags_of(get_job(http, tok, second)) == [("app", "vasp", "global")]


def test_delete_tag_job_of_unknown_job_or_with_bad_body(target) -> None:
    http, tok, db_id = target
    assert_error(http.request("DELETE", "/api/jobs/tag_job/99", json=[{"type": "a", "name": "b"}],
                              headers=tok.headers()), 404)
    assert_error(http.request("DELETE", f"/api/jobs/tag_job/{db_id}", json={"type": "a"}, headers=tok.headers()),
                 400)
    assert_unchanged(target)


def test_delete_tags_removes_them_from_every_job(client, start) -> None:
    http, tok = client
    first = start(jobId=1, tags=[{"type": "app", "name": "vasp"}, {"type": "keep", "name": "me"}])
    second = start(jobId=2, tags=[{"type": "app", "name": "vasp"}])
    body = [{"type": "app", "name": "vasp", "scope": "global"}, {"type": "never", "name": "seen"}]
    response = http.request("DELETE", "/api/tags/", json=body, headers=tok.headers())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Deleted Tags from DB: 1 successfull of 2 requested\n"
    assert tags_of(get_job(http, tok, first)) == [("keep", "me", "global")]
    assert "tags" not in get_job(http, tok, second)


def test_delete_tags_matches_the_scope(client, start) -> None:
    http, tok = client
    db_id = start(tags=[{"type": "app", "name": "vasp", "scope": "admin"}])
    response = http.request("DELETE", "/api/tags/", json=[{"type": "app", "name": "vasp"}], headers=tok.headers())
    assert response.text == "Deleted Tags from DB: 0 successfull of 1 requested\n"
    assert tags_of(get_job(http, tok, db_id)) == [("app", "vasp", "admin")]
    response = http.request("DELETE", "/api/tags/", json=[{"type": "app", "name": "vasp", "scope": "admin"}],
                            headers=tok.headers())
    assert response.text == "Deleted Tags from DB: 1 successfull of 1 requested\n"
    assert "tags" not in get_job(http, tok, db_id)


def test_a_deleted_tag_can_be_used_again(client, start) -> None:
    http, tok = client
    db_id = start(tags=[{"type": "app", "name": "vasp"}])
    http.request("DELETE", "/api/tags/", json=[{"type": "app", "name": "vasp"}], headers=tok.headers())
    job = http.post(f"/api/jobs/tag_job/{db_id}", json=[{"type": "app", "name": "vasp"}], headers=tok.headers())
    assert tags_of(job.json()) == [("app", "vasp", "global")]


@pytest.mark.parametrize("body", [b"", b"{}", b'[{"type": "a"}]', b"[1]"])
def test_delete_tags_with_a_bad_body_is_refused(shared_client, body) -> None:
    http, tok = shared_client
    assert_error(http.request("DELETE", "/api/tags/", content=body, headers=tok.headers()), 400)


# ---------------------------------------------------------------- edit_meta


def test_edit_meta_sets_and_overwrites_a_key(client, start) -> None:
    http, tok = client
    db_id = start()
    first = http.patch(f"/api/jobs/edit_meta/{db_id}", json={"key": "note", "value": "one"}, headers=tok.headers())
    assert first.status_code == 200, first.text
    assert first.json()["metaData"] == {"jobName": "test", "note": "one"}
    second = http.patch(f"/api/jobs/edit_meta/{db_id}", json={"key": "jobName", "value": "renamed"},
                        headers=tok.headers())
    assert second.json()["metaData"] == {"jobName": "renamed", "note": "one"}
    assert get_job(http, tok, db_id)["metaData"] == {"jobName": "renamed", "note": "one"}


def test_edit_meta_of_a_job_without_metadata(client, start) -> None:
    http, tok = client
    db_id = start(metaData=None)
    assert "metaData" not in get_job(http, tok, db_id)
    response = http.patch(f"/api/jobs/edit_meta/{db_id}", json={"key": "k", "value": ""}, headers=tok.headers())
    assert response.json()["metaData"] == {"k": ""}


def test_edit_meta_of_unknown_job_is_not_found(shared_client) -> None:
    http, tok = shared_client
    assert_error(http.patch("/api/jobs/edit_meta/5", json={"key": "k", "value": "v"}, headers=tok.headers()), 404)


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"key": "k"}', b'{"value": "v"}', b'{"key": "", "value": "v"}', b'{"key": "k", "value": 1}',
     b'{"key": "k", "value": "v", "other": 1}'],
)
def test_edit_meta_with_a_bad_body_is_refused(target, body) -> None:
    http, tok, db_id = target
    assert_error(http.patch(f"/api/jobs/edit_meta/{db_id}", content=body, headers=tok.headers()), 400)
    assert_unchanged(target)


def test_edit_meta_with_a_non_integer_id_is_refused(shared_client) -> None:
    http, tok = shared_client
    assert_error(http.patch("/api/jobs/edit_meta/x1", json={"key": "k", "value": "v"}, headers=tok.headers()), 400)


def test_edit_meta_by_request_names_the_job(client, start) -> None:
    http, tok = client
    old = start()
    new = start(startTime=START + 100_000)
    body = {"jobId": 1000, "cluster": "fritz", "startTime": START, "payload": {"key": "k", "value": "old"}}
    response = http.patch("/api/jobs/edit_meta/", json=body, headers=tok.headers())
    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["metaData"]["k"]) == (old, "old")
    # Without startTime: the newest run.
    body = {"jobId": 1000, "cluster": "fritz", "payload": {"key": "k", "value": "new"}}
    assert http.patch("/api/jobs/edit_meta/", json=body, headers=tok.headers()).json()["id"] == new
    assert get_job(http, tok, old)["metaData"]["k"] == "old"
    assert get_job(http, tok, new)["metaData"]["k"] == "new"


@pytest.mark.parametrize(
    "body",
    [
        {"jobId": 4242, "cluster": "fritz", "payload": {"key": "k", "value": "v"}},
        {"jobId": 1000, "cluster": "alex", "payload": {"key": "k", "value": "v"}},
        {"jobId": 1000, "cluster": "fritz", "startTime": START + 1, "payload": {"key": "k", "value": "v"}},
    ],
)
def test_edit_meta_by_request_of_unknown_job_is_not_found(target, body) -> None:
    http, tok, _ = target
    assert_error(http.patch("/api/jobs/edit_meta/", json=body, headers=tok.headers()), 404)
    assert_unchanged(target)


@pytest.mark.parametrize(
    "body",
    [
        {"cluster": "fritz", "payload": {"key": "k", "value": "v"}},
        {"jobId": 1000, "cluster": "fritz"},
        {"jobId": 1000, "cluster": "fritz", "payload": {"key": "k"}},
        {"jobId": "1000", "cluster": "fritz", "payload": {"key": "k", "value": "v"}},
    ],
)
def test_edit_meta_by_request_with_a_bad_body_is_refused(target, body) -> None:
    http, tok, _ = target
    assert_error(http.patch("/api/jobs/edit_meta/", json=body, headers=tok.headers()), 400)
    assert_unchanged(target)


# ---------------------------------------------------------------- delete_job


def test_delete_job_by_id(client, start, list_jobs) -> None:
    http, tok = client
    keep, gone = start(jobId=1), start(jobId=2, tags=[{"type": "a", "name": "b"}])
    response = http.delete(f"/api/jobs/delete_job/{gone}", headers=tok.headers())
    assert response.status_code == 200
    assert response.json() == {"msg": f"Successfully deleted job {gone}"}
    assert [j["id"] for j in list_jobs()] == [keep]
    assert_error(http.get(f"/api/jobs/{gone}", headers=tok.headers()), 404)


def test_delete_unknown_job_is_not_found(shared_client) -> None:
    http, tok = shared_client
    assert_error(http.delete("/api/jobs/delete_job/3", headers=tok.headers()), 404)
    assert_error(http.delete("/api/jobs/delete_job/three", headers=tok.headers()), 400)


def test_delete_job_by_request(client, start, list_jobs) -> None:
    http, tok = client
    old = start()
    new = start(startTime=START + 100_000)
    body = {"jobId": 1000, "cluster": "fritz", "startTime": START}
    response = http.request("DELETE", "/api/jobs/delete_job/", json=body, headers=tok.headers())
    assert response.status_code == 200, response.text
    assert response.json() == {"msg": f"Successfully deleted job {old}"}
    assert [j["id"] for j in list_jobs()] == [new]


def test_delete_job_by_request_without_start_time_deletes_the_newest(client, start, list_jobs) -> None:
    http, tok = client
    old = start()
    new = start(startTime=START + 100_000)
    response = http.request("DELETE", "/api/jobs/delete_job/", json={"jobId": 1000}, headers=tok.headers())
    assert response.json() == {"msg": f"Successfully deleted job {new}"}
    assert [j["id"] for j in list_jobs()] == [old]


@pytest.mark.parametrize(("body", "status"), [
    ({"jobId": 1000, "cluster": "alex"}, 404),
    ({"jobId": 1, "cluster": "fritz", "startTime": START}, 404),
    ({"cluster": "fritz"}, 400),
    ({"jobId": 1000, "user": "alice"}, 400),
    ([1000], 400),
])
def test_delete_job_by_request_failures(target, body, status) -> None:
    http, tok, _ = target
    assert_error(http.request("DELETE", "/api/jobs/delete_job/", json=body, headers=tok.headers()), status)
    assert_unchanged(target)


def test_delete_jobs_before(client, start, list_jobs) -> None:
    http, tok = client
    start(jobId=1, startTime=START)
    start(jobId=2, startTime=START + 10)
    late = start(jobId=3, startTime=START + 20)
    response = http.delete(f"/api/jobs/delete_job_before/{START + 20}", headers=tok.headers())
    assert response.status_code == 200
    assert response.json() == {"msg": "Successfully deleted 2 jobs"}
    assert [j["id"] for j in list_jobs()] == [late]
    again = http.delete(f"/api/jobs/delete_job_before/{START + 20}", headers=tok.headers())
    assert again.json() == {"msg": "Successfully deleted 0 jobs"}


def test_delete_jobs_before_can_omit_tagged_jobs(client, start, list_jobs) -> None:
    http, tok = client
    tagged = start(jobId=1, tags=[{"type": "keep", "name": "me"}])
    start(jobId=2, startTime=START + 10)
    response = http.delete(f"/api/jobs/delete_job_before/{START + 100}", params={"omit-tagged": "true"},
                           headers=tok.headers())
    assert response.json() == {"msg": "Successfully deleted 1 jobs"}
    assert [j["id"] for j in list_jobs()] == [tagged]
    response = http.delete(f"/api/jobs/delete_job_before/{START + 100}", params={"omit-tagged": "false"},
                           headers=tok.headers())
    assert response.json() == {"msg": "Successfully deleted 1 jobs"}
    assert list_jobs() == []


@pytest.mark.parametrize(("path", "params"), [("soon", {}), ("1.5", {}), (str(START), {"omit-tagged": "perhaps"}),
                                              (str(START), {"dry-run": "1"})])
def test_delete_jobs_before_with_bad_arguments_is_refused(target, path, params) -> None:
    http, tok, _ = target
    assert_error(http.delete(f"/api/jobs/delete_job_before/{path}", params=params, headers=tok.headers()), 400)
    assert_unchanged(target)


def test_deleted_job_can_be_started_again_with_the_same_payload(client, job_payload, list_jobs) -> None:
    http, tok = client
    first = http.post("/api/jobs/start_job/", json=job_payload(), headers=tok.headers()).json()["id"]
    http.delete(f"/api/jobs/delete_job/{first}", headers=tok.headers())
    again = http.post("/api/jobs/start_job/", json=job_payload(), headers=tok.headers())
    assert again.status_code == 201
    assert isinstance(again.json()["id"], int)
    assert [(j["id"], j["jobState"]) for j in list_jobs()] == [(again.json()["id"], "running")]


def test_restarted_job_can_be_stopped_like_its_deleted_predecessor(client, start, stop, list_jobs) -> None:
    http, tok = client
    first = start()
    stop(stop_time=START + 60)
    http.delete(f"/api/jobs/delete_job/{first}", headers=tok.headers())
    start()
    stopped = stop(stop_time=START + 60)
    assert (stopped["jobState"], stopped["duration"]) == ("completed", 60)
    assert [(j["jobState"], j["duration"]) for j in list_jobs()] == [("completed", 60)]


def test_deleted_job_frees_its_duplicate_window(client, start, list_jobs) -> None:
    http, tok = client
    first = start()
    http.delete(f"/api/jobs/delete_job/{first}", headers=tok.headers())
    start(startTime=START + 10)
    assert [j["startTime"] for j in list_jobs()] == [START + 10]

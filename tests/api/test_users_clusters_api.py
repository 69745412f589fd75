"""Clusters, users and operator routes of the REST API."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.api.conftest import ACCOUNTS, SPECS, START, assert_error


def cluster_file(name: str) -> dict[str, Any]:
    return dict(orjson.loads((SPECS / "archive" / name / "cluster.json").read_bytes()))


# ---------------------------------------------------------------- clusters


def test_clusters_lists_every_cluster_config(shared_client) -> None:
    http, tok = shared_client
    response = http.get("/api/clusters/", headers=tok.headers())
    assert response.status_code == 200
    clusters = response.json()["clusters"]
    assert sorted(c["name"] for c in clusters) == ["alex", "fritz"]
    assert {c["name"]: c for c in clusters} == {"alex": cluster_file("alex"), "fritz": cluster_file("fritz")}


def test_clusters_filtered_by_name(shared_client) -> None:
    http, tok = shared_client
    response = http.get("/api/clusters/", params={"cluster": "fritz"}, headers=tok.headers())
    assert response.status_code == 200
    assert response.json() == {"clusters": [cluster_file("fritz")]}


def test_unknown_cluster_is_refused(shared_client) -> None:
    http, tok = shared_client
    assert_error(http.get("/api/clusters/", params={"cluster": "nowhere"}, headers=tok.headers()), 400, "nowhere")
    assert_error(http.get("/api/clusters/", params={"name": "fritz"}, headers=tok.headers()), 400, "name")


# ---------------------------------------------------------------- users


def create_user(http: Any, tok: Any, **form: str) -> Any:
    return http.post("/api/users/", data=form, headers=tok.headers("admin"))


def users(http: Any, tok: Any, **params: str) -> list[dict[str, Any]]:
    response = http.get("/api/users/", params=params, headers=tok.headers("admin"))
    assert response.status_code == 200, response.text
    return [u for u in response.json() if u["username"] not in ACCOUNTS]  # the accounts the tokens name


def test_no_users_at_first(client) -> None:
    http, tok = client
    assert users(http, tok) == []


def test_create_user_from_form_fields(client) -> None:
    http, tok = client
    response = create_user(http, tok, username="carol", password="s3cret", role="user", name="Carol C",
                           email="carol@example.org")
    assert response.status_code == 200, response.text
    assert response.text == "User carol successfully created!\n"
    assert users(http, tok) == [
        {"username": "carol", "name": "Carol C", "roles": ["user"], "email": "carol@example.org", "projects": []}
    ]


def test_password_hash_is_never_listed(client) -> None:
    http, tok = client
    create_user(http, tok, username="carol", password="s3cret", role="user")
    raw = http.get("/api/users/", headers=tok.headers("admin")).text
    assert "s3cret" not in raw and "$2" not in raw and "password" not in raw


def test_api_user_may_have_a_blank_password_and_managers_get_a_project(client) -> None:
    http, tok = client
    assert create_user(http, tok, username="collector", role="api").status_code == 200
    assert create_user(http, tok, username="mgr", password="pw", role="manager", project="proj1").status_code == 200
    listed = {u["username"]: (u["roles"], u["projects"]) for u in users(http, tok)}
    assert listed == {"collector": (["api"], []), "mgr": (["manager"], ["proj1"])}


def test_not_just_user_lists_only_users_with_special_roles(client) -> None:
    http, tok = client
    create_user(http, tok, username="plain", password="pw", role="user")
    create_user(http, tok, username="chief", password="pw", role="admin")
    create_user(http, tok, username="collector", role="api")
    assert [u["username"] for u in users(http, tok)] == ["chief", "collector", "plain"]
    assert [u["username"] for u in users(http, tok, **{"not-just-user": "true"})] == ["chief", "collector"]
    assert [u["username"] for u in users(http, tok, **{"not-just-user": "false"})] == ["chief", "collector", "plain"]


@pytest.mark.parametrize("params", [{"not-just-user": "sometimes"}, {"role": "admin"}])
def test_list_users_with_bad_parameters_is_refused(shared_client, params) -> None:
    http, tok = shared_client
    assert_error(http.get("/api/users/", params=params, headers=tok.headers("admin")), 400)


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"password": "pw", "role": "user"}, "username"),
        ({"username": "x", "password": "pw", "role": "wizard"}, "role"),
        ({"username": "x", "password": "pw"}, "role"),
        ({"username": "x", "role": "user"}, "blank password"),
        ({"username": "x", "password": "pw", "role": "user", "project": "p"}, "only managers"),
        ({"username": "x", "password": "pw", "role": "manager"}, "managers require a project"),
        ({"username": "\x0c\xa1bad", "password": "", "role": "api"}, "username"),
        ({"username": "x" * 256, "password": "", "role": "api"}, "username"),
    ],
)
def test_create_user_with_bad_form_is_refused(shared_client, form, fragment) -> None:
    http, tok = shared_client
    assert_error(create_user(http, tok, **form), 400, fragment)
    assert users(http, tok) == []


def test_create_existing_user_is_refused(client) -> None:
    http, tok = client
    create_user(http, tok, username="carol", password="pw", role="user")
    assert_error(create_user(http, tok, username="carol", password="other", role="admin"), 422, "carol")
    assert [u["roles"] for u in users(http, tok)] == [["user"]]


def test_delete_user(client) -> None:
    http, tok = client
    create_user(http, tok, username="carol", password="pw", role="user")
    create_user(http, tok, username="dave", password="pw", role="user")
    response = http.request("DELETE", "/api/users/", data={"username": "carol"}, headers=tok.headers("admin"))
    assert response.status_code == 200
    assert [u["username"] for u in users(http, tok)] == ["dave"]


@pytest.mark.parametrize("form", [{"username": "ghost"}, {}])
def test_delete_unknown_user_is_refused(client, form) -> None:
    http, tok = client
    assert_error(http.request("DELETE", "/api/users/", data=form, headers=tok.headers("admin")), 422)


def test_deleted_user_can_be_created_again(client) -> None:
    http, tok = client
    create_user(http, tok, username="carol", password="pw", role="user")
    http.request("DELETE", "/api/users/", data={"username": "carol"}, headers=tok.headers("admin"))
    assert create_user(http, tok, username="carol", password="pw", role="support").status_code == 200
    assert [u["roles"] for u in users(http, tok)] == [["support"]]


def update_user(http: Any, tok: Any, username: str, **form: str) -> Any:
    return http.post(f"/api/user/{username}", data=form, headers=tok.headers("admin"))


def test_update_user_roles_and_projects(client) -> None:
    http, tok = client
    create_user(http, tok, username="carol", password="pw", role="user")

    added = update_user(http, tok, "carol", **{"add-role": "manager"})
    assert added.status_code == 200, added.text
    assert added.text.startswith("Add Role Success")
    project = update_user(http, tok, "carol", **{"add-project": "proj9"})
    assert project.text.startswith("Add Project Success")
    assert [(u["roles"], u["projects"]) for u in users(http, tok)] == [(["user", "manager"], ["proj9"])]

    assert update_user(http, tok, "carol", **{"remove-project": "proj9"}).text.startswith("Remove Project Success")
    assert update_user(http, tok, "carol", **{"remove-role": "user"}).text.startswith("Remove Role Success")
    assert [(u["roles"], u["projects"]) for u in users(http, tok)] == [(["manager"], [])]


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"add-role": "user"}, 422),  # already has it
        ({"add-role": "wizard"}, 422),
        ({"remove-role": "admin"}, 422),  # does not have it
        ({"add-project": "p"}, 422),  # not a manager
        ({"remove-project": "p"}, 422),
        ({}, 400),
    ],
)
def test_impossible_user_updates_are_refused(client, form, status) -> None:
    http, tok = client
    create_user(http, tok, username="carol", password="pw", role="user")
    assert_error(update_user(http, tok, "carol", **form), status)
    assert [(u["roles"], u["projects"]) for u in users(http, tok)] == [(["user"], [])]


def test_update_unknown_user_is_refused(shared_client) -> None:
    http, tok = shared_client
    assert_error(update_user(http, tok, "ghost", **{"add-role": "admin"}), 422, "ghost")


# ---------------------------------------------------------------- operator routes


def test_admin_status_reports_the_log_and_the_agent(client, start) -> None:
    http, tok = client
    start()
    response = http.get("/api/admin/status", headers=tok.headers("admin"))
    assert response.status_code == 200
    body = response.json()
    head = body["log"]["head"]
    assert head >= 1
    agents = {a["name"]: a for a in body["agents"]}
    assert set(agents) == {"jobdb", "archiver"}
    agent = agents["jobdb"]
    assert (agent["checkpoint"], agent["lag"], agent["running"], agent["failures"]) == (head, 0, True, 0)
    assert agents["archiver"]["running"] and agents["archiver"]["failures"] == 0
    assert body["archiverPending"] == 0
    assert body["metricStore"]["samples_accepted"] == 0


def test_parked_stops_list_is_empty_without_early_stops(client, start, stop) -> None:
    http, tok = client
    start()
    stop(stop_time=START + 1)
    assert http.get("/api/admin/parked-stops", headers=tok.headers("admin")).json() == []

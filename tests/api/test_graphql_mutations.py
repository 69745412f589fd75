"""GraphQL mutations: each one an event in the log, visible in the job database when it is answered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.gqlsupport import Gql, graphql_app

CREATE = ("mutation($type: String!, $name: String!, $scope: String!) {"
          " createTag(type: $type, name: $name, scope: $scope) { id type name scope } }")
ADD = "mutation($job: ID!, $ids: [ID!]!) { addTagsToJob(job: $job, tagIds: $ids) { id type name scope } }"
REMOVE = "mutation($job: ID!, $ids: [ID!]!) { removeTagsFromJob(job: $job, tagIds: $ids) { id type name scope } }"
DELETE = "mutation($ids: [ID!]!) { removeTagFromList(tagIds: $ids) }"
CONFIG = "mutation($name: String!, $value: String!) { updateConfiguration(name: $name, value: $value) }"


@pytest.fixture
def gql(tmp_path_factory: pytest.TempPathFactory, closer: Any) -> Iterator[tuple[Gql, dict[int, int]]]:
    """A fresh app per test: mutations change it."""
    with graphql_app(tmp_path_factory, closer) as app:
        yield app


def events_of(client: Gql, event_type: str) -> list[dict[str, Any]]:
    services = client.http.app.state.services  # type: ignore[attr-defined]
    return [e.data for e in services.log.read(0, 10_000) if e.type == event_type]


def create(client: Gql, type_: str, name: str, scope: str, user: str = "boss") -> dict[str, Any]:
    return dict(client.data(CREATE, {"type": type_, "name": name, "scope": scope}, user=user)["createTag"])


def test_create_tag_is_an_event_and_listed_at_once(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    made = create(client, "review", "check", "global")
    assert (made["type"], made["name"], made["scope"]) == ("review", "check", "global")
    assert events_of(client, "tag.created") == [{"type": "review", "name": "check", "scope": "global"}]
    assert made in [dict(t) for t in client.data("query { tags { id type name scope } }")["tags"]]
    assert create(client, "review", "check", "global") == made  # the same tag again: the same answer


@pytest.mark.parametrize(("user", "scope", "allowed"), [
    ("alice", "alice", True), ("alice", "global", False), ("alice", "admin", False), ("alice", "bob", False),
    ("sam", "global", True), ("sam", "admin", False), ("boss", "admin", True), ("boss", "global", True),
])
def test_tag_write_scopes(gql: tuple[Gql, dict[int, int]], user: str, scope: str, allowed: bool) -> None:
    client, _ = gql
    variables = {"type": "t", "name": "n", "scope": scope}
    if allowed:
        assert client.data(CREATE, variables, user=user)["createTag"]["scope"] == scope
    else:
        errors = client.errors(CREATE, variables, user=user)
        assert errors[0]["message"] == f"not authorized to create tag t:n with scope {scope}"
        assert events_of(client, "tag.created") == []


def test_nobody_creates_a_private_tag_for_someone_else(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    for scope in ("alice", "ghost"):
        errors = client.errors(CREATE, {"type": "t", "name": "n", "scope": scope})  # not even an administrator
        assert errors[0]["message"] == f"not authorized to create tag t:n with scope {scope}"


def test_add_and_remove_tags_answer_the_jobs_tags_after_the_last(gql: tuple[Gql, dict[int, int]]) -> None:
    client, ids = gql
    one, two = create(client, "a", "one", "global"), create(client, "a", "two", "global")
    tags = client.data(ADD, {"job": str(ids[3]), "ids": [one["id"], two["id"]]})["addTagsToJob"]
    assert [t["name"] for t in tags] == ["one", "two"]
    assert [e["name"] for e in events_of(client, "job.tag_added") if e["type"] == "a"] == ["one", "two"]
    listed = client.data(f'query {{ job(id: "{ids[3]}") {{ tags {{ name }} }} }}')["job"]["tags"]
    assert listed == [{"name": "one"}, {"name": "two"}]
    left = client.data(REMOVE, {"job": str(ids[3]), "ids": [one["id"]]})["removeTagsFromJob"]
    assert [t["name"] for t in left] == ["two"]


def test_unknown_tags_and_invisible_jobs_are_errors_and_write_nothing(gql: tuple[Gql, dict[int, int]]) -> None:
    client, ids = gql
    before = len(events_of(client, "job.tag_added"))
    unknown = client.errors(ADD, {"job": str(ids[3]), "ids": ["999999"]})
    assert unknown[0]["message"] == "tag does not exist (ID): 999999"
    mine = create(client, "note", "x", "alice", user="alice")
    errors = client.errors(ADD, {"job": str(ids[4]), "ids": [mine["id"]]}, user="alice")  # bob's job
    assert f"no job with id {ids[4]}" in errors[0]["message"]
    assert client.errors(ADD, {"job": "x", "ids": [mine["id"]]})[0]["message"] == "'x' is not a job id"
    assert len(events_of(client, "job.tag_added")) == before


def test_remove_tag_from_list_deletes_tags_and_links(gql: tuple[Gql, dict[int, int]]) -> None:
    client, ids = gql
    gone = create(client, "a", "gone", "global")
    client.data(ADD, {"job": str(ids[1]), "ids": [gone["id"]]})
    assert client.data(DELETE, {"ids": [gone["id"]]})["removeTagFromList"] == [int(gone["id"])]
    assert gone["id"] not in {t["id"] for t in client.data("query { tags { id } }")["tags"]}
    assert gone["id"] not in {t["id"] for t in client.data(f'query {{ job(id: "{ids[1]}") {{ tags {{ id }} }} }}')[
        "job"]["tags"]}


def test_deleting_tags_follows_cc_backends_rules(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    shared = create(client, "a", "shared", "global", user="sam")
    errors = client.errors(DELETE, {"ids": [shared["id"]]}, user="sam")  # support may create global tags, not delete
    assert errors[0]["message"] == "not authorized to remove tag a:shared with scope global"
    private = create(client, "n", "p", "alice", user="alice")
    assert client.data(DELETE, {"ids": [private["id"]]}, user="alice")["removeTagFromList"] == [int(private["id"])]
    assert client.data(f'mutation {{ deleteTag(id: "{shared["id"]}") }}')["deleteTag"] == str(shared["id"])


def test_update_configuration_stores_the_key_for_the_viewer(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    assert client.data(CONFIG, {"name": "jobList_jobsPerPage", "value": "25"}, user="alice") == {
        "updateConfiguration": None}
    assert events_of(client, "user.configuration_updated") == [
        {"username": "alice", "key": "jobList_jobsPerPage", "value": "25"}]
    services = client.http.app.state.services  # type: ignore[attr-defined]
    with services.reader.connect() as conn:
        rows = conn.exec_driver_sql("SELECT username, confkey, value FROM configuration").all()
    assert [tuple(r) for r in rows] == [("alice", "jobList_jobsPerPage", "25")]
    errors = client.errors(CONFIG, {"name": "plotConfiguration_lineWidth", "value": "{not json"}, user="alice")
    assert "is not JSON" in errors[0]["message"]
    assert len(events_of(client, "user.configuration_updated")) == 1

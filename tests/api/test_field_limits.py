"""Every field has a limit: over it is a 400 naming the field and the limit, and nothing is stored
(a 100 MB metadata value would take some 400 MB on disk: log, job table, archive)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from streams.events.bounds import INT64_MAX, JSON_DEPTH_MAX, NAME_MAX, TEXT_MAX
from tests.api.conftest import Tokens, assert_error, job_body


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"level": value}
    return value


def _head(http: TestClient) -> int:
    return int(http.app.state.services.log.head())  # type: ignore[attr-defined]


def test_over_long_fields_of_a_start_are_refused_naming_field_and_limit(client: tuple[TestClient, Tokens]) -> None:
    http, tokens = client
    head = _head(http)
    cases = [
        ({"project": "p" * (NAME_MAX + 1)}, ("project", f"at most {NAME_MAX} characters")),
        ({"metaData": {"jobScript": "x" * (TEXT_MAX + 1)}}, ("metaData.jobScript", f"at most {TEXT_MAX} characters")),
        ({"metaData": {"k" * (NAME_MAX + 1): "v"}}, ("metaData", f"at most {NAME_MAX} characters")),
        ({"statistics": _nested(JSON_DEPTH_MAX + 1)}, ("statistics", f"nested deeper than {JSON_DEPTH_MAX} levels")),
        ({"statistics": {"bytes": INT64_MAX + 1}}, ("statistics", "outside the 64-bit range")),
        ({"jobId": INT64_MAX + 1}, ("jobId", str(INT64_MAX))),
        ({"tags": [{"type": "t" * (NAME_MAX + 1), "name": "n"}]}, ("tags.0.type", f"at most {NAME_MAX} characters")),
    ]
    for overrides, fragments in cases:
        answer = http.post("/api/jobs/start_job/", json=job_body(**overrides), headers=tokens.headers())
        assert_error(answer, 400, *fragments)
    assert _head(http) == head, "nothing of a refused start is stored"
    # At the limit, each is accepted.
    at_limit = job_body(project="p" * NAME_MAX, metaData={"jobScript": "x" * TEXT_MAX},
                        statistics=_nested(JSON_DEPTH_MAX - 1))
    assert http.post("/api/jobs/start_job/", json=at_limit, headers=tokens.headers()).status_code == 201


def test_edit_meta_refuses_an_over_long_value_or_key_and_an_over_size_body(client: tuple[TestClient, Tokens]) -> None:
    http, tokens = client
    started = http.post("/api/jobs/start_job/", json=job_body(), headers=tokens.headers())
    assert started.status_code == 201, started.text
    url = f"/api/jobs/edit_meta/{started.json()['id']}"
    head = _head(http)
    too_long = http.patch(url, json={"key": "note", "value": "v" * (TEXT_MAX + 1)}, headers=tokens.headers())
    assert_error(too_long, 400, "value", f"at most {TEXT_MAX} characters")
    key = http.patch(url, json={"key": "k" * (NAME_MAX + 1), "value": "v"}, headers=tokens.headers())
    assert_error(key, 400, "key", f"at most {NAME_MAX} characters")
    huge = b'{"key": "note", "value": "' + b"v" * (16 * 1024 * 1024) + b'"}'  # any body over 16 MiB, a 100 MB value too
    assert_error(http.patch(url, content=huge, headers=tokens.headers()), 413, "larger than 16777216 bytes",
                 "main.max-body-bytes")
    assert _head(http) == head, "nothing of a refused edit is stored"
    ok = http.patch(url, json={"key": "note", "value": "v" * TEXT_MAX}, headers=tokens.headers())
    assert ok.status_code == 200, ok.text


def test_tag_names_are_held_to_the_name_limit(client: tuple[TestClient, Tokens]) -> None:
    http, tokens = client
    started = http.post("/api/jobs/start_job/", json=job_body(jobId=5), headers=tokens.headers())
    head = _head(http)
    answer = http.post(f"/api/jobs/tag_job/{started.json()['id']}", json=[{"type": "t", "name": "n" * (NAME_MAX + 1)}],
                       headers=tokens.headers())
    assert_error(answer, 400, "name", f"at most {NAME_MAX} characters")
    assert _head(http) == head

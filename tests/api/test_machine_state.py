"""cc-backend's machine state routes over real HTTP against a `ccstream serve` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from api.machinestate import MAX_MACHINE_STATE_BYTES
from tests.api.conftest import AppFactory, Tokens, assert_error
from tests.support.server import CcstreamServer, running_server

URL = "/api/machine_state"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CcstreamServer]:
    with running_server(tmp_path_factory.mktemp("machine-state")) as running:
        yield running


def _http(server: CcstreamServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)


def test_put_then_get_serves_the_stored_json_from_the_cluster_host_file(server: CcstreamServer) -> None:
    state = {"topology": {"sockets": 2}, "gpus": ["a100", "a100"]}
    with _http(server) as http:
        put = http.put(f"{URL}/fritz/f0101", content=orjson.dumps(state))
        assert put.status_code == 201, put.text
        assert put.content == b""
        got = http.get(f"{URL}/fritz/f0101")
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("application/json")
        assert got.json() == state
        # POST is the same as PUT (cc-backend mounts both); the second write replaces the first.
        post = http.post(f"{URL}/fritz/f0101", content=b'{"v": 2}')
        assert post.status_code == 201
        assert http.get(f"{URL}/fritz/f0101").json() == {"v": 2}
    stored = server.workdir / "var" / "machine-state" / "fritz" / "f0101.json"
    assert orjson.loads(stored.read_bytes()) == {"v": 2}
    assert [p.name for p in stored.parent.iterdir()] == ["f0101.json"]  # no temp file left behind


def test_unknown_host_state_is_404(server: CcstreamServer) -> None:
    with _http(server) as http:
        assert_error(http.get(f"{URL}/fritz/f9999"), 404, "no machine state stored", "f9999")
        assert_error(http.get(f"{URL}/nocluster/f0101"), 404, "nocluster")


@pytest.mark.parametrize(("cluster", "host", "fragment"), [
    ("fritz", "%2E%2E", "host name"),  # percent-encoded: clients normalise a literal `..` away
    ("%2E%2E", "f0101", "cluster name"),
    ("fritz", ".hidden", "may not start with '.'"),
    ("fritz", "f0101..x", "contain '..'"),
    ("fritz", "f01\\01", "U+005C"),
    ("fritz", "\uff46\uff10101", "U+FF46 FULLWIDTH LATIN SMALL LETTER F"),
    ("fritz", "f01\u043001", "U+0430 CYRILLIC SMALL LETTER A"),
])
def test_names_that_are_no_safe_file_names_are_refused(server: CcstreamServer, cluster: str, host: str,
                                                       fragment: str) -> None:
    with _http(server) as http:
        assert_error(http.put(f"{URL}/{cluster}/{host}", content=b"{}"), 400, fragment)
        assert_error(http.get(f"{URL}/{cluster}/{host}"), 400, fragment)
    assert not list((server.workdir / "var").rglob(".hidden*"))


def test_a_slash_in_a_name_matches_no_route(server: CcstreamServer) -> None:
    with _http(server) as http:
        assert http.put(f"{URL}/fritz/a%2F..%2F..%2Fescape", content=b"{}").status_code == 404
    assert not (server.workdir / "escape.json").exists()


def test_body_over_the_limit_is_413_naming_it_and_the_old_state_stays(server: CcstreamServer) -> None:
    big = b'{"x": "' + b"a" * MAX_MACHINE_STATE_BYTES + b'"}'
    with _http(server) as http:
        assert http.put(f"{URL}/fritz/f0102", content=b'{"old": true}').status_code == 201
        assert_error(http.put(f"{URL}/fritz/f0102", content=big), 413, str(MAX_MACHINE_STATE_BYTES),
                     "MAX_MACHINE_STATE_BYTES")

        def chunked() -> Iterator[bytes]:  # no Content-Length: refused as it streams
            for start in range(0, len(big), 65536):
                yield big[start:start + 65536]

        assert_error(http.put(f"{URL}/fritz/f0102", content=chunked()), 413, "MAX_MACHINE_STATE_BYTES")
        assert http.get(f"{URL}/fritz/f0102").json() == {"old": True}


def test_a_body_that_is_not_json_is_refused(server: CcstreamServer) -> None:
    with _http(server) as http:
        assert_error(http.put(f"{URL}/fritz/f0103", content=b"not json"), 400, "not JSON")
        assert_error(http.put(f"{URL}/fritz/f0103", content=b""), 400, "empty")
        assert_error(http.get(f"{URL}/fritz/f0103"), 404, "f0103")


def test_the_routes_need_the_api_role(server: CcstreamServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.put(f"{URL}/fritz/f0104", content=b"{}").status_code == 401
        assert http.get(f"{URL}/fritz/f0104").status_code == 401


def test_without_machine_state_dir_there_are_no_routes(make_client: AppFactory, tokens: Tokens,
                                                       tmp_path: Path) -> None:
    http: TestClient = make_client({"main": {"machine-state-dir": ""}})
    response = http.put(f"{URL}/fritz/f0101", content=b"{}", headers=tokens.headers())
    assert response.status_code == 404
    assert not (tmp_path / "fritz").exists()

"""Every route's request body is bounded: over its limit is a 413 naming the limit and its setting,
before the body is buffered, and nothing is written. Routes are taken from the app itself, so a route
added later is covered without touching this test."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from api.bodylimit import WRITE_PATH, BodyLimit, BodyLimitMiddleware
from api.httpserver import GatheringHttpProtocol
from api.keys import generate_keypair
from tests.api.conftest import AppFactory, Tokens, assert_error, job_body, make_archive, tokens_for
from tests.support.asgi import uvicorn_in_thread

LIMITS = {"main": {"max-body-bytes": 1000, "max-job-body-bytes": 3000},
          "metric-store": {"max-write-bytes": 5000}}
JOB_PATHS = {"/api/jobs/start_job/", "/api/jobs/stop_job/"}
#: Routes that read a body: a chunked one over the limit must be refused while it streams in.
READERS = {("POST", "/api/jobs/start_job/"), ("PUT", "/api/jobs/stop_job/"), ("PATCH", "/api/jobs/edit_meta/1"),
           ("POST", "/api/jobs/tag_job/1"), ("DELETE", "/api/tags/"), ("POST", WRITE_PATH), ("POST", "/query"),
           ("POST", "/api/users/"), ("POST", "/api/nodestats/"), ("POST", "/api/query/")}


def _limit_of(path: str) -> tuple[int, str]:
    if path in JOB_PATHS:
        return 3000, "main.max-job-body-bytes"
    if path == WRITE_PATH:
        return 5000, "metric-store.max-write-bytes"
    return 1000, "main.max-body-bytes"


def _all_routes(app: Any, param: str = "1") -> list[tuple[str, str]]:
    """(method, concrete path) of every HTTP route of the app, path parameters filled in."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", lambda routes: routes)
    out = []
    for route in iterate(list(app.routes)):
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD" and isinstance(path, str):
                out.append((method, re.sub(r"\{[^}]+\}", param, path)))
    return sorted(set(out))


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, closer: Any) -> Iterator[tuple[TestClient, Tokens]]:
    with pytest.MonkeyPatch.context() as patch:
        public, private = generate_keypair()
        patch.setenv("JWT_PUBLIC_KEY", public)
        patch.setenv("JWT_PRIVATE_KEY", private)
        tmp = tmp_path_factory.mktemp("limited-app")
        factory = AppFactory(tmp, make_archive(tmp / "job-archive"), closer)
        yield factory(LIMITS), tokens_for(public, private)
        factory.close_all()


def _written(http: TestClient) -> tuple[Any, ...]:
    services = http.app.state.services  # type: ignore[attr-defined]
    store = services.metric_store.stats()
    return services.log.head(), store["series"], store.get("lines_accepted")


def test_every_route_refuses_a_declared_body_over_its_limit(limited: tuple[TestClient, Tokens]) -> None:
    http, tokens = limited
    routes = _all_routes(http.app)
    assert ("POST", "/api/jobs/start_job/") in routes and ("PATCH", "/api/jobs/edit_meta/1") in routes
    assert len(routes) > 30, routes
    before = _written(http)
    for method, path in routes:
        limit, setting = _limit_of(path)
        answer = http.request(method, path, content=b"x" * (limit + 1), headers=tokens.headers("admin"))
        body = assert_error(answer, 413, f"larger than {limit} bytes", setting)
        assert body, (method, path)
    assert _written(http) == before


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(700, total - sent)
        sent += piece
        yield b"x" * piece


def test_a_streamed_body_over_the_limit_is_refused_while_it_arrives(limited: tuple[TestClient, Tokens]) -> None:
    http, tokens = limited
    job = http.post("/api/jobs/start_job/", json=job_body(jobId=77), headers=tokens.headers())
    assert job.status_code == 201, job.text
    db_id = str(job.json()["id"])  # routes of a known job read the body; of an unknown one they answer 404 first
    refused = set()
    # Form routes read a form body only when it is declared as one; JSON routes ignore the type.
    headers = {**tokens.headers("admin"), "Content-Type": "application/x-www-form-urlencoded"}
    # Deletions last: a route that takes no body acts without reading one (deleting the job).
    routes = sorted(_all_routes(http.app, db_id), key=lambda route: route[0] == "DELETE")
    for method, path in routes:
        if method not in {"POST", "PUT", "PATCH", "DELETE"}:
            continue
        limit, setting = _limit_of(path)
        before = _written(http)
        answer = http.request(method, path, content=_chunks(limit + 1), headers=headers)
        assert answer.status_code < 500, (method, path, answer.text)
        if answer.status_code == 413:
            assert_error(answer, 413, f"larger than {limit} bytes", setting)
            assert _written(http) == before, (method, path)
            refused.add((method, path))
    readers = {(method, path.replace("/1", "/" + db_id)) for method, path in READERS}
    assert readers <= refused, readers - refused


def test_bodies_within_their_limits_are_accepted(limited: tuple[TestClient, Tokens]) -> None:
    http, tokens = limited
    body = job_body(metaData={"jobScript": "y" * 2000})  # over the general limit, within the job limit
    started = http.post("/api/jobs/start_job/", json=body, headers=tokens.headers())
    assert started.status_code == 201, started.text
    edited = http.patch(f"/api/jobs/edit_meta/{started.json()['id']}", json={"key": "note", "value": "z" * 900},
                        headers=tokens.headers())
    assert edited.status_code == 200, edited.text


async def _asgi_echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_the_middleware_counts_chunked_bodies_and_passes_declared_ones_within_the_limit() -> None:
    app = BodyLimitMiddleware(_asgi_echo, default=BodyLimit(10, "main.max-body-bytes"),
                              per_path={"/big": BodyLimit(20, "metric-store.max-write-bytes")})
    http = TestClient(app)  # not entered: a bare ASGI app has no lifespan
    assert http.post("/x", content=b"0123456789").content == b"0123456789"
    assert_error(http.post("/x", content=iter([b"012345", b"67890"])), 413, "larger than 10 bytes")
    assert http.post("/big", content=iter([b"0123456789", b"0123456789"])).status_code == 200
    assert_error(http.post("/big", content=b"x" * 21), 413, "larger than 20 bytes",
                 "metric-store.max-write-bytes")


def test_over_a_real_socket_a_declared_body_is_refused_before_it_is_sent() -> None:
    app = BodyLimitMiddleware(_asgi_echo, default=BodyLimit(1000, "main.max-body-bytes"), per_path={})
    with uvicorn_in_thread(app, http=GatheringHttpProtocol, lifespan="off") as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            # Ten gigabytes announced, none sent: the answer comes at once, the body is never waited for.
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
            received = b""
            while b"}" not in received:
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
        assert received.startswith(b"HTTP/1.1 413 ")
        assert b"request body larger than 1000 bytes (the limit set by `main.max-body-bytes`)" in received

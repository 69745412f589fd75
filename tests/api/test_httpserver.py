"""The HTTP protocol that sends each response in one write: answers are whole and in order, on a real
uvicorn server and real sockets, and the gathering transport holds nothing past a loop turn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import api.httpserver
from api.httpserver import MAX_GATHERED, GatheringHttpProtocol, GatheringTransport, http_protocol, protocol_problem
from tests.support.asgi import uvicorn_in_thread

BIG = b"x" * (3 * MAX_GATHERED + 17)


async def small(request: Request) -> JSONResponse:
    return JSONResponse({"echo": (await request.body()).decode()}, status_code=201)


async def big(_request: Request) -> Response:
    return Response(BIG, media_type="application/octet-stream")


async def streamed(_request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for n in range(5):
            await asyncio.sleep(0.01)
            yield f"part {n}\n".encode()

    return StreamingResponse(parts(), media_type="text/plain")


async def endless(_request: Request) -> StreamingResponse:
    """Far more than any socket buffer holds: the client hangs up long before the end."""
    async def parts() -> AsyncIterator[bytes]:
        for _ in range(4096):
            yield b"y" * MAX_GATHERED

    return StreamingResponse(parts(), media_type="application/octet-stream")


@pytest.fixture
def server() -> Iterator[str]:
    app = Starlette(routes=[Route("/small", small, methods=["POST"]), Route("/big", big), Route("/stream", streamed),
                            Route("/endless", endless)])
    with uvicorn_in_thread(app, http=GatheringHttpProtocol) as url:
        yield url


def test_keep_alive_answers_stay_whole_and_in_order(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        for n in range(50):
            response = client.post("/small", content=f"request {n}")
            assert response.status_code == 201
            assert response.json() == {"echo": f"request {n}"}
        assert client.get("/big").content == BIG
        assert client.get("/stream").text == "".join(f"part {n}\n" for n in range(5))
        assert client.post("/small", content="after").json() == {"echo": "after"}


def exchange(server: str, raw: bytes) -> bytes:
    """Send raw bytes on a fresh connection; everything the server sends until it closes."""
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_connection_close_sends_the_answer_before_closing(server: str) -> None:
    received = exchange(server, b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
    assert received.startswith(b"HTTP/1.1 201 ")
    assert received.endswith(b'{"echo":"hi"}')


def test_malformed_request_is_answered_400_before_the_connection_closes(server: str) -> None:
    received = exchange(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 ")


def read_response(sock: socket.socket, pending: bytes) -> tuple[bytes, bytes, bytes]:
    """(status line and headers, body, what follows) of one Content-Length response from `sock`."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        assert chunk, "the server closed before the end of the headers"
        pending += chunk
    head, pending = pending.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(
        b"content-length:"))
    while len(pending) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed before the end of the body"
        pending += chunk
    return head, pending[:length], pending[length:]


def test_pipelined_requests_are_answered_in_order_and_none_is_lost(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    requests = [f"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: {len(str(n))}\r\n\r\n{n}".encode()
                for n in range(40)]
    requests.insert(20, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # a large answer amid small ones
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(requests))  # all at once: the server reads them in one go
        pending = b""
        bodies = []
        for _ in requests:
            head, body, pending = read_response(sock, pending)
            assert head.split(b"\r\n", 1)[0] in (b"HTTP/1.1 201 Created", b"HTTP/1.1 200 OK")
            bodies.append(body)
    assert bodies[20] == BIG
    assert [b for i, b in enumerate(bodies) if i != 20] == [b'{"echo":"%d"}' % n for n in range(40)]


def test_http_1_0_is_answered_whole_and_the_connection_closed(server: str) -> None:
    received = exchange(server, b"GET /big HTTP/1.0\r\n\r\n")
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and body == BIG  # exchange returns once the server closed
    streamed = exchange(server, b"GET /stream HTTP/1.0\r\n\r\n")
    head, body = streamed.split(b"\r\n\r\n", 1)
    if b"transfer-encoding: chunked" in head.lower():  # as uvicorn frames a stream, whatever the protocol
        body = dechunk(body)
    assert body == b"".join(f"part {n}\n".encode() for n in range(5))


def dechunk(data: bytes) -> bytes:
    """The payload of a complete chunked body."""
    out = b""
    while True:
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2:]


def test_a_client_closing_mid_response_leaves_the_server_serving(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            # Hang up with a reset, the answer far from complete.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with httpx.Client(base_url=server) as client:
        for n in range(5):
            assert client.post("/small", content=f"after {n}").json() == {"echo": f"after {n}"}
        assert client.get("/big").content == BIG


def test_the_installed_uvicorn_carries_the_gathering_protocol() -> None:
    assert protocol_problem(api.httpserver.HttpToolsProtocol) is None
    assert http_protocol() is GatheringHttpProtocol


class _Moved:
    """A protocol class as a future uvicorn might have it: the transport kept elsewhere."""

    def __init__(self, config: object) -> None:
        self.loop = asyncio.get_event_loop_policy()

    def connection_made(self, transport: object) -> None:
        self._transport = transport


class _Renamed:
    def __init__(self) -> None:
        self.event_loop = None

    def connection_made(self, transport: object, extra: object = None) -> None:
        self.transport = transport


def test_a_changed_protocol_class_is_named_and_served_with_uvicorns_own(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert protocol_problem(_Moved) == "HttpToolsProtocol.connection_made no longer keeps the transport it is given"
    assert "takes ['self', 'transport', 'extra']" in (protocol_problem(_Renamed) or "")
    assert "cannot be imported" in (protocol_problem(None) or "")
    monkeypatch.setattr(api.httpserver, "HttpToolsProtocol", _Moved)
    with caplog.at_level("WARNING", logger="api.httpserver"):
        assert http_protocol() is _Moved
    [record] = caplog.records
    message = record.getMessage()
    assert "uvicorn's own HTTP protocol" in message and "no longer keeps the transport" in message
    monkeypatch.setattr(api.httpserver, "HttpToolsProtocol", None)
    assert http_protocol() == "auto"


class Recorder(asyncio.Transport):
    """The wrapped transport's side: what reached it, in which calls."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_writes_of_one_loop_turn_go_out_in_one_call() -> None:
    inner = Recorder()
    gathering = GatheringTransport(inner, asyncio.get_running_loop())
    gathering.write(b"HTTP/1.1 200 OK\r\n\r\n")
    gathering.write(b"body")
    assert inner.writes == [] and gathering.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    gathering.write(b"next")
    gathering.close()
    assert inner.writes[-1] == b"next" and inner.closed
    await asyncio.sleep(0)
    assert len(inner.writes) == 2


async def test_a_large_write_is_not_held_and_abort_drops_what_is() -> None:
    inner = Recorder()
    gathering = GatheringTransport(inner, asyncio.get_running_loop())
    gathering.write(b"head")
    gathering.write(BIG)
    assert inner.writes == [b"head" + BIG]
    gathering.write(b"never sent")
    gathering.abort()
    await asyncio.sleep(0)
    assert inner.writes == [b"head" + BIG] and inner.aborted

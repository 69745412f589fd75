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

from api.httpserver import MAX_GATHERED, GatheringHttpProtocol, GatheringTransport
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


@pytest.fixture
def server() -> Iterator[str]:
    app = Starlette(routes=[Route("/small", small, methods=["POST"]), Route("/big", big), Route("/stream", streamed)])
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

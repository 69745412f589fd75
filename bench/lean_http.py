"""A minimal keep-alive HTTP/1.1 client for load generation: one request in flight per connection.

httpx spends about a millisecond of CPU per request; on a 2-core machine a benchmark client built on
it takes a core away from the server it measures and caps what it can show. This client writes
pre-built request bytes and parses answers with httptools (uvicorn's own parser), at a few tens of
microseconds per request, so the figures are the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import httptools


class HttpError(RuntimeError):
    """The server closed the connection or sent something that is not HTTP/1.1."""


@dataclass
class _Answer:
    status: int = 0
    body: bytearray = field(default_factory=bytearray)
    done: bool = False
    keep_alive: bool = True


class _Parser:
    """httptools callbacks collecting one response at a time."""

    def __init__(self) -> None:
        self.answer = _Answer()
        self._parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        self.answer.body += body

    def on_message_complete(self) -> None:
        self.answer.status = self._parser.get_status_code()
        self.answer.keep_alive = self._parser.should_keep_alive()
        self.answer.done = True

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise HttpError(f"malformed response: {exc}") from None

    def reset(self) -> None:
        self.answer = _Answer()


class LeanConnection:
    """One keep-alive connection; `request` sends and awaits the whole answer (status, body)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items()).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = _Parser()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self._writer is None:
            await self.connect()
        assert self._reader is not None and self._writer is not None
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._fixed + f"Content-Length: {len(body)}\r\n\r\n".encode()
        self._writer.write(head + body)
        self._parser.reset()
        while not self._parser.answer.done:
            data = await self._reader.read(65536)
            if not data:
                await self.close()
                raise HttpError("connection closed by the server")
            self._parser.feed(data)
        answer = self._parser.answer
        if not answer.keep_alive:
            await self.close()
        return answer.status, bytes(answer.body)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

"""uvicorn's HTTP protocol with one socket write per response instead of two.

uvicorn writes a response's status line and headers as soon as the app starts the response, and the
body when it arrives: two `send` system calls for every start/stop answer, each with the interpreter
lock held (on loopback the kernel delivers to the peer inside the call). The scheduler adapters' hot
path answers small JSON bodies, so this protocol hands uvicorn a transport that gathers whatever is
written during one turn of the event loop and sends it at the end of that turn, in one call.

The protocol subclasses uvicorn's httptools protocol, a class uvicorn does not promise to keep. The
versions it is tested against are pinned in pyproject.toml; `http_protocol()` also checks, when the
server starts, that the class still does what the subclass relies on, and otherwise serves with
uvicorn's own protocol (one write more per response, nothing else changes) after one warning.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools missing, or uvicorn moved its protocols: http_protocol() falls back
    HttpToolsProtocol = None  # type: ignore[assignment, misc]

log = logging.getLogger(__name__)

#: Written data held back at most this many bytes; a larger response goes out as it is written.
MAX_GATHERED = 64 * 1024


class GatheringTransport:
    """A transport that gathers writes made in one loop turn and sends them together.

    Everything but writing, closing and the write-buffer size is the wrapped transport's own.
    Data is never reordered and never held past the current turn; closing sends what is held first.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self._send_held)
        self._held.append(bytes(data))
        self._held_bytes += len(data)
        if self._held_bytes >= MAX_GATHERED:
            self._send_held()

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _send_held(self) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._send_held()
        self._transport.close()

    def write_eof(self) -> None:
        self._send_held()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held.clear()
        self._held_bytes = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._held_bytes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def protocol_problem(protocol: Any) -> str | None:
    """Why `protocol` (uvicorn's httptools protocol class) cannot carry a GatheringTransport, or None.

    The subclass relies on two things only: `connection_made(transport)` keeps the transport it is given
    as the one every response is written to, and the instance has the event loop as `self.loop`.
    """
    if protocol is None:
        return "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol cannot be imported"
    try:
        made = inspect.signature(protocol.connection_made)
        made_source = inspect.getsource(protocol.connection_made)
        init_source = inspect.getsource(protocol.__init__)
    except (AttributeError, TypeError, ValueError, OSError) as exc:
        return f"HttpToolsProtocol cannot be inspected: {exc}"
    if list(made.parameters) != ["self", "transport"]:
        return f"HttpToolsProtocol.connection_made takes {list(made.parameters)}, not (self, transport)"
    if "self.transport = transport" not in made_source:
        return "HttpToolsProtocol.connection_made no longer keeps the transport it is given"
    if "self.loop = " not in init_source:
        return "HttpToolsProtocol no longer keeps its event loop as self.loop"
    return None


if HttpToolsProtocol is not None:
    class GatheringHttpProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol on a `GatheringTransport`."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(GatheringTransport(transport, self.loop))  # type: ignore[arg-type]
else:
    GatheringHttpProtocol = None  # type: ignore[assignment, misc]


def http_protocol() -> Any:
    """What to pass as uvicorn's `http`: the gathering protocol, or (warned once) uvicorn's own choice."""
    problem = protocol_problem(HttpToolsProtocol)
    if problem is None:
        return GatheringHttpProtocol
    log.warning("serving with uvicorn's own HTTP protocol, one socket write more per response: %s "
                "(uvicorn %s; the versions ccstream is tested with are pinned in pyproject.toml)",
                problem, uvicorn.__version__)
    return HttpToolsProtocol if HttpToolsProtocol is not None else "auto"


class DemoServer(uvicorn.Server):
    """uvicorn's server that stops the live clusters as soon as a signal asks it to exit.

    The clusters must stop before the server does: they record how far they got (where the next run
    resumes), and requests they would send during the graceful shutdown only meet closing connections.
    """

    on_exit: Callable[[], None] = staticmethod(lambda: None)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)

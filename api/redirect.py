"""`main.redirect-http-to`: port 80 answers every request with a permanent redirect, as cc-backend does.

cc-backend listens on :80 beside its HTTPS port and sends every plain-HTTP client to the configured URL
(301, the same URL for every path). Port 80 needs root, so the socket is bound before root is dropped and
served afterwards from a small thread: nothing there reads a file or touches the server's state.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

#: cc-backend's redirect port.
REDIRECT_PORT = 80


class RedirectError(RuntimeError):
    """The redirect listener cannot be set up; the message names the key."""


def check_target(url: str) -> str:
    """The redirect target, which must be an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RedirectError(f"main.redirect-http-to {url!r}: expected an absolute URL like https://host.example/")
    return url


def _handler(target: str) -> type[BaseHTTPRequestHandler]:
    class Redirect(BaseHTTPRequestHandler):
        def _send(self) -> None:
            self.send_response(301)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _send

        def log_message(self, format: str, *args: object) -> None:
            """No line per request: port 80 gets scanned all day."""

    return Redirect


class HttpRedirect:
    """The bound port-80 listener; `start` serves it in a daemon thread, `stop` closes it."""

    def __init__(self, target: str, host: str = "", port: int = REDIRECT_PORT) -> None:
        self.target = check_target(target)
        server = ThreadingHTTPServer((host, port), _handler(self.target), bind_and_activate=False)
        server.daemon_threads = True
        server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.server_bind()
            server.server_activate()
        except OSError as exc:
            server.server_close()
            raise RedirectError(f"main.redirect-http-to: cannot listen on port {port}: "
                                f"{exc.strerror or exc}") from None
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="ccstream-redirect", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

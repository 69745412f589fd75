"""Running an app under uvicorn the way cc-backend runs its server: TLS from `main.https-*`, the socket bound
first, root dropped (`main.user`/`main.group`) before anything else is opened, then the app built and served."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from api import privileges
from api.config import MainSettings
from api.redirect import HttpRedirect


class ServeError(RuntimeError):
    """The server cannot start as configured; the message names the key."""


class LateApp:
    """The ASGI app uvicorn is given before the real one exists: the real one is built only after the
    socket is bound and root is dropped, so that its files are opened as the configured user."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("the app is not built yet")
        await self.app(scope, receive, send)


def tls_options(main: MainSettings) -> dict[str, Any]:
    """uvicorn's TLS options from `main.https-cert-file` and `main.https-key-file` (both or neither)."""
    cert, key = main.https_cert_file, main.https_key_file
    if bool(cert) != bool(key):
        raise ServeError("main.https-cert-file and main.https-key-file go together: set both (HTTPS) or neither")
    return {"ssl_certfile": cert, "ssl_keyfile": key} if cert else {}


def serve(main: MainSettings, host: str, port: int, build: Callable[[], ASGIApp], **options: Any) -> None:
    """Bind, drop root if configured, `build()` the app, serve until stopped.

    The TLS certificate and key are read, and the `main.redirect-http-to` listener on port 80 is bound,
    before root is dropped (both usually need root).
    """
    identity = privileges.plan(main.user, main.group)
    late = LateApp()
    config = uvicorn.Config(late, host=host, port=port, **tls_options(main), **options)
    try:
        config.load()
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"main.https-cert-file {main.https_cert_file!r} / main.https-key-file "
                         f"{main.https_key_file!r}: cannot load the certificate and key: {exc}") from None
    redirect = HttpRedirect(main.redirect_http_to) if main.redirect_http_to else None
    try:
        sock = config.bind_socket()
    except BaseException:
        if redirect is not None:
            redirect.stop()
        raise
    try:
        if identity is not None:
            privileges.drop(identity)
        late.app = build()
        if redirect is not None:
            redirect.start()
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if redirect is not None:
            redirect.stop()

"""One limit on every request body, enforced before the body is buffered: by its length header, and
while it streams in.

Every route that reads a body (FastAPI's body parameters, forms, `request.body()` in an endpoint,
the direct start/stop lane) reads it through the ASGI `receive` this middleware hands on, so no route
can read more than its limit and no route needs a copy of the check. A body declared larger than the
limit is refused without reading a byte of it; a chunked body is counted as it arrives and refused at
the first byte over. Either way the answer is a 413 in cc-backend's shape naming the limit and the
setting that raises it, and the endpoint never runs to completion: what it would have written is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.config import Settings
from api.errors import ApiError, error_response


@dataclass(frozen=True)
class BodyLimit:
    """The largest body a set of routes accepts, and the setting an operator changes it with."""

    bytes: int
    setting: str

    def message(self) -> str:
        return f"request body larger than {self.bytes} bytes (the limit set by `{self.setting}`)"


class BodyTooLarge(ApiError):
    """Raised from `receive` when a streamed body passes its limit; the middleware answers it."""

    def __init__(self, limit: BodyLimit) -> None:
        super().__init__(413, limit.message())


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimitMiddleware:
    """ASGI middleware: `per_path` limits for exact paths (start/stop, `/api/write/`), `default` for all others.

    A request whose Content-Length is within the limit passes with its own `receive`: the HTTP server
    delivers no more than the declared length, so only bodies without one are counted.
    """

    def __init__(self, app: ASGIApp, *, default: BodyLimit, per_path: Mapping[str, BodyLimit]) -> None:
        self.app = app
        self.default = default
        self.per_path = dict(per_path)

    def limit_for(self, path: str) -> BodyLimit:
        return self.per_path.get(path, self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _declared_length(scope)
        if declared is not None:
            if declared > limit.bytes:
                await error_response(413, limit.message())(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: BodyLimit) -> None:
        seen = 0
        tripped = False
        started = False

        async def counted() -> Message:
            nonlocal seen, tripped
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit.bytes:
                    tripped = True
                    raise BodyTooLarge(limit)
            return message

        async def guarded(message: Message) -> None:
            # Once the limit tripped, whatever the app makes of the error (a handler's 413, a parser's
            # 400, a catch-all 500) is replaced by the one answer that names the limit.
            nonlocal started
            if tripped:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not tripped or started:
                raise
        if tripped and not started:
            await error_response(413, limit.message())(scope, receive, send)


#: Where the metric store takes line protocol: its own, larger limit.
WRITE_PATH = "/api/write/"
#: Every body-limit setting, with the routes it applies to; rendered into the settings reference.
BODY_LIMIT_SETTINGS: dict[str, str] = {
    "main.max-body-bytes": "every route without a limit of its own",
    "main.max-job-body-bytes": "`/api/jobs/start_job/`, `/api/jobs/stop_job/` (POST and PUT)",
    "metric-store.max-write-bytes": f"`{WRITE_PATH}`",
}


def setting_value(settings: BaseModel, dotted: str) -> Any:
    """The value of a setting named by its dotted config.json key (`main.max-body-bytes`)."""
    value: Any = settings
    for part in dotted.split("."):
        fields = type(value).model_fields
        name = next((n for n, f in fields.items() if (f.alias or n) == part), None)
        if name is None:
            raise KeyError(f"no setting {dotted!r} ({part!r} is not a key of {type(value).__name__})")
        value = getattr(value, name)
    return value


def general_limit(settings: Settings) -> BodyLimit:
    """The limit of every route without one of its own."""
    return BodyLimit(settings.main.max_body_bytes, "main.max-body-bytes")


def job_limit(settings: Settings) -> BodyLimit:
    """The limit of start_job and stop_job."""
    return BodyLimit(settings.main.max_job_body_bytes, "main.max-job-body-bytes")


def write_limit(settings: Settings) -> BodyLimit:
    """The limit of the metric store's `/api/write/`."""
    return BodyLimit(settings.metric_store.max_write_bytes, "metric-store.max-write-bytes")

"""Direct dispatch of the intake routes: the scheduler adapters' hot path, served without FastAPI's
per-request machinery.

Start and stop requests arrive by the thousand per second and their endpoints take nothing but the
request. FastAPI would still route them through its exception middleware, an exit stack per request,
dependency solving and the endpoint wrapper: measured, two thirds of the event loop's CPU per
request. This middleware looks up (method, path) in a table and calls the very endpoint functions
the routes are declared with (they stay in the router, so OpenAPI documents them as before), after
the same authentication dependency, answering errors in the same shape as the app's handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_response, note_refusal

log = logging.getLogger(__name__)

Authenticate = Callable[[Request], Awaitable[Any]]

#: Largest start/stop body accepted: a start of a 10,000-node job with hardware threads listed and a
#: job script is a few MB; anything this size is an error or an attack, refused before it fills memory.
MAX_BODY = 64 * 1024 * 1024


def direct_routes(routes: Iterable[Any], operation_ids: set[str]) -> dict[tuple[str, str], APIRoute]:
    """(method, path) → route for the routes with those operation ids (plain paths, no parameters)."""
    table: dict[tuple[str, str], APIRoute] = {}
    for route in routes:
        if not isinstance(route, APIRoute) or route.operation_id not in operation_ids:
            continue
        if route.param_convertors:
            raise ValueError(f"route {route.path} has path parameters; it cannot be dispatched directly")
        for method in route.methods or ():
            table[(method, route.path)] = route
    missing = operation_ids - {r.operation_id for r in routes if isinstance(r, APIRoute)}
    if missing:
        raise ValueError(f"no routes with operation ids {sorted(missing)}")
    return table


class DirectDispatch:
    """ASGI middleware: requests matching the table go straight to their endpoint, all others on."""

    def __init__(self, app: ASGIApp, *, routes: dict[tuple[str, str], APIRoute], authenticate: Authenticate,
                 max_body: int = MAX_BODY) -> None:
        self.app = app
        self.routes = routes
        self.authenticate = authenticate
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http":
            route = self.routes.get((scope["method"], scope["path"]))
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # as Starlette's router notes it: the metrics middleware labels by its template
        request = Request(scope, self._limited(scope, receive))
        try:
            await self.authenticate(request)
            response = await route.endpoint(request)
        except ApiError as exc:
            note_refusal(scope, exc)
            response = error_response(exc.status, exc.message)
        except Exception as exc:  # the app's catch-all answers the same way
            log.exception("%s %s failed", scope["method"], scope["path"])
            response = error_response(500, f"internal error: {type(exc).__name__}")
        await response(scope, receive, send)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        """`receive` that refuses a body over `max_body` bytes (413), by its length header or as it streams."""
        limit = self.max_body
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            async def refuse() -> Message:
                raise ApiError(413, f"request body larger than {limit} bytes")
            return refuse
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise ApiError(413, f"request body larger than {limit} bytes")
            return message

        return counted

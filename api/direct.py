"""Direct dispatch of the intake routes: the scheduler adapters' hot path, served without FastAPI's
per-request routing and dependency solving.

Start and stop requests arrive by the thousand per second and their endpoints take nothing but the
request. FastAPI would still match every route in turn, open exit stacks and solve dependencies
generically, and wrap the endpoint: measured, most of the event loop's CPU per request. This lane
looks up (method, path) in a table and calls the very endpoint functions the routes are declared with
(they stay in the router, so OpenAPI documents them as before) after the very dependencies the routes
declare.

It cannot skip what the app adds, by construction:

- it wraps the app's router, inside every middleware (the app's own and any added later: body limits,
  metrics, CORS) and inside FastAPI's exception middleware, so its errors are answered by the app's
  exception handlers, in the app's shape;
- it runs a route's declared dependencies (the route's `dependant`, honouring the app's dependency
  overrides) and refuses, when the table is built, a route whose endpoint or dependencies need
  anything but the request (parameters, sub-dependencies, generators, a response model, FastAPI's
  per-route body limit): such a route
  would get a different treatment here than in FastAPI, so it is not dispatched directly at all.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

Call = Callable[[Request], Awaitable[Any]]


class NotDirectlyDispatchable(ValueError):
    """A route declares something the direct lane would not do as FastAPI does; raised at app construction."""


@dataclass(frozen=True)
class DirectRoute:
    """A route as the app serves it (an APIRoute, or FastAPI's context of an included one) and the
    dependencies it declares, in declaration order."""

    route: Any
    dependencies: tuple[Call, ...]
    #: Read once: on an included route each attribute read goes through FastAPI's route context.
    endpoint: Callable[[Request], Awaitable[Response]]
    overrides_provider: Any


def _request_only(dependant: Dependant, what: str) -> None:
    """Refuse a dependant that takes anything but the request, or is not a plain coroutine function."""
    params = [*dependant.path_params, *dependant.query_params, *dependant.header_params,
              *dependant.cookie_params, *dependant.body_params]
    if params:
        names = ", ".join(p.name for p in params)
        raise NotDirectlyDispatchable(f"{what} takes parameters ({names}); only the request can be passed directly")
    specials = {"websocket": dependant.websocket_param_name, "connection": dependant.http_connection_param_name,
                "response": dependant.response_param_name, "background tasks": dependant.background_tasks_param_name,
                "security scopes": dependant.security_scopes_param_name}
    taken = [kind for kind, name in specials.items() if name is not None]
    if taken:
        raise NotDirectlyDispatchable(f"{what} takes the {', '.join(taken)}; only the request can be passed directly")
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        raise NotDirectlyDispatchable(f"{what} is not a plain `async def` (generators and sync functions are "
                                      "run by FastAPI only)")


def direct_route(route: Any) -> DirectRoute:
    """The route as the lane runs it, or NotDirectlyDispatchable naming what it declares that the lane would skip."""
    what = f"route {sorted(route.methods or ())} {route.path}"
    if route.param_convertors:
        raise NotDirectlyDispatchable(f"{what} has path parameters; it cannot be dispatched directly")
    if getattr(route, "max_body_size", None) is not None:
        raise NotDirectlyDispatchable(f"{what} declares a max_body_size (FastAPI's own body limit); the app's body "
                                      "limit (api.bodylimit) applies to every route")
    if route.response_field is not None:
        raise NotDirectlyDispatchable(f"{what} declares a response model; its endpoint must return a Response")
    dependant = route.dependant
    if dependant.request_param_name is None:
        raise NotDirectlyDispatchable(f"{what}: its endpoint does not take the request")
    calls: list[Call] = []
    for dependency in dependant.dependencies:
        name = getattr(dependency.call, "__qualname__", repr(dependency.call))
        if dependency.dependencies:
            raise NotDirectlyDispatchable(f"{what}: dependency {name} has dependencies of its own")
        _request_only(dependency, f"{what}: dependency {name}")
        calls.append(dependency.call)  # an async callable of the request: checked above
    _request_only(dependant, f"{what}: its endpoint")  # its own parameters; dependencies checked above
    return DirectRoute(route, tuple(calls), route.endpoint, route.dependency_overrides_provider)


def served_routes(routes: Iterable[Any]) -> list[Any]:
    """The API routes as the app serves them: with what `include_router` added (prefix, dependencies,
    the app as provider of dependency overrides), which FastAPI applies to included routes lazily,
    through route contexts (`fastapi.routing.iter_route_contexts`), where it has them."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:  # FastAPI copies included routes into the app's router
        return [route for route in routes if isinstance(route, APIRoute)]
    return [context for context in iterate(list(routes)) if isinstance(context.original_route, APIRoute)]


def direct_routes(routes: Iterable[Any], operation_ids: set[str]) -> dict[tuple[str, str], DirectRoute]:
    """(method, path) → route for the app's routes (`app.router.routes`) with those operation ids;
    NotDirectlyDispatchable if one cannot be dispatched directly."""
    table: dict[tuple[str, str], DirectRoute] = {}
    served = served_routes(routes)
    for route in served:
        if route.operation_id not in operation_ids:
            continue
        direct = direct_route(route)
        for method in route.methods or ():
            table[(method, route.path)] = direct
    missing = operation_ids - {r.operation_id for r in served}
    if missing:
        raise NotDirectlyDispatchable(f"no routes with operation ids {sorted(missing)}")
    return table


class DirectDispatch:
    """ASGI app around a router: requests matching the table go straight to their endpoint, all others on.

    Errors propagate, to the exception middleware around the router, as they would from the route.
    """

    def __init__(self, app: ASGIApp, *, routes: dict[tuple[str, str], DirectRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = None
        if scope["type"] == "http":
            direct = self.routes.get((scope["method"], scope["path"]))
        if direct is None:
            await self.app(scope, receive, send)
            return
        overrides = getattr(direct.overrides_provider, "dependency_overrides", None)
        if overrides and any(call in overrides for call in direct.dependencies):
            await self.app(scope, receive, send)  # an override may take anything: FastAPI solves it
            return
        scope["route"] = direct.route  # as Starlette's router notes it: the metrics middleware labels by its template
        scope["endpoint"] = direct.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive)
        for call in direct.dependencies:
            await call(request)
        response = await direct.endpoint(request)
        await response(scope, receive, send)


def install(router: Router, routes: dict[tuple[str, str], DirectRoute]) -> None:
    """Put the lane around `router`: inside everything the app wraps the router in, now or later."""
    if isinstance(router.middleware_stack, DirectDispatch):
        raise ValueError("the direct lane is installed on this router already")
    router.middleware_stack = DirectDispatch(router.middleware_stack, routes=routes)

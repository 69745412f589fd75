"""Direct dispatch of the intake routes (api.direct): same endpoints, same dependencies, same middleware,
same error handlers as FastAPI would give them, or no direct dispatch at all."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from api.direct import DirectDispatch, NotDirectlyDispatchable, direct_routes, install, served_routes
from api.errors import ApiError, install_error_handlers
from api.responses import JSON
from tests.api.conftest import AppFactory, Tokens, job_body

OK = {"x-auth-token": "good"}


async def authenticate(request: Request) -> Any:
    if request.headers.get("x-auth-token") != "good":
        raise ApiError(401, "no token")
    return "someone"


def _app(calls: list[str], *dependencies: Any) -> FastAPI:
    router = APIRouter(dependencies=[Depends(authenticate), *dependencies])

    @router.post("/hot/", operation_id="hot")
    @router.put("/hot/", operation_id="hot_put")
    async def hot(request: Request) -> JSON:
        body = await request.body()
        calls.append(request.method)
        if body == b"refuse":
            raise ApiError(422, "refused on purpose")
        if body == b"crash":
            raise RuntimeError("a bug")
        return JSON({"got": body.decode()}, status_code=201)

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    install(app.router, direct_routes(app.router.routes, {"hot", "hot_put"}))
    return app


class PassedOn:
    """Stands in for the router behind the lane: records what the lane hands on instead of serving."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


def _spy(app: FastAPI) -> PassedOn:
    lane = app.router.middleware_stack
    assert isinstance(lane, DirectDispatch)
    lane.app = spy = PassedOn(lane.app)
    return spy


def test_dispatches_both_methods_to_the_endpoint_after_authentication() -> None:
    calls: list[str] = []
    app = _app(calls)
    spy = _spy(app)
    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.post("/hot/", content=b"a", headers=OK).json() == {"got": "a"}
        assert http.put("/hot/", content=b"b", headers=OK).status_code == 201
        refused = http.post("/hot/", content=b"a")
        assert refused.status_code == 401 and refused.json() == {"status": "Unauthorized", "error": "no token"}
        assert calls == ["POST", "PUT"], "an unauthenticated request never reaches the endpoint"
    assert spy.paths == [], "the lane served them all itself"


def test_errors_are_answered_by_the_apps_handlers() -> None:
    with TestClient(_app([]), raise_server_exceptions=False) as http:
        refused = http.post("/hot/", content=b"refuse", headers=OK)
        assert (refused.status_code, refused.json()) == (422, {"status": "Unprocessable Entity",
                                                              "error": "refused on purpose"})
        crashed = http.post("/hot/", content=b"crash", headers=OK)
        assert (crashed.status_code, crashed.json()) == (500, {"status": "Internal Server Error",
                                                              "error": "internal error: RuntimeError"})


def test_other_methods_and_paths_go_through_fastapi() -> None:
    app = _app([])
    spy = _spy(app)
    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.get("/hot/", headers=OK).status_code == 405
        assert http.post("/elsewhere/", headers=OK).status_code == 404
    assert spy.paths == ["/hot/", "/elsewhere/"]


def test_the_lane_runs_every_dependency_the_route_declares_in_order() -> None:
    seen: list[str] = []

    async def audit(request: Request) -> None:
        seen.append(f"audit {request.method}")
        if request.headers.get("x-audit") == "deny":
            raise ApiError(403, "audit refused")

    calls: list[str] = []
    app = _app(calls, Depends(audit))
    spy = _spy(app)
    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.post("/hot/", content=b"a", headers=OK).status_code == 201
        denied = http.post("/hot/", content=b"a", headers={**OK, "x-audit": "deny"})
        assert (denied.status_code, denied.json()["error"]) == (403, "audit refused")
        assert http.post("/hot/", content=b"a").status_code == 401
    assert seen == ["audit POST", "audit POST"], "after authentication, never without it"
    assert calls == ["POST"] and spy.paths == []


def test_dependency_overrides_of_the_app_apply_to_the_lane() -> None:
    calls: list[str] = []
    app = _app(calls)

    async def everyone(request: Request) -> str:
        return "anyone"

    app.dependency_overrides[authenticate] = everyone
    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.post("/hot/", content=b"a").status_code == 201, "overridden authentication admits anyone"
    assert calls == ["POST"]


def test_a_route_declaring_what_the_lane_cannot_run_refuses_construction() -> None:
    async def with_header(x_token: str = Header()) -> None:
        return None

    async def needs(principal: Any = Depends(authenticate)) -> None:
        return None

    def blocking(request: Request) -> None:
        return None

    async def scoped(request: Request) -> Any:
        yield None

    class Answer(BaseModel):
        msg: str

    router = APIRouter()

    @router.post("/header/", operation_id="header", dependencies=[Depends(with_header)])
    @router.post("/nested/", operation_id="nested", dependencies=[Depends(needs)])
    @router.post("/sync/", operation_id="sync", dependencies=[Depends(blocking)])
    @router.post("/generator/", operation_id="generator", dependencies=[Depends(scoped)])
    async def endpoint(request: Request) -> JSON:
        return JSON({})

    @router.post("/model/", operation_id="model", response_model=Answer)
    async def model(request: Request) -> Any:
        return {"msg": "x"}

    per_route_limit = "max_body_size" in inspect.signature(router.post).parameters  # FastAPI >= 0.16x
    if per_route_limit:
        @router.post("/limited/", operation_id="limited", max_body_size=10)
        async def limited(request: Request) -> JSON:
            return JSON({})

    @router.post("/query/", operation_id="query")
    async def query(request: Request, page: int = 1) -> JSON:
        return JSON({})

    @router.post("/jobs/{job_id}", operation_id="with_param")
    async def with_param(request: Request) -> JSON:
        return JSON({})

    expected = {"header": "takes parameters (x_token)", "nested": "has dependencies of its own",
                "sync": "not a plain `async def`", "generator": "not a plain `async def`",
                "model": "declares a response model", "query": "takes parameters (page)",
                "with_param": "path parameters"}
    if per_route_limit:
        expected["limited"] = "declares a max_body_size"
    for operation, message in expected.items():
        with pytest.raises(NotDirectlyDispatchable, match=message.replace("(", r"\(").replace(")", r"\)")):
            direct_routes(router.routes, {operation})
    with pytest.raises(NotDirectlyDispatchable, match="no routes with operation ids"):
        direct_routes(router.routes, {"missing"})


class Recorder:
    """A middleware added to the app: records every request it sees and the status answered."""

    seen: list[tuple[str, str, int]]

    def __init__(self, app: ASGIApp, seen: list[tuple[str, str, int]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, noting)


def test_a_middleware_added_to_the_app_sees_the_lanes_requests(make_client: AppFactory, tokens: Tokens) -> None:
    seen: list[tuple[str, str, int]] = []
    http = make_client(prepare=lambda app: app.add_middleware(Recorder, seen=seen))
    started = http.post("/api/jobs/start_job/", json=job_body(), headers=tokens.headers())
    assert started.status_code == 201, started.text
    refused = http.put("/api/jobs/stop_job/", json={}, headers={"X-Auth-Token": "forged"})
    assert refused.status_code == 401
    assert seen == [("POST", "/api/jobs/start_job/", 201), ("PUT", "/api/jobs/stop_job/", 401)]


def test_the_lanes_authentication_is_the_routes_own_dependency(make_client: AppFactory) -> None:
    http = make_client()
    app = http.app
    assert isinstance(app, FastAPI)
    lane = app.router.middleware_stack
    assert isinstance(lane, DirectDispatch)
    assert set(lane.routes) == {("POST", "/api/jobs/start_job/"), ("PUT", "/api/jobs/start_job/"),
                                ("POST", "/api/jobs/stop_job/"), ("PUT", "/api/jobs/stop_job/")}
    served = {r.operation_id: r for r in served_routes(app.router.routes)}
    for direct in lane.routes.values():
        declared = tuple(d.call for d in direct.route.dependant.dependencies)
        assert direct.dependencies == declared and len(declared) == 1
        assert direct.route.endpoint is served[direct.route.operation_id].endpoint, "the very route FastAPI serves"
    # The same dependency object guards a route FastAPI serves (the job list) and the lane's.
    listed = next(r for r in served_routes(app.router.routes) if r.path == "/api/jobs/")
    assert listed.dependant.dependencies[0].call is next(iter(lane.routes.values())).dependencies[0]


def test_dependencies_added_when_the_router_is_included_run_on_the_lane() -> None:
    seen: list[str] = []

    async def included(request: Request) -> None:
        seen.append(request.url.path)

    router = APIRouter(dependencies=[Depends(authenticate)])

    @router.post("/hot/", operation_id="hot")
    async def hot(request: Request) -> JSON:
        return JSON({"ok": True})

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router, prefix="/v1", dependencies=[Depends(included)])
    install(app.router, direct_routes(app.router.routes, {"hot"}))
    spy = _spy(app)
    with TestClient(app) as http:
        assert http.post("/v1/hot/", headers=OK).json() == {"ok": True}
        assert http.post("/v1/hot/").status_code == 401
    # First, as FastAPI runs an include's dependencies: before the router's (authentication) too.
    assert seen == ["/v1/hot/", "/v1/hot/"] and spy.paths == []

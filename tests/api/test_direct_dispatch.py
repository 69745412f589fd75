"""Direct dispatch of the intake routes (api.direct): same endpoints, same auth, same error shape."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient

from api.direct import DirectDispatch, direct_routes
from api.errors import ApiError, install_error_handlers
from api.responses import JSON


def _app(calls: list[str], max_body: int = 1024) -> FastAPI:
    router = APIRouter()

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

    async def authenticate(request: Request) -> Any:
        if request.headers.get("x-auth-token") != "good":
            raise ApiError(401, "no token")
        return "someone"

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(DirectDispatch, routes=direct_routes(router.routes, {"hot", "hot_put"}),
                       authenticate=authenticate, max_body=max_body)
    return app


def test_dispatches_both_methods_to_the_endpoint_after_authentication() -> None:
    calls: list[str] = []
    with TestClient(_app(calls), raise_server_exceptions=False) as http:
        ok = {"x-auth-token": "good"}
        assert http.post("/hot/", content=b"a", headers=ok).json() == {"got": "a"}
        assert http.put("/hot/", content=b"b", headers=ok).status_code == 201
        refused = http.post("/hot/", content=b"a")
        assert refused.status_code == 401 and refused.json() == {"status": "Unauthorized", "error": "no token"}
        assert calls == ["POST", "PUT"], "an unauthenticated request never reaches the endpoint"


def test_errors_answer_in_cc_backends_shape() -> None:
    with TestClient(_app([]), raise_server_exceptions=False) as http:
        ok = {"x-auth-token": "good"}
        refused = http.post("/hot/", content=b"refuse", headers=ok)
        assert (refused.status_code, refused.json()) == (422, {"status": "Unprocessable Entity",
                                                              "error": "refused on purpose"})
        crashed = http.post("/hot/", content=b"crash", headers=ok)
        assert (crashed.status_code, crashed.json()) == (500, {"status": "Internal Server Error",
                                                              "error": "internal error: RuntimeError"})


def test_oversized_bodies_are_refused_with_413_before_the_endpoint_gets_them() -> None:
    calls: list[str] = []
    with TestClient(_app(calls, max_body=1024), raise_server_exceptions=False) as http:
        ok = {"x-auth-token": "good"}
        declared = http.post("/hot/", content=b"x" * 1025, headers=ok)
        assert (declared.status_code, declared.json()) == (413, {"status": "Request Entity Too Large",
                                                                "error": "request body larger than 1024 bytes"})
        streamed = http.post("/hot/", content=iter([b"x" * 600, b"x" * 600]), headers=ok)  # chunked, no length
        assert streamed.status_code == 413
        assert http.post("/hot/", content=b"x" * 1024, headers=ok).status_code == 201
        assert calls == ["POST"]


def test_other_methods_and_paths_go_through_fastapi() -> None:
    with TestClient(_app([]), raise_server_exceptions=False) as http:
        assert http.get("/hot/", headers={"x-auth-token": "good"}).status_code == 405
        assert http.post("/elsewhere/", headers={"x-auth-token": "good"}).status_code == 404


def test_table_refuses_unknown_operations_and_path_parameters() -> None:
    router = APIRouter()

    @router.post("/jobs/{job_id}", operation_id="with_param")
    async def with_param(request: Request) -> JSON:
        return JSON({})

    with pytest.raises(ValueError, match="no routes with operation ids"):
        direct_routes(router.routes, {"missing"})
    with pytest.raises(ValueError, match="path parameters"):
        direct_routes(router.routes, {"with_param"})

"""The OpenAPI document covers every route: bodies, parameters, answers, errors and security.

A route added without an entry in api.apidoc.operations fails here (and `python -m api.openapi`
refuses to write the document), so the document cannot fall behind the routes.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI

from api.apidoc.document import UndocumentedRoute, build, documented_routes
from api.apidoc.operations import OPERATIONS
from api.openapi import PINNED, current_document, render
from tests.api.conftest import AppFactory
from tests.api.test_route_auth import is_admin

#: POST/PUT/PATCH operations that read no body: they act on what their path and query name.
BODYLESS = {
    ("POST", "/api/admin/agents/{agent}/skip/{position}"),
    ("POST", "/api/admin/agents/{agent}/retry/{position}"),
    ("POST", "/api/admin/rejected/{entry_id}/retry"),
    ("POST", "/api/debug/"),
}
#: Success answers without a body, as cc-backend answers them.
EMPTY_ANSWERS = {("POST", "/api/nodestate/"), ("PUT", "/api/nodestate/"), ("POST", "/api/nodestats/"),
                 ("PUT", "/api/machine_state/{cluster}/{host}"), ("POST", "/api/machine_state/{cluster}/{host}")}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return current_document()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in document["paths"].items() for method, op in item.items()]


def test_the_pinned_document_is_current(document: dict[str, Any]) -> None:
    assert PINNED.read_bytes() == render(document), "run `python -m api.openapi` and commit api/openapi.json"


def test_every_route_of_the_app_is_in_the_document(make_client: AppFactory, document: dict[str, Any]) -> None:
    app = make_client(dev=True).app
    assert isinstance(app, FastAPI)
    routes = documented_routes(app)
    assert len(routes) >= 45
    assert sorted((m, p) for m, p, _ in operations(document)) == routes
    assert set(routes) == set(OPERATIONS), "api.apidoc.operations declares routes the app does not have"


def test_a_route_without_a_declaration_makes_the_document_fail(make_client: AppFactory) -> None:
    app = make_client(dev=True).app
    assert isinstance(app, FastAPI)

    router = APIRouter()  # as the route modules add theirs

    @router.get("/api/brand-new/")
    async def brand_new() -> dict[str, str]:
        return {}

    app.include_router(router)

    with pytest.raises(UndocumentedRoute, match="GET /api/brand-new/"):
        build(app)


def test_bodies_have_schemas(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        if method in ("POST", "PUT", "PATCH") and (method, path) not in BODYLESS:
            assert "requestBody" in op, f"{method} {path} documents no body"
        for media_type, content in op.get("requestBody", {}).get("content", {}).items():
            assert content["schema"], f"{method} {path} {media_type}"
    start = document["paths"]["/api/jobs/start_job/"]["post"]["requestBody"]["content"]["application/json"]
    assert start["schema"] == {"$ref": "#/components/schemas/StartJobRequest"}
    write = document["paths"]["/api/write/"]["post"]["requestBody"]["content"]
    assert list(write) == ["text/plain"]


def test_success_answers_have_schemas(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        successes = {code: answer for code, answer in op["responses"].items() if code.startswith("2")}
        assert successes, f"{method} {path}"
        for code, answer in successes.items():
            if (method, path) in EMPTY_ANSWERS:
                assert "content" not in answer
                continue
            schemas = [c["schema"] for c in answer["content"].values()]
            assert schemas and all(schemas), f"{method} {path} {code}"


def test_errors_have_the_error_shape_and_every_route_its_security(document: dict[str, Any]) -> None:
    assert set(document["components"]["securitySchemes"]) == {"ApiKeyAuth", "BearerAuth"}
    error = document["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["status", "error"]
    for method, path, op in operations(document):
        errors = {code: answer for code, answer in op["responses"].items() if code[0] in "45"}
        assert {"401", "403"} <= set(errors), f"{method} {path}"
        for code, answer in errors.items():
            assert answer["content"] == {"application/json": {"schema": ERROR_REF}}, f"{method} {path} {code}"
        assert op["security"] == [{"ApiKeyAuth": []}, {"BearerAuth": []}]
        # The role the server enforces (tests/api/test_route_auth.py checks the enforcement).
        assert op["x-required-role"] == ("admin" if is_admin(path) else "api"), f"{method} {path}"


def test_integer_parameters_carry_the_64_bit_range(document: dict[str, Any]) -> None:
    parameters = document["paths"]["/api/jobs/tag_job/{db_id}"]["post"]["parameters"]
    db_id = next(p for p in parameters if p["name"] == "db_id")
    assert db_id["schema"] == {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
    assert db_id["required"] is True

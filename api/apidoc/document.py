"""Merge the declared operations (api.apidoc.operations) into FastAPI's document of the app's routes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter

from api.apidoc.models import ErrorResponse
from api.apidoc.operations import OPERATIONS, Answer, Body, Operation, Param

REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                   "description": "A JWT (Ed25519, signed with JWT_PRIVATE_KEY) in cc-backend's header."},
    "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "The same JWT as `Authorization: Bearer <token>`."},
}
ERROR_SCHEMA = {"$ref": REF.format(model="ErrorResponse")}


class UndocumentedRoute(LookupError):
    """A route of the app has no entry in api.apidoc.operations.OPERATIONS."""


def _walk(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif (included := getattr(route, "original_router", None)) is not None:
            # FastAPI keeps an included router as a branch instead of copying its routes into the app.
            yield from _walk(included.routes, prefix + getattr(route.include_context, "prefix", ""))


def documented_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the document covers: the app's API routes in its schema."""
    return sorted(
        (method, path)
        for path, route in _walk(app.routes)
        if route.include_in_schema
        for method in route.methods or ()
    )


class _Schemas:
    """Collects the components of every model referenced, refusing two different models of one name."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"ErrorResponse": ErrorResponse.model_json_schema(ref_template=REF)}

    def of(self, schema: Any, mode: str) -> dict[str, Any]:
        if isinstance(schema, dict):
            return dict(schema)
        built = TypeAdapter(schema).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        for name, definition in built.pop("$defs", {}).items():
            self._add(name, definition)
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            title = schema.__name__
            self._add(title, built)
            return {"$ref": REF.format(model=title)}
        return built

    def _add(self, name: str, definition: dict[str, Any]) -> None:
        known = self.components.setdefault(name, definition)
        if known != definition:
            raise ValueError(f"two different schemas are named {name!r}: give one of the models another title")


def _parameter(param: Param) -> dict[str, Any]:
    schema = {"type": "array", "items": param.schema} if param.repeated else param.schema
    out: dict[str, Any] = {"name": param.name, "in": param.where, "required": param.required,
                           "schema": schema, "description": param.description}
    if param.repeated:
        out.update(style="form", explode=True)
    if param.example is not None:
        out["example"] = param.example
    return out


def _body(body: Body, schemas: _Schemas) -> dict[str, Any]:
    return {"required": body.required, "content": {body.media_type: {"schema": schemas.of(body.schema, "validation")}}}


def _answer(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.schema is not None:
        out["content"] = {answer.media_type: {"schema": schemas.of(answer.schema, "serialization")}}
    return out


def _merge(operation: dict[str, Any], declared: Operation, schemas: _Schemas) -> None:
    operation["parameters"] = [_parameter(p) for p in declared.params]
    if not operation["parameters"]:
        del operation["parameters"]
    if declared.body is not None:
        operation["requestBody"] = _body(declared.body, schemas)
    responses: dict[str, Any] = {str(code): _answer(a, schemas) for code, a in declared.answers.items()}
    for code in declared.errors:
        responses[str(code)] = {"description": HTTPStatus(code).phrase,
                                "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    operation["responses"] = responses
    operation["security"] = [{"ApiKeyAuth": []}, {"BearerAuth": []}]
    operation["x-required-role"] = declared.role
    operation["description"] = (operation.get("description", "").rstrip()
                                + f"\n\nRequires the `{declared.role}` role.").lstrip()


def build(app: FastAPI) -> dict[str, Any]:
    """The document: FastAPI's paths, summaries and operation ids, with the declared bodies, parameters,
    answers and security. It does not depend on settings (`main.disable-authentication` included), so the
    pinned document is the one every server serves."""
    missing = [f"{m} {p}" for m, p in documented_routes(app) if (m, p) not in OPERATIONS]
    if missing:
        raise UndocumentedRoute(f"routes without an entry in api.apidoc.operations.OPERATIONS: {', '.join(missing)}")
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = _Schemas()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            _merge(operation, OPERATIONS[(method.upper(), path)], schemas)
    document["components"] = {"schemas": dict(sorted(schemas.components.items()))}
    document["components"]["securitySchemes"] = SECURITY_SCHEMES
    return document


def install(app: FastAPI) -> None:
    """Serve `build(app)` as the app's document (built on first request, then cached as FastAPI does)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""`POST /query`: cc-backend's GraphQL endpoint, with its status codes and error shape.

A query runs as a whole on one read-pool worker with one read connection, so that all of its fields see
one state of the job database and the event loop never waits on SQLite. Parse and validation errors
are answered 422 and a body that is not a GraphQL request 400, as gqlgen does; errors while resolving
are GraphQL `errors[]` with their path in a 200, never a stack trace.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cache
from inspect import isawaitable
from pathlib import Path
from typing import Any

import orjson
from ariadne import load_schema_from_path, make_executable_schema
from fastapi import APIRouter, Depends, Request
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
    execute,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from api.auth import Principal
from api.bootstrap import Services
from api.errors import ApiError
from api.graphql.context import Context
from api.graphql.jobfilter import FilterError
from api.graphql.jobquery import QueryError
from api.graphql.limits import MAX_TOKENS, over_limits
from api.graphql.mutations import mutation
from api.graphql.resolvers import OBJECT_TYPES
from api.graphql.scalars import SCALARS, widen_int
from api.graphql.viewer import Forbidden
from api.readpool import read_pool
from api.responses import JSON
from api.routes.common import services_of

log = logging.getLogger(__name__)

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphqls"
#: Errors whose message is meant for the client; any other exception is reported by its type only.
_EXPECTED = (QueryError, FilterError, Forbidden, ApiError)


@cache
def executable_schema() -> GraphQLSchema:
    """cc-backend's schema file with ccstream's resolvers (built once per process)."""
    schema = make_executable_schema(load_schema_from_path(str(SCHEMA_FILE)), *OBJECT_TYPES, mutation,
                                    *SCALARS, convert_names_case=False)
    widen_int(schema)
    return schema


class BadRequest(Exception):
    """Not a GraphQL request at all (HTTP 400)."""


@dataclass(frozen=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any]
    operation_name: str | None


def parse_request(body: bytes) -> GraphQLRequest:
    """`{query, variables, operationName}` as gqlgen's POST transport reads it."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"json request body could not be decoded: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("json request body must be an object with a `query`")
    query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("no operation provided: `query` must be a non-empty string")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("`variables` must be an object")
    if name is not None and not isinstance(name, str):
        raise BadRequest("`operationName` must be a string")
    return GraphQLRequest(query, variables or {}, name or None)


class Refused(Exception):
    """The document cannot run (HTTP 422), with the GraphQL errors that say why."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else "")
        self.errors = errors


def prepare(schema: GraphQLSchema, request: GraphQLRequest) -> tuple[DocumentNode, OperationDefinitionNode]:
    """Parse, validate and bound the document; the operation to run."""
    try:
        document = parse(request.query, max_tokens=MAX_TOKENS)
    except GraphQLSyntaxError as exc:
        raise Refused([dict(exc.formatted)]) from None
    errors = validate(schema, document)
    if errors:
        raise Refused([dict(e.formatted) for e in errors])
    operation = get_operation_ast(document, request.operation_name)
    if operation is None:
        message = (f"unknown operation named {request.operation_name!r}" if request.operation_name
                   else "the document has several operations: name the one to run in `operationName`")
        raise Refused([{"message": message}])
    too_much = over_limits(document, operation)
    if too_much is not None:
        raise Refused([{"message": too_much}])
    coerced = get_variable_values(schema, operation.variable_definitions or (), request.variables, max_errors=10)
    if isinstance(coerced, list):  # variables of the wrong type are refused before anything runs, as by gqlgen
        raise Refused([dict(e.formatted) for e in coerced])
    return document, operation


def format_error(error: GraphQLError) -> dict[str, Any]:
    """A resolver error as the client sees it; unexpected failures are logged and named by type only."""
    original = error.original_error
    formatted: dict[str, Any] = dict(error.formatted)
    if original is not None and not isinstance(original, (*_EXPECTED, GraphQLError)):
        log.error("GraphQL resolver failed at %s", error.path, exc_info=original)
        formatted = {**formatted, "message": f"internal error: {type(original).__name__}"}
    return formatted


def answer(result: ExecutionResult) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [format_error(e) for e in result.errors]
    body["data"] = result.data
    return body


def run_query(services: Services, viewer: Principal, document: DocumentNode, request: GraphQLRequest
              ) -> dict[str, Any]:
    """Execute a query on this (worker) thread with one read connection."""
    with services.reader.connect() as conn:
        context = Context(viewer=viewer, services=services, now=time.time(), conn=conn)
        result = execute_sync(executable_schema(), document, context_value=context,
                              variable_values=request.variables, operation_name=request.operation_name)
    return answer(result)


async def run_mutation(services: Services, viewer: Principal, document: DocumentNode, request: GraphQLRequest
                       ) -> dict[str, Any]:
    """Execute a mutation on the event loop: its resolvers append through the intake and await visibility."""
    context = Context(viewer=viewer, services=services, now=time.time())
    result = execute(executable_schema(), document, context_value=context, variable_values=request.variables,
                     operation_name=request.operation_name)
    if isawaitable(result):
        result = await result
    return answer(result)


def build_router(auth: Any) -> APIRouter:
    """`POST /query` for every signed-in account; what each may see is decided per field."""
    router = APIRouter()

    @router.post("/query", include_in_schema=False)
    async def graphql_query(request: Request, viewer: Principal = Depends(auth)) -> JSON:
        services = services_of(request)
        try:
            gql = parse_request(await request.body())
            document, operation = prepare(executable_schema(), gql)
        except BadRequest as exc:
            return JSON({"errors": [{"message": str(exc)}], "data": None}, status_code=400)
        except Refused as exc:
            return JSON({"errors": exc.errors, "data": None}, status_code=422)
        if operation.operation == OperationType.MUTATION:
            return JSON(await run_mutation(services, viewer, document, gql))
        if operation.operation != OperationType.QUERY:
            return JSON({"errors": [{"message": f"{operation.operation.value} operations are not supported"}],
                         "data": None}, status_code=422)
        body = await read_pool(request).run(lambda: run_query(services, viewer, document, gql))
        return JSON(body)

    return router

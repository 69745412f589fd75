"""cc-backend's error shape for every failure: `{"status": "<HTTP status text>", "error": "<message>"}`."""

from __future__ import annotations

from collections.abc import MutableMapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import JSON


class ApiError(Exception):
    """An error answered to the client with a status code and a precise message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Refusal(ApiError):
    """An ApiError that refuses the caller (authentication, authorization), with a reason to count it by.

    The reason is a short fixed word (never the message, which names users and addresses), so that the
    refusal counter of `/metrics` has few series and an operator sees a collector with a wrong token.
    """

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(status, message)
        self.reason = reason


#: Where the reason of a refused request is noted in its ASGI scope, for the middleware that counts it.
REFUSAL_KEY = "ccstream.refusal"


def note_refusal(scope: MutableMapping[str, Any], exc: ApiError) -> None:
    """Note a refusal's reason in the request's scope: handlers answer it, the metrics middleware counts it."""
    if isinstance(exc, Refusal):
        scope[REFUSAL_KEY] = exc.reason


def error_body(status: int, message: str) -> dict[str, str]:
    """The body cc-backend sends with every error."""
    return {"status": HTTPStatus(status).phrase, "error": message}


def error_response(status: int, message: str) -> JSON:
    """A JSON error response in cc-backend's shape."""
    return JSON(error_body(status, message), status_code=status)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, including unexpected ones, in cc-backend's shape; never a bare 500 page."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSON:
        note_refusal(request.scope, exc)
        return error_response(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSON:
        return error_response(400, _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSON:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSON:
        return error_response(500, f"internal error: {type(exc).__name__}")

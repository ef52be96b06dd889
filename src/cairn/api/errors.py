"""Error envelopes. Every failure, from the engine, from request validation or from a bug, leaves as
the envelope of the API family it happened in, and no traceback ever reaches a client.

A family's renderer belongs to its routes (``FrontDoorRoute.render_error``: the workspace face answers
``{"success": false, …}``, tus answers plain text, every other face OpenAI's envelope)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from ..core.errors import (
    CairnError,
    Conflict,
    FailedDependency,
    Forbidden,
    InsufficientStorage,
    InvalidInput,
    Locked,
    NotFound,
    OffsetMismatch,
    RateLimited,
    RequestTimeout,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UploadInterrupted,
    UpstreamFailed,
    UpstreamTimeout,
)
from .render import json_response

log = logging.getLogger("cairn.api")

STATUS: dict[type[CairnError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    RequestTimeout: 408,
    Conflict: 409,
    Locked: 423,
    TooLarge: 413,
    FailedDependency: 424,
    RateLimited: 429,
    Unavailable: 503,
    UpstreamFailed: 502,
    UpstreamTimeout: 504,
    InsufficientStorage: 507,
}

OPENAI_TYPES = {401: "authentication_error", 429: "rate_limit_error"}


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


ERROR_MEANINGS = {
    400: "Invalid request: a bad or missing parameter, or a malformed body.",
    401: "Missing, malformed, unknown or revoked API key.",
    403: "Without API keys: a Host that is not a loopback name, or a change sent by another site's page.",
    404: "No such object for this tenant.",
    408: "The request body stalled for longer than the idle timeout.",
    409: "The request contradicts the upload's state (wrong offset, already complete).",
    413: "Larger than the configured maximum.",
    423: "Another request holds the upload and did not let go in time; retry.",
    424: "A server the request names (a remote MCP server) failed: it could not list its tools.",
    429: "The tenant's budget for this kind of request is spent; retry after Retry-After seconds.",
    503: "A dependency (the metadata database, the object store, Redis) is unavailable; retry.",
    507: "Not enough free storage.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer, all in the envelope."""
    return {status: {"model": OpenAIError, "description": ERROR_MEANINGS[status]} for status in statuses}


def amend_openapi(app: FastAPI, amend: Callable[[dict[str, Any]], None]) -> None:
    """Let ``amend`` edit the OpenAPI schema once, when it is first built (after earlier amendments)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            amend(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def drop_unused_validation_schema(app: FastAPI) -> None:
    """Validation errors answer 400 in the OpenAI envelope, never FastAPI's 422: keep /docs truthful."""

    def drop(schema: dict[str, Any]) -> None:
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)

    amend_openapi(app, drop)


def status_for(exc: CairnError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


class ErrorRenderer(Protocol):
    def __call__(self, status: int, message: str, *, code: str, param: str | None = None) -> Response: ...


def openai_error(status: int, message: str, *, code: str, param: str | None = None) -> Response:
    """The OpenAI envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status in (400, 404, 409, 413):
        headers["x-should-retry"] = "false"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json_response(body, status_code=status, headers=headers)


def _renderer(request: Request) -> ErrorRenderer:
    """The family of the route that took the request; for a path no route takes, the family of the
    face it lies under (``faces.error_families``)."""
    render = getattr(request.scope.get("route"), "render_error", None)
    if render is not None:
        return render
    path = request.url.path
    families: dict[str, ErrorRenderer] = request.app.state.error_families
    for prefix, render in families.items():
        if path == prefix or path.startswith(prefix + "/"):
            return render
    return openai_error


async def _cairn_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CairnError)
    status = status_for(exc)
    if status >= 500:
        log.warning("request.failed code=%s message=%s", exc.code, exc.message, exc_info=exc.__cause__)
    response = _renderer(request)(status, exc.message, code=exc.code, param=exc.param)
    if isinstance(exc, OffsetMismatch | UploadInterrupted):
        response.headers["Upload-Offset"] = str(exc.current)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(math.ceil(exc.retry_after))
    if isinstance(exc, RequestTimeout | TooLarge):
        # The rest of the body is unread (stalled, or too big to be worth draining): end the connection.
        response.headers["Connection"] = "close"
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":  # its location is a character position, not a field
        return _renderer(request)(400, "The body is not valid JSON.", code="invalid_request")
    where = list(first.get("loc", ()))
    if where and where[0] in ("query", "path", "body", "header"):  # where the field was, not its name
        where = where[1:]
    location = [str(part) for part in where]
    param = ".".join(location) or None
    reason = first.get("msg", "invalid")
    if param:
        message = f"Invalid value for '{param}': {reason}."
    elif first.get("loc") == ("body",):
        message = _BODY_MESSAGES.get(first.get("type", ""), f"Invalid body: {reason}.")
    else:
        message = f"Invalid request: {reason}."
    return _renderer(request)(400, message, code="invalid_request", param=param)


_BODY_MESSAGES = {
    "missing": "The request needs a JSON body.",
    "model_attributes_type": "The body must be a JSON object.",
    "dict_type": "The body must be a JSON object.",
}


_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "No such route." if exc.status_code == 404 else str(exc.detail)
    response = _renderer(request)(
        exc.status_code, message, code=_HTTP_CODES.get(exc.status_code, "http_error")
    )
    response.headers.update(exc.headers or {})
    return response


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    """A client that goes away mid-body is routine, not a crash: the staged bytes are already dropped
    and the answer goes nowhere (the server discards sends to a closed connection)."""
    log.info("request.aborted method=%s path=%s reason=client_disconnected", request.method, request.url.path)
    return _renderer(request)(
        400, "The client disconnected before the request was complete.", code="client_disconnected"
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("request.crashed method=%s path=%s", request.method, request.url.path, exc_info=exc)
    return _renderer(request)(500, "The server had an internal error.", code="internal_error")


def install_error_handlers(app: FastAPI, families: Mapping[str, ErrorRenderer] | None = None) -> None:
    """``families``: mount path → renderer, for the paths that no route takes."""
    app.state.error_families = dict(families or {})
    app.add_exception_handler(CairnError, _cairn_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected_error)

"""The front door every route goes through, before any body is read: in open mode, refuse what a browser
page could send on another site's behalf; authenticate the key when the route needs a tenant; then read a
JSON body within its size cap and idle timeout, so a stranger can make the server neither buffer nor wait.

Every face's router uses ``FrontDoorRoute`` (``APIRouter(route_class=FrontDoorRoute)``); routes that
stream their own bodies (raw, multipart, tus) read them later through ``http.body_chunks``. Before any
route is chosen, ``LlamaStackPrefixAnyCase`` gives the Llama Stack prefix its one spelling."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..core.auth import is_loopback_host
from ..core.errors import CrossSiteRequest, HostNotAllowed, InvalidInput, TooLarge
from .deps import principal
from .errors import openai_error
from .http import body_chunks, declared_length

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type")
"""What every route reads: the key and the body's type."""
LLAMA_STACK_PREFIX = "/v1/openai/v1"
"""Where Llama Stack clients look for the OpenAI-compatible routes."""
_LLAMA_STACK_ANY_CASE = re.compile(r"/v1/(?i:openai)/v1(?=/|$)", re.ASCII)


class FrontDoorRoute(APIRoute):
    render_error = staticmethod(openai_error)
    """How the routes of this class answer errors: the envelope of their family (a face overrides it)."""

    def check_head(self, request: Request) -> None:
        """A face's own checks of the request head that come before the key (tus: its version)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        needs_key = _depends_on(self.dependant, principal)
        reads_json = self.body_field is not None and not isinstance(self.body_field.field_info, params.Form)

        async def front_door(request: Request) -> Response:
            services = request.app.state.services
            api_keys = services.api_keys
            if await api_keys.open_mode():
                refuse_browser_attacks(request)
            self.check_head(request)
            if needs_key:
                request.state.principal = await api_keys.authenticate(request.headers.get("authorization"))
            if reads_json:
                settings = services.settings
                await read_json_body(request, settings.limits.max_json_bytes, settings.limits.idle_timeout)
            return await handler(request)

        return front_door


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(dep.call is call or _depends_on(dep, call) for dep in dependant.dependencies)


def refuse_browser_attacks(request: HTTPConnection) -> None:
    """Open mode trusts whoever can reach the loopback address, and a browser can reach it on behalf of
    any web page. So a Host that is not a loopback name (DNS rebinding: a page's own name pointed at
    127.0.0.1) and a state-changing request that the browser marks as coming from another site (a form
    post, a no-cors fetch, a WebSocket, which has no method and may change anything) are refused."""
    host = request.headers.get("host")
    if host is not None and not is_loopback_host(_hostname(host)):
        raise HostNotAllowed(
            f"Host '{host}' is not a loopback name. Without API keys Cairn answers only requests addressed "
            "to localhost or a loopback address; create a key with 'cairn keys create' to serve others."
        )
    if request.scope.get("method") in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    cross_site = request.headers.get("sec-fetch-site", "").strip().lower() == "cross-site"
    if cross_site or (origin is not None and not is_loopback_host(urlsplit(origin).hostname or "")):
        raise CrossSiteRequest(
            f"A web page on another site ({origin or 'unknown origin'}) may not change data on a Cairn "
            "without API keys. Create a key with 'cairn keys create' and send it as a Bearer token."
        )


def _hostname(host: str) -> str:
    """The name in a Host header: without its port, brackets or a trailing dot."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    return name.removesuffix(".")


def is_json(content_type: str) -> bool:
    """``application/json`` or an ``application/…+json`` type, with or without parameters."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_json_body(request: Request, limit: int, idle_timeout: float) -> None:
    """Read and parse the body before FastAPI would, bounded by ``limit`` bytes while it streams and by
    ``idle_timeout`` between chunks; FastAPI then finds it in the request's cache."""
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json(content_type):
        raise InvalidInput(
            f"The body must be JSON, sent with 'Content-Type: application/json', not '{content_type}'.",
            param="Content-Type",
        )
    too_large = TooLarge(f"A JSON body may be at most {limit:,} bytes (CAIRN_MAX_JSON_BYTES).")
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise too_large
    body = bytearray()
    async for chunk in body_chunks(request, idle_timeout):
        body += chunk
        if len(body) > limit:
            raise too_large
    request._body = bytes(body)  # Starlette's cache, which request.body() and FastAPI read
    if body:
        try:
            request._json = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"The body is not valid JSON: {exc}.") from exc


class LlamaStackPrefixAnyCase:
    """ASGI, before routing: the ``openai`` segment of ``LLAMA_STACK_PREFIX`` in any case (Llama Stack's
    Files documentation writes ``/v1/openAi/v1/files``) is routed as the canonical prefix, so every route
    under it answers each spelling while the routes and the OpenAPI know one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (match := _LLAMA_STACK_ANY_CASE.match(scope["path"])):
            scope = {**scope, "path": LLAMA_STACK_PREFIX + scope["path"][match.end() :]}
        await self.app(scope, receive, send)

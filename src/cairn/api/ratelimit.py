"""Rate limits on the faces: a dependency that classifies each request and charges its tenant's budget
(``RateLimited`` → 429 when it is spent), one that gives the inference routes their tenant's ``Meter``
(``core.inference.limits``: the token budget, admitted before any work, and the open streams), and a
middleware that reports every budget a request met in the headers of its response, refused or not:
``x-ratelimit-limit-<class>``, ``x-ratelimit-remaining-<class>``, ``x-ratelimit-reset-<class>`` (the
token budget as ``…-tokens``, as OpenAI does; a stream reports it as it was when the stream started)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.auth import Principal
from ..core.errors import RateLimited
from ..core.inference.limits import Meter
from ..core.ports.ratelimit import RateLimiter
from ..core.ratelimit import Decision, RouteClass
from .deps import PrincipalDep, ServicesDep
from .errors import ERROR_MEANINGS, amend_openapi
from .faces import Face

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
Charge = RouteClass | None | Callable[[str], RouteClass | None]
"""How a route is charged: a class, nothing, or a class chosen by the request's method override."""
_BY_METHOD = object()


def charged_as(charge: Charge) -> Callable[[Endpoint], Endpoint]:
    """Declare, on an endpoint, how its requests are charged instead of by their method: the POSTs that
    delete or cancel as deletions; the requests that continue an upload already started as nothing
    (a 1 GiB file in 8 MiB chunks is one upload, not 128, and its chunks are bounded by the size it
    declared)."""

    def declare(endpoint: Endpoint) -> Endpoint:
        endpoint.charged_as = charge  # type: ignore[attr-defined]
        return endpoint

    return declare


def route_class(request: Request) -> RouteClass | None:
    return _classify(
        request.method, request.scope.get("endpoint"), request.headers.get("x-http-method-override", "")
    )


def _classify(method: str, endpoint: object, method_override: str = "") -> RouteClass | None:
    """What the endpoint declares (``charged_as``); otherwise GET and HEAD retrieve, DELETE deletes,
    POST, PUT and PATCH start an upload, and OPTIONS (tus discovery) is not limited."""
    declared = getattr(endpoint, "charged_as", _BY_METHOD)
    if declared is not _BY_METHOD:
        return declared(method_override) if callable(declared) else declared  # type: ignore[return-value]
    if method in ("GET", "HEAD"):
        return RouteClass.RETRIEVALS
    if method == "DELETE":
        return RouteClass.DELETIONS
    if method in ("POST", "PUT", "PATCH"):
        return RouteClass.UPLOADS
    return None


def limited_operations(faces: Iterable[Face]) -> set[tuple[str, str]]:
    """(path, method) of every route that can be charged, as the OpenAPI names them."""
    return {
        (prefix + route.path_format, method.lower())
        for face in faces
        if face.rate_limited
        for prefix in face.prefixes
        for route in face.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if _classify(method, route.endpoint)
    }


def document_rate_limits(app: FastAPI, faces: Iterable[Face]) -> None:
    """Add 429 to the OpenAPI answers of every limited route of ``faces``, in the error format of its
    family: the one its 401 has (every limited route can refuse a key)."""
    limited = limited_operations(faces)

    def add_429(schema: dict[str, Any]) -> None:
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                if (path, method) in limited:
                    answers = operation["responses"]
                    answers["429"] = {**answers["401"], "description": ERROR_MEANINGS[429], "headers": _RETRY}

    amend_openapi(app, add_429)


_RETRY = {
    "Retry-After": {"description": "Seconds until the budget has room again.", "schema": {"type": "integer"}}
}


async def charge_rate_limit(request: Request) -> None:
    """The dependency of the data routers: charge the tenant the front door authenticated."""
    limiter: RateLimiter | None = request.app.state.services.rate_limiter
    kind = route_class(request)
    # The routes that need no tenant (health, discovery) are never charged.
    principal: Principal | None = getattr(request.state, "principal", None)
    if limiter is None or kind is None or principal is None:
        return
    decision = await limiter.charge(principal.tenant, kind)
    if decision is None:
        return
    _decisions(request)[kind] = decision
    if not decision.allowed:
        raise RateLimited(
            f"Too many {kind}: this tenant may make {decision.limit} per minute. "
            f"Retry in {math.ceil(decision.retry_after)} s.",
            retry_after=decision.retry_after,
        )


async def inference_meter(request: Request, services: ServicesDep, principal: PrincipalDep) -> Meter:
    """The tenant's meter, once its token budget has admitted the request."""
    decisions = _decisions(request)

    def record(decision: Decision) -> None:
        decisions[decision.route_class] = decision

    meter = services.inference_limits.meter(principal.tenant, record)
    await meter.admit()
    return meter


MeterDep = Annotated[Meter, Depends(inference_meter)]


def _decisions(request: Request) -> dict[RouteClass, Decision]:
    """The decisions of the budgets the request met, for ``RateLimitHeaders``."""
    if not hasattr(request.state, "rate_limits"):
        request.state.rate_limits = {}
    decisions: dict[RouteClass, Decision] = request.state.rate_limits
    return decisions


CORS_EXPOSE_HEADERS = [
    "Retry-After",
    *(f"x-ratelimit-{part}-{kind.value}" for kind in RouteClass for part in ("limit", "remaining", "reset")),
]
"""What a browser page may read of a limited answer."""


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    kind = decision.route_class
    return {
        f"x-ratelimit-limit-{kind}": str(decision.limit),
        f"x-ratelimit-remaining-{kind}": str(decision.remaining),
        f"x-ratelimit-reset-{kind}": str(math.ceil(decision.reset_after)),
    }


class RateLimitHeaders:
    """ASGI middleware: adds ``rate_limit_headers`` of each decision the dependencies left in the request
    state (endpoints return their own ``Response``, which a dependency cannot add headers to)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            decisions = scope.get("state", {}).get("rate_limits", {})
            if message["type"] == "http.response.start" and decisions:
                headers = MutableHeaders(scope=message)
                for decision in decisions.values():
                    for name, value in rate_limit_headers(decision).items():
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)

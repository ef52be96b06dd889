"""Health, version, and the discovery routes Llama Stack clients call."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from .. import __version__
from ..core.health import check_all, check_providers
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import FrontDoorRoute
from .render import json_response

router = APIRouter(route_class=FrontDoorRoute, tags=["System"])
_keyed = error_responses(401, 503)


@router.get(
    "/health",
    summary="Liveness; with deep=1 also checks each dependency",
    description="With `deep=1`, `checks` names each dependency (`metadata`: the database, `blobs`: the blob "
    "volume or S3 store, `redis` when configured) with `ok` or why it failed.",
    responses={
        **error_responses(400),
        503: {"description": "A dependency failed its check (deep=1)."},
    },
)
async def health(services: ServicesDep, deep: Annotated[bool, Query()] = False) -> Response:
    if not deep:
        return json_response({"status": "ok"})
    checks = await check_all(services.probes)
    healthy = all(value == "ok" for value in checks.values())
    return json_response(
        {"status": "ok" if healthy else "degraded", "checks": checks}, status_code=200 if healthy else 503
    )


@router.get("/v1/health", summary="Health in the Llama Stack shape")
async def llama_stack_health() -> Response:
    return json_response({"status": "OK"})


@router.get("/v1/version", summary="Server version")
async def version() -> Response:
    return json_response({"version": __version__})


@router.get(
    "/v1/providers",
    summary="Providers in the Llama Stack shape",
    description="The file store, the vector index, and each inference provider with its health (its runtime "
    "answered a ping).",
    responses=_keyed,
)
async def providers(services: ServicesDep, _principal: PrincipalDep) -> Response:
    files = {
        "api": "files",
        "provider_id": "cairn",
        "provider_type": "inline::cairn",
        "config": {},
        "health": {"status": "OK"},
    }
    inference = services.inference.catalog.providers.values()
    index = services.vector_stores.index
    health, index_health = await asyncio.gather(check_providers(inference), check_providers([index]))
    models = [
        {
            "api": "inference",
            "provider_id": provider.provider_id,
            "provider_type": provider.provider_type,
            "config": {},
            "health": _health(health[provider.provider_id]),
        }
        for provider in inference
    ]
    vectors = {
        "api": "vector_io",
        "provider_id": index.provider_id,
        "provider_type": index.provider_type,
        "config": {},
        "health": _health(index_health[index.provider_id]),
    }
    return json_response({"data": [files, vectors, *models]})


def _health(answer: str) -> dict[str, str]:
    return {"status": "OK"} if answer == "ok" else {"status": "Error", "message": answer}


FACE = Face(router, rate_limited=False)

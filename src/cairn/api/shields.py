"""Llama Stack's shields (``client.shields``) and safety checks (``client.safety.run_shield``), under
``/v1``: a tenant's shields, each run by one of its chat models with the guard check of
``core.safety``. Lists are ``{data}``; a violation is Llama Stack's ``SafetyViolation``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from ..core.agents.messages import as_text
from ..core.ratelimit import RouteClass
from ..core.records import ShieldRecord
from ..core.safety import violation
from ..core.shields import PROVIDER
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import FrontDoorRoute
from .ratelimit import MeterDep, charged_as
from .render import json_response
from .shield_requests import RegisterShieldRequest, RunShieldRequest

router = APIRouter(route_class=FrontDoorRoute, tags=["Safety"], responses=error_responses(400, 401, 404, 503))

Identifier = Annotated[str, Path(min_length=1, max_length=256)]


def shield_object(shield: ShieldRecord) -> dict[str, Any]:
    return {
        "identifier": shield.identifier,
        "provider_resource_id": shield.provider_resource_id,
        "provider_id": PROVIDER,
        "type": "shield",
        "params": shield.params,
    }


@router.get("/shields", summary="List shields")
async def list_shields(services: ServicesDep, principal: PrincipalDep) -> Response:
    shields = await services.shields.list(principal.tenant)
    return json_response({"data": [shield_object(shield) for shield in shields]})


@router.post("/shields", summary="Register a shield", responses=error_responses(409))
@charged_as(RouteClass.UPLOADS)  # a write that keeps a row, as a model's registration
async def register_shield(
    body: RegisterShieldRequest, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """A shield run by ``provider_shield_id`` (by default ``shield_id``): a chat model this tenant can
    use."""
    shield = await services.shields.register(
        principal.tenant,
        body.shield_id,
        provider_shield_id=body.provider_shield_id,
        provider_id=body.provider_id,
        params=body.params,
    )
    return json_response(shield_object(shield))


@router.get("/shields/{identifier:path}", summary="Retrieve a shield")
async def get_shield(identifier: Identifier, services: ServicesDep, principal: PrincipalDep) -> Response:
    return json_response(shield_object(await services.shields.get(principal.tenant, identifier)))


@router.delete("/shields/{identifier:path}", status_code=204, summary="Unregister a shield")
async def delete_shield(identifier: Identifier, services: ServicesDep, principal: PrincipalDep) -> Response:
    await services.shields.delete(principal.tenant, identifier)
    return Response(status_code=204)


@router.post("/safety/run-shield", summary="Run a shield")
@charged_as(RouteClass.INFERENCE)
async def run_shield(body: RunShieldRequest, services: ServicesDep, meter: MeterDep) -> Response:
    """The shield's check of the last message, the others its context → ``{violation}``, null when
    it passes."""
    conversation = [(message.role, as_text(message.model_dump()["content"])) for message in body.messages]
    verdict = await services.shields.run(meter.tenant, body.shield_id, conversation)
    await meter.spend(verdict.tokens)
    return json_response({"violation": violation(verdict)})


FACE = Face(router, prefixes=("/v1",))

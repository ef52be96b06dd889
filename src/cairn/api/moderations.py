"""OpenAI's moderations (``client.moderations.create``), as Llama Stack serves them, under ``/v1`` and
``/v1/openai/v1``: each text checked by the tenant's shield whose model ``model`` names (``core.shields``),
one result per text, keyed by Llama Guard's category names."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from ..core.ratelimit import RouteClass
from ..core.safety import CATEGORIES, REFUSAL, Verdict
from .deps import ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import LLAMA_STACK_PREFIX, FrontDoorRoute
from .ratelimit import MeterDep, charged_as
from .render import json_response
from .shield_requests import ModerationRequest

router = APIRouter(route_class=FrontDoorRoute, tags=["Safety"], responses=error_responses(400, 401, 404, 503))


def moderation_result(verdict: Verdict) -> dict[str, Any]:
    flagged = {CATEGORIES[code] for code in verdict.categories}
    result: dict[str, Any] = {
        "flagged": verdict.unsafe,
        "categories": {name: name in flagged for name in CATEGORIES.values()},
        "category_scores": {name: 1.0 if name in flagged else 0.0 for name in CATEGORIES.values()},
        "category_applied_input_types": {
            name: ["text"] if name in flagged else [] for name in CATEGORIES.values()
        },
        "user_message": None,
        "metadata": {},
    }
    if verdict.unsafe:
        result["user_message"] = REFUSAL
        result["metadata"] = {"violation_type": list(verdict.categories)}
    return result


@router.post("/moderations", summary="Create a moderation")
@charged_as(RouteClass.INFERENCE)
async def create_moderation(body: ModerationRequest, services: ServicesDep, meter: MeterDep) -> Response:
    """``input``: a text or up to 32; ``model``: the model of one of the tenant's shields."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    verdicts = await services.shields.moderate(meter.tenant, texts, body.model)
    await meter.spend(sum(verdict.tokens for verdict in verdicts))
    return json_response(
        {
            "id": f"modr-{uuid.uuid4()}",
            "model": body.model,
            "results": [moderation_result(verdict) for verdict in verdicts],
        }
    )


FACE = Face(router, prefixes=("/v1", LLAMA_STACK_PREFIX))

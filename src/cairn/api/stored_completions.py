"""Stored chat completions, as OpenAI's ``client.chat.completions`` (list, retrieve, update, delete,
``messages.list``) and Llama Stack's client (list and retrieve under ``/v1/openai/v1``) read them: the
completions a tenant created with ``store: true`` (``inference``).

A stored completion is OpenAI's ``chat.completion`` object with its ``metadata`` and, for Llama Stack's
client, its ``input_messages``. Lists are OpenAI's cursor pages (``first_id``, ``last_id``,
``has_more``); the default order is OpenAI's ``asc`` on ``/v1`` and Llama Stack's ``desc`` on its
prefix."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from ..core.errors import InvalidInput
from ..core.inference.stored import MAX_LIMIT
from ..core.ports.inference import Json
from ..core.ports.objects import Order
from ..core.ratelimit import RouteClass
from ..core.records import StoredChatCompletion
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import LLAMA_STACK_PREFIX, FrontDoorRoute
from .inference_requests import UpdateChatCompletionRequest
from .ratelimit import charged_as
from .render import cursor_page, json_response

router = APIRouter(
    route_class=FrontDoorRoute,
    tags=["Stored chat completions"],
    responses=error_responses(400, 401, 404, 503),
)

CompletionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Cursor = Annotated[
    str | None, Query(description="The id to continue after.", pattern=r"^[A-Za-z0-9_-]{1,80}$")
]
Limit = Annotated[int, Query(description=f"1 to {MAX_LIMIT}.")]
OrderQuery = Annotated[
    Literal["asc", "desc"] | None,
    Query(description="By creation time; default `asc` (OpenAI), `desc` under /v1/openai/v1 (Llama Stack)."),
]
METADATA_FILTER = re.compile(r'^metadata\[([^"\\]{1,64})\]$')
MAX_METADATA_FILTERS = 16


def completion_object(completion: StoredChatCompletion) -> dict[str, Any]:
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created_at,
        "model": completion.model,
        "choices": completion.choices,
        "usage": completion.usage,
        "metadata": completion.metadata,
        "input_messages": completion.input_messages,
    }


def message_object(message: Json) -> Json:
    """An input message as OpenAI lists it: its text as ``content``, its parts (when it was sent in
    parts) as ``content_parts``."""
    content = message.get("content")
    if not isinstance(content, list):
        return {**message, "content": content, "content_parts": None}
    text = "".join(part["text"] for part in content if part.get("type") == "text")
    return {**message, "content": text or None, "content_parts": content}


def _order(request: Request, order: Order | None) -> Order:
    if order is not None:
        return order
    return "desc" if request.url.path.lower().startswith(LLAMA_STACK_PREFIX + "/") else "asc"


def _metadata_filter(request: Request) -> dict[str, str]:
    """``metadata[key]=value`` query parameters, OpenAI's way of filtering on metadata."""
    wanted: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("metadata"):
            match = METADATA_FILTER.fullmatch(name)
            if match is None:
                raise InvalidInput("Filter on metadata as metadata[key]=value.", param="metadata")
            wanted[match.group(1)] = value
    if len(wanted) > MAX_METADATA_FILTERS:
        raise InvalidInput(f"At most {MAX_METADATA_FILTERS} metadata filters.", param="metadata")
    return wanted


@router.get("/chat/completions", summary="List stored chat completions")
async def list_chat_completions(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    after: Cursor = None,
    limit: Limit = 20,
    order: OrderQuery = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    page = await services.inference.stored.list(
        principal.tenant,
        after=after,
        limit=limit,
        order=_order(request, order),
        model=model,
        metadata=_metadata_filter(request),
    )
    return cursor_page([completion_object(item) for item in page.items], page.has_more)


@router.get("/chat/completions/{completion_id}", summary="Retrieve a stored chat completion")
async def retrieve_chat_completion(
    completion_id: CompletionId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    return json_response(
        completion_object(await services.inference.stored.get(principal.tenant, completion_id))
    )


@router.get("/chat/completions/{completion_id}/messages", summary="List a stored chat completion's messages")
async def list_chat_completion_messages(
    completion_id: CompletionId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    after: Cursor = None,
    limit: Limit = 20,
    order: OrderQuery = None,
) -> Response:
    page = await services.inference.stored.messages(
        principal.tenant, completion_id, after=after, limit=limit, order=_order(request, order)
    )
    return cursor_page([message_object(message) for message in page.items], page.has_more)


@router.post("/chat/completions/{completion_id}", summary="Update a stored chat completion's metadata")
@charged_as(RouteClass.UPLOADS)  # a write that keeps a row, as an upload does
async def update_chat_completion(
    completion_id: CompletionId,
    body: UpdateChatCompletionRequest,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    updated = await services.inference.stored.update(principal.tenant, completion_id, body.metadata or {})
    return json_response(completion_object(updated))


@router.delete("/chat/completions/{completion_id}", summary="Delete a stored chat completion")
async def delete_chat_completion(
    completion_id: CompletionId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    await services.inference.stored.delete(principal.tenant, completion_id)
    return json_response({"id": completion_id, "object": "chat.completion.deleted", "deleted": True})


FACE = Face(router, prefixes=("/v1", LLAMA_STACK_PREFIX))

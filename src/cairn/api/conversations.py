"""OpenAI's Conversations API (``client.conversations`` and its ``items``), under ``/v1`` and Llama Stack's
``/v1/openai/v1``, on the conversation service (``core.conversations``).

A conversation is ``{"id": "conv_…", "object": "conversation", "created_at", "metadata"}``; its items are
the Responses API's, as ``core.responses.items`` stores them. Item lists are OpenAI's cursor pages
(``first_id``, ``last_id``, ``has_more``), newest first unless ``order=asc``. An item keeps its
``file_search_call`` results and its text's logprobs; ``include`` shows them
(``core.responses.include``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..core.conversations import MAX_ITEMS_PER_CALL, MAX_PAGE
from ..core.records import ConversationRecord
from ..core.responses.include import shown_item
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import LLAMA_STACK_PREFIX, FrontDoorRoute
from .inference_requests import Metadata
from .render import cursor_page, json_response

router = APIRouter(
    route_class=FrontDoorRoute,
    prefix="/conversations",
    tags=["Conversations"],
    responses=error_responses(400, 401, 404, 503),
)

Id = r"^[A-Za-z0-9_-]{1,256}$"
ConversationId = Annotated[str, Path(pattern=Id)]
ItemId = Annotated[str, Path(pattern=Id)]
Includable = Literal[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
]
Include = Annotated[
    list[Includable] | None,
    Query(
        alias="include[]", max_length=16, description="What to show that is kept but not shown by default."
    ),
]
Items = Annotated[list[Any], Field(max_length=MAX_ITEMS_PER_CALL)]
"""Each item is checked by the service, which names the one at fault (``items[2].content``)."""


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateConversationRequest(_Closed):
    items: Items | None = None
    metadata: Metadata | None = None


class UpdateConversationRequest(_Closed):
    metadata: Metadata | None
    """In place of the old; null: none."""


class CreateItemsRequest(_Closed):
    items: Items


def conversation_object(conversation: ConversationRecord) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "object": "conversation",
        "created_at": conversation.created_at,
        "metadata": conversation.metadata,
    }


@router.post("", summary="Create a conversation")
async def create_conversation(
    body: CreateConversationRequest, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """With up to 20 first ``items``, in order."""
    conversation = await services.conversations.create(
        principal.tenant, items=body.items or [], metadata=body.metadata
    )
    return json_response(conversation_object(conversation))


@router.get("/{conversation_id}", summary="Retrieve a conversation")
async def retrieve_conversation(
    conversation_id: ConversationId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    return json_response(
        conversation_object(await services.conversations.get(principal.tenant, conversation_id))
    )


@router.post("/{conversation_id}", summary="Update a conversation's metadata")
async def update_conversation(
    conversation_id: ConversationId,
    body: UpdateConversationRequest,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    updated = await services.conversations.update(principal.tenant, conversation_id, body.metadata)
    return json_response(conversation_object(updated))


@router.delete("/{conversation_id}", summary="Delete a conversation")
async def delete_conversation(
    conversation_id: ConversationId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The conversation and all its items."""
    await services.conversations.delete(principal.tenant, conversation_id)
    return json_response({"id": conversation_id, "object": "conversation.deleted", "deleted": True})


@router.post("/{conversation_id}/items", summary="Add items to a conversation")
async def create_items(
    conversation_id: ConversationId,
    body: CreateItemsRequest,
    services: ServicesDep,
    principal: PrincipalDep,
    include: Include = None,
) -> Response:
    """Up to 20 items, appended after the last in order, all or none; the list of them as stored."""
    added = await services.conversations.add_items(principal.tenant, conversation_id, body.items)
    return cursor_page([shown_item(item, include or ()) for item in added], has_more=False)


@router.get("/{conversation_id}/items", summary="List a conversation's items")
async def list_items(
    conversation_id: ConversationId,
    services: ServicesDep,
    principal: PrincipalDep,
    after: Annotated[str | None, Query(pattern=Id, description="An item id from the previous page.")] = None,
    limit: Annotated[int, Query(description=f"1 to {MAX_PAGE}.")] = 20,
    order: Annotated[
        Literal["asc", "desc"], Query(description="In the order added; default newest first.")
    ] = "desc",
    include: Include = None,
) -> Response:
    page = await services.conversations.list_items(
        principal.tenant, conversation_id, after=after, limit=limit, order=order
    )
    return cursor_page([shown_item(item, include or ()) for item in page.items], page.has_more)


@router.get("/{conversation_id}/items/{item_id}", summary="Retrieve a conversation item")
async def retrieve_item(
    conversation_id: ConversationId,
    item_id: ItemId,
    services: ServicesDep,
    principal: PrincipalDep,
    include: Include = None,
) -> Response:
    item = await services.conversations.get_item(principal.tenant, conversation_id, item_id)
    return json_response(shown_item(item, include or ()))


@router.delete("/{conversation_id}/items/{item_id}", summary="Delete a conversation item")
async def delete_item(
    conversation_id: ConversationId, item_id: ItemId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The conversation, without the item."""
    conversation = await services.conversations.delete_item(principal.tenant, conversation_id, item_id)
    return json_response(conversation_object(conversation))


FACE = Face(router, prefixes=("/v1", LLAMA_STACK_PREFIX))

"""Conversations (OpenAI's Conversations API): a tenant's lists of Responses API items, kept in order, that
a client adds to and pages through, and that ``responses.create(conversation=…)`` reads as its history
and appends its input and output to. One method per route of the API, and ``history`` and ``append``
for the Responses service.

Invariants: the items a client adds are checked and normalised (``responses.items``) before any is
written, at most ``MAX_ITEMS_PER_CALL`` at a time, as OpenAI allows; the items of one call are appended
together or not at all, and keep their order; an item id appears once in a conversation; a tenant never
finds another's conversation (``NotFound``, as for an id that never was).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from .errors import InvalidInput, NotFound
from .ports.conversations import ConversationRows
from .ports.inference import Json
from .ports.objects import Order
from .records import ConversationRecord, Page
from .responses.items import input_items, new_id

MAX_ITEMS_PER_CALL = 20
MAX_PAGE = 100


class Conversations:
    def __init__(self, rows: ConversationRows, *, clock: Callable[[], float] = time.time) -> None:
        self.rows = rows
        self._clock = clock

    async def create(
        self, tenant: str, *, items: Sequence[object] = (), metadata: Mapping[str, str] | None = None
    ) -> ConversationRecord:
        conversation = ConversationRecord(
            id=new_id("conv_"), tenant=tenant, created_at=int(self._clock()), metadata=dict(metadata or {})
        )
        await self.rows.insert_conversation(conversation, _client_items(items))
        return conversation

    async def get(self, tenant: str, conversation_id: str) -> ConversationRecord:
        conversation = await self.rows.get_conversation(tenant, conversation_id)
        if conversation is None:
            raise _no_conversation(conversation_id)
        return conversation

    async def update(
        self, tenant: str, conversation_id: str, metadata: Mapping[str, str] | None
    ) -> ConversationRecord:
        """The metadata in place of the old (None: none)."""
        conversation = await self.rows.update_metadata(tenant, conversation_id, metadata or {})
        if conversation is None:
            raise _no_conversation(conversation_id)
        return conversation

    async def delete(self, tenant: str, conversation_id: str) -> None:
        """The conversation and every item in it."""
        if not await self.rows.delete_conversation(tenant, conversation_id):
            raise _no_conversation(conversation_id)

    async def add_items(self, tenant: str, conversation_id: str, items: Sequence[object]) -> list[Json]:
        """Append the client's ``items``; the items as stored, each with its id."""
        added = _client_items(items)
        await self.append(tenant, conversation_id, added)
        return added

    async def list_items(
        self, tenant: str, conversation_id: str, *, after: str | None, limit: int, order: Order
    ) -> Page[Json]:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}.", param="limit")
        page = await self.rows.list_items(tenant, conversation_id, after=after, limit=limit, order=order)
        if page is None:
            raise _no_conversation(conversation_id)
        return page

    async def get_item(self, tenant: str, conversation_id: str, item_id: str) -> Json:
        item = await self.rows.get_item(tenant, conversation_id, item_id)
        if item is None:
            raise await self._no_item(tenant, conversation_id, item_id)
        return item

    async def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> ConversationRecord:
        """The conversation, without the item."""
        if not await self.rows.delete_item(tenant, conversation_id, item_id):
            raise await self._no_item(tenant, conversation_id, item_id)
        return await self.get(tenant, conversation_id)

    async def history(self, tenant: str, conversation_id: str) -> list[Json]:
        """Every item of the conversation, oldest first."""
        items = await self.rows.all_items(tenant, conversation_id)
        if items is None:
            raise _no_conversation(conversation_id)
        return items

    async def append(self, tenant: str, conversation_id: str, items: list[Json]) -> None:
        """Append items already normalised (``responses.items``; a response's output items), as many as
        there are, in order and all at once."""
        if not await self.rows.append_items(tenant, conversation_id, items):
            raise _no_conversation(conversation_id)

    async def _no_item(self, tenant: str, conversation_id: str, item_id: str) -> NotFound:
        await self.get(tenant, conversation_id)  # no conversation: that is the error
        return NotFound(f"Item '{item_id}' not found in conversation '{conversation_id}'.", param="item_id")


def _client_items(items: Sequence[object]) -> list[Json]:
    if len(items) > MAX_ITEMS_PER_CALL:
        raise InvalidInput(f"At most {MAX_ITEMS_PER_CALL} items may be added at a time.", param="items")
    normalised = input_items(list(items), param="items")
    for index, item in enumerate(normalised):
        if item["type"] == "item_reference":
            raise InvalidInput(
                "A conversation keeps items, not references to them: send the item itself.",
                param=f"items[{index}]",
            )
    return normalised


def _no_conversation(conversation_id: str) -> NotFound:
    return NotFound(f"Conversation '{conversation_id}' not found.", param="conversation_id")

"""Conversation rows: the conversations of OpenAI's Conversations API and their items, in order. Used by
``core.conversations``; implemented by ``adapters.sql.conversations``.

Invariants:
- Every read and write names the tenant: a tenant never sees, changes or counts another's rows.
- A conversation's items keep the order they were appended in; an append is one transaction, so its
  items are all there, one after another, or none is. Appends to one conversation are serialised.
- An item's id is unique within its conversation: an append that repeats one (of the conversation, or
  within the append) raises ``InvalidInput`` naming it, and writes nothing.
- Item pages are keyset pages in append order: ``after`` names an item of the conversation (an unknown
  one lists nothing), and ``has_more`` is whether items lie beyond the page.
- Items are JSON objects, stored and returned as given (``core.responses.items`` made them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ..records import ConversationRecord, Page
from .inference import Json
from .objects import Order


class ConversationRows(Protocol):
    async def insert_conversation(self, conversation: ConversationRecord, items: Sequence[Json]) -> None:
        """The conversation with its first items, in one transaction."""

    async def get_conversation(self, tenant: str, conversation_id: str) -> ConversationRecord | None: ...

    async def update_metadata(
        self, tenant: str, conversation_id: str, metadata: Mapping[str, str]
    ) -> ConversationRecord | None:
        """Replace the conversation's metadata; the updated conversation, or None if there is none."""

    async def delete_conversation(self, tenant: str, conversation_id: str) -> bool:
        """Delete the conversation and its items, in one transaction; False if there is none."""

    async def append_items(self, tenant: str, conversation_id: str, items: Sequence[Json]) -> bool:
        """Append ``items`` after the conversation's last, in order; False if there is no conversation."""

    async def list_items(
        self, tenant: str, conversation_id: str, *, after: str | None, limit: int, order: Order
    ) -> Page[Json] | None:
        """Up to ``limit`` items strictly after the item ``after``; None if there is no conversation."""

    async def all_items(self, tenant: str, conversation_id: str) -> list[Json] | None:
        """Every item, oldest first; None if there is no conversation."""

    async def get_item(self, tenant: str, conversation_id: str, item_id: str) -> Json | None:
        """None if there is no such conversation, or no such item in it."""

    async def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> bool:
        """False if there is no such conversation, or no such item in it."""

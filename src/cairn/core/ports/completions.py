"""Stored chat completion rows: the completions a tenant asked to keep (``store: true``). Used by
``core.inference.stored``; implemented by ``adapters.sql.completions``. Every query is scoped by
tenant; lists are ordered by creation time, then id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..records import ChatCompletionPage, StoredChatCompletion
from .objects import Order


class ChatCompletionRows(Protocol):
    async def insert_completion(self, completion: StoredChatCompletion) -> None: ...

    async def get_completion(self, tenant: str, completion_id: str) -> StoredChatCompletion | None: ...

    async def list_completions(
        self,
        tenant: str,
        *,
        after: str | None,
        limit: int,
        order: Order,
        model: str | None,
        metadata: Mapping[str, str],
    ) -> ChatCompletionPage:
        """Up to ``limit`` completions strictly after the completion ``after`` (none if that one is
        not the tenant's), of ``model`` if given, whose metadata holds every pair of ``metadata``."""

    async def update_metadata(
        self, tenant: str, completion_id: str, metadata: Mapping[str, str]
    ) -> StoredChatCompletion | None:
        """Replace the completion's metadata; the updated completion, or None if there is none."""

    async def delete_completion(self, tenant: str, completion_id: str) -> bool:
        """False if the tenant has no completion by this id."""

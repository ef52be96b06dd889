"""Stored chat completions (OpenAI's ``store: true``): the completions a tenant asked to keep, to list,
read back with the messages that asked for them, label with metadata, and delete.

Invariants: a completion is kept only once it is whole (the router keeps a stream only when it ran to
its end); a tenant never finds another's (``NotFound``, as for an id that never was). An input
message's id is its completion's id and its index (``chatcmpl-…-0``), stable for the completion's life.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InvalidInput, NotFound
from ..ports.completions import ChatCompletionRows
from ..ports.inference import Json
from ..ports.objects import Order
from ..records import ChatCompletionPage, StoredChatCompletion

MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class MessagePage:
    items: list[Json]  # input messages, each with its ``id``
    has_more: bool


class StoredCompletions:
    def __init__(self, rows: ChatCompletionRows) -> None:
        self.rows = rows

    async def keep(self, tenant: str, request: Json, completion: Json) -> None:
        """Store ``completion``, the answer to ``request`` (a validated chat completions request)."""
        await self.rows.insert_completion(
            StoredChatCompletion(
                id=completion["id"],
                tenant=tenant,
                created_at=completion["created"],
                model=completion["model"],
                input_messages=request["messages"],
                choices=completion["choices"],
                usage=completion.get("usage"),
                metadata=request.get("metadata") or {},
            )
        )

    async def get(self, tenant: str, completion_id: str) -> StoredChatCompletion:
        completion = await self.rows.get_completion(tenant, completion_id)
        if completion is None:
            raise _not_found(completion_id)
        return completion

    async def list(
        self,
        tenant: str,
        *,
        after: str | None,
        limit: int,
        order: Order,
        model: str | None,
        metadata: Mapping[str, str],
    ) -> ChatCompletionPage:
        _check_limit(limit)
        return await self.rows.list_completions(
            tenant, after=after, limit=limit, order=order, model=model, metadata=metadata
        )

    async def messages(
        self, tenant: str, completion_id: str, *, after: str | None, limit: int, order: Order
    ) -> MessagePage:
        """The completion's input messages with their ids, strictly after the message ``after``."""
        _check_limit(limit)
        completion = await self.get(tenant, completion_id)
        listed = [
            {"id": f"{completion.id}-{index}", **message}
            for index, message in enumerate(completion.input_messages)
        ]
        if order == "desc":
            listed.reverse()
        if after is not None:
            ids = [message["id"] for message in listed]
            listed = listed[ids.index(after) + 1 :] if after in ids else []
        return MessagePage(items=listed[:limit], has_more=len(listed) > limit)

    async def update(
        self, tenant: str, completion_id: str, metadata: Mapping[str, str]
    ) -> StoredChatCompletion:
        completion = await self.rows.update_metadata(tenant, completion_id, metadata)
        if completion is None:
            raise _not_found(completion_id)
        return completion

    async def delete(self, tenant: str, completion_id: str) -> None:
        if not await self.rows.delete_completion(tenant, completion_id):
            raise _not_found(completion_id)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}.", param="limit")


def _not_found(completion_id: str) -> NotFound:
    return NotFound(f"No chat completion found with id '{completion_id}'.", param="completion_id")

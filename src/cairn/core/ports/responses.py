"""The rows of the Responses API: each response a tenant kept (``store: true``), with its input items.
Used by ``core.responses``; implemented by ``adapters.sql.responses``.

Invariants:
- Every read and write names the tenant: a tenant never sees, changes or counts another's responses.
- ``update_response`` replaces the status and the response object of a row that exists and returns
  whether it did: a response deleted meanwhile stays deleted.
- ``finish_response`` writes only a row still in one of ``unfinished`` states (queued, in_progress), so
  of a cancel and a completion racing, the first one to land is the one kept.
- Lists are keyset pages in id order (ids sort by creation time); ``after`` names a response of the
  listing (an unknown cursor lists nothing).
- A background response's stream events are kept in order of their ``sequence_number``, from 0, so a
  client on any replica can read them again from any point; they go with their response.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from ..records import Page, StoredResponse
from .inference import Json
from .objects import Order


class ResponseRows(Protocol):
    async def insert_response(self, response: StoredResponse) -> None: ...

    async def get_response(self, tenant: str, response_id: str) -> StoredResponse | None: ...

    async def update_response(self, response: StoredResponse) -> bool:
        """Replace the row's status and response object; False if there is no such row."""

    async def finish_response(self, response: StoredResponse, unfinished: Collection[str]) -> bool:
        """Replace the row's status and response object if its status is one of ``unfinished``; False
        if it is not (or there is no such row)."""

    async def delete_response(self, tenant: str, response_id: str) -> bool:
        """False if the tenant has no response by this id; its events go with it."""

    async def append_events(self, tenant: str, response_id: str, events: Sequence[Json]) -> None:
        """Keep stream events, each with its ``sequence_number``, after those kept already."""

    async def events_after(self, tenant: str, response_id: str, after: int, limit: int) -> list[Json]:
        """Up to ``limit`` of the response's events whose ``sequence_number`` is over ``after``, in order."""

    async def list_responses(
        self,
        tenant: str,
        *,
        after: str | None,
        limit: int,
        order: Order,
        model: str | None,
    ) -> Page[StoredResponse]:
        """Up to ``limit`` responses strictly after ``after`` in ``order``, of ``model`` if given."""

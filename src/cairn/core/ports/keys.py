"""API key rows: only hashes are stored. Used by ``core.auth``; implemented by ``adapters.sql.keys``."""

from __future__ import annotations

from typing import Protocol

from ..records import ApiKeyRecord


class ApiKeyRows(Protocol):
    async def insert_api_key(self, record: ApiKeyRecord) -> None: ...

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The active (not revoked) key with this hash."""

    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        """Revoke an active key; False if no active key has this id."""

    async def has_api_keys(self) -> bool:
        """Whether any key was ever created, revoked ones included."""

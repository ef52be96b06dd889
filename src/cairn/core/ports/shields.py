"""Shield rows: the shields tenants registered (Llama Stack's ``shields.register``). Used by
``core.shields``; implemented by ``adapters.sql.shields``. Every query is scoped by tenant."""

from __future__ import annotations

from typing import Protocol

from ..records import ShieldRecord


class ShieldRows(Protocol):
    async def insert_shield(self, shield: ShieldRecord) -> None:
        """Raises ``Conflict`` if the tenant already registered a shield by this identifier."""

    async def get_shield(self, tenant: str, identifier: str) -> ShieldRecord | None: ...

    async def list_shields(self, tenant: str) -> list[ShieldRecord]:
        """The tenant's shields, oldest first."""

    async def delete_shield(self, tenant: str, identifier: str) -> bool:
        """False if the tenant registered no shield by this identifier."""

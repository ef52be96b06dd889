"""Registered model rows: the names tenants gave to models the providers serve (Llama Stack's
``models.register``). Used by ``core.inference.catalog``; implemented by ``adapters.sql.models``. Every
query is scoped by tenant."""

from __future__ import annotations

from typing import Protocol

from ..records import RegisteredModel


class ModelRows(Protocol):
    async def insert_model(self, model: RegisteredModel) -> None:
        """Raises ``Conflict`` if the tenant already registered a model by this identifier."""

    async def get_model(self, tenant: str, identifier: str) -> RegisteredModel | None: ...

    async def list_models(self, tenant: str) -> list[RegisteredModel]:
        """The tenant's registered models, oldest first."""

    async def delete_model(self, tenant: str, identifier: str) -> bool:
        """False if the tenant registered no model by this identifier."""

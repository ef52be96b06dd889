"""The models a tenant can use: those the configured providers serve, for every tenant, and those the
tenant registered (Llama Stack's ``models.register``), for that tenant alone. A served model's
identifier is ``<provider_id>/<provider_model_id>``; a registered model's is the name the tenant chose,
and it stands for a model a provider serves (requests naming it reach that provider's model). A
request may also name a model by its provider model id alone when exactly one provider serves that id.

Invariants: an identifier names one model for a tenant: a served model's identifier first, then one
the tenant registered (registration refuses a served identifier and one already registered), then a
provider model id; a registered model is listed, and answers, only while its provider serves its
model. An unknown model, or one of another type than the request needs, is ``ModelNotFound`` in
OpenAI's words; a provider that cannot list its models now keeps the list it gave last (one never
reached lists none) while the others still answer.

A request naming a model by a name that is not a served identifier reads the tenant's registration of
that name; the answer (a row or none) is kept for ``REGISTERED_SECONDS``, so the requests of a busy
client read no row. A registration or unregistration through this replica is seen by it at once, and
by other replicas within ``REGISTERED_SECONDS``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CairnError, Conflict, InvalidInput, ModelNotFound
from ..ports.inference import InferenceProvider, ModelType, ProvidedModel
from ..ports.models import ModelRows
from ..records import RegisteredModel

log = logging.getLogger("cairn.inference")

REFRESH_SECONDS = 60.0
REGISTERED_SECONDS = 1.0
MAX_REMEMBERED = 4096  # registration lookups kept at once
MAX_REGISTERED_MODELS = 256  # per tenant
MAX_METADATA_CHARS = 16_384  # a registered model's metadata, as JSON
KIND = {ModelType.LLM: "a chat model", ModelType.EMBEDDING: "an embedding model"}


@dataclass(frozen=True)
class Model:
    identifier: str
    provider_id: str
    provider_model_id: str
    model_type: ModelType
    context_length: int | None
    dimension: int | None
    created: int
    metadata: dict[str, Any] = field(default_factory=dict)


def not_found(identifier: str) -> ModelNotFound:
    return ModelNotFound(
        f"The model `{identifier}` does not exist or you do not have access to it.", param="model"
    )


class ModelCatalog:
    """Models by identifier, the served ones refreshed from the providers at most every
    ``REFRESH_SECONDS``, the registered ones read from their rows (a lookup by name kept for
    ``REGISTERED_SECONDS``)."""

    def __init__(self, providers: Sequence[InferenceProvider], registered: ModelRows) -> None:
        self.providers = {provider.provider_id: provider for provider in providers}
        self.registered = registered
        self._models: dict[str, dict[str, Model]] = {}  # provider id -> identifier -> model
        self._fresh_until: dict[str, float] = {}
        self._refreshing = asyncio.Lock()
        self._lookups: dict[tuple[str, str], tuple[float, RegisteredModel | None]] = {}

    async def list(self, tenant: str) -> list[Model]:
        served = await self._served()
        registered = await self.registered.list_models(tenant)
        return [*served, *(model for row in registered if (model := self._standing_for(row)) is not None)]

    async def get(self, identifier: str, model_type: ModelType | None = None, *, tenant: str) -> Model:
        """The model ``identifier`` names for ``tenant`` (see the invariants for the order)."""
        served = await self._served()
        found = [m for m in served if m.identifier == identifier]
        if not found:
            row = await self._registration(tenant, identifier)
            model = None if row is None else self._standing_for(row)
            found = [model] if model else [m for m in served if m.provider_model_id == identifier]
        if len(found) != 1:
            raise not_found(identifier)
        model = found[0]
        if model_type is not None and model.model_type != model_type:
            raise ModelNotFound(
                f"The model `{identifier}` is {KIND[model.model_type]}; this endpoint needs another kind.",
                param="model",
            )
        return model

    async def register(
        self,
        tenant: str,
        identifier: str,
        *,
        provider_model_id: str | None,
        provider_id: str | None,
        model_type: ModelType | None,
        metadata: dict[str, Any],
    ) -> Model:
        """Name, for ``tenant``, the model ``provider_id`` serves as ``provider_model_id`` (default:
        ``identifier``; the provider may go unnamed when exactly one serves that model)."""
        provider_model_id = provider_model_id or identifier
        served = await self._served()
        if any(m.identifier == identifier for m in served):
            raise Conflict(
                f"`{identifier}` already names a model a provider serves: register under another model_id.",
                param="model_id",
            )
        if provider_id is not None and provider_id not in self.providers:
            raise InvalidInput(f"There is no provider `{provider_id}`.", param="provider_id")
        if len(json.dumps(metadata)) > MAX_METADATA_CHARS:
            raise InvalidInput(
                f"metadata may take at most {MAX_METADATA_CHARS} characters as JSON.", param="metadata"
            )
        targets = [
            m
            for m in served
            if m.provider_model_id == provider_model_id and provider_id in (None, m.provider_id)
        ]
        if not targets:
            raise ModelNotFound(
                f"The provider `{provider_id}` serves no model `{provider_model_id}`."
                if provider_id
                else f"No provider serves a model `{provider_model_id}`.",
                param="provider_model_id",
            )
        if len(targets) > 1:
            providers = ", ".join(sorted(m.provider_id for m in targets))
            raise InvalidInput(
                f"Several providers serve `{provider_model_id}` ({providers}): name one in provider_id.",
                param="provider_id",
            )
        target = targets[0]
        if model_type is not None and model_type != target.model_type:
            raise InvalidInput(
                f"`{provider_model_id}` is {KIND[target.model_type]}, not {KIND[model_type]}.",
                param="model_type",
            )
        if len(await self.registered.list_models(tenant)) >= MAX_REGISTERED_MODELS:
            raise InvalidInput(
                f"A tenant may register at most {MAX_REGISTERED_MODELS} models: unregister one first.",
                param="model_id",
            )
        row = RegisteredModel(
            tenant=tenant,
            identifier=identifier,
            provider_id=target.provider_id,
            provider_model_id=target.provider_model_id,
            model_type=target.model_type.value,
            metadata=metadata,
            created_at=int(time.time()),
        )
        await self.registered.insert_model(row)
        self._lookups.pop((tenant, identifier), None)
        return _registered(row, target)

    async def unregister(self, tenant: str, identifier: str) -> None:
        deleted = await self.registered.delete_model(tenant, identifier)
        self._lookups.pop((tenant, identifier), None)
        if deleted:
            return
        if any(m.identifier == identifier for m in await self._served()):
            raise InvalidInput(
                f"The model `{identifier}` is configured, not registered: it cannot be unregistered.",
                param="model_id",
            )
        raise not_found(identifier)

    async def _registration(self, tenant: str, identifier: str) -> RegisteredModel | None:
        key, now = (tenant, identifier), time.monotonic()
        remembered = self._lookups.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        row = await self.registered.get_model(tenant, identifier)
        if len(self._lookups) >= MAX_REMEMBERED:
            self._lookups.clear()
        self._lookups[key] = (now + REGISTERED_SECONDS, row)
        return row

    async def _served(self) -> Sequence[Model]:
        await self._refresh()
        return [model for models in self._models.values() for model in models.values()]

    def _standing_for(self, row: RegisteredModel) -> Model | None:
        """The registered model, if its provider serves its model now."""
        served = self._models.get(row.provider_id, {}).get(f"{row.provider_id}/{row.provider_model_id}")
        return None if served is None else _registered(row, served)

    async def _refresh(self) -> None:
        now = time.monotonic()
        stale = [pid for pid in self.providers if self._fresh_until.get(pid, 0.0) <= now]
        if not stale:
            return
        async with self._refreshing:
            await asyncio.gather(*(self._refresh_one(pid, now) for pid in stale))

    async def _refresh_one(self, provider_id: str, now: float) -> None:
        if self._fresh_until.get(provider_id, 0.0) > now:
            return
        try:
            provided = await self.providers[provider_id].models()
        except CairnError as exc:
            log.warning("models.unlisted provider=%s reason=%s", provider_id, exc.message)
            self._fresh_until[provider_id] = now + REFRESH_SECONDS / 6  # try again soon
            return
        known = self._models.get(provider_id, {})
        self._models[provider_id] = {
            model.identifier: model for model in (self._model(provider_id, item, known) for item in provided)
        }
        self._fresh_until[provider_id] = now + REFRESH_SECONDS

    @staticmethod
    def _model(provider_id: str, item: ProvidedModel, known: dict[str, Model]) -> Model:
        identifier = f"{provider_id}/{item.provider_model_id}"
        seen = known.get(identifier)
        return Model(
            identifier=identifier,
            provider_id=provider_id,
            provider_model_id=item.provider_model_id,
            model_type=item.model_type,
            context_length=item.context_length,
            dimension=item.dimension,
            created=seen.created if seen else int(time.time()),
        )


def _registered(row: RegisteredModel, served: Model) -> Model:
    return Model(
        identifier=row.identifier,
        provider_id=served.provider_id,
        provider_model_id=served.provider_model_id,
        model_type=served.model_type,
        context_length=served.context_length,
        dimension=served.dimension,
        created=row.created_at,
        metadata=row.metadata,
    )

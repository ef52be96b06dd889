"""The models a tenant can use: those the configured providers serve, for every tenant. A model's
identifier is ``<provider_id>/<provider_model_id>``; a request may name a
model by its provider model id alone when exactly one provider serves that id.

Invariants: an unknown model, or one of another type than the request needs, is ``ModelNotFound`` in
OpenAI's words; a provider that cannot list its models now keeps the list it gave last (one never
reached lists none) while the others still answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CairnError, ModelNotFound
from ..ports.inference import InferenceProvider, ModelType, ProvidedModel

log = logging.getLogger("cairn.inference")

REFRESH_SECONDS = 60.0


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
    """Models by identifier, refreshed from the providers at most every ``REFRESH_SECONDS``."""

    def __init__(self, providers: Sequence[InferenceProvider]) -> None:
        self.providers = {provider.provider_id: provider for provider in providers}
        self._models: dict[str, dict[str, Model]] = {}  # provider id -> identifier -> model
        self._fresh_until: dict[str, float] = {}
        self._refreshing = asyncio.Lock()

    async def list(self) -> list[Model]:
        await self._refresh()
        return [model for models in self._models.values() for model in models.values()]

    async def get(self, identifier: str, model_type: ModelType | None = None) -> Model:
        """The model ``identifier`` names (an identifier, or a provider model id only one provider has)."""
        models = await self.list()
        found = [m for m in models if m.identifier == identifier] or [
            m for m in models if m.provider_model_id == identifier
        ]
        if len(found) != 1:
            raise not_found(identifier)
        model = found[0]
        if model_type is not None and model.model_type != model_type:
            kind = "an embedding model" if model.model_type == ModelType.EMBEDDING else "a chat model"
            raise ModelNotFound(
                f"The model `{identifier}` is {kind}; this endpoint needs another kind.", param="model"
            )
        return model

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

"""Llama Stack's shields: a tenant's named guard checks, each run by a chat model the tenant can use
(its ``provider_resource_id``) with the check of ``core.safety``, under the one provider this server
has (``llama-guard``).

- A shield is registered once per tenant and identifier (again: ``Conflict``); its model must be one
  the tenant can use now (else ``InvalidInput``), and ``provider_shield_id`` defaults to the
  identifier, as in Llama Stack.
- ``run`` checks messages with one shield; ``check`` with several, one after another, and stops at the
  first violation; ``moderate`` checks each text on its own, with the shield whose model is named.
- A shield that is not the tenant's is unknown: ``NotFound`` where it is addressed by its path,
  ``InvalidInput`` where a request names it (``run``, an agent's shields), with Llama Stack's words.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from .errors import InvalidInput, NotFound
from .inference.router import InferenceRouter
from .ports.inference import Json, ModelType
from .ports.shields import ShieldRows
from .records import ShieldRecord
from .safety import Verdict, assess

PROVIDER = "llama-guard"


class Shields:
    def __init__(
        self, rows: ShieldRows, inference: InferenceRouter, clock: Callable[[], float] = time.time
    ) -> None:
        self.rows = rows
        self._inference = inference
        self._clock = clock

    async def register(
        self,
        tenant: str,
        shield_id: str,
        *,
        provider_shield_id: str | None = None,
        provider_id: str | None = None,
        params: Json | None = None,
    ) -> ShieldRecord:
        if provider_id not in (None, PROVIDER):
            raise InvalidInput(f"Provider `{provider_id}` not found", param="provider_id")
        model = provider_shield_id or shield_id
        try:
            await self._inference.catalog.get(model, ModelType.LLM, tenant=tenant)
        except NotFound:
            raise InvalidInput(
                f"The model `{model}` is not available to run the shield.", param="provider_shield_id"
            ) from None
        shield = ShieldRecord(tenant, shield_id, model, params or {}, self._clock())
        await self.rows.insert_shield(shield)
        return shield

    async def get(self, tenant: str, identifier: str) -> ShieldRecord:
        shield = await self.rows.get_shield(tenant, identifier)
        if shield is None:
            raise NotFound(f"Shield '{identifier[:256]}' not found", param="identifier")
        return shield

    async def list(self, tenant: str) -> builtins.list[ShieldRecord]:
        return await self.rows.list_shields(tenant)

    async def delete(self, tenant: str, identifier: str) -> None:
        if not await self.rows.delete_shield(tenant, identifier):
            raise NotFound(f"Shield '{identifier[:256]}' not found", param="identifier")

    async def resolve(
        self, tenant: str, identifiers: Sequence[str], param: str
    ) -> builtins.list[ShieldRecord]:
        """The tenant's shields of these identifiers, in order; an unknown one is ``InvalidInput``."""
        shields = []
        for identifier in identifiers:
            shield = await self.rows.get_shield(tenant, identifier)
            if shield is None:
                raise InvalidInput(
                    f"Shield `{identifier[:256]}` not served by provider: `{PROVIDER}`. Make sure there "
                    "is an Safety provider serving this shield.",
                    param=param,
                )
            shields.append(shield)
        return shields

    async def run(self, tenant: str, shield_id: str, conversation: Sequence[tuple[str, str]]) -> Verdict:
        """The shield's verdict on the last of the (role, text) messages."""
        (shield,) = await self.resolve(tenant, [shield_id], "shield_id")
        return await assess(self._inference, tenant, shield.provider_resource_id, conversation)

    async def check(
        self, tenant: str, shields: Sequence[ShieldRecord], conversation: Sequence[tuple[str, str]]
    ) -> Verdict:
        """The first violation's verdict, else a pass; its ``tokens`` those of every shield that ran."""
        verdict, tokens = Verdict(unsafe=False), 0
        for shield in shields:
            verdict = await assess(self._inference, tenant, shield.provider_resource_id, conversation)
            tokens += verdict.tokens
            if verdict.unsafe:
                break
        return replace(verdict, tokens=tokens)

    async def moderate(self, tenant: str, texts: Sequence[str], model: str | None) -> builtins.list[Verdict]:
        """A verdict per text, each a user's message of its own, by the tenant's shield whose model is
        ``model``."""
        shields = await self.rows.list_shields(tenant)
        models = [shield.provider_resource_id for shield in shields]
        if model is None:
            raise InvalidInput(f"No moderation model specified: select model from {models}", param="model")
        if model not in models:
            raise InvalidInput(
                f"No shield associated with provider_resource id {model}: choose from {models}",
                param="model",
            )
        return [await assess(self._inference, tenant, model, [("user", text)]) for text in texts]

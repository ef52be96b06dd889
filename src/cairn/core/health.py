"""Whether the dependencies answer: the database, the blob store, Redis, and the inference providers
(``/v1/providers`` and `cairn doctor` report each one). Each probe raises ``Unavailable`` (or any
``CairnError``) when its dependency cannot serve."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from .errors import CairnError

Probe = Callable[[], Awaitable[None]]
CHECK_SECONDS = 5.0
PROVIDER_SECONDS = 2.0


async def check_all(probes: Mapping[str, Probe], *, seconds: float = CHECK_SECONDS) -> dict[str, str]:
    """Each dependency's ``ok``, or why it failed, checked at once, each within ``seconds``."""
    results = await asyncio.gather(*(_check(probe, seconds) for probe in probes.values()))
    return dict(zip(probes, results, strict=True))


class Provider(Protocol):
    """An inference provider or the vector index: what ``/v1/providers`` lists."""

    @property
    def provider_id(self) -> str: ...

    async def ping(self) -> None: ...


async def check_providers(providers: Iterable[Provider]) -> dict[str, str]:
    """Each provider's ``ok`` (it answered a ping), or why not, by provider id."""
    return await check_all(
        {provider.provider_id: provider.ping for provider in providers}, seconds=PROVIDER_SECONDS
    )


async def _check(probe: Probe, seconds: float) -> str:
    """``ok``, or why the dependency failed: its own message, or that it did not answer in time."""
    try:
        async with asyncio.timeout(seconds):
            await probe()
    except CairnError as exc:
        return exc.message
    except TimeoutError:
        return f"No answer within {seconds:g} seconds."
    return "ok"

"""Whether the dependencies answer: the database, the blob store, Redis. Each probe raises
``Unavailable`` (or any ``CairnError``) when its dependency cannot serve."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from .errors import CairnError

Probe = Callable[[], Awaitable[None]]
CHECK_SECONDS = 5.0


async def check_all(probes: Mapping[str, Probe]) -> dict[str, str]:
    """Each dependency's ``ok``, or why it failed, checked at once."""
    results = await asyncio.gather(*(_check(probe) for probe in probes.values()))
    return dict(zip(probes, results, strict=True))


async def _check(probe: Probe) -> str:
    """``ok``, or why the dependency failed: its own message, or that it did not answer in time."""
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await probe()
    except CairnError as exc:
        return exc.message
    except TimeoutError:
        return f"No answer within {CHECK_SECONDS:g} seconds."
    return "ok"

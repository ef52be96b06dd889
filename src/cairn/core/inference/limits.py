"""Per-tenant limits on model work beyond the request budget: the tokens a tenant's requests use per
minute (``RouteClass.TOKENS``; the arithmetic is in ``core.ratelimit``), and the streams it has open at once.

Tokens: a request is admitted before any work while its tenant's token budget is not spent (``admit``,
which charges nothing; refused: ``RateLimited``), and is charged its usage, prompt and completion
tokens, once it has ended: a whole answer's ``usage``; a stream's last chunk, which the router is always
asked for and the client gets only if it asked (``stream_options.include_usage``); an embedding
request's prompt tokens. A stream that ends without usage (the client gone, a runtime that reports
none) is charged one token per chunk of text that went out. A request that fails costs nothing.

Streams: at most ``streams_per_tenant`` streamed answers of one tenant are open at once in this
process (with ``--workers N`` or N replicas, N times that; 0: no limit); one more is ``RateLimited``
before any work. The place is taken when the stream starts, not when it is made (a stream that never
runs holds none), and given back when it ends, however it ends: its last chunk, a failure, the client
gone (the SSE response closes the stream, which runs its ``finally``).

Every decision of the token budget goes to the meter's ``on_decision``, which the faces turn into the
rate-limit headers.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from ..errors import RateLimited
from ..ports.inference import Json
from ..ports.ratelimit import RateLimiter
from ..ratelimit import Decision, RouteClass

STREAM_RETRY_SECONDS = 1.0  # a stream's end cannot be foreseen; this is when to look again


class InferenceLimits:
    def __init__(self, limiter: RateLimiter | None, *, streams_per_tenant: int) -> None:
        self.limiter = limiter
        self.streams_per_tenant = streams_per_tenant
        self._open_streams: Counter[str] = Counter()

    def meter(self, tenant: str, on_decision: Callable[[Decision], None]) -> Meter:
        return Meter(self, tenant, on_decision)

    @contextlib.contextmanager
    def stream_place(self, tenant: str) -> Iterator[None]:
        """Hold one of the tenant's places for open streams; ``RateLimited`` when none is free."""
        most = self.streams_per_tenant
        if most and self._open_streams[tenant] >= most:
            raise RateLimited(
                f"Too many streams: this tenant may have {most} streamed answers open at once. "
                "Retry when one has ended.",
                retry_after=STREAM_RETRY_SECONDS,
            )
        self._open_streams[tenant] += 1
        try:
            yield
        finally:
            self._open_streams[tenant] -= 1
            if not self._open_streams[tenant]:
                del self._open_streams[tenant]


@dataclass(frozen=True, slots=True)
class Meter:
    """The limits of one tenant's request."""

    limits: InferenceLimits
    tenant: str
    on_decision: Callable[[Decision], None]

    async def admit(self) -> None:
        """``RateLimited`` when the tenant's token budget is spent."""
        if self.limits.limiter is None:
            return
        decision = await self.limits.limiter.admit(self.tenant, RouteClass.TOKENS)
        if decision is None:
            return
        self.on_decision(decision)
        if not decision.allowed:
            raise RateLimited(
                f"Too many tokens: this tenant may use {decision.limit} per minute. "
                f"Retry in {math.ceil(decision.retry_after)} s.",
                retry_after=decision.retry_after,
            )

    async def spend(self, tokens: int) -> None:
        if self.limits.limiter is None or tokens < 1:
            return
        decision = await self.limits.limiter.spend(self.tenant, RouteClass.TOKENS, tokens)
        if decision is not None:
            self.on_decision(decision)

    async def whole(self, answer: Callable[[Json, str], Awaitable[Json]], body: Json) -> Json:
        """``answer(body, tenant)``, a whole answer with its ``usage``, charged."""
        answered = await answer(body, self.tenant)
        await self.spend(_tokens(answered.get("usage")))
        return answered

    async def stream(
        self, answer: Callable[[Json, str], AsyncGenerator[Json, None]], body: Json
    ) -> AsyncGenerator[Json, None]:
        """The chunks of ``answer(body, tenant)`` in a place of the tenant's open streams, charged at
        the end."""
        options = body.get("stream_options") or {}
        usage: Json | None = None
        texts = 0
        with self.limits.stream_place(self.tenant):
            chunks = answer({**body, "stream_options": {**options, "include_usage": True}}, self.tenant)
            try:
                async with contextlib.aclosing(chunks):
                    async for chunk in chunks:
                        usage = chunk.get("usage") or usage
                        texts += _carries_text(chunk)
                        if chunk.get("choices") or options.get("include_usage"):
                            yield chunk
            finally:
                await self.spend(_tokens(usage) if usage else texts)


def _tokens(usage: Json | None) -> int:
    """Prompt and completion tokens; the total when a runtime reports only that."""

    def count(name: str) -> int:
        value = (usage or {}).get(name)
        return value if isinstance(value, int) else 0

    return count("prompt_tokens") + count("completion_tokens") or count("total_tokens")


def _carries_text(chunk: Json) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if choice.get("text") or delta.get("content") or delta.get("tool_calls"):
            return True
    return False

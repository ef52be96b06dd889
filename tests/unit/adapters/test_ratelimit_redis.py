"""The Redis rate limiter beyond the ``RateLimiter`` contract (``core/ports/test_ratelimit.py``): replicas
share budgets, an unreachable Redis is ``Unavailable``, and the setting takes only Redis URLs."""

from __future__ import annotations

import secrets
import socket
from typing import Any

import pytest

from cairn.adapters.ratelimit_redis import RedisRateLimiter
from cairn.core.errors import Unavailable
from cairn.core.ports.ratelimit import RateLimiter
from cairn.core.ratelimit import RouteClass
from cairn.settings import Settings

pytestmark = pytest.mark.anyio

UPLOADS, RETRIEVALS = RouteClass.UPLOADS, RouteClass.RETRIEVALS


async def charges(limiter: RateLimiter, n: int) -> list[bool]:
    results = []
    for _ in range(n):
        decision = await limiter.charge("acme", UPLOADS)
        assert decision is not None
        results.append(decision.allowed)
    return results


async def test_limiters_on_one_redis_share_budgets_even_when_they_differ(
    shared_redis: str, clock: Any
) -> None:
    """Replicas count together. One configured with a smaller budget sees what the others spent as
    more than its whole budget, never as a negative remainder."""
    prefix = f"cairn-test:{secrets.token_hex(6)}:"
    first, second, smaller = (
        RedisRateLimiter(shared_redis, {UPLOADS: n}, prefix=prefix, clock=clock) for n in (10, 10, 5)
    )
    try:
        assert await charges(first, 6) + await charges(second, 5) == [True] * 10 + [False]
        refused = await smaller.charge("acme", UPLOADS)
        assert refused is not None and not refused.allowed and refused.remaining == 0
        assert refused.retry_after == 12.0  # the TAT is a minute ahead, and one request is 12 s of it
    finally:
        for limiter in (first, second, smaller):
            await limiter.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_unreachable_is_unavailable() -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{_free_port()}/0", {UPLOADS: 10})
    try:
        with pytest.raises(Unavailable):
            await limiter.charge("acme", UPLOADS)
        with pytest.raises(Unavailable):
            await limiter.ping()
        assert await limiter.charge("acme", RETRIEVALS) is None  # unlimited classes never ask Redis
    finally:
        await limiter.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "postgresql://x/y"])
def test_redis_url_must_be_a_redis_url(url: str) -> None:
    with pytest.raises(ValueError, match="redis://"):
        Settings(redis_url=url)
    assert Settings(redis_url="").storage.redis_url is None
    assert (
        Settings(redis_url="rediss://:secret@cache:6380/2").storage.redis_url
        == "rediss://:secret@cache:6380/2"
    )

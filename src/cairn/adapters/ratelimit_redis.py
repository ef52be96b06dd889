"""Rate limits in Redis (``CAIRN_REDIS_URL``), so that every replica charges the same budgets.

Layout: one string per route class and tenant, ``cairn:ratelimit:<class>:<tenant>``, holding the GCRA
theoretical arrival time (see ``core.ratelimit``) in microseconds of the Redis server's clock, the one
clock all replicas share. It expires when it falls behind now, so an idle tenant costs nothing. A charge,
an admission and a spend are each one ``EVALSHA`` of a Lua script that reads, decides and writes
atomically: one round trip per call and no race between replicas.

Failure: Redis unreachable, silent for ``TIMEOUT_SECONDS``, or no connection (a new one, or a pooled
one come free) had within ``CONNECT_TIMEOUT_SECONDS`` → ``Unavailable`` (503): a request is neither let
through unlimited nor refused as over budget.
Every charge takes a pooled connection and reconnects when it finds it broken, so charges succeed again
as soon as Redis is back, without a restart; a restarted Redis has forgotten the script and the client
loads it again. Budgets start afresh then.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..core.errors import Unavailable
from ..core.ratelimit import Decision, RouteClass, budgets

KEY_PREFIX = "cairn:ratelimit:"
TIMEOUT_SECONDS = 1.0
# Longer than a round trip's: a burst that grows the pool opens many connections at once, each a TCP
# handshake plus the client's own handshake commands, and a busy host can take over a second for them;
# the calls past the pool's size wait for those as long.
CONNECT_TIMEOUT_SECONDS = 5.0
POOL_SIZE = 50  # connections per process; a charge holds one for a round trip, the next waits for it

# Every script: KEYS[1]: the TAT. ARGV: interval, capacity (both µs), now (µs; empty: the Redis server's
# clock), and for _SPEND the units spent. Each returns {allowed (1/0), how far the TAT is ahead of now
# after the call (µs)}.
_NOW_AND_TAT = """
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end
local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now)
local function keep(next_tat)
  redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
end
"""
# One request, refused (unchanged) if it does not fit.
_GCRA = (
    _NOW_AND_TAT
    + """
if tat + interval - now > capacity then
  return {0, tat - now}
end
keep(tat + interval)
return {1, tat + interval - now}
"""
)
# Units already used, charged whether they fit or not.
_SPEND = (
    _NOW_AND_TAT
    + """
local next_tat = tat + tonumber(ARGV[4]) * interval
keep(next_tat)
return {1, next_tat - now}
"""
)
# Whether one more unit fits; writes nothing.
_ADMIT = (
    _NOW_AND_TAT
    + """
if tat + interval - now > capacity then
  return {0, tat - now}
end
return {1, tat - now}
"""
)


@contextlib.contextmanager
def _map_redis_errors() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise Unavailable("The rate limit store (Redis) cannot be reached; retry shortly.") from exc


class RedisRateLimiter:
    """``clock`` (seconds) replaces the Redis server's clock; tests use it to move time."""

    def __init__(
        self,
        url: str,
        per_minute: Mapping[RouteClass, int],
        *,
        prefix: str = KEY_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._budgets = budgets(per_minute)
        self._prefix = prefix
        self._clock = clock
        # One retry, at once, after a broken connection (Redis restarted): it reconnects. None after a
        # timeout: the script may have run, and a second run would charge twice.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._redis = Redis.from_pool(pool)
        self._gcra = self._redis.register_script(_GCRA)
        self._spend = self._redis.register_script(_SPEND)
        self._admit = self._redis.register_script(_ADMIT)

    async def charge(self, tenant: str, route_class: RouteClass) -> Decision | None:
        return await self._run(self._gcra, tenant, route_class)

    async def admit(self, tenant: str, route_class: RouteClass) -> Decision | None:
        return await self._run(self._admit, tenant, route_class)

    async def spend(self, tenant: str, route_class: RouteClass, amount: int) -> Decision | None:
        return await self._run(self._spend, tenant, route_class, amount)

    async def _run(
        self, script: AsyncScript, tenant: str, route_class: RouteClass, *extra: int
    ) -> Decision | None:
        budget = self._budgets.get(route_class)
        if budget is None:
            return None
        now = "" if self._clock is None else int(self._clock() * 1_000_000)
        with _map_redis_errors():
            allowed, ahead = await script(
                keys=[f"{self._prefix}{route_class}:{tenant}"],
                args=[budget.interval_us, budget.capacity_us, now, *extra],
            )
        return budget.decision(bool(allowed), int(ahead))

    async def ping(self) -> None:
        with _map_redis_errors():
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

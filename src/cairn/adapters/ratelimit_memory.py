"""The in-process rate limiter, the default: budgets in this process's memory (``core.ratelimit``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from ..core.ratelimit import Decision, RouteClass, budgets


class InProcessRateLimiter:
    """Budgets in this process's memory: each server process counts on its own, so with ``--workers N``
    or N replicas a tenant gets N budgets (a shared store, such as Redis, gives them one). One entry per
    tenant and class that was ever charged; tenants are authenticated, so that stays small."""

    def __init__(
        self, per_minute: Mapping[RouteClass, int], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._budgets = budgets(per_minute)
        self._clock = clock
        self._tats: dict[tuple[str, RouteClass], int] = {}

    async def charge(self, tenant: str, route_class: RouteClass) -> Decision | None:
        budget = self._budgets.get(route_class)
        if budget is None:
            return None
        now, tat = self._tat(tenant, route_class)
        if not budget.admits(tat - now):
            return budget.decision(False, tat - now)
        self._tats[tenant, route_class] = tat + budget.interval_us
        return budget.decision(True, tat + budget.interval_us - now)

    async def admit(self, tenant: str, route_class: RouteClass) -> Decision | None:
        budget = self._budgets.get(route_class)
        if budget is None:
            return None
        now, tat = self._tat(tenant, route_class)
        return budget.decision(budget.admits(tat - now), tat - now)

    async def spend(self, tenant: str, route_class: RouteClass, amount: int) -> Decision | None:
        budget = self._budgets.get(route_class)
        if budget is None:
            return None
        now, tat = self._tat(tenant, route_class)
        self._tats[tenant, route_class] = tat + amount * budget.interval_us
        return budget.decision(True, tat + amount * budget.interval_us - now)

    def _tat(self, tenant: str, route_class: RouteClass) -> tuple[int, int]:
        """Now, and the TAT, never behind now (µs)."""
        now = int(self._clock() * 1_000_000)
        return now, max(self._tats.get((tenant, route_class), now), now)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

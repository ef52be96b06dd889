"""Per-tenant rate limiting. Used by the faces' rate-limit dependency and the inference limits
(``core.inference.limits``, through ``admit`` and ``spend``); implemented in memory
(``adapters.ratelimit_memory``, the default) and in Redis (``adapters.ratelimit_redis``)."""

from __future__ import annotations

from typing import Protocol

from ..ratelimit import Decision, RouteClass


class RateLimiter(Protocol):
    """Charges requests to per-tenant budgets. A charge is atomic: two requests never both take a
    budget's last request, even from different processes when the limiter's store is shared."""

    async def charge(self, tenant: str, route_class: RouteClass) -> Decision | None:
        """Charge one request; None when the class is unlimited. A refused request (``allowed`` false)
        costs nothing. Raises ``Unavailable`` when the limiter's store cannot answer."""

    async def admit(self, tenant: str, route_class: RouteClass) -> Decision | None:
        """Whether a request whose cost is not known yet may start: ``allowed`` while at least one unit
        of the budget is left. Charges nothing; None when the class is unlimited."""

    async def spend(self, tenant: str, route_class: RouteClass, amount: int) -> Decision | None:
        """Charge ``amount`` (at least 1) units that were used, unconditionally, even past the budget (the
        requests after it are then refused until it is paid down); ``allowed`` is always true. None
        when the class is unlimited."""

    async def ping(self) -> None:
        """Raise ``Unavailable`` if the limiter's store cannot answer."""

    async def close(self) -> None: ...

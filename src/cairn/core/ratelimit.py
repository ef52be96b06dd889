"""Per-tenant rate limits: the budgets and their arithmetic, which every limiter (``ports.ratelimit``)
shares.

A limited request belongs to one route class (uploads, retrievals, deletions, inference) and is charged to its
tenant's budget for that class, ``per_minute`` requests.

The algorithm is GCRA (the generic cell rate algorithm: a token bucket kept as one timestamp). Each key
holds a "theoretical arrival time" (TAT). A request moves it ``60 s / per_minute`` past ``max(TAT, now)``
and is refused, at no cost, if that would put it more than a minute ahead of now. A tenant that was idle
can therefore send its whole budget at once, and then one request every ``60 s / per_minute``: never more
than the budget in any burst (no 2x at the edge of a fixed window, as with per-minute counters), and
``per_minute`` a minute sustained. The state is one integer per (tenant, class), which a shared store
updates atomically in one round trip. Times are integer microseconds, so that every implementation
computes exactly the same answers.

Inference tokens (``TOKENS``, tokens per tenant per minute) are the same GCRA with a weight: a request's
cost (prompt and completion tokens) is known only once it has run, so the budget is consulted twice.
Before any work, ``admit``: the request may start only if the budget is not already spent (at least
one token's interval left: ``TAT - now + interval ≤ capacity``); it charges nothing. When the request
ends, however it ends, ``spend``: its actual usage moves the TAT by ``tokens × interval`` from
``max(TAT, now)``, unconditionally, even past the capacity. So a tenant overshoots by at most the requests
it has in flight (one, for a client that waits for each answer), and is then refused until the debt is
paid down at ``per_minute`` tokens a minute. A refused request costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

PERIOD_US = 60_000_000


class RouteClass(StrEnum):
    UPLOADS = "uploads"
    RETRIEVALS = "retrievals"
    DELETIONS = "deletions"
    INFERENCE = "inference"
    TOKENS = "tokens"  # not a class of routes: the weighted budget that inference requests also spend


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one charge, and what the rate-limit headers report."""

    route_class: RouteClass
    allowed: bool
    limit: int  # requests (tokens, for TOKENS) per minute
    remaining: int  # requests (tokens) that would still be allowed right now
    reset_after: float  # seconds until the whole budget is back
    retry_after: float  # seconds until one more request fits; 0 when allowed


@dataclass(frozen=True, slots=True)
class Budget:
    """``per_minute`` requests (or tokens) of one route class, as GCRA parameters."""

    route_class: RouteClass
    per_minute: int

    @property
    def interval_us(self) -> int:
        """How far one request moves the TAT."""
        return PERIOD_US // self.per_minute

    @property
    def capacity_us(self) -> int:
        """How far ahead of now the TAT may run: the whole budget's worth of intervals."""
        return self.interval_us * self.per_minute

    def admits(self, ahead_us: int) -> bool:
        """Whether one more unit fits while the TAT is ``ahead_us`` ahead of now."""
        return ahead_us + self.interval_us <= self.capacity_us

    def decision(self, allowed: bool, ahead_us: int) -> Decision:
        """The decision once the charge is made; ``ahead_us`` is how far the TAT is now ahead of now."""
        return Decision(
            route_class=self.route_class,
            allowed=allowed,
            limit=self.per_minute,
            # max: a TAT written under a larger budget (before a configuration change) may run further ahead
            remaining=max(0, (self.capacity_us - ahead_us) // self.interval_us),
            reset_after=ahead_us / 1e6,
            retry_after=0.0 if allowed else (ahead_us + self.interval_us - self.capacity_us) / 1e6,
        )


def budgets(per_minute: Mapping[RouteClass, int]) -> dict[RouteClass, Budget]:
    """The limited classes; a class at 0 is unlimited."""
    return {route_class: Budget(route_class, n) for route_class, n in per_minute.items() if n > 0}

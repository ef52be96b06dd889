"""The ``RateLimiter`` contract (``core/ports/ratelimit.py``), on both implementations: in process, and in
the machine's Redis (each test under a key prefix of its own, so that tests never see each other's
budgets)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cairn.adapters.ratelimit_memory import InProcessRateLimiter
from cairn.adapters.ratelimit_redis import RedisRateLimiter
from cairn.core.ports.ratelimit import RateLimiter
from cairn.core.ratelimit import Decision, RouteClass

pytestmark = pytest.mark.anyio

UPLOADS, RETRIEVALS, DELETIONS = RouteClass.UPLOADS, RouteClass.RETRIEVALS, RouteClass.DELETIONS
TOKENS = RouteClass.TOKENS

Make = Callable[..., RateLimiter]


@pytest.fixture(params=["in-process", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    """The Redis of the Redis limiter; None for the in-process one."""
    return request.getfixturevalue("shared_redis") if request.param == "redis" else None


@pytest.fixture
async def make_limiter(redis_url: str | None, clock: Any) -> AsyncIterator[Make]:
    """``make(uploads=N, ...)``: a limiter with those budgets per minute, on the test's fake clock unless
    ``real_time=True``."""
    prefix = f"cairn-test:{secrets.token_hex(6)}:"
    made: list[RateLimiter] = []

    def make(*, real_time: bool = False, **per_minute: int) -> RateLimiter:
        budgets = {RouteClass(name): n for name, n in per_minute.items()}
        limiter: RateLimiter
        if redis_url is None:
            limiter = InProcessRateLimiter(budgets, clock=time.monotonic if real_time else clock)
        else:
            limiter = RedisRateLimiter(redis_url, budgets, prefix=prefix, clock=None if real_time else clock)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def charges(
    limiter: RateLimiter, n: int, tenant: str = "acme", kind: RouteClass = UPLOADS
) -> list[bool]:
    results = []
    for _ in range(n):
        decision = await limiter.charge(tenant, kind)
        assert decision is not None
        results.append(decision.allowed)
    return results


async def admission(limiter: RateLimiter, tenant: str = "acme") -> Decision:
    decision = await limiter.admit(tenant, TOKENS)
    assert decision is not None
    return decision


async def test_the_whole_budget_at_once_then_refused(make_limiter: Make) -> None:
    limiter = make_limiter(uploads=100)
    decisions = [await limiter.charge("acme", UPLOADS) for _ in range(100)]
    assert all(d is not None and d.allowed for d in decisions)
    assert [d.remaining for d in decisions if d is not None] == list(range(99, -1, -1))
    first, last = decisions[0], decisions[-1]
    assert first is not None and last is not None
    assert (first.limit, first.reset_after, first.retry_after) == (100, 0.6, 0.0)
    assert last.reset_after == 60.0

    refused = await limiter.charge("acme", UPLOADS)
    assert refused is not None and not refused.allowed
    assert (refused.remaining, refused.limit, refused.route_class) == (0, 100, UPLOADS)
    assert refused.retry_after == pytest.approx(0.6)
    assert refused.reset_after == 60.0


async def test_the_budget_refills_steadily_and_refusals_cost_nothing(make_limiter: Make, clock: Any) -> None:
    limiter = make_limiter(uploads=100)  # one request every 0.6 s
    assert await charges(limiter, 100) == [True] * 100
    assert await charges(limiter, 20) == [False] * 20
    clock.now += 0.6
    assert await charges(limiter, 2) == [True, False]
    clock.now += 30
    assert await charges(limiter, 51) == [True] * 50 + [False]
    clock.now += 3600  # a long pause refills the budget, and no more than it
    assert await charges(limiter, 101) == [True] * 100 + [False]


async def test_no_burst_beyond_the_budget_across_a_minute_boundary(make_limiter: Make, clock: Any) -> None:
    """A fixed per-minute window would allow 2x here: the budget at 0:59, again at 1:00."""
    limiter = make_limiter(uploads=10)
    clock.now = 1_800_000_059.0
    assert await charges(limiter, 10) == [True] * 10
    clock.now = 1_800_000_061.0
    assert await charges(limiter, 10) == [False] * 10
    clock.now += 6  # one request's share of the minute
    assert await charges(limiter, 2) == [True, False]


async def test_tenants_have_budgets_of_their_own(make_limiter: Make) -> None:
    limiter = make_limiter(uploads=3)
    assert await charges(limiter, 4, tenant="acme") == [True, True, True, False]
    assert await charges(limiter, 4, tenant="globex") == [True, True, True, False]


async def test_route_classes_have_budgets_of_their_own(make_limiter: Make) -> None:
    limiter = make_limiter(uploads=2, retrievals=5, deletions=1)
    assert await charges(limiter, 3, kind=UPLOADS) == [True, True, False]
    assert await charges(limiter, 6, kind=RETRIEVALS) == [True] * 5 + [False]
    assert await charges(limiter, 2, kind=DELETIONS) == [True, False]
    decision = await limiter.charge("acme", RETRIEVALS)
    assert decision is not None and decision.limit == 5 and decision.route_class == RETRIEVALS


async def test_a_class_at_zero_is_unlimited(make_limiter: Make) -> None:
    limiter = make_limiter(uploads=0, retrievals=1)
    for _ in range(1000):
        assert await limiter.charge("acme", UPLOADS) is None
    assert await limiter.charge("acme", DELETIONS) is None  # not configured at all
    assert await charges(limiter, 2, kind=RETRIEVALS) == [True, False]


async def test_concurrent_charges_never_overspend(make_limiter: Make) -> None:
    limiter = make_limiter(uploads=50)
    decisions = await asyncio.gather(*(limiter.charge("acme", UPLOADS) for _ in range(120)))
    assert sum(1 for d in decisions if d is not None and d.allowed) == 50


async def test_real_time_refill(make_limiter: Make) -> None:
    """Without an injected clock (Redis: the server's own clock)."""
    limiter = make_limiter(real_time=True, uploads=1200)  # one request every 50 ms
    allowed = 0
    while (decision := await limiter.charge("acme", UPLOADS)) is not None and decision.allowed:
        allowed += 1
    assert 1200 <= allowed < 1400
    assert 0 < decision.retry_after <= 0.05
    await asyncio.sleep(decision.retry_after + 0.01)
    again = await limiter.charge("acme", UPLOADS)
    assert again is not None and again.allowed


async def test_a_weighted_budget_admits_until_spent_and_then_until_the_debt_is_paid(
    make_limiter: Make, clock: Any
) -> None:
    """Tokens: a request starts while any of the budget is left, and pays its actual usage when it ends,
    past the budget if need be; the next one waits for the debt to be paid down."""
    limiter = make_limiter(tokens=600)  # one token every 0.1 s
    admitted = await limiter.admit("acme", TOKENS)
    assert admitted is not None and admitted.allowed
    assert (admitted.limit, admitted.remaining, admitted.route_class) == (600, 600, TOKENS)

    spent = await limiter.spend("acme", TOKENS, 500)
    assert spent is not None and spent.allowed and spent.remaining == 100 and spent.reset_after == 50.0
    assert (await admission(limiter)).allowed

    overshoot = await limiter.spend("acme", TOKENS, 300)  # 200 tokens past the budget
    assert overshoot is not None and overshoot.allowed and overshoot.remaining == 0
    assert overshoot.reset_after == 80.0
    refused = await limiter.admit("acme", TOKENS)
    assert refused is not None and not refused.allowed and refused.remaining == 0
    assert refused.retry_after == pytest.approx(20.1)  # the 200 tokens of debt, then one token
    clock.now += 20
    assert not (await admission(limiter)).allowed
    clock.now += 0.1
    again = await limiter.admit("acme", TOKENS)
    assert again is not None and again.allowed and again.remaining == 1


async def test_admission_costs_nothing_and_spending_ignores_the_request_budget(make_limiter: Make) -> None:
    limiter = make_limiter(tokens=100, uploads=1)
    for _ in range(200):
        decision = await limiter.admit("acme", TOKENS)
        assert decision is not None and decision.allowed and decision.remaining == 100
    assert await charges(limiter, 2) == [True, False]  # the uploads budget is its own
    spent = await limiter.spend("acme", TOKENS, 100)
    assert spent is not None and spent.remaining == 0
    refused = await limiter.admit("acme", TOKENS)
    assert refused is not None and not refused.allowed
    other = await limiter.admit("globex", TOKENS)
    assert other is not None and other.allowed and other.remaining == 100


async def test_weighted_calls_on_an_unlimited_class_are_none(make_limiter: Make) -> None:
    limiter = make_limiter(tokens=0, uploads=5)
    assert await limiter.admit("acme", TOKENS) is None
    assert await limiter.spend("acme", TOKENS, 1000) is None
    assert await limiter.admit("acme", UPLOADS) is not None


async def test_concurrent_spends_all_count(make_limiter: Make) -> None:
    limiter = make_limiter(tokens=1000)
    await asyncio.gather(*(limiter.spend("acme", TOKENS, 7) for _ in range(100)))
    decision = await limiter.admit("acme", TOKENS)
    assert decision is not None and decision.remaining == 300

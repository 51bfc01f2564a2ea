"""HTTP pacing against the simulator's own rate limiter, over real loopback sockets and real time.

The simulator counts a request in its one-second window when it *arrives*; the client books its slot when
it *sends*. Requests of one burst do not all take the same time to arrive (the first ones open new
connections), so slots exactly one second apart can land in one server window and be refused. The limiter
guards against that twice: a margin on every window, and a hold when the server says nothing is left
(``Remaining-Req: ... sec=0``). Each test sends a burst of 30 requests at 3 requests per second per group,
spread over three groups so the burst takes ~3 s and still crosses nine window boundaries, and asserts
that the simulator refused none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rxmarket.exchanges.upbit.history import upbit_http_client
from rxmarket.policy.ratelimit import RateLimiter
from rxmarket.sim import SimLimits, UpbitSimulator
from rxmarket.transport import HttpResponse

PER_SECOND = 3
PER_GROUP = 10
# One path per Upbit rate-limit group (the simulator names its groups as Upbit's header does).
PATHS: dict[str, tuple[str, dict[str, str | int]]] = {
    "ticker": ("/ticker", {"markets": "KRW-BTC"}),
    "orderbook": ("/orderbook", {"markets": "KRW-BTC"}),
    "candles": ("/candles/days", {"market": "KRW-BTC", "count": 1}),
}


@pytest.fixture
async def tight_sim() -> AsyncIterator[UpbitSimulator]:
    """A quiet simulator allowing 3 REST requests per second per group (and no ban for 429s)."""
    limits = SimLimits(rest_per_sec=PER_SECOND, ban_after=1000)
    async with UpbitSimulator(markets=3, seed=7, rate=0, limits=limits) as sim:
        yield sim


async def burst(sim: UpbitSimulator, limiter: RateLimiter) -> list[HttpResponse | BaseException]:
    """30 requests at once, 10 per group, through Upbit's wiring of the client (errors mapped, pacing
    fed by ``Remaining-Req``); a 429 would come back as ``RateLimited``."""
    http = upbit_http_client(sim.rest_url, limiter=limiter)
    try:
        requests = [
            http.get(path, params, group=group)
            for _ in range(PER_GROUP)
            for group, (path, params) in PATHS.items()
        ]
        return await asyncio.gather(*requests, return_exceptions=True)
    finally:
        await http.close()


def full_windows(answers: list[HttpResponse | BaseException]) -> int:
    """How many answers said the server's window was full (``sec=0``): the burst used every slot."""
    return sum(
        1 for answer in answers
        if isinstance(answer, HttpResponse) and answer.headers["Remaining-Req"].endswith("sec=0")
    )


async def test_a_burst_at_the_limit_gets_no_429(tight_sim: UpbitSimulator) -> None:
    """With the default margin, a burst of 30 requests at the server's own limit is never refused."""
    answers = await burst(tight_sim, RateLimiter((PER_SECOND, 1.0)))
    assert [a.status if isinstance(a, HttpResponse) else a for a in answers] == [200] * 30
    stats = tight_sim.stats
    assert stats.rest_by_status == {200: 30}
    assert stats.rest_by_group == dict.fromkeys(PATHS, PER_GROUP)
    assert full_windows(answers) == 9  # 3 full windows per group: the pacing ran at the limit


async def test_without_a_margin_the_full_window_hold_alone_avoids_429(tight_sim: UpbitSimulator) -> None:
    """margin=0: slots land exactly one period apart; holding back after each ``sec=0`` until that
    server window has surely passed is then what keeps every request from being refused."""
    answers = await burst(tight_sim, RateLimiter((PER_SECOND, 1.0), margin=0.0))
    assert [a.status if isinstance(a, HttpResponse) else a for a in answers] == [200] * 30
    assert tight_sim.stats.rest_by_status == {200: 30}
    assert full_windows(answers) == 9

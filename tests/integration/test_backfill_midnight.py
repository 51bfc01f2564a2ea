"""A trade backfill that a UTC midnight overtakes: ``days_ago`` is recounted, no trade is lost.

Upbit (and the simulator, ``SimOptions.trades_by_day``) counts ``days_ago`` from the day of its newest trade.
When midnight passes during a backfill and something trades, that day moves on, and a ``days_ago`` counted
before addresses the day after the one wanted. The backfill must notice from the answers and ask again.

The simulator's clock is a number the test moves by hand and its market trades only on ``step()``; the
``progress`` callback (called after every REST call, on the loop, before the next one) moves the clock
past midnight and makes a trade at a chosen point of the run, so each race happens exactly where wanted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit import history
from rxmarket.models import Trade
from rxmarket.sim import SimOptions, SimTrade, UpbitSimulator
from rxmarket.storage import BackfillProgress, backfill, iter_records, replay, verify
from rxmarket.transport.http import HttpClient

DAY = 86_400_000
M = 1_785_456_000_000  # 2026-07-31T00:00:00Z, ms: the start of day D


class Clock:
    """The simulator's wall clock, in seconds, moved by the test."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Env(NamedTuple):
    sim: UpbitSimulator
    http: HttpClient
    clock: Clock


async def _env(start_ms: int) -> AsyncIterator[Env]:
    clock = Clock(start_ms / 1000)
    options = SimOptions(trade_history=5000, prefill_trades=5, trades_by_day=True)
    async with UpbitSimulator(markets=2, seed=7, rate=0, clock=clock, options=options) as sim:
        http = history.upbit_http_client(sim.rest_url)
        try:
            yield Env(sim, http, clock)
        finally:
            await http.close()


@pytest.fixture
async def near_midnight() -> AsyncIterator[Env]:
    """A hand-clocked simulator 50 s before the start of day D (its prefilled trades are on D-1)."""
    async for env in _env(M - 50_000):
        yield env


@pytest.fixture
async def two_days_back() -> AsyncIterator[Env]:
    """A hand-clocked simulator 50 s before the start of day D-1 (its prefilled trades are on D-2)."""
    async for env in _env(M - DAY - 50_000):
        yield env


@pytest.fixture
async def a_week_back() -> AsyncIterator[Env]:
    """A hand-clocked simulator 50 s before the start of day D-7 (its prefilled trades are on D-8)."""
    async for env in _env(M - 7 * DAY - 50_000):
        yield env


def trades_from(env: Env, ms: int, n: int, *, every: int = 250) -> list[SimTrade]:
    """``n`` KRW-BTC trades from ``ms`` on, ``every`` ms apart."""
    out: list[SimTrade] = []
    for i in range(n):
        env.clock.t = (ms + i * every) / 1000
        out.extend(env.sim.step(1, "KRW-BTC"))
    return out


class MidnightPasses:
    """A ``progress`` callback: once ``at_page`` REST calls are made, the clock jumps to ``to_ms`` and one
    trade is made there (so the newest trade's day, Upbit's reference for ``days_ago``, moves on).

    Attributes:
        fired_at: the ``pages`` count when it fired (``None``: not yet).
    """

    def __init__(self, env: Env, at_page: int, to_ms: int) -> None:
        self.env, self.at_page, self.to_ms = env, at_page, to_ms
        self.fired_at: int | None = None

    def __call__(self, p: BackfillProgress) -> None:
        if p.pages >= self.at_page and self.fired_at is None:
            self.fired_at = p.pages
            self.env.clock.t = self.to_ms / 1000
            self.env.sim.step(1, "KRW-BTC")


def stored(path: Path) -> list[Trade]:
    items: list[Any] = []
    replay(path, kinds=["trade"]).subscribe(items.append)
    return items


def ids(trades: list[Trade] | list[SimTrade]) -> list[int]:
    return [t.sequential_id for t in trades]


async def test_midnight_between_the_pages_of_a_chunk_of_the_newest_day(
    near_midnight: Env, tmp_path: Path
) -> None:
    """Midnight passes after the first page of a chunk of the newest day: its ``cursor`` pages (without
    ``days_ago``) now address the new day and come back empty; the backfill sees that the newest day moved,
    asks for the chunk again with ``days_ago=1`` and stores every trade once."""
    env = near_midnight
    made = trades_from(env, M - 48_000, 150, every=120)  # 23:59:12 -> 23:59:30 of D-1
    progress = MidnightPasses(env, at_page=2, to_ms=M + 5_000)  # after the chunk's first page
    done = await backfill(env.http, "KRW-BTC", "trades", made[0].timestamp, made[-1].timestamp + 1,
                          tmp_path, page_size=50, progress=progress)
    assert progress.fired_at == 2
    assert ids(stored(tmp_path)) == ids(made)
    assert (done.written, done.done) == (150, True)
    assert verify(tmp_path).ok


async def test_midnight_before_a_days_ago_page_shows_in_the_answer_and_is_recounted(
    near_midnight: Env, tmp_path: Path
) -> None:
    """Backfilling D-1 by ``days_ago=1`` while D+1 begins: the first answer holds D's trades (the day after
    the one asked for); the backfill recounts (``days_ago=2``) and stores exactly D-1's trades."""
    env = near_midnight
    made = trades_from(env, M - 45_000, 100, every=300)  # 23:59:15 -> 23:59:45 of D-1
    trades_from(env, M + 1_000, 30)  # D: the newest trade's day when the backfill starts
    progress = MidnightPasses(env, at_page=1, to_ms=M + DAY + 5_000)  # after reading the newest day
    done = await backfill(env.http, "KRW-BTC", "trades", made[0].timestamp, made[-1].timestamp + 1,
                          tmp_path, page_size=50, progress=progress)
    assert progress.fired_at == 1
    assert ids(stored(tmp_path)) == ids(made)
    assert done.written == 100


async def test_an_empty_answer_after_midnight_is_checked_and_recounted(
    two_days_back: Env, tmp_path: Path
) -> None:
    """An empty answer cannot show which day it came from: backfilling the first seconds of D-1 while D+1
    begins, ``days_ago=1`` with ``to=00:00:30`` addresses D, which has no trade before then; the backfill
    reads the newest day again, recounts and stores D-1's trades."""
    env = two_days_back
    made = trades_from(env, M - DAY + 5_000, 40, every=500)  # 00:00:05 -> 00:00:24.5 of D-1
    trades_from(env, M + 12 * 3_600_000, 10)  # D, from noon: the newest trade's day
    progress = MidnightPasses(env, at_page=1, to_ms=M + DAY + 5_000)
    done = await backfill(env.http, "KRW-BTC", "trades", made[0].timestamp, M - DAY + 30_000,
                          tmp_path, page_size=50, progress=progress)
    assert progress.fired_at == 1
    assert ids(stored(tmp_path)) == ids(made)
    assert done.written == 40


async def test_a_day_pushed_out_of_upbits_week_by_midnight_is_a_clear_error(
    a_week_back: Env, tmp_path: Path
) -> None:
    """Backfilling D-7 (the oldest day Upbit serves) while D+1 begins: D-7 is now 8 days back and out of
    reach; the backfill raises a ConfigError saying so and stores none of the trades of the wrong day."""
    env = a_week_back
    made = trades_from(env, M - 7 * DAY + 5_000, 20)
    trades_from(env, M + 1_000, 5)  # D: the newest trade's day when the backfill starts
    progress = MidnightPasses(env, at_page=1, to_ms=M + DAY + 5_000)
    with pytest.raises(ConfigError, match="no longer serves them"):
        await backfill(env.http, "KRW-BTC", "trades", made[0].timestamp, made[-1].timestamp + 1,
                       tmp_path, page_size=50, progress=progress)
    assert progress.fired_at == 1
    assert [r.item for r in iter_records(tmp_path) if isinstance(r.item, Trade)] == []

"""The simulator's ``/trades/ticks`` keeps to Upbit's UTC days (``SimOptions.trades_by_day``).

Upbit addresses trades by UTC day: without ``days_ago``, pages (the first and the ``cursor`` ones) hold only
trades of the newest trade's day; ``days_ago=N`` gives the day N days before the newest trade's day, with
``to`` a time of that day and ``cursor`` paging back inside it (``upbit-protocol.md`` section 2).

The simulator's clock is a number the test moves by hand and its market trades only on ``step()``, so every
trade of every day is known. Its prefilled trades fall on the evening of day ``D-2``; the tests make trades
on ``D-1`` and ``D`` (the clients are plain aiohttp, as everywhere in this suite). One more test starts the
simulator just after a midnight: its prefill is kept to one day, so it can be paged through whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

import aiohttp
import pytest

from rxmarket.sim import SimTrade, UpbitSimulator

from ._helpers import fast_options, get_json

DAY = 86_400_000
MIDNIGHT = 1_785_456_000_000  # 2026-07-31T00:00:00Z, ms: the start of day D
SYMBOL = "KRW-BTC"


class Clock:
    """The simulator's wall clock, in seconds, moved by the test."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Env(NamedTuple):
    sim: UpbitSimulator
    clock: Clock
    http: aiohttp.ClientSession


@asynccontextmanager
async def _env(trades_by_day: bool, start_ms: int = MIDNIGHT - DAY - 600_000) -> AsyncIterator[Env]:
    # By default started 10 minutes before D-1 begins: the prefilled trades (the minute or two before the
    # start) are all on D-2.
    clock = Clock(start_ms / 1000)
    options = fast_options(prefill_trades=20, trade_history=5000, trades_by_day=trades_by_day)
    async with (
        UpbitSimulator(markets=2, seed=7, rate=0, clock=clock, options=options) as sim,
        aiohttp.ClientSession() as http,
    ):
        yield Env(sim, clock, http)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """A hand-clocked simulator keeping to Upbit's days."""
    async with _env(True) as e:
        yield e


@pytest.fixture
async def through() -> AsyncIterator[Env]:
    """A hand-clocked simulator with ``trades_by_day=False``."""
    async with _env(False) as e:
        yield e


def trade_at(env: Env, ms: int) -> SimTrade:
    """One KRW-BTC trade with the clock at ``ms``."""
    env.clock.t = ms / 1000
    (trade,) = env.sim.step(1, SYMBOL)
    return trade


def two_days(env: Env) -> tuple[list[SimTrade], list[SimTrade]]:
    """25 trades in the last minutes of D-1 and 23 in the first minutes of D, 7 s apart."""
    yesterday = [trade_at(env, MIDNIGHT - 180_000 + 7_000 * i) for i in range(25)]
    today = [trade_at(env, MIDNIGHT + 5_000 + 7_000 * i) for i in range(23)]
    assert all(t.timestamp < MIDNIGHT for t in yesterday)
    assert all(MIDNIGHT <= t.timestamp < MIDNIGHT + DAY for t in today)
    return yesterday, today


def newest_first(trades: list[SimTrade]) -> list[int]:
    return [t.sequential_id for t in reversed(trades)]


async def ticks(env: Env, **params: Any) -> list[dict[str, Any]]:
    """One ``/trades/ticks`` answer for KRW-BTC (checked to be a 200)."""
    query = "&".join(f"{k}={v}" for k, v in {"market": SYMBOL, **params}.items())
    status, body, _ = await get_json(env.http, f"{env.sim.rest_url}/trades/ticks?{query}")
    assert status == 200, body
    assert isinstance(body, list)
    return body


async def page_through(env: Env, size: int, **params: Any) -> tuple[list[int], int]:
    """Page by ``cursor`` until a short page: every id seen, newest first, and the number of requests."""
    seen: list[int] = []
    calls, cursor = 0, None
    while True:
        extra = params if cursor is None else {**params, "cursor": cursor}
        page = await ticks(env, count=size, **extra)
        calls += 1
        seen.extend(t["sequential_id"] for t in page)
        if len(page) < size:
            return seen, calls
        cursor = page[-1]["sequential_id"]


def hhmmss(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H%M%S")


async def test_cursor_paging_without_days_ago_stops_at_the_start_of_the_newest_trades_day(env: Env) -> None:
    """Without ``days_ago`` the pages hold the newest trade's day only: paging ends with a short page at
    that day's start, and a cursor at its oldest trade gets ``[]``, not the day before."""
    _, today = two_days(env)
    seen, calls = await page_through(env, 10)
    assert seen == newest_first(today)
    assert calls == 3  # 10 + 10 + 3
    assert await ticks(env, count=50, cursor=today[0].sequential_id) == []


async def test_days_ago_1_reaches_the_day_before_and_pages_inside_it(env: Env) -> None:
    """``days_ago=1`` answers with the trades of the day before, newest first; its ``cursor`` pages stop
    at that day's start (the prefilled trades of D-2 stay out)."""
    yesterday, _ = two_days(env)
    first = await ticks(env, count=500, days_ago=1)
    assert [t["sequential_id"] for t in first] == newest_first(yesterday)
    assert {t["trade_date_utc"] for t in first} == {"2026-07-30"}
    seen, calls = await page_through(env, 10, days_ago=1)
    assert seen == newest_first(yesterday)
    assert calls == 3  # 10 + 10 + 5


async def test_to_with_days_ago_is_a_time_of_that_day(env: Env) -> None:
    """``days_ago=1&to=HHmmss``: the day before's trades before that second, none of the newest day's."""
    yesterday, _ = two_days(env)
    cut = yesterday[12].timestamp // 1000 * 1000
    got = await ticks(env, count=500, days_ago=1, to=hhmmss(cut))
    assert [t["sequential_id"] for t in got] == newest_first([t for t in yesterday if t.timestamp < cut])


async def test_days_ago_counts_from_the_newest_trades_day_not_the_clocks(env: Env) -> None:
    """The clock is an hour into D but nothing traded since D-1: the newest trade's day is still D-1, so a
    request without ``days_ago`` gives D-1's trades and ``days_ago=1`` gives D-2's (the prefilled ones)."""
    yesterday = [trade_at(env, MIDNIGHT - 60_000 + 1_000 * i) for i in range(12)]
    env.clock.t = (MIDNIGHT + 3_600_000) / 1000
    newest_day = await ticks(env, count=500)
    assert [t["sequential_id"] for t in newest_day] == newest_first(yesterday)
    before = await ticks(env, count=500, days_ago=1)
    assert before, "the simulator prefilled trades on D-2"
    assert {t["trade_date_utc"] for t in before} == {"2026-07-29"}


async def test_without_trades_by_day_pages_run_through_midnight_and_days_ago_follows_the_clock(
    through: Env,
) -> None:
    """``trades_by_day=False`` keeps the older simplification: ``cursor`` pages go on into the day before,
    and ``days_ago`` counts from the clock's day."""
    yesterday, today = two_days(through)
    seen, _ = await page_through(through, 10)
    assert seen[: len(today) + len(yesterday)] == newest_first(yesterday + today)
    through.clock.t = (MIDNIGHT + DAY + 3_600_000) / 1000  # an hour into D+1, nothing traded on it
    got = await ticks(through, count=500, days_ago=1)
    assert [t["sequential_id"] for t in got] == newest_first(today)


@pytest.mark.parametrize("after_midnight", [2_000, 45_000])
async def test_a_prefill_started_just_after_midnight_keeps_to_one_day(after_midnight: int) -> None:
    """Started a few seconds after a UTC midnight (a minute's prefill would straddle it), the simulator
    keeps every prefilled trade on one day, so one page without ``days_ago`` holds all of them."""
    async with _env(True, start_ms=MIDNIGHT + after_midnight) as e:
        got = await ticks(e, count=500)
        assert len(got) == 20
        assert len({t["trade_date_utc"] for t in got}) == 1

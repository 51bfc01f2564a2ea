"""The trade gap fill across a UTC midnight: ``fetch_trades_since`` and ``UpbitSource`` over loopback.

Upbit addresses trades by UTC day: without ``days_ago``, ``cursor`` pages through the newest trade's day
only; earlier days need ``days_ago`` (1-7). The simulator's ``cursor`` pages cross midnight by themselves,
so here a small loopback front (:class:`UpbitDays`) passes every request to the simulator and cuts an
answer without ``days_ago`` to the newest trade's day, as Upbit does. It also logs the trade requests (to
count REST calls) and can run a hook before one (to move the hand clock mid-fill).

The simulator's clock is a number the test moves by hand and its market trades only on ``step()``, so the
trades a fill must return are known exactly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

import aiohttp
import pytest
from _recorder import Recorder
from aiohttp import web
from test_source_support import REST_PER_SEC, fast_config, make_sim

from rxmarket.exchanges.upbit import history
from rxmarket.exchanges.upbit.source import UpbitSource
from rxmarket.models import Trade
from rxmarket.policy.ratelimit import RateLimiter
from rxmarket.sim import SimOptions, SimTrade, UpbitSimulator
from rxmarket.transport.http import HttpClient

DAY = 86_400_000
MIDNIGHT = 1_785_369_600.0  # 2026-07-30T00:00:00Z, seconds
MIDNIGHT_MS = int(MIDNIGHT * 1000) + DAY  # the midnight the tests cross (2026-07-31T00:00:00Z)


class Clock:
    """The simulator's wall clock, in seconds, moved by the test."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class UpbitDays:
    """A loopback front for the simulator whose ``/trades/ticks`` pages keep to Upbit's UTC days.

    An answer to a request without ``days_ago`` keeps only the trades of the newest trade's day (read
    from the simulator with ``count=1``); everything else passes through unchanged, ``Remaining-Req``
    included. ``days_ago`` passes through: the simulator counts it from its clock's day, which is the
    newest trade's day whenever something traded since midnight (true in every test here).

    Attributes:
        trade_calls: the query of every ``/trades/ticks`` request, in order.
        before: called with a request's query before it is passed on (``None``: nothing).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.trade_calls: list[dict[str, str]] = []
        self.before: Callable[[dict[str, str]], None] | None = None
        self.rest_url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> UpbitDays:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/v1/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.rest_url = f"http://{host}:{port}/v1"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _get(self, path: str, query: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        assert self._session is not None
        async with self._session.get(f"{self.upstream}/{path}", params=query) as answer:
            body = await answer.read()
            keep = {k: answer.headers[k] for k in ("Remaining-Req", "Content-Type") if k in answer.headers}
            return answer.status, body, keep

    async def _handle(self, request: web.Request) -> web.Response:
        path, query = request.match_info["tail"], dict(request.query)
        trades = path == "trades/ticks"
        if trades:
            self.trade_calls.append(query)
            if self.before is not None:
                self.before(query)
        status, body, headers = await self._get(path, query)
        if trades and status == 200 and "days_ago" not in query:
            _, newest, _ = await self._get(path, {"market": query["market"], "count": "1"})
            (last,) = json.loads(newest) or [{"timestamp": 0}]
            day = last["timestamp"] - last["timestamp"] % DAY
            body = json.dumps([t for t in json.loads(body) if t["timestamp"] >= day]).encode()
        return web.Response(body=body, status=status, headers=headers)


class Env(NamedTuple):
    sim: UpbitSimulator
    days: UpbitDays
    http: HttpClient
    clock: Clock


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """A hand-clocked simulator 50 s before a UTC midnight, behind an :class:`UpbitDays` front."""
    clock = Clock(MIDNIGHT_MS / 1000 - 50)
    options = SimOptions(trade_history=5000, prefill_trades=5)
    sim = make_sim(markets=2, seed=7, clock=clock, options=options)
    async with sim, UpbitDays(sim.rest_url) as days:
        http = history.upbit_http_client(days.rest_url, limiter=RateLimiter((REST_PER_SEC, 1.0)))
        try:
            yield Env(sim, days, http, clock)
        finally:
            await http.close()


def make_trades(env: Env, n: int, *, pause: float = 0.5, burst: int = 2) -> list[SimTrade]:
    """``n`` KRW-BTC trades: bursts of ``burst`` trades 1 ms apart, ``pause`` seconds between bursts."""
    env.clock.t += 2.0  # clear of the trades the simulator prefilled before its start
    out: list[SimTrade] = []
    for i in range(n):
        env.clock.t += 0.001 if i % burst else pause
        out.extend(env.sim.step(1, "KRW-BTC"))
    return out


def ids(trades: list[Trade] | list[SimTrade]) -> list[int]:
    return [t.sequential_id for t in trades]


def pages(n: int, size: int) -> int:
    """REST calls that page through ``n`` trades of a day to its end: the last page is a short one."""
    return n // size + 1


async def test_a_fill_over_midnight_returns_both_days_newest_first(env: Env) -> None:
    """From ``since`` before midnight to now after it: every trade of both days once, newest first, in the
    expected calls (the new day by cursor to its start, then the day before by ``days_ago=1``)."""
    made = make_trades(env, 300)
    since = made[30].timestamp
    wanted = [t for t in made if t.timestamp >= since]
    before = sum(t.timestamp < MIDNIGHT_MS for t in wanted)
    after = len(wanted) - before
    assert min(before, after) > 50, "the trades should straddle midnight"
    got, complete = await history.fetch_trades_since(env.http, "KRW-BTC", since, max_pages=20, page_size=50)
    assert complete
    assert ids(got) == ids(wanted)[::-1]
    assert len(set(ids(got))) == len(got)
    # The day before is paged until a page reaches past `since` (older trades exist: made[:30]).
    assert len(env.days.trade_calls) == pages(after, 50) + -(-(before + 1) // 50)
    day_of_call = [q.get("days_ago") for q in env.days.trade_calls]
    assert day_of_call == [None] * pages(after, 50) + ["1"] * (len(day_of_call) - pages(after, 50))
    first_of_yesterday = env.days.trade_calls[pages(after, 50)]
    assert not {"cursor", "to"} & first_of_yesterday.keys()


async def test_max_pages_running_out_over_midnight_is_incomplete(env: Env) -> None:
    """Pages spent before the day before is done: ``complete=False``, the newest trades of both days."""
    made = make_trades(env, 300)
    since = made[10].timestamp
    after = sum(t.timestamp >= MIDNIGHT_MS for t in made)
    budget = pages(after, 50) + 1  # the new day, and one page of the day before
    got, complete = await history.fetch_trades_since(
        env.http, "KRW-BTC", since, max_pages=budget, page_size=50
    )
    assert not complete
    assert len(env.days.trade_calls) == budget
    assert ids(got) == ids(made)[::-1][: after + 50]


async def test_midnight_passing_during_the_fill_recounts_days_ago(env: Env) -> None:
    """The next midnight passes between two pages: Upbit's day count moves under the fill, whose first page
    of the day before then holds the wrong day; it asks again with ``days_ago`` recounted and misses
    nothing."""
    made = make_trades(env, 40, pause=1.0)  # the day before
    next_midnight = (MIDNIGHT_MS + DAY) / 1000
    env.clock.t = next_midnight - 2  # 23:59:58 of the new day: a few trades, then the fill starts
    for _ in range(10):
        env.clock.t += 0.01
        made += env.sim.step(1, "KRW-BTC")
    assert len({t.timestamp // DAY for t in made}) == 2

    def midnight_passes(query: dict[str, str]) -> None:
        if "days_ago" in query and env.clock.t < next_midnight:
            env.clock.t = next_midnight + 5
            env.sim.step(1, "KRW-BTC")

    env.days.before = midnight_passes
    got, complete = await history.fetch_trades_since(
        env.http, "KRW-BTC", made[0].timestamp, max_pages=20, page_size=50
    )
    assert complete
    assert ids(got) == ids(made)[::-1]
    # today (short page); days_ago=1 now answers with that same day; days_ago=2 is the day before it.
    assert [q.get("days_ago") for q in env.days.trade_calls] == [None, "1", "2"]


async def test_since_beyond_seven_days_is_incomplete_after_the_seventh(env: Env) -> None:
    """``since`` 9 days back: days 1-7 are asked (empty ones too), none beyond, and ``complete=False``."""
    made = make_trades(env, 20)
    got, complete = await history.fetch_trades_since(
        env.http, "KRW-BTC", made[0].timestamp - 9 * DAY, max_pages=20, page_size=50
    )
    assert not complete
    assert [q.get("days_ago") for q in env.days.trade_calls] == [None] + [str(k) for k in range(1, 8)]
    assert ids(got)[: len(made)] == ids(made)[::-1]


async def test_a_source_dropped_before_midnight_and_back_after_it_delivers_every_trade_once(env: Env) -> None:
    """End to end: a trade stream whose link drops before midnight and is back after it gets every trade
    made meanwhile, of both days, exactly once and in order (``source="rest"``), then live trades go on."""
    config = fast_config(env.sim, rest_url=env.days.rest_url, gap_fill_page_size=50, gap_fill_max_pages=10)
    async with UpbitSource(config, http=env.http) as source:
        trades, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        await trades.wait_count(1)  # the SNAPSHOT: the market's last trade so far
        env.clock.t += 1.0
        delivered = [trades.items[0].sequential_id, *ids(env.sim.step(1, "KRW-BTC"))]
        await trades.wait_count(2)  # live, before the drop
        env.sim.faults.disconnect()
        missed = make_trades(env, 120, pause=1.0)  # while nobody is connected: 23:59:13 -> 00:00:13
        assert {t.timestamp >= MIDNIGHT_MS for t in missed} == {False, True}
        await status.wait_kind("gap_filled")
        await env.sim.wait_subscribed(["KRW-BTC"], "trade")
        env.clock.t += 1.0
        live = env.sim.step(3, "KRW-BTC")
        await trades.wait_count(len(delivered) + len(missed) + len(live))
        assert ids(trades.items) == delivered + ids(missed) + ids(live)
        got = trades.items[len(delivered):]
        assert [t.source for t in got] == ["rest"] * len(missed) + ["websocket"] * len(live)
        (filled,) = status.kinds("gap_filled")
        assert (filled.count, filled.detail) == (len(missed), "")
        assert "1" in [q.get("days_ago") for q in env.days.trade_calls]  # the day before came by days_ago
        assert not trades.errors

"""The trade gap fill across a UTC midnight: ``fetch_trades_since`` and ``UpbitSource`` over loopback.

Upbit addresses trades by UTC day: without ``days_ago``, ``cursor`` pages through the newest trade's day
only; earlier days need ``days_ago`` (1-7, counted from the newest trade's day). The simulator does the
same (``SimOptions.trades_by_day``, on by default and set here explicitly), so the fill talks to it
directly.

The simulator counts REST requests per group but keeps no log of their queries, so the tests keep a
minimal one on the client's side (:class:`TradeCalls`, aiohttp request tracing on the client's session),
checked against the simulator's own count; it can also run a hook before a request is sent (to move the
hand clock mid-fill).

The simulator's clock is a number the test moves by hand and its market trades only on ``step()``, so the
trades a fill must return are known exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from types import SimpleNamespace
from typing import NamedTuple

import aiohttp
import pytest
from _recorder import Recorder
from test_source_support import REST_PER_SEC, fast_config, make_sim

from rxmarket.exchanges.upbit import history
from rxmarket.exchanges.upbit.protocol import error_from_response, parse_remaining_req
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


class TradeCalls:
    """A minimal log of the ``/trades/ticks`` requests a client sends, taken from aiohttp's request tracing.

    Attributes:
        queries: the query of every ``/trades/ticks`` request, in the order they were sent.
        before: called with a request's query just before it is sent (``None``: nothing).
        trace: the trace config to give the client's session.
    """

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.before: Callable[[dict[str, str]], None] | None = None
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._started)

    async def _started(
        self, _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if params.url.path.endswith("/trades/ticks"):
            query = dict(params.url.query)
            self.queries.append(query)
            if self.before is not None:
                self.before(query)


def upbit_client(rest_url: str, session: aiohttp.ClientSession) -> HttpClient:
    """What ``history.upbit_http_client`` builds (Upbit's error mapping, ``Remaining-Req`` pacing), on a
    session of the test's (that function makes its own, which the request log could not trace)."""

    def error_mapper(status: int, body: bytes, headers: Mapping[str, str]) -> Exception | None:
        return None if status < 400 else error_from_response(status, body, headers)

    def remaining(headers: Mapping[str, str]) -> int | None:
        value = headers.get("Remaining-Req")
        return None if value is None else parse_remaining_req(value).sec

    return HttpClient(
        rest_url, limiter=RateLimiter((REST_PER_SEC, 1.0)), error_mapper=error_mapper, remaining=remaining,
        session=session,
    )


class Env(NamedTuple):
    sim: UpbitSimulator
    calls: TradeCalls
    http: HttpClient
    clock: Clock

    def trade_calls(self) -> list[dict[str, str]]:
        """The logged trade requests, checked to be every one the simulator answered."""
        assert len(self.calls.queries) == self.sim.stats.rest_by_group.get("crix-trades", 0)
        return self.calls.queries


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """A hand-clocked simulator 50 s before a UTC midnight, keeping its trade pages to Upbit's days."""
    clock = Clock(MIDNIGHT_MS / 1000 - 50)
    options = SimOptions(trade_history=5000, prefill_trades=5, trades_by_day=True)
    sim = make_sim(markets=2, seed=7, clock=clock, options=options)
    calls = TradeCalls()
    async with sim, aiohttp.ClientSession(trace_configs=[calls.trace]) as session:
        http = upbit_client(sim.rest_url, session)
        try:
            yield Env(sim, calls, http, clock)
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
    calls = env.trade_calls()
    assert len(calls) == pages(after, 50) + -(-(before + 1) // 50)
    day_of_call = [q.get("days_ago") for q in calls]
    assert day_of_call == [None] * pages(after, 50) + ["1"] * (len(day_of_call) - pages(after, 50))
    first_of_yesterday = calls[pages(after, 50)]
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
    assert len(env.trade_calls()) == budget
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

    env.calls.before = midnight_passes
    got, complete = await history.fetch_trades_since(
        env.http, "KRW-BTC", made[0].timestamp, max_pages=20, page_size=50
    )
    assert complete
    assert ids(got) == ids(made)[::-1]
    # today (short page); days_ago=1 now answers with that same day; days_ago=2 is the day before it.
    assert [q.get("days_ago") for q in env.trade_calls()] == [None, "1", "2"]


async def test_since_beyond_seven_days_is_incomplete_after_the_seventh(env: Env) -> None:
    """``since`` 9 days back: days 1-7 are asked (empty ones too), none beyond, and ``complete=False``."""
    made = make_trades(env, 20)
    got, complete = await history.fetch_trades_since(
        env.http, "KRW-BTC", made[0].timestamp - 9 * DAY, max_pages=20, page_size=50
    )
    assert not complete
    assert [q.get("days_ago") for q in env.trade_calls()] == [None] + [str(k) for k in range(1, 8)]
    assert ids(got)[: len(made)] == ids(made)[::-1]


async def test_a_source_dropped_before_midnight_and_back_after_it_delivers_every_trade_once(env: Env) -> None:
    """End to end: a trade stream whose link drops before midnight and is back after it gets every trade
    made meanwhile, of both days, exactly once and in order (``source="rest"``), then live trades go on."""
    config = fast_config(env.sim, gap_fill_page_size=50, gap_fill_max_pages=10)
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
        assert "1" in [q.get("days_ago") for q in env.trade_calls()]  # the day before came by days_ago
        assert not trades.errors

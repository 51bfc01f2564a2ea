"""REST history against the simulator: paging backwards, oldest first, no duplicates, limits honoured."""

from __future__ import annotations

import asyncio

import pytest
from _recorder import Recorder
from test_source_support import REST_PER_SEC, make_sim, running

from rxmarket.errors import Banned, ConfigError, NotFound, TransportError
from rxmarket.exchanges.upbit import endpoints, history
from rxmarket.exchanges.upbit.protocol import UpbitProtocolConfig
from rxmarket.models import Candle, Trade
from rxmarket.policy.ratelimit import RateLimiter
from rxmarket.sim import SimOptions
from rxmarket.transport import HttpClient

MINUTE = 60_000


def client(sim_url: str) -> HttpClient:
    config = UpbitProtocolConfig(default_retry_after=0.05, ban_duration=0.2)
    return history.upbit_http_client(sim_url, config=config, limiter=RateLimiter((REST_PER_SEC, 1.0)))


async def test_candles_page_backwards_and_come_out_oldest_first() -> None:
    """450 one-minute candles: three calls (200+200+50), strictly ascending starts, none twice."""
    async with make_sim() as sim:
        async with client(sim.rest_url) as http:
            candles = await history.fetch_candles(http, "KRW-BTC", "1m", 450)
        assert len(candles) == 450
        starts = [c.start for c in candles]
        assert starts == sorted(set(starts))
        assert all(isinstance(c, Candle) and c.unit == "1m" and c.source == "rest" for c in candles)
        assert all(s % MINUTE == 0 for s in starts)
        assert sim.stats.rest_by_group["candles"] == 3


async def test_one_candle_page_leads_to_the_one_before_it() -> None:
    """candles_page(to=page.next_to) returns candles strictly older than the first page's oldest."""
    async with make_sim() as sim:
        async with client(sim.rest_url) as http:
            newest = await history.candles_page(http, "KRW-ETH", "5m", count=10)
            assert newest.next_to == newest.items[0].start
            assert newest.next_to is not None
            older = await history.candles_page(http, "KRW-ETH", "5m", to=newest.next_to, count=10)
        assert len(newest.items) == 10
        assert len(older.items) == 10
        assert older.items[-1].start < newest.items[0].start
        assert [c.start for c in older.items] == sorted(c.start for c in older.items)


async def test_a_short_history_ends_the_paging() -> None:
    """Asking more minutes than the server keeps returns all that exist (today's), paging no further.

    How many minutes today has depends on the time of day, so the test counts them rather than assume it.
    """
    options = SimOptions(minute_history_days=0)
    async with make_sim(options=options) as sim, client(sim.rest_url) as http:
        candles = await history.fetch_candles(http, "KRW-BTC", "1m", 5000)
        calls = sim.stats.rest_by_group["candles"]
        older = await history.candles_page(http, "KRW-BTC", "1m", count=200, to=candles[0].start)
    starts = [c.start for c in candles]
    assert 0 < len(candles) < 5000
    assert starts == sorted(set(starts))
    assert len(older.items) == 0  # nothing exists before the oldest one returned
    assert older.next_to is None
    # One call per full page of 200, and one for the short (or empty) page that ends the history.
    assert calls == len(candles) // 200 + 1


async def test_trades_page_backwards_by_cursor_oldest_first_without_duplicates() -> None:
    """700 trades: two calls (500 + 200) chained by cursor; ids unique, in the exchange's order."""
    options = SimOptions(prefill_trades=1000, trade_history=2000)
    async with make_sim(options=options) as sim:
        async with client(sim.rest_url) as http:
            trades = await history.fetch_trades(http, "KRW-BTC", 700)
            newest = await history.trades_page(http, "KRW-BTC", count=3)
            before = await history.trades_page(http, "KRW-BTC", count=3, cursor=newest.next_cursor)
        ids = [t.sequential_id for t in trades]
        assert len(ids) == 700 == len(set(ids))
        assert ids == sorted(ids)  # the simulator's ids grow with time
        assert all(isinstance(t, Trade) and t.source == "rest" for t in trades)
        assert ids[-3:] == [t.sequential_id for t in newest.items]
        assert ids[-6:-3] == [t.sequential_id for t in before.items]
        assert sim.stats.rest_by_group["crix-trades"] == 4


async def test_trades_since_stop_at_the_given_time() -> None:
    """fetch_trades(since=...) returns only trades at or after that time."""
    async with make_sim() as sim:
        made = sim.step(10, "KRW-XRP")
        async with client(sim.rest_url) as http:
            trades = await history.fetch_trades(http, "KRW-XRP", 500, since=made[4].timestamp)
        assert {t.sequential_id for t in trades} >= {t.sequential_id for t in made[4:]}
        assert all(t.timestamp >= made[4].timestamp for t in trades)


async def test_rate_limited_calls_wait_and_then_succeed() -> None:
    """429s during paging: the call waits retry_after between tries instead of hammering, then succeeds."""
    async with make_sim() as sim:
        async with client(sim.rest_url) as http:
            sim.faults.rate_limit(0.12)
            candles = await history.fetch_candles(http, "KRW-BTC", "1m", 10, retries=10)
        assert len(candles) == 10
        refused = sim.stats.rest_by_status.get(429, 0)
        assert 1 <= refused <= 4  # about one try per 0.05 s retry_after within 0.12 s, not a storm


async def test_a_ban_is_raised_not_retried() -> None:
    """418: Banned at once (a block lasts long; the caller decides), after one request."""
    async with make_sim() as sim:
        async with client(sim.rest_url) as http:
            sim.faults.ban(5.0)
            with pytest.raises(Banned):
                await history.fetch_candles(http, "KRW-BTC", "1m", 10)
        assert sim.stats.rest_requests == 1


async def test_an_unknown_market_is_not_found() -> None:
    """A market the exchange does not know: NotFound, no retry."""
    async with make_sim() as sim:
        async with client(sim.rest_url) as http:
            with pytest.raises(NotFound):
                await history.fetch_trades(http, "KRW-NOPE", 10)
        assert sim.stats.rest_requests == 1


async def test_the_candle_observable_emits_oldest_first_then_completes() -> None:
    """history.candles(): a cold Observable; each subscription fetches and completes."""
    async with make_sim() as sim:
        async with client(sim.rest_url) as http:
            first, second = Recorder(), Recorder()
            observable = history.candles(http, "KRW-BTC", "15m", 30)
            observable.subscribe(first)
            await first.wait(lambda: first.completed)
            observable.subscribe(second)
            await second.wait(lambda: second.completed)
        assert len(first.items) == 30
        assert [c.start for c in first.items] == sorted(c.start for c in first.items)
        assert [c.start for c in second.items] == [c.start for c in first.items]
        assert sim.stats.rest_by_group["candles"] == 2


async def test_disposing_a_history_observable_cancels_its_fetch() -> None:
    """Dispose before the answer: the task is cancelled, nothing is emitted, nothing is left running."""
    async with make_sim() as sim, client(sim.rest_url) as http:
        tasks: set[asyncio.Task[None]] = set()
        received = Recorder()
        sim.faults.latency(0.2)
        sub = history.trades(http, "KRW-BTC", 100, tasks=tasks).subscribe(received)
        (task,) = tasks
        await sim.wait_requests(1)
        sub.dispose()
        await asyncio.wait({task})
        assert task.cancelled()
        assert tasks == set()
        assert received.items == []
        assert not received.completed
        assert not received.errors


async def test_closing_the_source_fails_a_history_fetch_it_cut_short() -> None:
    """close() while a history fetch runs: its subscriber gets a typed on_error, not silence or a cut list."""
    async with running() as (sim, source):
        received = Recorder()
        sim.faults.latency(0.2)
        source.trades("KRW-BTC", 100).subscribe(received)
        await sim.wait_requests(1)
        await source.close()
        await received.wait(lambda: bool(received.errors))
        assert received.items == []
        assert not received.completed
        assert isinstance(received.errors[0], ConfigError)


async def test_history_observable_errors_arrive_as_on_error() -> None:
    """A REST error inside the fetch reaches the subscriber's on_error, typed."""
    async with make_sim() as sim:
        async with client(sim.rest_url) as http:
            received = Recorder()
            history.trades(http, "KRW-NOPE", 10).subscribe(received)
            await received.wait(lambda: bool(received.errors))
        assert isinstance(received.errors[0], NotFound)


async def test_a_closed_client_fails_at_once_without_retrying() -> None:
    """A TransportError from a closed client is not retried: no request, no backoff wait."""
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    async with make_sim() as sim:
        http = client(sim.rest_url)
        await http.close()
        with pytest.raises(TransportError, match="closed"):
            await history.get_rest(http, endpoints.ticker(["KRW-BTC"]), sleep=sleep)
        assert slept == []
        assert sim.stats.rest_by_group.get("ticker", 0) == 0


def test_history_arguments_are_checked_at_the_call() -> None:
    """A count below 1, an unknown unit or a bad code: ConfigError before anything is sent."""
    http = history.upbit_http_client("http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError):
        history.candles(http, "KRW-BTC", "1m", 0)
    with pytest.raises(ConfigError):
        history.candles(http, "KRW-BTC", "7m", 10)
    with pytest.raises(ConfigError):
        history.trades(http, "BTC", 10)

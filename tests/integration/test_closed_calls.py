"""Calls made after ``close()`` fail at once with ``ConfigError`` and send nothing.

Every public call of :class:`UpbitSource` and :class:`MarketData` that would touch the network (a history
fetch, a REST poll, a stream subscription, ``get_ticker``) must, once its owner is closed, fail before any
request or connection attempt: no retry budget spent on a closed HTTP client, no request sent on an HTTP
client the caller still holds open. Subscriptions get the error through ``on_error`` during ``subscribe``
(which never raises); awaited calls raise it. The simulator's counters show that nothing reached it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _recorder import Recorder
from reactivex import Observable
from test_market_support import market_for
from test_market_support import running as market_running
from test_source_support import fast_config, make_sim, rxmarket_tasks
from test_source_support import running as source_running

from rxmarket import MarketData
from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit.source import SourceConfig, UpbitSource
from rxmarket.sim import UpbitSimulator

SAFETY_TIMEOUT = 10.0  # seconds; only a broken test waits this long
SOURCE_CLOSED = "UpbitSource is closed"
MARKET_CLOSED = "MarketData is closed"

SourceCall = Callable[[UpbitSource], Observable[Any]]
MarketCall = Callable[[MarketData], Observable[Any]]

SOURCE_CALLS = [
    pytest.param(lambda s: s.candles("KRW-BTC", "1m", 500), id="candles"),
    pytest.param(lambda s: s.trades("KRW-BTC", 100), id="trades"),
    pytest.param(lambda s: s.poll("ticker", ["KRW-BTC", "KRW-ETH"], 0.05), id="poll-ticker"),
    pytest.param(lambda s: s.poll("orderbook", ["KRW-BTC"], 0.05, depth=5), id="poll-orderbook"),
    pytest.param(lambda s: s.stream("ticker", "KRW-BTC"), id="stream-ticker"),
    pytest.param(lambda s: s.stream("orderbook", "KRW-BTC", depth=5), id="stream-orderbook"),
    pytest.param(lambda s: s.stream_many("trade", ["KRW-BTC", "KRW-ETH"]), id="stream-many-trade"),
    pytest.param(lambda s: s.stream("candle.1m", "KRW-BTC"), id="stream-candle"),
]

MARKET_CALLS = [
    pytest.param(lambda m: m.candles("KRW-BTC", unit="1m", count=500), id="candles"),
    pytest.param(lambda m: m.ticker(["KRW-BTC"]), id="ticker-auto"),
    pytest.param(lambda m: m.ticker(["KRW-BTC"], channel="rest"), id="ticker-rest"),
    pytest.param(lambda m: m.ticker(["KRW-BTC"], channel="websocket"), id="ticker-websocket"),
    pytest.param(lambda m: m.orderbook(["KRW-ETH"], depth=5), id="orderbook-auto"),
    pytest.param(lambda m: m.orderbook(["KRW-ETH"], channel="rest"), id="orderbook-rest"),
    pytest.param(lambda m: m.trades(["KRW-XRP"]), id="trades"),
]


def traffic(sim: UpbitSimulator) -> tuple[int, int, int, int]:
    """Everything a client can cause on the simulator: REST requests, WebSocket connections (accepted and
    refused) and WebSocket messages."""
    s = sim.stats
    return (s.rest_requests, s.connections_total, s.connections_rejected, s.ws_messages)


def assert_refused(got: Recorder, message: str) -> None:
    """One ``ConfigError`` saying what is closed, and nothing else: no item, no completion."""
    assert len(got.errors) == 1, got.errors
    assert isinstance(got.errors[0], ConfigError)
    assert message in str(got.errors[0])
    assert got.items == []
    assert not got.completed


async def first_of(iterator: AsyncIterator[Any]) -> Any:
    """The first item of ``iterator`` through ``async for`` (``None`` if it ends without one)."""
    async for item in iterator:
        return item
    return None


# -- UpbitSource ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", SOURCE_CALLS)
async def test_a_source_call_after_close_fails_at_once_without_traffic(call: SourceCall) -> None:
    """On a closed source whose HTTP client the caller still holds open (so a request would succeed), a
    subscription fails during ``subscribe`` with ``ConfigError``; no request, socket or task follows."""
    async with source_running() as (sim, source):
        warm = Recorder()
        source.stream("ticker", "KRW-BTC").subscribe(warm)  # the source has been live before its close
        await warm.wait_count(1)
        await source.close()
        before = traffic(sim)
        got = Recorder()
        call(source).subscribe(got)
        assert_refused(got, SOURCE_CLOSED)  # already there: nothing was awaited since subscribe
        assert rxmarket_tasks() == set()  # nothing left that could still send
        assert source.stats().connections == 0
        assert traffic(sim) == before


@pytest.mark.parametrize("call", SOURCE_CALLS)
async def test_an_observable_made_before_close_fails_when_subscribed_after(call: SourceCall) -> None:
    """An Observable made while the source was open and subscribed after its close (the source's own HTTP
    client is closed by then) fails at once with ``ConfigError``, not after a retry budget of
    ``TransportError``s."""
    async with make_sim() as sim:
        source = UpbitSource(fast_config(sim))
        observable = call(source)
        await source.close()
        got = Recorder()
        observable.subscribe(got)
        assert_refused(got, SOURCE_CLOSED)
        assert rxmarket_tasks() == set()
        assert traffic(sim) == (0, 0, 0, 0)


async def test_a_history_fetch_in_flight_when_the_source_closes_fails_with_config_error() -> None:
    """A candle fetch still waiting for its answer when the source closes ends with ``ConfigError`` (its
    list would be cut short), not with a hang or a network error."""
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = UpbitSource(
        SourceConfig(rest_url=f"http://127.0.0.1:{port}/v1", ws_url=f"ws://127.0.0.1:{port}/websocket/v1")
    )
    try:
        got = Recorder()
        source.candles("KRW-BTC", "1m", 10).subscribe(got)
        async with asyncio.timeout(SAFETY_TIMEOUT):
            await connected.wait()  # the request is on its way and will never be answered
        await source.close()
        assert_refused(got, "closed before this history fetch finished")
        assert rxmarket_tasks() == set()
    finally:
        await source.close()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_wait_live_after_close_raises_config_error() -> None:
    """``wait_live()`` on a closed source raises ``ConfigError`` instead of claiming every link is live."""
    async with source_running() as (_sim, source):
        await source.close()
        with pytest.raises(ConfigError, match=SOURCE_CLOSED):
            await source.wait_live()


async def test_wait_live_cut_short_by_close_raises_config_error(refused_url: str) -> None:
    """``wait_live()`` still waiting for a link (the WebSocket is refused, so it keeps backing off) when
    the source closes raises ``ConfigError``, not the transport's error about the link."""
    async with make_sim() as sim:
        source = UpbitSource(fast_config(sim, ws_url=refused_url))
        status, tickers = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("ticker", "KRW-BTC").subscribe(tickers)
        await status.wait_kind("backoff")
        waiting = asyncio.create_task(source.wait_live())
        await status.wait_kind("backoff", 3)  # two more failed attempts: wait_live() is waiting by now
        assert not waiting.done()
        await source.close()
        with pytest.raises(ConfigError, match=SOURCE_CLOSED):
            await waiting
        assert tickers.completed


async def test_entering_a_closed_source_raises_config_error() -> None:
    """``async with`` on a closed source raises ``ConfigError`` and opens nothing."""
    async with make_sim() as sim:
        source = UpbitSource(fast_config(sim))
        await source.close()
        with pytest.raises(ConfigError, match=SOURCE_CLOSED):
            async with source:
                pytest.fail("the body of async with ran on a closed source")
        assert traffic(sim) == (0, 0, 0, 0)


async def test_closing_a_source_twice_is_harmless() -> None:
    """Two concurrent closes and a third later all return; status says ``closed`` once; stats answer."""
    async with source_running() as (_sim, source):
        status, trades = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        await source.wait_live()
        await asyncio.gather(source.close(), source.close())
        await source.close()
        assert source.closed
        assert [s.kind for s in status.items].count("closed") == 1
        assert status.completed
        assert trades.completed
        assert trades.errors == []
        assert source.stats().connections == 0


# -- MarketData -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", MARKET_CALLS)
async def test_a_market_call_after_close_fails_at_once_without_traffic(call: MarketCall) -> None:
    """On a closed market (used before), a subscription fails during ``subscribe`` with ``ConfigError``
    saying the market data is closed; no request, socket or task follows."""
    async with market_running() as (sim, market):
        await market.get_ticker("KRW-BTC")  # the market's HTTP session has been used
        await market.close()
        before = traffic(sim)
        got = Recorder()
        call(market).subscribe(got)
        assert_refused(got, MARKET_CLOSED)
        assert rxmarket_tasks() == set()
        assert market.stats().feeds == 0
        assert traffic(sim) == before


@pytest.mark.parametrize("call", MARKET_CALLS)
async def test_a_market_observable_made_before_close_fails_when_subscribed_after(call: MarketCall) -> None:
    """An Observable of the market made before its close and subscribed after fails at once with
    ``ConfigError`` (for ``candles`` this was a ``TransportError`` after the whole retry budget)."""
    async with make_sim() as sim:
        market = market_for(sim)
        observable = call(market)
        await market.close()
        got = Recorder()
        observable.subscribe(got)
        assert_refused(got, MARKET_CLOSED)
        assert rxmarket_tasks() == set()
        assert traffic(sim) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "ask",
    [
        pytest.param(lambda m: m.get_ticker("KRW-BTC"), id="get_ticker"),
        pytest.param(lambda m: m.get_tickers(["KRW-BTC", "KRW-ETH"]), id="get_tickers"),
    ],
)
async def test_get_ticker_after_close_raises_config_error_without_a_request(ask: Any) -> None:
    """``get_ticker`` / ``get_tickers`` on a closed market raise ``ConfigError``; nothing is asked of the
    cache's REST fallback or the WebSocket."""
    async with market_running() as (sim, market):
        await market.close()
        with pytest.raises(ConfigError, match=MARKET_CLOSED):
            await ask(market)
        assert traffic(sim) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda m: m.stream_ticker(["KRW-BTC"]), id="stream_ticker"),
        pytest.param(lambda m: m.stream_orderbook(["KRW-BTC"], depth=5), id="stream_orderbook"),
    ],
)
async def test_an_iterator_after_close_raises_config_error_on_its_first_step(make: Any) -> None:
    """An async iterator of a closed market raises ``ConfigError`` from its first step: ``async for``
    neither hangs nor ends quietly as if the stream had completed (``first_of`` would return ``None``)."""
    async with market_running() as (sim, market):
        await market.close()
        with pytest.raises(ConfigError, match=MARKET_CLOSED):
            await first_of(make(market))
        assert traffic(sim) == (0, 0, 0, 0)


async def test_the_source_of_a_closed_market_is_closed_too() -> None:
    """``market.source`` of a closed market refuses its own calls the same way (its history fetch fails
    at once with ``ConfigError``, no request)."""
    async with market_running() as (sim, market):
        await market.close()
        got = Recorder()
        market.source.candles("KRW-BTC", "1m", 10).subscribe(got)
        assert_refused(got, SOURCE_CLOSED)
        assert traffic(sim) == (0, 0, 0, 0)


async def test_entering_a_closed_market_raises_config_error() -> None:
    """``async with`` on a closed market raises ``ConfigError``."""
    async with make_sim() as sim:
        market = market_for(sim)
        await market.close()
        with pytest.raises(ConfigError, match=MARKET_CLOSED):
            async with market:
                pytest.fail("the body of async with ran on a closed market")


async def test_closing_a_market_twice_is_harmless() -> None:
    """Two concurrent closes and a third later all return without error; subscribers completed once."""
    async with market_running() as (_sim, market):
        tickers = Recorder()
        market.ticker(["KRW-BTC"]).subscribe(tickers)
        await tickers.wait_count(1)
        await asyncio.gather(market.close(), market.close())
        await market.close()
        assert market.closed
        assert market.source.closed
        assert tickers.completed
        assert tickers.errors == []
        assert market.stats().feeds == 0

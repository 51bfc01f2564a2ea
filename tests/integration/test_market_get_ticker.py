"""``get_ticker``: the cache when fresh, else one (batched) REST call, else the first WebSocket ticker."""

from __future__ import annotations

import asyncio

import pytest
from _recorder import Recorder
from test_market_support import running

from rxmarket.errors import NotFound, TransportError


async def test_answers_come_from_cache_then_rest_then_websocket() -> None:
    """A fresh cached value is served first; without one, REST; with REST failing, the WebSocket."""
    async with running(cache_ttl=30.0, live_ttl=0.0) as (sim, market):
        first = await market.get_ticker("KRW-BTC")
        second = await market.get_ticker("KRW-BTC")
        assert first.source == "rest"
        assert second.source == "cache"
        assert (second.price, second.timestamp) == (first.price, first.timestamp)
        trades = Recorder()
        market.trades(["KRW-ETH"]).subscribe(trades)  # keeps a WebSocket open through the REST outage
        await sim.wait_subscribed(["KRW-ETH"], "trade")
        sim.faults.server_error(30.0)  # REST (and new WebSocket upgrades) answer 500
        third = await market.get_ticker("KRW-ETH")
        sim.faults.clear()
        assert third.source == "websocket"
        assert third.symbol == "KRW-ETH"
        stats = market.stats()
        assert (stats.cache_hits, stats.cache_misses) == (1, 2)
        assert (stats.rest_answers, stats.websocket_answers) == (1, 1)
        assert sim.stats.rest_by_status.get(500, 0) >= 1


async def test_a_stale_cached_value_is_fetched_again() -> None:
    """Past ``cache_ttl`` (and with no live stream) the value is fetched from REST again."""
    async with running(cache_ttl=0.0, live_ttl=0.0) as (sim, market):
        answers = [await market.get_ticker("KRW-XRP") for _ in range(2)]
        assert [t.source for t in answers] == ["rest", "rest"]
        assert sim.stats.rest_by_group["ticker"] == 2
        assert market.stats().cache_hits == 0


async def test_concurrent_asks_share_one_rest_request() -> None:
    """Asks made together are answered by one REST call, each with its own market, in order."""
    async with running() as (sim, market):
        codes = ["KRW-BTC", "KRW-ETH", "KRW-XRP"]
        answers = await asyncio.gather(*(market.get_ticker(code) for code in codes))
        assert [t.symbol for t in answers] == codes
        assert all(t.source == "rest" for t in answers)
        assert sim.stats.rest_by_group["ticker"] == 1
        many = await market.get_tickers(["KRW-ETH", "KRW-BTC"])
        assert [t.symbol for t in many] == ["KRW-ETH", "KRW-BTC"]


async def test_an_unknown_market_fails_alone() -> None:
    """Upbit fails a whole call for one unknown code; only the ask for that code gets ``NotFound``."""
    async with running() as (_sim, market):
        good, bad = await asyncio.gather(
            market.get_ticker("KRW-BTC"), market.get_ticker("KRW-NOPE"), return_exceptions=True
        )
        assert not isinstance(good, BaseException)
        assert good.symbol == "KRW-BTC"
        assert isinstance(bad, NotFound)


async def test_rest_and_websocket_both_failing_raise_a_transport_error() -> None:
    """REST failing and no WebSocket ticker within ``first_item_timeout``: ``TransportError``, from the
    REST failure."""
    async with running(first_item_timeout=0.2) as (sim, market):
        sim.faults.server_error(30.0)
        with pytest.raises(TransportError, match="KRW-BTC") as caught:
            await market.get_ticker("KRW-BTC")
        assert caught.value.__cause__ is not None
        assert market.stats().cache_misses == 1


async def test_asked_markets_stay_streamed_and_are_answered_live_from_memory() -> None:
    """With ``keep_warm``, an asked market is streamed; while that stream is healthy its newest ticker
    is served from memory, even with a zero ``cache_ttl``, and REST is not asked again."""
    async with running(keep_warm=30.0, cache_ttl=0.0, live_ttl=30.0) as (sim, market):
        assert (await market.get_ticker("KRW-BTC")).source == "rest"
        await sim.wait_subscribed(["KRW-BTC"], "ticker")
        watch = Recorder()
        market.ticker(["KRW-BTC"]).subscribe(watch)  # shares the warm stream
        await watch.wait(lambda: "websocket" in watch.sources())
        trade = sim.step(1, "KRW-BTC")[0]
        await watch.wait(lambda: watch.items[-1].price == trade.price)
        answer = await market.get_ticker("KRW-BTC")
        assert answer.source == "cache"
        assert answer.price == trade.price
        assert sim.stats.rest_by_group["ticker"] == 1
        assert market.stats().feeds == 1  # the warm stream and the watcher share one chain

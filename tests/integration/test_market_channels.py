"""``MarketData`` streams over each channel, against the simulator on 127.0.0.1."""

from __future__ import annotations

from _recorder import Recorder
from test_market_support import running

from rxmarket.models import Candle, Orderbook, Ticker, Trade


async def test_websocket_channel_streams_live_tickers() -> None:
    """``channel="websocket"`` delivers the market's tickers from the WebSocket and never polls REST."""
    async with running() as (sim, market):
        got = Recorder()
        market.ticker(["KRW-BTC"], channel="websocket").subscribe(got)
        await sim.wait_subscribed(["KRW-BTC"], "ticker")
        trade = sim.step(1, "KRW-BTC")[0]
        await got.wait(lambda: any(t.price == trade.price and t.stream_type == "REALTIME" for t in got.items))
        assert all(isinstance(t, Ticker) and t.symbol == "KRW-BTC" for t in got.items)
        assert got.sources() == ["websocket"]
        assert sim.stats.rest_by_group.get("ticker", 0) == 0


async def test_rest_channel_polls_and_opens_no_websocket() -> None:
    """``channel="rest"`` delivers polled tickers (``source="rest"``) and opens no WebSocket connection."""
    async with running() as (sim, market):
        got = Recorder()
        market.ticker(["KRW-BTC", "KRW-ETH"], channel="rest").subscribe(got)
        await got.wait(lambda: {t.symbol for t in got.items} == {"KRW-BTC", "KRW-ETH"})
        await sim.wait_requests(2, "ticker")
        assert got.sources() == ["rest"]
        assert sim.stats.connections_total == 0
        assert market.stats().polls >= 2


async def test_auto_channel_uses_the_websocket_while_it_is_healthy() -> None:
    """``channel="auto"`` streams from the WebSocket and leaves REST alone while the link is up."""
    async with running() as (sim, market):
        got = Recorder()
        market.ticker(["KRW-ETH"]).subscribe(got)
        await sim.wait_subscribed(["KRW-ETH"], "ticker")
        trade = sim.step(1, "KRW-ETH")[0]
        await got.wait(lambda: any(t.price == trade.price for t in got.items))
        assert got.sources() == ["websocket"]
        assert sim.stats.rest_by_group.get("ticker", 0) == 0
        assert market.stats().circuit_opens == 0


async def test_lower_case_codes_are_normalised() -> None:
    """Codes are upper-cased at the call (Upbit accepts upper case only): ``krw-btc`` streams KRW-BTC."""
    async with running() as (sim, market):
        got = Recorder()
        market.ticker([" krw-btc"], channel="websocket").subscribe(got)
        await got.wait_count(1)
        assert got.items[0].symbol == "KRW-BTC"
        await sim.wait_subscribed(["KRW-BTC"], "ticker")


async def test_two_calls_share_one_chain_and_late_subscribers_get_the_latest_value() -> None:
    """Two ``ticker()`` calls for the same markets run one chain upstream; the second subscriber is
    first given the latest ticker, tagged ``source="cache"``."""
    async with running() as (sim, market):
        first, second = Recorder(), Recorder()
        market.ticker(["KRW-BTC"]).subscribe(first)
        await first.wait_count(1)
        market.ticker(["KRW-BTC"]).subscribe(second)
        assert len(second.items) == 1
        assert second.items[0].source == "cache"
        assert second.items[0].price == first.items[-1].price
        stats = market.stats()
        assert stats.feeds == 1
        assert stats.subscribers == 2
        assert stats.source.subscribers == 1  # one upstream subscription for both
        trade = sim.step(1, "KRW-BTC")[0]
        await second.wait(lambda: second.items[-1].price == trade.price)
        assert first.items[-1].price == trade.price


async def test_orderbook_depth_is_served_on_each_channel() -> None:
    """``orderbook(depth=5)`` gives books of 5 levels per side, over the WebSocket and over REST."""
    async with running() as (_sim, market):
        ws, rest = Recorder(), Recorder()
        market.orderbook(["KRW-BTC"], depth=5, channel="websocket").subscribe(ws)
        market.orderbook(["KRW-ETH"], depth=5, channel="rest").subscribe(rest)
        await ws.wait_count(1)
        await rest.wait_count(1)
        for book, source in ((ws.items[0], "websocket"), (rest.items[0], "rest")):
            assert isinstance(book, Orderbook)
            assert len(book.units) == 5
            assert book.source == source
            assert book.best_ask is not None
            assert book.best_bid is not None
            assert book.best_ask.price > book.best_bid.price


async def test_trades_arrive_in_order_each_once() -> None:
    """``trades()`` delivers the trades made, in order, each once, with the taker's side."""
    async with running() as (sim, market):
        got = Recorder()
        market.trades(["KRW-XRP"]).subscribe(got)
        await sim.wait_subscribed(["KRW-XRP"], "trade")
        made = sim.step(5, "KRW-XRP")
        ids = [t.sequential_id for t in made]
        await got.wait(lambda: ids[-1] in {t.sequential_id for t in got.items})
        received = [t.sequential_id for t in got.items if t.sequential_id in set(ids)]
        assert received == ids
        assert all(isinstance(t, Trade) for t in got.items)
        by_id = {t.sequential_id: t for t in got.items}
        assert [by_id[t.sequential_id].side for t in made] == [
            "sell" if t.ask_bid == "ASK" else "buy" for t in made
        ]


async def test_candles_history_has_the_count_asked_oldest_first() -> None:
    """``candles(count=250)`` pages REST to 250 distinct one-minute candles, oldest first, then completes."""
    async with running() as (sim, market):
        got = Recorder()
        market.candles("KRW-BTC", unit="1m", count=250).subscribe(got)
        await got.wait(lambda: got.completed or bool(got.errors))
        assert got.errors == []
        starts = [c.start for c in got.items]
        assert len(starts) == 250
        assert starts == sorted(set(starts))
        assert all(isinstance(c, Candle) and c.unit == "1m" and c.symbol == "KRW-BTC" for c in got.items)
        assert sim.stats.rest_by_group.get("candles", 0) >= 2  # 200 per page at most


async def test_a_book_cached_at_one_depth_is_not_replayed_to_a_chain_of_another_depth() -> None:
    """Books are cached per depth: a ``depth=15`` chain started after a ``depth=1`` one never gets the
    1-level book from the cache as its first item."""
    async with running(cache_flush_interval=None, cache_ttl=60.0) as (_sim, market):
        shallow, deep = Recorder(), Recorder()
        market.orderbook(["KRW-BTC"], depth=1, channel="websocket").subscribe(shallow)
        await shallow.wait_count(1)  # written through at once (cache_flush_interval=None)
        market.orderbook(["KRW-BTC"], depth=15, channel="websocket").subscribe(deep)
        await deep.wait_count(1)
        assert len(shallow.items[0].units) == 1
        assert [len(book.units) for book in deep.items] == [15] * len(deep.items)

"""Per-stream staleness on the status stream (virtual time), and the counters of stats()."""

from __future__ import annotations

import asyncio

from _recorder import Recorder
from reactivex.testing import TestScheduler
from test_source_support import fast_config, make_sim, running

from rxmarket.exchanges.upbit.source import UpbitSource


async def test_a_silent_stream_is_reported_stale_once_then_live_when_it_moves() -> None:
    """Ticker limit 10 s (virtual): stale after 10 s of silence, once; `live` for it on the next item."""
    scheduler = TestScheduler()
    async with make_sim() as sim:
        config = fast_config(sim, staleness={"ticker": 10.0, "trade": None}, stale_check_interval=1.0)
        async with UpbitSource(config, scheduler=scheduler) as source:
            tickers, trades, status = Recorder(), Recorder(), Recorder()
            source.status.subscribe(status)
            source.stream("ticker", "KRW-BTC").subscribe(tickers)
            source.stream("trade", "KRW-BTC").subscribe(trades)
            await tickers.wait_count(1)
            scheduler.advance_by(9.0)
            assert status.kinds("stale") == []
            scheduler.advance_by(12.0)
            (stale,) = status.kinds("stale")
            assert (stale.channel, stale.symbol) == ("ticker", "KRW-BTC")
            assert stale.delay is not None
            assert 10.0 <= stale.delay <= 11.0
            sim.step(1, "KRW-BTC")
            await tickers.wait_count(2)
            scheduler.advance_by(1.0)
            moving = [s for s in status.kinds("live") if s.symbol == "KRW-BTC"]
            assert len(moving) == 1
            assert moving[0].channel == "ticker"
            assert source.stats().stale == 1  # the trade stream has no limit: never stale


async def test_stats_count_items_per_kind_and_what_was_sent() -> None:
    """stats(): items per kind, frames, connections, streams, subscribers and messages sent."""
    async with running() as (sim, source):
        tickers, trades, books = Recorder(), Recorder(), Recorder()
        source.stream("ticker", "KRW-BTC").subscribe(tickers)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        source.stream("trade", "KRW-BTC").subscribe(Recorder())
        source.stream("orderbook", "KRW-BTC").subscribe(books)
        await sim.wait_subscribed(["KRW-BTC"], "orderbook")
        sim.step(4, "KRW-BTC")
        await tickers.wait_count(5)
        await trades.wait_count(5)
        await books.wait_count(5)
        stats = source.stats()
        assert (stats.tickers, stats.trades, stats.orderbooks) == (5, 5, 5)
        assert stats.messages == 15
        assert stats.frames == 15
        assert (stats.connections, stats.streams, stats.subscribers) == (1, 3, 4)
        assert stats.messages_sent == 1
        assert stats.connects == 1


async def test_counts_of_a_stopped_stream_are_kept() -> None:
    """A stream that ends keeps its items in the totals."""
    async with running() as (_sim, source):
        keep = Recorder()
        source.stream("ticker", "KRW-ETH").subscribe(keep)
        gone = Recorder()
        sub = source.stream("trade", "KRW-BTC").subscribe(gone)
        await gone.wait_count(1)
        await keep.wait_count(1)
        sub.dispose()
        await asyncio.sleep(0)
        stats = source.stats()
        assert stats.trades == 1
        assert stats.tickers == 1
        assert stats.streams == 1

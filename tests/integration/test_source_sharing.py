"""Hot, shared, ref-counted streams against the simulator over loopback."""

from __future__ import annotations

import asyncio

import pytest
from _recorder import Recorder
from reactivex.testing import TestScheduler
from test_source_support import fast_config, make_sim, running

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit.source import UpbitSource
from rxmarket.models import Candle, Orderbook, Ticker, Trade


async def test_three_subscribers_share_one_socket_and_one_subscription() -> None:
    """Three subscribers of KRW-BTC trades: one connection, one subscribe request, the same items."""
    async with running() as (sim, source):
        recorders = [Recorder() for _ in range(3)]
        for r in recorders:
            source.stream("trade", "KRW-BTC").subscribe(r)
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        sim.step(3, "KRW-BTC")
        for r in recorders:
            await r.wait_count(4)  # the SNAPSHOT, then three live trades
        stats = sim.stats
        assert stats.connections == 1
        assert stats.open[0].requests == 1
        assert stats.open[0].subscriptions == {"trade": ("KRW-BTC",)}
        first = recorders[0].items
        assert all(r.items == first for r in recorders)
        assert all(a is b for a, b in zip(recorders[1].items, first, strict=True))  # one object, shared
        assert source.stats().streams == 1
        assert source.stats().subscribers == 3


async def test_a_fourth_subscriber_on_another_market_joins_the_same_socket() -> None:
    """A stream of another market goes on the same connection, in one merged subscription frame."""
    async with running() as (sim, source):
        for _ in range(3):
            source.stream("trade", "KRW-BTC").subscribe(Recorder())
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        fourth = Recorder()
        source.stream("ticker", "KRW-ETH").subscribe(fourth)
        await sim.wait_subscribed(["KRW-ETH"], "ticker")
        await fourth.wait_count(1)
        stats = sim.stats
        assert stats.connections_total == 1
        assert stats.open[0].subscriptions == {"trade": ("KRW-BTC",), "ticker": ("KRW-ETH",)}
        assert isinstance(fourth.items[0], Ticker)
        assert fourth.items[0].symbol == "KRW-ETH"
        assert source.connection_of("KRW-ETH") == source.connection_of("KRW-BTC")


async def test_subscriptions_made_in_one_tick_go_out_in_one_request() -> None:
    """Twelve subscriptions in a burst: the connection sends a single subscribe frame with all of them."""
    async with running() as (sim, source):
        codes = sim.markets[:4]
        for code in codes:
            for channel in ("ticker", "trade", "orderbook"):
                source.stream(channel, code).subscribe(Recorder())
        await source.wait_live()
        await sim.wait_subscribed(codes, "orderbook")
        (conn,) = sim.stats.open
        assert conn.requests == 1
        assert {k: set(v) for k, v in conn.subscriptions.items()} == {
            "ticker": set(codes), "trade": set(codes), "orderbook": set(codes),
        }


async def test_markets_spread_over_connections_when_one_is_full() -> None:
    """Two markets per connection: five markets use three sockets, each market on exactly one."""
    async with running(codes_per_connection=2) as (sim, source):
        for code in sim.markets:
            source.stream("ticker", code).subscribe(Recorder())
        await source.wait_live()

        def seen() -> list[str]:
            return sorted(c for conn in sim.stats.open for c in conn.subscriptions.get("ticker", ()))

        await sim.wait_for(lambda: seen() == sorted(sim.markets))
        assert sim.stats.connections == 3
        assert source.stats().connections == 3


async def test_the_last_dispose_unsubscribes_after_the_grace_and_closes_the_socket() -> None:
    """Grace driven by a virtual clock: nothing changes before it runs out; then the socket goes."""
    scheduler = TestScheduler()
    async with make_sim() as sim:
        source = UpbitSource(fast_config(sim, grace=5.0), scheduler=scheduler)
        async with source:
            a, b = Recorder(), Recorder()
            sub_a = source.stream("ticker", "KRW-BTC").subscribe(a)
            source.stream("ticker", "KRW-ETH").subscribe(b)
            await sim.wait_subscribed(["KRW-BTC", "KRW-ETH"], "ticker")
            sub_a.dispose()
            scheduler.advance_by(4.9)
            await asyncio.sleep(0)
            assert sim.stats.open[0].requests == 1  # still subscribed during the grace
            scheduler.advance_by(0.2)
            await sim.wait_for(lambda: sim.stats.open[0].subscriptions == {"ticker": ("KRW-ETH",)})
            assert sim.stats.open[0].requests == 2
            assert source.stats().streams == 1


async def test_resubscribing_within_the_grace_sends_nothing_upstream() -> None:
    """Dispose and subscribe again inside the grace: no new request; the new subscriber gets live items."""
    scheduler = TestScheduler()
    async with make_sim() as sim, UpbitSource(fast_config(sim, grace=5.0), scheduler=scheduler) as source:
        first = Recorder()
        source.stream("trade", "KRW-BTC").subscribe(first).dispose()
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        scheduler.advance_by(3.0)
        again = Recorder()
        source.stream("trade", "KRW-BTC").subscribe(again)
        scheduler.advance_by(10.0)
        sim.step(2, "KRW-BTC")
        await again.wait_count(2)
        assert sim.stats.connections_total == 1
        assert sim.stats.open[0].requests == 1
        assert all(isinstance(t, Trade) for t in again.items)


async def test_the_last_stream_of_a_socket_closes_it() -> None:
    """With no stream left (grace 0), the connection is closed: the simulator sees no socket."""
    async with running() as (sim, source):
        sub = source.stream("ticker", "KRW-BTC").subscribe(Recorder())
        await sim.wait_connections(1)
        sub.dispose()
        await sim.wait_connections(0)
        assert source.stats().connections == 0


async def test_shallow_book_subscribers_get_truncated_copies_of_the_deepest_subscription() -> None:
    """Depths 5 and 15 on one market: upstream asks `.15`; the depth-5 subscriber sees 5 rows."""
    async with running() as (sim, source):
        shallow, deep = Recorder(), Recorder()
        source.stream("orderbook", "KRW-BTC", depth=5).subscribe(shallow)
        source.stream("orderbook", "KRW-BTC", depth=15).subscribe(deep)
        await sim.wait_subscribed(["KRW-BTC"], "orderbook")
        sim.step(1, "KRW-BTC")
        await shallow.wait_count(2)
        await deep.wait_count(2)
        books: list[Orderbook] = shallow.items
        assert {len(b.units) for b in books} == {5}
        assert {len(b.units) for b in deep.items} == {15}
        assert books[-1].units == deep.items[-1].units[:5]
        assert sim.stats.open[0].requests == 1


def test_stream_rejects_what_upbit_would_not_serve() -> None:
    """Unknown channel, malformed code, depth on a non-book channel or an unserved depth: ConfigError."""
    source = UpbitSource()
    with pytest.raises(ConfigError, match="channel"):
        source.stream("trades", "KRW-BTC")
    with pytest.raises(ConfigError, match="QUOTE-BASE"):
        source.stream("ticker", "BTC")
    with pytest.raises(ConfigError, match="orderbook"):
        source.stream("ticker", "KRW-BTC", depth=5)
    with pytest.raises(ConfigError, match="depth"):
        source.stream("orderbook", "KRW-BTC", depth=7)


async def test_lower_case_codes_share_the_upper_case_stream() -> None:
    """`krw-btc` and `KRW-BTC` are one stream (Upbit's WebSocket only knows upper case)."""
    async with running() as (sim, source):
        a, b = Recorder(), Recorder()
        source.stream("ticker", "krw-btc").subscribe(a)
        source.stream("ticker", "KRW-BTC").subscribe(b)
        await a.wait_count(1)
        await b.wait_count(1)
        assert source.stats().streams == 1
        assert sim.stats.open[0].subscriptions == {"ticker": ("KRW-BTC",)}


async def test_stream_many_attaches_one_observer_to_each_market() -> None:
    """stream_many over three markets: one subscription gets every market's items; dispose detaches all."""
    async with running() as (sim, source):
        codes = sim.markets[:3]
        merged, single = Recorder(), Recorder()
        sub = source.stream_many("ticker", codes).subscribe(merged)
        source.stream("ticker", codes[0]).subscribe(single)  # shares the first market's stream
        await merged.wait_count(3)
        assert {t.symbol for t in merged.items} == set(codes)
        assert source.stats().streams == 3
        sub.dispose()
        await sim.wait_for(lambda: sim.stats.open[0].subscriptions == {"ticker": (codes[0],)})
        assert source.stats().streams == 1


async def test_candle_channels_are_streams_too() -> None:
    """A `candle.1m` stream delivers Candle items of that unit and market."""
    async with running() as (sim, source):
        candles = Recorder()
        source.stream("candle.1m", "KRW-BTC").subscribe(candles)
        await sim.wait_subscribed(["KRW-BTC"], "candle.1m")
        await candles.wait_count(1)
        (candle,) = candles.items[:1]
        assert isinstance(candle, Candle)
        assert (candle.symbol, candle.unit) == ("KRW-BTC", "1m")
        assert source.stats().candles >= 1

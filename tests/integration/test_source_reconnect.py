"""Surviving network trouble: drops, silence, refusals, rate limits and bans, over loopback."""

from __future__ import annotations

from _recorder import Recorder
from test_source_support import CountingClient, running

from rxmarket.errors import GaveUp
from rxmarket.models import Orderbook, Ticker, Trade
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.sim import SimOptions


async def test_one_hundred_forced_disconnects_lose_nothing_and_duplicate_nothing() -> None:
    """100 drops in a row: no subscriber sees an error, every subscription comes back, each reconnect is
    on the status stream, and trades made while down arrive (from REST) exactly once, in order."""
    async with running() as (sim, source):
        trades_a, trades_b, tickers, books, status = (Recorder() for _ in range(5))
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades_a)
        source.stream("trade", "KRW-BTC").subscribe(trades_b)
        source.stream("ticker", "KRW-BTC").subscribe(tickers)
        source.stream("orderbook", "KRW-ETH").subscribe(books)
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        await sim.wait_subscribed(["KRW-ETH"], "orderbook")
        await trades_a.wait_count(1)  # the SNAPSHOT: the market's last trade so far
        made = [trades_a.items[0].sequential_id]
        for i in range(100):
            made += [t.sequential_id for t in sim.step(1, "KRW-BTC")]
            await trades_a.wait_count(len(made))  # live
            sim.faults.disconnect()
            made += [t.sequential_id for t in sim.step(2, "KRW-BTC")]  # while nobody is connected
            sim.step(1, "KRW-ETH")
            await status.wait_kind("gap_filled", i + 1)
        await trades_a.wait_count(len(made))
        await trades_b.wait_count(len(made))
        assert [t.sequential_id for t in trades_a.items] == made
        assert [t.sequential_id for t in trades_b.items] == made
        assert {t.source for t in trades_a.items} == {"websocket", "rest"}
        assert not any(r.errors or r.completed for r in (trades_a, trades_b, tickers, books))
        assert len(status.kinds("reconnected")) == 100
        assert sum(s.count or 0 for s in status.kinds("gap_filled")) == 200
        assert all(s.detail == "" for s in status.kinds("gap_filled"))
        await sim.wait_subscribed(["KRW-BTC"], "ticker")
        await sim.wait_for(
            lambda: sim.stats.open and sim.stats.open[0].subscriptions == {
                "trade": ("KRW-BTC",), "ticker": ("KRW-BTC",), "orderbook": ("KRW-ETH",),
            }
        )
        sim.step(1, "KRW-ETH")
        sim.step(1, "KRW-BTC")
        await books.wait(lambda: len(books.items) >= 2 and isinstance(books.items[-1], Orderbook))
        await tickers.wait(lambda: isinstance(tickers.items[-1], Ticker))
        stats = source.stats()
        assert stats.reconnects == 100
        assert stats.gap_trades == 200


async def test_trades_missed_while_refused_are_filled_in_order() -> None:
    """Connections refused for a while: the trades made meanwhile come from REST, then live goes on."""
    async with running() as (sim, source):
        trades, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-XRP").subscribe(trades)
        await trades.wait_count(1)
        sim.faults.refuse(0.3)
        sim.faults.disconnect()
        missed = [t.sequential_id for t in sim.step(20, "KRW-XRP")]
        await status.wait_kind("gap_filled")
        live = [t.sequential_id for t in sim.step(3, "KRW-XRP")]
        await trades.wait_count(1 + 20 + 3)
        got = trades.items[1:]
        assert [t.sequential_id for t in got] == missed + live
        assert [t.source for t in got] == ["rest"] * 20 + ["websocket"] * 3
        assert status.kinds("gap_filled")[0].count == 20
        assert len(status.kinds("backoff")) >= 2


async def test_a_silent_socket_is_detected_and_replaced() -> None:
    """A quiet but healthy link (UP frames only) is kept; a silent one (nothing at all) is replaced."""
    sim_options = {"options": SimOptions(status_interval=0.05)}
    client = CountingClient()
    async with running(
        sim_options, ws_client=client, idle_timeout=0.3, keepalive_interval=0.05, ping_interval=None
    ) as (sim, source):
        trades, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        await trades.wait_count(1)
        await client.wait_frames(12)  # ~0.55 s of UP frames every 0.05 s, and no trade: quiet, not idle
        assert status.kinds("stale") == []
        assert source.stats().keepalives >= 10
        sim.faults.silence(1.0)
        await status.wait(lambda: any(s.connection is not None for s in status.kinds("stale")))
        await status.wait_kind("reconnected")
        await sim.wait_fault_over("silence")
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        made = sim.step(1, "KRW-BTC")
        await trades.wait(lambda: trades.items[-1].sequential_id == made[0].sequential_id)
        assert source.stats().idle_timeouts >= 1
        assert not trades.errors
    await client.close()


async def test_refused_connections_back_off_with_growing_delays() -> None:
    """While refused, each retry waits longer than the one before (no jitter), and the stream recovers."""
    backoff = BackoffPolicy(initial=0.02, multiplier=2.0, max_delay=0.16, immediate_first=True)
    async with running(backoff=backoff) as (sim, source):
        trades, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        await trades.wait_count(1)
        sim.faults.refuse(0.5)
        sim.faults.disconnect()
        await status.wait_kind("reconnected")
        delays = [s.delay for s in status.kinds("backoff")]
        assert delays[:5] == [0.0, 0.02, 0.04, 0.08, 0.16]
        assert all(d == 0.16 for d in delays[5:])
        assert "HTTP 503" in status.kinds("backoff")[1].detail
        assert not trades.errors


async def test_a_429_upgrade_waits_retry_after_before_the_next_attempt() -> None:
    """Upgrades answered 429: status rate_limited, and the next backoff is at least retry_after."""
    async with running() as (sim, source):
        trades, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        await trades.wait_count(1)
        sim.faults.rate_limit(0.2)
        sim.faults.disconnect()
        await status.wait_kind("reconnected")
        limited = status.kinds("rate_limited")
        assert limited
        assert limited[0].delay == 0.05
        after = [s.delay for s in status.kinds("backoff") if "HTTP 429" in s.detail]
        assert after
        assert all(d is not None and d >= 0.04 for d in after)
        assert source.stats().rate_limited >= 1
        assert not trades.errors


async def test_a_418_ban_opens_the_circuit_for_the_ban_length() -> None:
    """An upgrade answered 418: Status(circuit, open) with the ban length; nobody connects before it ends."""
    async with running() as (sim, source):
        trades, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        await trades.wait_count(1)
        sim.faults.ban(0.3)
        sim.faults.disconnect()
        await status.wait_kind("reconnected", seconds=15)
        circuit = status.kinds("circuit")
        assert circuit
        assert circuit[0].detail.startswith("open")
        assert circuit[0].delay == 0.2
        banned_backoffs = [s for s in status.kinds("backoff") if "HTTP 418" in s.detail]
        assert banned_backoffs
        assert all((s.delay or 0) >= 0.19 for s in banned_backoffs)
        assert not trades.errors


async def test_a_connection_that_keeps_failing_gives_up_and_ends_its_streams_with_gaveup() -> None:
    """Refused beyond the failure budget: status gave_up; its subscribers get on_error(GaveUp)."""
    async with running(max_failures=3, failure_window=60.0, healthy_after=60.0) as (sim, source):
        trades, other, status = Recorder(), Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        source.stream("ticker", "KRW-BTC").subscribe(other)
        await trades.wait_count(1)
        sim.faults.refuse(30.0)
        sim.faults.disconnect()
        await trades.wait(lambda: bool(trades.errors))
        await other.wait(lambda: bool(other.errors))
        assert isinstance(trades.errors[0], GaveUp)
        assert status.kinds("gave_up")
        assert source.stats().gave_up == 1
        assert source.stats().streams == 0
        sim.faults.clear()
        again = Recorder()
        source.stream("trade", "KRW-BTC").subscribe(again)  # a later subscription starts afresh
        await again.wait_count(1)
        assert isinstance(again.items[0], Trade)

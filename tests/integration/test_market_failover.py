"""``channel="auto"``: WebSocket first, REST polling while it is down, back to the WebSocket when it is up.

The simulator's market moves by itself here (``rate``), so both channels keep having something new to say.
"""

from __future__ import annotations

from _recorder import Recorder
from test_market_support import running

from rxmarket.models import Orderbook, Ticker

LIVELY = {"markets": 3, "rate": 200.0}


async def back_on_websocket(got: Recorder) -> None:
    """Wait until ``got`` switched to REST and back to the WebSocket."""
    await got.wait(lambda: got.sources()[-2:] == ["rest", "websocket"])


async def test_refused_websocket_fails_over_to_rest_and_comes_back() -> None:
    """Connections refused + sockets dropped: tickers keep coming over REST (the circuit is open), then
    from the WebSocket again once it accepts: the items' ``source`` goes websocket -> rest -> websocket."""
    async with running(LIVELY, failover_retry=1.0) as (sim, market):
        got, status = Recorder(), Recorder()
        market.status.subscribe(status)
        market.ticker(["KRW-BTC"]).subscribe(got)
        await got.wait(lambda: got.sources() == ["websocket"] and len(got.items) >= 3)
        sim.faults.refuse(30.0)  # REST answers 503 too while this lasts
        sim.faults.disconnect()
        await status.wait_status("circuit", "open")
        sim.faults.clear()  # REST answers again at once; the WebSocket is only tried again after 1 s
        await got.wait(lambda: got.sources()[-1:] == ["rest"])
        await status.wait_status("circuit", "closed")
        await got.wait(lambda: got.sources() == ["websocket", "rest", "websocket"])
        assert not got.errors
        assert not got.completed
        stats = market.stats()
        assert stats.circuit_opens == 1
        assert stats.polls >= 1
        assert [s.detail for s in status.statuses("circuit")] == ["open", "half_open", "closed"]
        assert all(t.symbol == "KRW-BTC" for t in got.items)
        # The output never goes back in time, across the switches too.
        stamps = [t.timestamp for t in got.items]
        assert stamps == sorted(stamps)


async def test_silent_websocket_fails_over_to_rest_and_comes_back() -> None:
    """A WebSocket that goes silent (no data, no keep-alive) is detected as idle: books come over REST
    until the WebSocket talks again, then from it."""
    source = {"keepalive_interval": 0.1}
    async with running(LIVELY, source, idle_timeout=0.3, ping_interval=None) as (sim, market):
        got, status = Recorder(), Recorder()
        market.status.subscribe(status)
        market.orderbook(["KRW-ETH"], depth=5).subscribe(got)
        await got.wait(lambda: len(got.items) >= 3)
        sim.faults.silence(1.0)
        await got.wait(lambda: got.sources()[-1:] == ["rest"])
        await got.wait(lambda: got.sources() == ["websocket", "rest", "websocket"])
        assert not got.errors
        assert all(isinstance(b, Orderbook) and len(b.units) == 5 for b in got.items)
        assert status.statuses("stale")  # the idle link, as the source reported it
        assert status.statuses("circuit", "open")


async def test_a_second_pipeline_is_not_disturbed_by_the_first_failing_over() -> None:
    """Two auto chains on one connection both fail over and both come back; neither sees an error."""
    async with running(LIVELY, failover_retry=0.5) as (sim, market):
        tickers, books = Recorder(), Recorder()
        market.ticker(["KRW-BTC", "KRW-ETH"]).subscribe(tickers)
        market.orderbook(["KRW-BTC"]).subscribe(books)
        await tickers.wait(lambda: len(tickers.items) >= 2)
        await books.wait(lambda: len(books.items) >= 2)
        sim.faults.refuse(0.3)
        sim.faults.disconnect()
        for got in (tickers, books):
            await back_on_websocket(got)
            assert not got.errors
        assert {t.symbol for t in tickers.items if isinstance(t, Ticker)} == {"KRW-BTC", "KRW-ETH"}
        assert market.stats().circuit_opens == 2


async def test_websocket_channel_retries_after_the_connection_gives_up() -> None:
    """``channel="websocket"``: a connection that gives up (``max_failures``) ends the source stream with
    ``GaveUp``; the chain subscribes again after a backoff and goes on; the subscriber sees no error."""
    async with running(LIVELY, max_failures=2, failure_window=60.0) as (sim, market):
        got, status = Recorder(), Recorder()
        market.status.subscribe(status)
        market.ticker(["KRW-ETH"], channel="websocket").subscribe(got)
        await got.wait_count(1)
        sim.faults.refuse(30.0)
        sim.faults.disconnect()
        await status.wait_status("gave_up")
        await status.wait(lambda: any(s.channel == "ticker KRW-ETH" for s in status.statuses("backoff")))
        sim.faults.clear()
        seen = len(got.items)
        await got.wait(lambda: len(got.items) > seen)
        assert not got.errors
        assert got.sources() == ["websocket"]
        assert market.stats().retries >= 1
        assert market.stats().circuit_opens == 0
        assert sim.stats.rest_by_group.get("ticker", 0) == 0

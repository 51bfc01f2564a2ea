"""Gap fill after a reconnect: what happens when REST cannot give everything back."""

from __future__ import annotations

from _recorder import Recorder
from test_source_support import fast_config, make_sim, running

from rxmarket.exchanges.upbit.history import upbit_http_client
from rxmarket.exchanges.upbit.source import UpbitSource


async def test_a_fill_that_runs_out_of_pages_says_incomplete_and_delivers_the_newest() -> None:
    """One page of 5 for 20 missed trades: the 5 newest come from REST, the status says incomplete."""
    async with running(gap_fill_max_pages=1, gap_fill_page_size=5) as (sim, source):
        trades, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        await trades.wait_count(1)
        sim.faults.refuse(0.2)
        sim.faults.disconnect()
        missed = [t.sequential_id for t in sim.step(20, "KRW-BTC")]
        await status.wait_kind("gap_filled")
        (filled,) = status.kinds("gap_filled")
        assert filled.count == 5
        assert filled.detail.startswith("incomplete")
        await trades.wait_count(1 + 5)
        assert [t.sequential_id for t in trades.items[1:]] == missed[-5:]
        assert source.stats().gap_fill_failures == 1


async def test_a_fill_whose_rest_calls_fail_reports_it_and_live_trades_go_on() -> None:
    """REST unreachable: the fill gives up with a status event; no error reaches the subscriber."""
    async with make_sim() as sim:
        dead = upbit_http_client("http://127.0.0.1:9/v1")  # discard port: nothing listens
        config = fast_config(sim, gap_fill_retries=1)
        async with UpbitSource(config, http=dead) as source:
            trades, status = Recorder(), Recorder()
            source.status.subscribe(status)
            source.stream("trade", "KRW-BTC").subscribe(trades)
            await trades.wait_count(1)
            sim.faults.disconnect()
            await status.wait_kind("gap_filled")
            (filled,) = status.kinds("gap_filled")
            assert filled.count == 0
            assert "incomplete" in filled.detail
            await sim.wait_subscribed(["KRW-BTC"], "trade")
            made = sim.step(2, "KRW-BTC")
            await trades.wait(lambda: trades.items[-1].sequential_id == made[-1].sequential_id)
            assert not trades.errors
        await dead.close()


async def test_a_market_that_never_traded_on_the_stream_needs_no_fill() -> None:
    """Only a ticker stream: a reconnect starts no REST call at all."""
    async with running() as (sim, source):
        tickers, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("ticker", "KRW-BTC").subscribe(tickers)
        await tickers.wait_count(1)
        sim.faults.disconnect()
        await status.wait_kind("reconnected")
        await sim.wait_subscribed(["KRW-BTC"], "ticker")
        assert status.kinds("gap_filled") == []
        assert sim.stats.rest_requests == 0


async def test_gap_fill_can_be_turned_off() -> None:
    """gap_fill=False: a reconnect resumes live trades only, and says nothing about gaps."""
    async with running(gap_fill=False) as (sim, source):
        trades, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        await trades.wait_count(1)
        sim.faults.refuse(0.1)
        sim.faults.disconnect()
        sim.step(3, "KRW-BTC")
        await status.wait_kind("reconnected")
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        live = sim.step(1, "KRW-BTC")
        await trades.wait(lambda: trades.items[-1].sequential_id == live[0].sequential_id)
        assert status.kinds("gap_filled") == []
        assert all(t.source == "websocket" for t in trades.items)

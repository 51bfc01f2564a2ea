"""REST polls as Observables: batched requests, transient errors reported, caller errors raised."""

from __future__ import annotations

import asyncio

import pytest
from _recorder import Recorder
from test_source_support import running, rxmarket_tasks

from rxmarket.errors import ConfigError, NotFound
from rxmarket.models import Orderbook, Ticker


async def test_one_request_per_interval_covers_every_market() -> None:
    """Three markets polled: each request brings three tickers (source "rest"), one ticker call each time."""
    async with running() as (sim, source):
        codes = sim.markets[:3]
        tickers = Recorder()
        source.poll("ticker", codes, 0.02).subscribe(tickers)
        await tickers.wait_count(9)
        await asyncio.sleep(0)
        stats = sim.stats
        requests = stats.rest_by_group["ticker"]
        assert len(tickers.items) in (3 * requests, 3 * (requests - 1))  # the last answer may be in flight
        assert all(isinstance(t, Ticker) and t.source == "rest" for t in tickers.items)
        assert [t.symbol for t in tickers.items[:3]] == codes
        assert source.stats().polls >= 3


async def test_subscribers_of_one_poll_share_its_requests_and_dispose_stops_it() -> None:
    """Two subscribers of one poll Observable: one request stream; disposing both ends the poll task."""
    async with running() as (sim, source):
        poll = source.poll("orderbook", ["KRW-BTC"], 0.02, depth=5)
        a, b = Recorder(), Recorder()
        sub_a, sub_b = poll.subscribe(a), poll.subscribe(b)
        await b.wait_count(2)
        assert a.items == b.items  # the same answers, delivered to both
        assert sim.stats.rest_by_group["orderbook"] <= len(a.items) + 1  # not one request per subscriber
        assert all(isinstance(x, Orderbook) and len(x.units) == 5 for x in a.items)
        sub_a.dispose()
        sub_b.dispose()
        await asyncio.sleep(0)
        assert not any("poll" in t.get_name() for t in rxmarket_tasks())


async def test_a_rate_limited_poll_reports_it_and_goes_on() -> None:
    """429s while polling: rate_limited status events, no error; tickers resume afterwards."""
    async with running() as (sim, source):
        tickers, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.poll("ticker", ["KRW-BTC"], 0.02).subscribe(tickers)
        await tickers.wait_count(1)
        sim.faults.rate_limit(0.15)
        await status.wait_kind("rate_limited")
        before = len(tickers.items)
        await sim.wait_fault_over("rate_limit")
        await tickers.wait_count(before + 1)
        assert not tickers.errors
        assert status.kinds("rate_limited")[0].channel == "rest:ticker"
        assert source.stats().poll_errors >= 1


async def test_a_rate_limited_poll_counts_in_the_rate_limited_counter() -> None:
    """A poll answered 429: stats().rate_limited counts it, as its docstring says REST 429s are counted."""
    async with running() as (sim, source):
        tickers, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.poll("ticker", ["KRW-BTC"], 0.02).subscribe(tickers)
        await tickers.wait_count(1)
        sim.faults.rate_limit(0.15)
        await status.wait_kind("rate_limited")
        assert source.stats().rate_limited == len(status.kinds("rate_limited")) >= 1


async def test_a_server_error_is_transient_for_a_poll() -> None:
    """5xx answers: backoff status, the poll goes on."""
    async with running() as (sim, source):
        tickers, status = Recorder(), Recorder()
        source.status.subscribe(status)
        source.poll("ticker", ["KRW-BTC"], 0.02).subscribe(tickers)
        await tickers.wait_count(1)
        sim.faults.server_error(0.1)
        await status.wait_kind("backoff")
        await sim.wait_fault_over("server_error")
        n = len(tickers.items)
        await tickers.wait_count(n + 1)
        assert "HTTP 500" in status.kinds("backoff")[0].detail
        assert not tickers.errors


async def test_an_unknown_market_fails_the_poll() -> None:
    """Polling a market the exchange does not know is the caller's error: on_error(NotFound)."""
    async with running() as (_sim, source):
        errors = Recorder()
        source.poll("ticker", ["KRW-NOPE"], 0.02).subscribe(errors)
        await errors.wait(lambda: bool(errors.errors))
        assert isinstance(errors.errors[0], NotFound)


async def test_closing_the_source_completes_a_running_poll() -> None:
    """close() with a poll subscribed: its subscriber gets on_completed (it is not left waiting forever)."""
    async with running() as (_sim, source):
        tickers = Recorder()
        source.poll("ticker", ["KRW-BTC"], 0.02).subscribe(tickers)
        await tickers.wait_count(1)
        await source.close()
        await tickers.wait(lambda: tickers.completed)
        assert tickers.errors == []


def test_poll_arguments_are_checked_at_the_call() -> None:
    """Bad kind, interval, code or depth: ConfigError at once."""
    from rxmarket.exchanges.upbit.source import UpbitSource

    source = UpbitSource()
    with pytest.raises(ConfigError):
        source.poll("trades", ["KRW-BTC"], 1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        source.poll("ticker", ["KRW-BTC"], 0)
    with pytest.raises(ConfigError):
        source.poll("ticker", ["BTC"], 1.0)
    with pytest.raises(ConfigError):
        source.poll("orderbook", ["KRW-BTC"], 1.0, depth=31)

"""Opening lazily, closing completely: streams complete, and no task, socket or session is left."""

from __future__ import annotations

import asyncio
import threading

import pytest
from _recorder import Recorder
from test_source_support import (
    fast_config,
    make_sim,
    open_client_sessions,
    running,
    rxmarket_tasks,
)

from rxmarket.aio import to_async_iter
from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit.source import UpbitSource
from rxmarket.models import Ticker, Trade


@pytest.mark.parametrize("transport", ["aiohttp", "websockets"])
async def test_close_completes_streams_and_leaves_nothing_behind(transport: str) -> None:
    """After close: every subscriber completed, status says closed, and no task, socket or session is left."""
    async with make_sim() as sim:
        source = UpbitSource(fast_config(sim, transport=transport, codes_per_connection=1))
        trades, books, status = Recorder(), Recorder(), Recorder()
        source.status.subscribe(status)
        source.stream("trade", "KRW-BTC").subscribe(trades)
        source.stream("orderbook", "KRW-ETH", depth=5).subscribe(books)
        await trades.wait_count(1)
        await books.wait_count(1)
        assert sim.stats.connections == 2
        # Something for every kind of task the source runs: a REST poll and a history fetch in flight.
        source.poll("ticker", ["KRW-BTC"], 0.05).subscribe(Recorder())
        source.candles("KRW-BTC", "1m", 1000).subscribe(Recorder())
        await sim.wait_requests(2)
        await source.close()
        assert trades.completed
        assert books.completed
        assert status.completed
        assert status.items[-1].kind == "closed"
        assert rxmarket_tasks() == set()
        await sim.wait_connections(0)
        assert open_client_sessions() == []
        assert source.stats().connections == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}  # the simulator is gone too: nothing at all


async def test_nothing_is_opened_before_the_first_subscription() -> None:
    """An entered but unused source makes no connection and no request."""
    async with make_sim() as sim:
        async with UpbitSource(fast_config(sim)) as source:
            await asyncio.sleep(0)
            assert source.stats().connections == 0
        assert sim.stats.connections_total == 0
        assert sim.stats.rest_requests == 0


async def test_subscribing_after_close_fails_with_a_config_error() -> None:
    """A closed source refuses new subscriptions with a clear typed error; status completes at once."""
    async with make_sim() as sim:
        source = UpbitSource(fast_config(sim))
        await source.close()
        late, status = Recorder(), Recorder()
        source.stream("ticker", "KRW-BTC").subscribe(late)
        source.status.subscribe(status)
        assert isinstance(late.errors[0], ConfigError)
        assert status.completed
        await source.close()  # idempotent


async def test_async_for_consumes_a_stream() -> None:
    """`async for` over to_async_iter receives live trades in order."""
    async with running() as (sim, source):
        made: list[int] = []
        async with to_async_iter(source.stream("trade", "KRW-BTC"), maxsize=64) as trades:
            seen: list[int] = []
            async for trade in trades:
                assert isinstance(trade, Trade)
                seen.append(trade.sequential_id)
                if len(seen) == 1:
                    made = [t.sequential_id for t in sim.step(3, "KRW-BTC")]
                if len(seen) == 4:
                    break
        assert seen[1:] == made


async def test_a_subscription_from_another_thread_is_handed_to_the_loop() -> None:
    """Subscribing from a worker thread works; items still arrive on the loop's thread."""
    async with running() as (sim, source):
        threads: list[int] = []
        received = Recorder()

        def on_next(item: Ticker) -> None:
            threads.append(threading.get_ident())
            received.on_next(item)

        source.stream("ticker", "KRW-BTC").subscribe(Recorder())  # binds the source to this loop
        await asyncio.to_thread(lambda: source.stream("ticker", "KRW-BTC").subscribe(on_next))
        await received.wait_count(1)
        sim.step(1, "KRW-BTC")
        await received.wait_count(2)
        assert set(threads) == {threading.get_ident()}


async def test_subscribing_outside_a_loop_is_a_clear_error() -> None:
    """A source never bound to a loop, subscribed from a thread without one: ConfigError, not a hang."""
    async with make_sim() as sim:
        source = UpbitSource(fast_config(sim))
        errors = Recorder()
        await asyncio.to_thread(lambda: source.stream("ticker", "KRW-BTC").subscribe(errors))
        assert isinstance(errors.errors[0], ConfigError)
        await source.close()

"""``MarketData`` lifetimes and contracts: bad arguments at the call, async iterators, status, shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _recorder import Recorder
from test_market_support import market_for, running

import rxmarket
from rxmarket import ConfigError, MarketConfig
from rxmarket.models import Orderbook


def is_dir(path: str) -> bool:
    """Whether ``path`` is a directory (a plain function: a quick stat, fine inside a test)."""
    return Path(path).is_dir()


# Nothing listens here: these calls must fail before any I/O is tried.
NOWHERE = {"rest_url": "http://127.0.0.1:9/v1", "ws_url": "ws://127.0.0.1:9/websocket/v1"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.ticker(["BTC"]), "QUOTE-BASE"),
        (lambda m: m.ticker([]), "at least one"),
        (lambda m: m.ticker(["KRW-BTC"], channel="udp"), "unknown channel"),
        (lambda m: m.orderbook(["KRW-BTC"], depth=7), "depth"),
        (lambda m: m.trades(["KRW_BTC"]), "QUOTE-BASE"),
        (lambda m: m.candles("KRW-BTC", unit="2m"), "unit"),
        (lambda m: m.candles("KRW-BTC", count=0), "count"),
        (lambda m: m.stream_ticker(["KRW-BTC"], overflow="block"), "overflow"),
        (lambda m: m.stream_orderbook(["krw-eth"], depth=0), "depth"),
        (lambda m: m.stream_ticker(["KRW-BTC"], maxsize=0), "maxsize"),
    ],
)
def test_bad_stream_arguments_raise_config_error_at_the_call(call: Any, message: str) -> None:
    """A malformed code, an unknown channel, depth, unit or overflow raises ``ConfigError`` at once."""
    market = rxmarket.upbit(**NOWHERE)
    with pytest.raises(ConfigError, match=message):
        call(market)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"poll_interval": -1.0}, "poll_interval"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"cache_ttl": -0.5}, "cache_ttl"),
        ({"failover_retry": float("nan")}, "failover_retry"),
        ({"keep_warm": 0}, "keep_warm"),
        ({"on_invalid": "ignore"}, "on_invalid"),
        ({"ticker_overflow": "block"}, "ticker_overflow"),
        ({"rest_rate": 0}, "rest_rate"),
        ({"ws_url": "http://example.com"}, "ws_url"),
        ({"max_connections": 9}, "max_connections"),
        ({"pol_interval": 1.0}, "unknown setting"),
    ],
)
def test_bad_settings_raise_config_error_at_the_call(overrides: dict[str, Any], message: str) -> None:
    """Negative or zero intervals, unknown modes, bad URLs and misspelt settings fail in ``upbit()``."""
    with pytest.raises(ConfigError, match=message):
        rxmarket.upbit(**{**NOWHERE, **overrides})


async def test_get_ticker_checks_its_argument_before_any_io() -> None:
    """``get_ticker`` with a malformed code raises ``ConfigError`` without a request."""
    async with rxmarket.upbit(**NOWHERE) as market:
        with pytest.raises(ConfigError, match="QUOTE-BASE"):
            await market.get_ticker("bitcoin")
        assert market.stats().cache_misses == 0


def test_config_can_be_given_whole_and_overridden() -> None:
    """``upbit(config=cfg, **overrides)`` starts from ``cfg``; the source gets the market's settings."""
    cfg = MarketConfig(poll_interval=2.5, **NOWHERE)
    market = rxmarket.upbit(config=cfg, grace=0.5)
    assert market.config.poll_interval == 2.5
    assert market.config.grace == 0.5
    assert market.source.config.grace == 0.5
    assert market.source.config.ws_url == NOWHERE["ws_url"]


async def test_breaking_out_of_stream_ticker_disposes_the_upstream() -> None:
    """``async for`` + ``break`` over ``stream_ticker`` ends the chain and the source's stream; the
    simulator sees the connection go (``grace=0``)."""
    async with running() as (sim, market):
        async for ticker in market.stream_ticker(["KRW-BTC"], channel="websocket"):
            assert ticker.symbol == "KRW-BTC"
            break
        await sim.wait_connections(0)
        stats = market.stats()
        assert stats.feeds == 0
        assert stats.source.streams == 0


async def test_stream_orderbook_keeps_the_latest_book_per_market() -> None:
    """``stream_orderbook`` defaults to ``overflow="latest"``: books of one market waiting in the buffer
    are replaced by newer ones, and the replaced ones are counted as drops."""
    async with running() as (sim, market):
        books = market.stream_orderbook(["KRW-BTC"], channel="websocket")
        assert books.overflow == "latest"
        first = await anext(books)
        assert isinstance(first, Orderbook)
        seen = Recorder()  # shares the feed, subscribed after the iterator: it hears of each book second
        market.orderbook(["KRW-BTC"], channel="websocket").subscribe(seen)
        sim.step(5, "KRW-BTC")
        await seen.wait_count(1 + 5)  # the replayed latest book, then the five new ones
        assert books.received == 1 + 5
        assert books.buffered == 1
        latest = await anext(books)
        assert latest is seen.items[-1]
        assert books.dropped == 4
        assert market.stats().drops == 4
        await books.aclose()


async def test_crossed_books_are_dropped_counted_and_reported() -> None:
    """A crossed book fails validation: it is not delivered, it is counted, and ``status`` says why."""
    async with running() as (sim, market):
        got, status = Recorder(), Recorder()
        market.status.subscribe(status)
        market.orderbook(["KRW-ETH"], channel="websocket").subscribe(got)
        await got.wait_count(1)
        sim.faults.crossed_book(1)
        sim.step(1, "KRW-ETH")
        await status.wait_status("quarantined")
        sim.step(1, "KRW-ETH")
        await got.wait_count(2)
        assert all(b.spread is not None and b.spread > 0 for b in got.items)
        assert market.stats().rejected == 1
        event = status.statuses("quarantined")[0]
        assert event.symbol == "KRW-ETH"
        assert "crossed" in event.detail


async def test_on_invalid_correct_repairs_crossed_books() -> None:
    """With ``on_invalid="correct"`` a crossed book is delivered repaired (no bid at or above the best
    ask) and counted as corrected."""
    async with running(on_invalid="correct") as (sim, market):
        got = Recorder()
        market.orderbook(["KRW-ETH"], channel="websocket").subscribe(got)
        await got.wait_count(1)
        sim.faults.crossed_book(1)
        sim.step(1, "KRW-ETH")
        await got.wait_count(2)
        repaired = got.items[1]
        assert repaired.best_bid is not None
        assert repaired.best_ask is not None
        assert repaired.best_bid.price < repaired.best_ask.price
        assert market.stats().corrected == 1


async def test_a_failing_subscriber_does_not_hurt_the_others() -> None:
    """One subscriber's ``on_next`` raising is counted and reported; the others still get every item."""
    async with running() as (sim, market):
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        try:
            good = Recorder()

            def bad(_item: object) -> None:
                raise RuntimeError("subscriber bug")

            market.ticker(["KRW-BTC"], channel="websocket").subscribe(bad)
            market.ticker(["KRW-BTC"], channel="websocket").subscribe(good)
            await good.wait_count(1)
            trade = sim.step(1, "KRW-BTC")[0]
            await good.wait(lambda: good.items[-1].price == trade.price)
            assert market.stats().callback_errors >= 1
            assert isinstance(reported[0]["exception"], RuntimeError)
        finally:
            loop.set_exception_handler(None)


async def test_closing_the_market_ends_everything() -> None:
    """On ``async with`` exit: subscribers complete, the simulator's connections go to 0, no task of ours
    is left, the temporary cache directory is removed and the status stream completes."""
    async with running(keep_warm=30.0) as (sim, market):
        before = asyncio.all_tasks()
        tickers, books, trades, status = Recorder(), Recorder(), Recorder(), Recorder()
        market.status.subscribe(status)
        market.ticker(["KRW-BTC"]).subscribe(tickers)
        market.orderbook(["KRW-ETH"], channel="rest").subscribe(books)
        market.trades(["KRW-XRP"]).subscribe(trades)
        await market.get_ticker("KRW-ETH")
        iterator = market.stream_ticker(["KRW-ETH"])
        await anext(iterator)
        await tickers.wait_count(1)
        await books.wait_count(1)
        await trades.wait_count(1)
        cache_dir = market.cache_directory
        assert cache_dir is not None
        assert is_dir(cache_dir)
        await market.close()
        assert tickers.completed
        assert books.completed
        assert trades.completed
        assert status.completed
        assert [e async for e in iterator] == []
        assert not is_dir(cache_dir)
        await sim.wait_connections(0)
        ours = [
            t for t in asyncio.all_tasks() - before
            if "rxmarket/sim" not in t.get_coro().cr_code.co_filename  # type: ignore[union-attr]
            and "aiohttp/web" not in t.get_coro().cr_code.co_filename  # type: ignore[union-attr]
        ]
        assert ours == []
        with pytest.raises(ConfigError, match="closed"):
            await market.get_ticker("KRW-BTC")
        closed = Recorder()
        market.ticker(["KRW-BTC"]).subscribe(closed)
        assert isinstance(closed.errors[0], ConfigError)


async def test_a_persistent_cache_dir_is_kept_and_warms_the_next_market(tmp_path: Any) -> None:
    """With ``cache_dir``, a ticker fetched by one market is served from disk by the next one (while
    fresh), and the directory stays."""
    async with running(cache_dir=str(tmp_path), cache_ttl=60.0) as (sim, market):
        first = await market.get_ticker("KRW-BTC")
        assert first.source == "rest"
        async with market_for(sim, cache_dir=str(tmp_path), cache_ttl=60.0) as later:
            again = await later.get_ticker("KRW-BTC")
            assert again.source == "cache"
            assert again.price == first.price
            assert later.stats().cache_hits == 1
        assert sim.stats.rest_by_group["ticker"] == 1
    assert any(tmp_path.iterdir())


async def test_close_cancelled_while_waiting_for_tasks_still_closes_the_http_session() -> None:
    """``close()`` cancelled while it waits for an in-flight ``get_ticker`` still closes the HTTP session
    (an ``asyncio.timeout`` around ``async with`` must not leak the connection pool)."""
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    market = rxmarket.upbit(
        rest_url=f"http://127.0.0.1:{port}/v1", ws_url=f"ws://127.0.0.1:{port}/websocket/v1",
        rest_retries=0, keep_warm=None,
    )
    try:
        asking = asyncio.create_task(market.get_ticker("KRW-BTC"))
        await connected.wait()
        closing = asyncio.create_task(market.close())
        await asyncio.sleep(0)  # close() has cancelled the request task and waits for it to end
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        with pytest.raises(ConfigError):
            await asking
        assert market.closed
        assert market._http._session is None
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()

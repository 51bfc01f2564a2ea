"""The default chains of ``rxmarket.pipelines`` in virtual time (no sockets): failover, unify, signals.

Marble times are ``TestScheduler`` ticks (seconds for the breaker); ``scheduler.start`` subscribes at 200.
"""

from __future__ import annotations

from typing import Any

import reactivex
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.subscription import Subscription

from rxmarket.errors import GaveUp, TransportError
from rxmarket.models import Orderbook, OrderbookLevel, Status, Ticker, Trade
from rxmarket.pipelines import (
    book_version,
    fail_when,
    link_down,
    orderbook_pipeline,
    ticker_pipeline,
    trade_pipeline,
)
from rxmarket.policy.backoff import BackoffPolicy

on_next, on_error, on_completed = ReactiveTest.on_next, ReactiveTest.on_error, ReactiveTest.on_completed


def ticker(ts: int, price: float = 100.0, *, volume: float = 1.0, source: str = "websocket",
           symbol: str = "KRW-BTC") -> Ticker:
    """A consistent ticker (change fields agree with price and prev_close)."""
    return Ticker(
        symbol=symbol, open=90.0, high=200.0, low=50.0, price=price, prev_close=90.0, change="RISE",
        change_price=price - 90.0, change_rate=(price - 90.0) / 90.0, timestamp=ts, volume_24h=volume,
        value_24h=volume * price, acc_trade_volume=volume, trade_timestamp=ts, source=source,
    )


def book(ts: int, bid: float = 99.0, ask: float = 101.0) -> Orderbook:
    return Orderbook.from_levels(
        symbol="KRW-BTC", timestamp=ts, asks=[OrderbookLevel(ask, 1.0)], bids=[OrderbookLevel(bid, 1.0)]
    )


def test_fail_when_ends_the_output_at_the_first_signal_and_disposes_both() -> None:
    """``fail_when``: items pass until the signal; then the error, the source and the signals disposed."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, "a"), on_next(220, "b"), on_next(240, "c"))
    signals = scheduler.create_hot_observable(on_next(230, "down"))
    results = scheduler.start(lambda: xs.pipe(fail_when(signals, lambda s: TransportError(s))))
    assert results.messages[:2] == [on_next(210, "a"), on_next(220, "b")]
    assert results.messages[2].time == 230
    assert str(results.messages[2].value.exception) == "down"
    assert xs.subscriptions == [Subscription(200, 230)]
    assert signals.subscriptions == [Subscription(200, 230)]


def test_auto_chain_switches_to_the_fallback_and_back() -> None:
    """A "down" signal opens the breaker: the fallback feeds the output; after ``reset_timeout`` a trial
    of the primary runs beside it, and its first item closes the breaker and disposes the fallback."""
    scheduler = TestScheduler()
    ws = scheduler.create_hot_observable(
        on_next(210, ticker(1)), on_next(280, ticker(8, 108.0)), on_next(290, ticker(9, 109.0))
    )
    rest = scheduler.create_cold_observable(
        on_next(5, ticker(3, 103.0, source="rest")), on_next(25, ticker(5, 105.0, source="rest")),
        on_next(65, ticker(7, 107.0, source="rest")),
    )
    down = scheduler.create_hot_observable(on_next(220, Status(kind="backoff", timestamp=0.0, connection=0)))
    transitions: list[str] = []
    pipeline = ticker_pipeline(
        ws, rest, down=down, reset_timeout=50.0, scheduler=scheduler,
        on_transition=lambda t: transitions.append(t.state.value),
    )
    results = scheduler.start(lambda: pipeline)
    got = [(m.time, m.value.value.timestamp, m.value.value.source) for m in results.messages]
    assert got == [
        (210, 1, "websocket"), (225, 3, "rest"), (245, 5, "rest"), (280, 8, "websocket"),
        (290, 9, "websocket"),
    ]
    assert ws.subscriptions == [Subscription(200, 220), Subscription(270, 1000)]  # trial at 220 + 50
    assert rest.subscriptions == [Subscription(220, 280)]  # ticker 7 (at 285) never came
    assert transitions == ["open", "half_open", "closed"]
    stats = pipeline.stats()
    assert (stats.circuit_opens, stats.circuit_state) == (1, "closed")
    assert pipeline.on_primary


def test_the_overlap_of_a_switch_is_not_seen_twice_and_time_never_goes_back() -> None:
    """Repeats and older items from either channel are dropped by the unify stage and counted."""
    subject: Subject[Ticker] = Subject()
    got: list[Ticker] = []
    pipeline = ticker_pipeline(subject, None)
    pipeline.subscribe(got.append)
    for item in (ticker(10), ticker(10, source="rest"), ticker(9, 99.0), ticker(11, 111.0)):
        subject.on_next(item)
    assert [(t.timestamp, t.source) for t in got] == [(10, "websocket"), (11, "websocket")]
    assert pipeline.stats().duplicates == 2


def test_two_different_tickers_of_one_millisecond_both_pass() -> None:
    """A busy market sends several tickers per millisecond: the later trade (more volume) is not a repeat."""
    subject: Subject[Ticker] = Subject()
    got: list[Ticker] = []
    ticker_pipeline(subject, None).subscribe(got.append)
    subject.on_next(ticker(10, 100.0, volume=1.0))
    subject.on_next(ticker(10, 101.0, volume=2.0))
    subject.on_next(ticker(10, 101.0, volume=2.0))  # the same ticker again (e.g. over REST)
    assert [t.price for t in got] == [100.0, 101.0]


def test_books_of_one_millisecond_both_pass_older_ones_do_not() -> None:
    """``book_version`` orders books by time, then arrival: same-ms updates pass, older books do not."""
    subject: Subject[Orderbook] = Subject()
    got: list[Orderbook] = []
    orderbook_pipeline(subject, None).subscribe(got.append)
    for item in (book(10), book(10, 98.0), book(9, 97.0), book(11, 96.0)):
        subject.on_next(item)
    assert [(b.timestamp, b.units[0].bid_price) for b in got] == [(10, 99.0), (10, 98.0), (11, 96.0)]
    version = book_version()
    assert version(book(5)) < version(book(5)) < version(book(6))


def test_invalid_items_are_dropped_or_corrected_as_configured() -> None:
    """A crossed book is dropped by default and repaired with ``on_invalid="correct"``."""
    for mode, expected in (("drop", []), ("correct", [(99.0, 98.0)])):
        subject: Subject[Orderbook] = Subject()
        got: list[Orderbook] = []
        pipeline = orderbook_pipeline(subject, None, on_invalid=mode)
        pipeline.subscribe(got.append)
        crossed = Orderbook.from_levels(
            symbol="KRW-BTC", timestamp=10, asks=[(99.0, 1.0)], bids=[(100.0, 1.0), (98.0, 1.0)]
        )
        subject.on_next(crossed)
        assert [(b.units[0].ask_price, b.units[0].bid_price) for b in got] == expected
        stats = pipeline.stats()
        assert (stats.rejected, stats.corrected) == ((1, 0) if mode == "drop" else (0, 1))


def test_link_down_keeps_only_events_about_the_pipelines_links() -> None:
    """Down signals: a backoff / idle / gave-up of a connection carrying one of the markets, or a stale
    stream of the channel; REST polls' events and other connections' are ignored."""
    subject: Subject[Status] = Subject()
    carried = {"KRW-BTC": 0, "KRW-ETH": 1}
    got: list[Status] = []
    link_down(subject, ["KRW-BTC"], "ticker", carried.get).subscribe(got.append)
    events = [
        Status(kind="backoff", timestamp=0.0, connection=0),  # ours
        Status(kind="backoff", timestamp=0.0, connection=1),  # another market's connection
        Status(kind="backoff", timestamp=0.0, channel="rest:ticker"),  # a REST poll
        Status(kind="live", timestamp=0.0, connection=0),  # good news
        Status(kind="stale", timestamp=0.0, connection=0, channel="ticker", symbol="KRW-BTC"),  # ours
        Status(kind="stale", timestamp=0.0, connection=0, channel="trade", symbol="KRW-BTC"),  # other channel
        Status(kind="gave_up", timestamp=0.0, connection=0),  # ours
    ]
    for event in events:
        subject.on_next(event)
    assert got == [events[0], events[4], events[6]]


def test_websocket_only_chain_retries_after_gave_up() -> None:
    """Without a fallback but with ``retry``, a ``GaveUp`` is retried after the backoff and counted."""
    scheduler = TestScheduler()
    attempts = iter([
        scheduler.create_cold_observable(on_next(5, ticker(1)), on_error(10, GaveUp(3, 60.0, None))),
        scheduler.create_cold_observable(on_next(5, ticker(2, 102.0))),
    ])
    ws: reactivex.Observable[Any] = reactivex.defer(lambda _: next(attempts))
    retries: list[float] = []
    pipeline = ticker_pipeline(
        ws, None, retry=BackoffPolicy(initial=20.0, multiplier=2.0, max_delay=60.0), scheduler=scheduler,
        on_retry=lambda e: retries.append(e.delay),
    )
    results = scheduler.start(lambda: pipeline)
    assert [(m.time, m.value.value.timestamp) for m in results.messages] == [(205, 1), (235, 2)]
    assert retries == [20.0]
    assert pipeline.stats().retries == 1


def test_trade_chain_drops_a_trade_seen_twice() -> None:
    """The trade chain keeps one of each ``(symbol, sequential_id)`` with bounded memory."""
    subject: Subject[Trade] = Subject()
    got: list[Trade] = []
    pipeline = trade_pipeline(subject, max_keys=10)
    pipeline.subscribe(got.append)
    trades = [
        Trade(symbol="KRW-BTC", timestamp=10 + i, price=100.0, volume=1.0, ask_bid="BID", sequential_id=i)
        for i in (1, 2, 1, 3)
    ]
    for trade in trades:
        subject.on_next(trade)
    assert [t.sequential_id for t in got] == [1, 2, 3]
    assert pipeline.stats().duplicates == 1


def test_auto_chain_below_the_failover_threshold_stays_on_the_websocket_without_an_error() -> None:
    """With ``failure_threshold=2`` a lone "down" signal is no error for the subscriber: the chain stays on
    the WebSocket (resubscribed at once); only two consecutive signals switch it to REST."""
    scheduler = TestScheduler()
    ws = scheduler.create_hot_observable(
        on_next(210, ticker(1)), on_next(230, ticker(2, 102.0)), on_next(260, ticker(4, 104.0))
    )
    rest = scheduler.create_cold_observable(on_next(5, ticker(6, 106.0, source="rest")))
    backoff = Status(kind="backoff", timestamp=0.0, connection=0)
    down = scheduler.create_hot_observable(
        on_next(220, backoff), on_next(240, backoff), on_next(245, backoff)
    )
    pipeline = ticker_pipeline(ws, rest, down=down, failure_threshold=2, reset_timeout=500.0,
                               scheduler=scheduler)
    results = scheduler.start(lambda: pipeline)
    got = [(m.time, m.value.kind, getattr(m.value.value, "timestamp", None)) for m in results.messages]
    assert got == [(210, "N", 1), (230, "N", 2), (250, "N", 6)]
    assert pipeline.stats().circuit_opens == 1

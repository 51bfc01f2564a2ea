"""ops.merge_unify: marble tests in virtual time, channel cross-checks, threads, and properties."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

import pytest
import reactivex
from _docs import run_doc_example
from _models import ticker as consistent_ticker
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.subscription import Subscription

from rxmarket import ops
from rxmarket.errors import ConfigError
from rxmarket.models import Candle, Orderbook, Ticker, Trade
from rxmarket.operators._merge_unify import Divergence, MergeUnify, UnifyStats
from rxmarket.policy.keys import NEW, NEWER, KeyStore, natural_key, natural_version

on_next, on_error, on_completed = ReactiveTest.on_next, ReactiveTest.on_error, ReactiveTest.on_completed




def ticker(ts: int, source: str = "websocket", price: float = 100.0, symbol: str = "KRW-BTC") -> Ticker:
    return consistent_ticker(ts, price, symbol, source=source)


def trade(seq: int, ts: int, source: str = "websocket", price: float = 100.0) -> Trade:
    return Trade(
        symbol="KRW-BTC",
        price=price,
        volume=0.1,
        ask_bid="ASK",
        timestamp=ts,
        sequential_id=seq,
        source=source,
    )


def test_newest_per_key_wins_across_channels() -> None:
    """The module's marble: REST repeats of WebSocket updates are dropped, both sources run to the end."""
    scheduler = TestScheduler()
    r1, r3, r5 = ticker(1, "rest"), ticker(3, "rest"), ticker(5, "rest")
    w2, w3, w4, w5 = ticker(2), ticker(3), ticker(4), ticker(5)
    rest = scheduler.create_hot_observable(
        on_next(210, r1), on_next(260, r3), on_next(290, r5), on_completed(300)
    )
    ws = scheduler.create_hot_observable(
        on_next(230, w2), on_next(250, w3), on_next(270, w4), on_next(280, w5), on_completed(400)
    )
    results = scheduler.start(lambda: ops.merge_unify(rest, ws))
    assert results.messages == [
        on_next(210, r1),
        on_next(230, w2),
        on_next(250, w3),
        on_next(270, w4),
        on_next(280, w5),
        on_completed(400),
    ]
    assert rest.subscriptions == [Subscription(200, 300)]
    assert ws.subscriptions == [Subscription(200, 400)]


def test_items_keep_their_source() -> None:
    """Items come out unchanged (the same objects): source still says which channel brought each one."""
    r1, w2 = ticker(1, "rest"), ticker(2, "websocket")
    out: list[Ticker] = []
    ops.merge_unify(reactivex.of(r1), reactivex.of(w2)).subscribe(out.append)
    assert [(t is x, t.source) for t, x in zip(out, (r1, w2), strict=True)] == [
        (True, "rest"),
        (True, "websocket"),
    ]


def test_pipe_form_merges_the_piped_source_first() -> None:
    """ws.pipe(merge_unify(rest)) is merge_unify(ws, rest): same output, same divergence indices."""
    scheduler = TestScheduler()
    ws = scheduler.create_hot_observable(on_next(210, ticker(2)), on_next(230, ticker(3)))
    rest = scheduler.create_hot_observable(on_next(220, ticker(1, "rest")), on_next(240, ticker(4, "rest")))
    op = ops.merge_unify(rest)
    results = scheduler.start(lambda: ws.pipe(op))
    assert results.messages == [
        on_next(210, ticker(2)),
        on_next(230, ticker(3)),
        on_next(240, ticker(4, "rest")),
    ]
    assert op.stats().stale == 1  # the piped form shares its counters with the operator it came from


def test_single_stream_pipe_form_filters_stale_items() -> None:
    """src.pipe(merge_unify()) on one stream keeps only items newer than the last emitted per key."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, ticker(5)),
        on_next(220, ticker(3)),
        on_next(230, ticker(1, symbol="KRW-ETH")),
        on_next(240, ticker(6)),
        on_completed(250),
    )
    results = scheduler.start(lambda: xs.pipe(ops.merge_unify()))
    assert results.messages == [
        on_next(210, ticker(5)),
        on_next(230, ticker(1, symbol="KRW-ETH")),
        on_next(240, ticker(6)),
        on_completed(250),
    ]
    assert xs.subscriptions == [Subscription(200, 250)]


def test_no_sources_completes_at_once() -> None:
    """merge_unify() used as an Observable has nothing to merge: it completes on subscribe."""
    scheduler = TestScheduler()
    results = scheduler.start(lambda: ops.merge_unify())
    assert results.messages == [on_completed(200)]


def test_error_in_one_source_ends_all() -> None:
    """A source's error is passed on and the other sources are disposed at that tick."""
    scheduler = TestScheduler()
    boom = RuntimeError("socket closed")
    a = scheduler.create_hot_observable(on_next(210, ticker(1)), on_error(250, boom))
    b = scheduler.create_hot_observable(on_next(220, ticker(2, "rest")), on_next(260, ticker(3, "rest")))
    results = scheduler.start(lambda: ops.merge_unify(a, b))
    assert results.messages == [on_next(210, ticker(1)), on_next(220, ticker(2, "rest")), on_error(250, boom)]
    assert a.subscriptions == [Subscription(200, 250)]
    assert b.subscriptions == [Subscription(200, 250)]


def test_trades_are_events_each_passes_once() -> None:
    """A trade seen on both channels passes once; trades out of time order (a REST page) all pass."""
    scheduler = TestScheduler()
    ws = scheduler.create_hot_observable(on_next(210, trade(3, 30)), on_next(220, trade(4, 40)))
    # A REST page is newest first: 4 (already seen over ws), then 2 and 1, older than what ws sent.
    rest = scheduler.create_hot_observable(
        on_next(230, trade(4, 40, "rest")),
        on_next(231, trade(2, 20, "rest")),
        on_next(232, trade(1, 10, "rest")),
    )
    results = scheduler.start(lambda: ops.merge_unify(ws, rest))
    assert [(m.value.value.sequential_id, m.value.value.source) for m in results.messages] == [
        (3, "websocket"),
        (4, "websocket"),
        (2, "rest"),
        (1, "rest"),
    ]


def test_mixed_models_of_one_market_keep_their_own_keys() -> None:
    """In one mixed stream a ticker, a book at level 1.0 and trade 1 of one market all pass."""
    book = Orderbook.from_levels(
        symbol="KRW-BTC", timestamp=1, asks=[(101.0, 1.0)], bids=[(99.0, 1.0)], level=1.0
    )
    items: list[Any] = [ticker(5), book, trade(1, 1)]
    out: list[Any] = []
    unify = ops.merge_unify(reactivex.from_iterable(items))
    unify.subscribe(out.append)
    assert (out, unify.stats().keys) == (items, 0)


def test_candles_newest_version_per_start() -> None:
    """Candles: per (symbol, unit, start) a later tick wins; another minute is another key."""

    def candle(start: int, ts: int, source: str) -> Candle:
        return Candle(
            symbol="KRW-BTC",
            unit="1m",
            start=start,
            open=1.0,
            high=1.0,
            low=1.0,
            close=1.0,
            volume=1.0,
            value=1.0,
            timestamp=ts,
            source=source,
        )

    out: list[Candle] = []
    ws = reactivex.of(candle(0, 10, "websocket"), candle(0, 30, "websocket"))
    rest = reactivex.of(candle(0, 20, "rest"), candle(60_000, 60_500, "rest"))
    ops.merge_unify(ws, rest).subscribe(out.append)
    assert [(c.start, c.timestamp) for c in out] == [(0, 10), (0, 30), (60_000, 60_500)]


def test_divergence_beyond_tolerance_is_reported_not_averaged() -> None:
    """Two channels 2 % apart within max_skew: a Divergence is published; the newest item still wins as is."""
    scheduler = TestScheduler()
    ws = scheduler.create_hot_observable(on_next(210, ticker(1_000, price=100.0)))
    rest = scheduler.create_hot_observable(on_next(220, ticker(1_500, "rest", price=102.0)))
    unify = ops.merge_unify(ws, rest, tolerance=0.01)
    seen: list[Divergence] = []
    unify.divergences.subscribe(seen.append)
    results = scheduler.start(lambda: unify)
    assert results.messages == [
        on_next(210, ticker(1_000, price=100.0)),
        on_next(220, ticker(1_500, "rest", price=102.0)),
    ]
    assert len(seen) == 1
    d = seen[0]
    assert (d.key, d.item.source, d.other.source, d.item_source, d.other_source) == (
        "KRW-BTC",
        "rest",
        "websocket",
        1,
        0,
    )
    assert d.difference == pytest.approx(0.02)
    assert unify.stats().divergences == 1


@pytest.mark.parametrize(
    ("rest_ts", "rest_price", "tolerance"),
    [(1_500, 100.5, 0.01), (2_500, 110.0, 0.01), (1_000, 100.0, 0.0)],
    ids=["within-tolerance", "beyond-max-skew", "equal-prices"],
)
def test_no_divergence_reported(rest_ts: int, rest_price: float, tolerance: float) -> None:
    """Prices within tolerance, or observations more than max_skew (1 s) apart, are not reported."""
    unify = ops.merge_unify(
        reactivex.of(ticker(1_000)),
        reactivex.of(ticker(rest_ts, "rest", price=rest_price)),
        tolerance=tolerance,
    )
    seen: list[Divergence] = []
    unify.divergences.subscribe(seen.append)
    unify.subscribe()
    assert (seen, unify.stats().divergences) == ([], 0)


def test_same_trade_with_different_prices_is_a_divergence() -> None:
    """Trades are compared per sequential_id: channels disagreeing on one trade's price are reported."""
    unify = ops.merge_unify(
        reactivex.of(trade(1, 10)), reactivex.of(trade(1, 10, "rest", price=101.0)), tolerance=0.001
    )
    seen: list[Divergence] = []
    unify.divergences.subscribe(seen.append)
    out: list[Trade] = []
    unify.subscribe(out.append)
    assert ([t.source for t in out], [d.key for d in seen]) == (["websocket"], [("KRW-BTC", 1)])


def test_books_are_compared_by_mid() -> None:
    """Books are cross-checked on their mid price."""

    def book(ts: int, bid: float, ask: float, source: str) -> Orderbook:
        return Orderbook.from_levels(
            symbol="KRW-BTC", timestamp=ts, asks=[(ask, 1.0)], bids=[(bid, 1.0)], source=source
        )

    unify = ops.merge_unify(
        reactivex.of(book(1, 99.0, 101.0, "websocket")),
        reactivex.of(book(2, 104.0, 106.0, "rest")),
        tolerance=0.01,
    )
    seen: list[Divergence] = []
    unify.divergences.subscribe(seen.append)
    unify.subscribe()
    assert [round(d.difference, 6) for d in seen] == [0.05]


def test_stats_count_duplicates_and_stale() -> None:
    """stats() counts what passed, what repeated an emitted version, and what was older."""
    unify = ops.merge_unify(
        reactivex.of(ticker(2), ticker(3)), reactivex.of(ticker(3, "rest"), ticker(1, "rest"))
    )
    unify.subscribe()
    assert unify.stats() == UnifyStats(passed=2, duplicates=1, stale=1, divergences=0, evicted=0, keys=0)


def test_max_keys_bounds_the_key_table() -> None:
    """With max_keys=2 at most two keys are held; a forgotten key's next item passes as new."""
    subject: Subject[Trade] = Subject()
    unify = ops.merge_unify(subject, max_keys=2)
    out: list[int] = []
    subscription = unify.subscribe(lambda t: out.append(t.sequential_id))
    for seq in (1, 2, 3, 1):
        subject.on_next(trade(seq, seq))
        assert unify.stats().keys <= 2
    assert (out, unify.stats().evicted) == ([1, 2, 3, 1], 2)
    subscription.dispose()
    assert unify.stats().keys == 0


def test_caller_key_and_version() -> None:
    """Any type works with key and version functions."""
    out: list[dict[str, int]] = []
    ops.merge_unify(
        reactivex.of({"k": 1, "v": 2}),
        reactivex.of({"k": 1, "v": 1}, {"k": 1, "v": 3}),
        key=lambda m: m["k"],
        version=lambda m: m["v"],
    ).subscribe(out.append)
    assert out == [{"k": 1, "v": 2}, {"k": 1, "v": 3}]


def test_caller_key_error_goes_to_on_error() -> None:
    """An exception in the caller's key function ends the stream with it; every source is disposed then."""
    scheduler = TestScheduler()
    a = scheduler.create_hot_observable(on_next(210, {"k": 1}), on_next(220, {}))
    b = scheduler.create_hot_observable(on_next(230, {"k": 2}))
    results = scheduler.start(lambda: ops.merge_unify(a, b, key=lambda m: m["k"], version=lambda m: 0))
    assert results.messages == [on_next(210, {"k": 1}), on_error(220, KeyError("k"))]
    assert isinstance(results.messages[-1].value.exception, KeyError)
    assert b.subscriptions == [Subscription(200, 220)]


def test_unknown_type_is_a_config_error() -> None:
    """A type with no natural key (and no key function) ends the stream with a ConfigError."""
    errors: list[Exception] = []
    ops.merge_unify(reactivex.of(1.5)).subscribe(on_error=errors.append)
    assert len(errors) == 1
    assert isinstance(errors[0], ConfigError)
    assert "float" in str(errors[0])


@pytest.mark.parametrize(
    "kwargs",
    [{"tolerance": -0.1}, {"max_skew": -1.0}, {"max_keys": 0}, {"key": "symbol"}, {"price": 3}],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, Any]) -> None:
    """Negative tolerance or skew, a bad bound or a non-callable function is refused at build time."""
    with pytest.raises(ConfigError):
        ops.merge_unify(**kwargs)


def test_sources_on_two_threads_are_serialised() -> None:
    """Two sources emitting from two threads at once: the observer is never entered concurrently."""
    left: Subject[Ticker] = Subject()
    right: Subject[Ticker] = Subject()
    inside, most, out = [0], [0], []

    def observe(t: Ticker) -> None:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        out.append(t.timestamp)
        inside[0] -= 1

    ops.merge_unify(left, right).subscribe(observe)
    start = threading.Barrier(2)

    def pump(subject: Subject[Ticker], offset: int) -> None:
        start.wait()
        for ts in range(offset, 20_000, 2):
            subject.on_next(ticker(ts))

    threads = [threading.Thread(target=pump, args=(left, 0)), threading.Thread(target=pump, args=(right, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
    assert out == sorted(out)  # per key (one symbol here) strictly newer, whatever the interleaving
    assert out[-1] >= 19_998


def test_merge_unify_is_an_observable_and_an_operator() -> None:
    """The result subclasses Observable and calling it returns another MergeUnify."""
    op = ops.merge_unify(reactivex.empty())
    assert isinstance(op, reactivex.Observable)
    assert isinstance(op(reactivex.empty()), MergeUnify)


# ----------------------------------------------------------------------------------------- properties

items = st.one_of(
    st.builds(lambda s, ts: ticker(ts, symbol=s), st.sampled_from(["A", "B"]), st.integers(1, 20)),
    st.builds(lambda seq: trade(seq, ts=seq * 3), st.integers(1, 6)),  # one sequential_id, one trade
)


@settings(max_examples=200, deadline=None)
@given(channels=st.lists(st.lists(st.tuples(st.integers(1, 30), items), max_size=25), min_size=1, max_size=3))
def test_property_output_is_monotonic_per_key(channels: list[list[tuple[int, Any]]]) -> None:
    """For any interleaving of up to three channels, each key's output versions strictly increase, and the
    newest version of every key seen comes out."""
    scheduler = TestScheduler()
    sources = []
    for channel in channels:
        time, messages = 200, []
        for gap, item in channel:
            time += gap
            messages.append(on_next(time, item))
        sources.append(scheduler.create_hot_observable(messages))
    results = scheduler.start(lambda: ops.merge_unify(*sources), disposed=10_000)
    last: dict[Hashable, Any] = {}
    for message in results.messages:
        item = message.value.value
        key, version = natural_key(item), natural_version(item)
        if key in last:
            assert version > last[key]
        last[key] = version
    newest: dict[Hashable, Any] = {}
    for channel in channels:
        for _, item in channel:
            key, version = natural_key(item), natural_version(item)
            newest[key] = max(newest.get(key, version), version)
    assert last == newest


def test_doc_example(capsys: pytest.CaptureFixture[str]) -> None:
    """The example in docs/reference/operators/merge_unify.md prints what the page shows."""
    printed, shown = run_doc_example("merge_unify.md", capsys)
    assert printed == shown


def test_price_function_error_goes_to_on_error() -> None:
    """An exception in the caller's price function (cross-check on) ends the stream with it."""
    errors: list[Exception] = []
    out: list[Ticker] = []

    def price(t: Ticker) -> float:
        raise ValueError("no price")

    ops.merge_unify(reactivex.of(ticker(1)), tolerance=0.01, price=price).subscribe(out.append, errors.append)
    assert out == []
    assert [type(e) for e in errors] == [ValueError]


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 4)), max_size=60),
    max_keys=st.integers(1, 5),
)
def test_property_operator_decides_as_the_key_store(events: list[tuple[int, int]], max_keys: int) -> None:
    """The inlined hot path passes exactly what KeyStore.offer calls NEW or NEWER."""
    items = [{"k": k, "v": v} for k, v in events]
    store = KeyStore(max_keys=max_keys)
    expected = [m for m in items if store.offer(m["k"], m["v"]) in (NEW, NEWER)]
    out: list[dict[str, int]] = []
    unify = ops.merge_unify(
        reactivex.from_iterable(items), key=lambda m: m["k"], version=lambda m: m["v"], max_keys=max_keys
    )
    unify.subscribe(out.append)
    assert out == expected

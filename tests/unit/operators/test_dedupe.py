"""ops.dedupe and its key store: marble tests in virtual time, real Upbit payloads, and properties."""

from __future__ import annotations

import json
from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import reactivex
from _docs import run_doc_example
from _models import ticker as consistent_ticker
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import operators as rx_ops
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.subscription import Subscription

from rxmarket import ops
from rxmarket.errors import ConfigError
from rxmarket.models import Candle, Orderbook, Ticker, Trade
from rxmarket.policy.keys import NEW, NEWER, OLDER, SAME, KeyStore, natural_key, natural_version

on_next, on_error, on_completed = ReactiveTest.on_next, ReactiveTest.on_error, ReactiveTest.on_completed




DATA = Path(__file__).resolve().parents[2] / "data" / "upbit"


def trade(seq: int, ts: int = 1_000, symbol: str = "KRW-BTC", source: str = "websocket") -> Trade:
    return Trade(
        symbol=symbol, price=100.0, volume=0.5, ask_bid="BID", timestamp=ts, sequential_id=seq, source=source
    )


def candle(start: int, ts: int | None, volume: float, close: float = 100.0, unit: str = "1m") -> Candle:
    return Candle(
        symbol="KRW-BTC",
        unit=unit,
        start=start,
        open=100.0,
        high=max(100.0, close),
        low=min(100.0, close),
        close=close,
        volume=volume,
        value=volume * close,
        timestamp=ts,
    )


def ticker(ts: int, symbol: str = "KRW-BTC") -> Ticker:
    return consistent_ticker(ts, symbol=symbol)


# ------------------------------------------------------------------------------------------- KeyStore


def test_store_verdicts() -> None:
    """A new key is NEW, a larger version NEWER, an equal one SAME, a smaller one OLDER (not recorded)."""
    store = KeyStore(max_keys=10)
    assert store.offer("a", 5) == NEW
    assert store.offer("a", 6) == NEWER
    assert store.offer("a", 6) == SAME
    assert store.offer("a", 4) == OLDER
    assert store.get("a") == 6


def test_store_without_versions_calls_every_repeat_same() -> None:
    """With version None, any sighting of a held key is a repeat."""
    store = KeyStore(max_keys=10)
    assert [store.offer("a"), store.offer("a"), store.offer("b")] == [NEW, SAME, NEW]


def test_store_evicts_least_recently_seen() -> None:
    """Past max_keys the key seen longest ago goes, and a repeat counts as a sighting."""
    store = KeyStore(max_keys=2)
    store.offer("a")
    store.offer("b")
    store.offer("a")  # a is now the most recently seen
    store.offer("c")  # evicts b
    assert ("a" in store, "b" in store, "c" in store) == (True, False, True)
    assert (len(store), store.evicted) == (2, 1)


def test_store_forgets_after_ttl_since_last_seen() -> None:
    """A key is remembered while seen within ttl; ttl after its last sighting it is new again."""
    store = KeyStore(max_keys=None, ttl=10.0)
    assert store.offer("a", now=0.0) == NEW
    assert store.offer("a", now=9.0) == SAME  # refreshes the key
    assert store.offer("a", now=18.5) == SAME
    assert store.offer("a", now=28.5) == NEW
    assert store.expired == 1


@pytest.mark.parametrize(
    ("max_keys", "ttl"), [(None, None), (0, None), (-1, 5.0), (True, None), (10, 0.0), (10, -1.0)]
)
def test_store_refuses_unbounded_or_bad_bounds(max_keys: Any, ttl: Any) -> None:
    """Both bounds off, a count below 1 or a ttl not above 0 is a ConfigError."""
    with pytest.raises(ConfigError):
        KeyStore(max_keys=max_keys, ttl=ttl)


def test_natural_keys_and_versions() -> None:
    """Each model's natural key and version follow the table in rxmarket.policy.keys."""
    assert natural_key(ticker(5)) == "KRW-BTC"
    assert natural_version(ticker(5)) == (5, None, None)
    assert natural_key(trade(7, ts=3)) == ("KRW-BTC", 7)
    assert natural_version(trade(7, ts=3)) == (3, 7)
    assert natural_key(candle(60_000, 61_000, 2.0)) == ("KRW-BTC", "1m", 60_000)
    assert natural_version(candle(60_000, None, 2.0)) == (-1, 2.0, 200.0)
    with pytest.raises(ConfigError, match="no natural key for dict"):
        natural_key({"id": 1})


def test_a_ticker_and_a_book_of_one_market_are_different_keys() -> None:
    """In a mixed stream, a book older than the market's last ticker is not taken for a stale ticker."""
    book = Orderbook.from_levels(symbol="KRW-BTC", timestamp=4, asks=[(101.0, 1.0)], bids=[(99.0, 1.0)])
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, ticker(5)), on_next(220, book))
    results = scheduler.start(lambda: xs.pipe(ops.dedupe()))
    assert results.messages == [on_next(210, ticker(5)), on_next(220, book)]


def test_a_book_at_a_level_and_a_trade_of_that_number_are_different_keys() -> None:
    """A book grouped at level 1.0 and trade 1 of one market are two things (1.0 == 1 as numbers)."""
    book = Orderbook.from_levels(
        symbol="KRW-BTC", timestamp=4, asks=[(101.0, 1.0)], bids=[(99.0, 1.0)], level=1.0
    )
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, book), on_next(220, trade(1)))
    results = scheduler.start(lambda: xs.pipe(ops.dedupe()))
    assert results.messages == [on_next(210, book), on_next(220, trade(1))]


def test_natural_keys_of_the_four_models_never_collide() -> None:
    """Keys of different models of one market (same numbers in every slot) are all distinct."""
    book = Orderbook.from_levels(symbol="KRW-BTC", timestamp=1, asks=[(101.0, 1.0)], bids=[], level=1.0)
    keys = [natural_key(ticker(1)), natural_key(book), natural_key(trade(1)), natural_key(candle(1, 1, 1.0))]
    assert len(set(keys)) == 4


def test_two_tickers_of_one_millisecond_are_both_new() -> None:
    """Several trades in one millisecond give several tickers: the later one (more day volume) passes."""
    first = msgspec.structs.replace(ticker(5), acc_trade_volume=10.0, trade_timestamp=5)
    second = msgspec.structs.replace(first, price=101.0, acc_trade_volume=10.5)
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, first), on_next(220, second), on_next(230, second))
    results = scheduler.start(lambda: xs.pipe(ops.dedupe()))
    assert results.messages == [on_next(210, first), on_next(220, second)]


# ------------------------------------------------------------------------------------------- operator


def test_resent_trades_are_dropped() -> None:
    """A trade whose (symbol, sequential_id) was seen is dropped; upstream subscribed once, to the end."""
    scheduler = TestScheduler()
    t1, t2 = trade(1), trade(2)
    xs = scheduler.create_hot_observable(
        on_next(150, trade(9)),
        on_next(210, t1),
        on_next(220, t2),
        on_next(230, trade(1, source="rest")),
        on_next(240, trade(1, symbol="KRW-ETH")),
        on_completed(300),
    )
    results = scheduler.start(lambda: xs.pipe(ops.dedupe()))
    assert results.messages == [
        on_next(210, t1),
        on_next(220, t2),
        on_next(240, trade(1, symbol="KRW-ETH")),
        on_completed(300),
    ]
    assert xs.subscriptions == [Subscription(200, 300)]


def test_newer_candle_version_passes_older_and_identical_dropped() -> None:
    """An open candle resent with a later tick or more volume passes; an identical or older resend not."""
    scheduler = TestScheduler()
    v1, v2, v3 = candle(0, 10, 1.0), candle(0, 20, 2.0), candle(0, 20, 2.5)
    xs = scheduler.create_hot_observable(
        on_next(210, v1),
        on_next(220, v2),
        on_next(230, v1),
        on_next(240, v2),
        on_next(250, v3),
        on_next(260, candle(60_000, 61_000, 1.0)),
    )
    results = scheduler.start(lambda: xs.pipe(ops.dedupe()))
    assert results.messages == [
        on_next(210, v1),
        on_next(220, v2),
        on_next(250, v3),
        on_next(260, candle(60_000, 61_000, 1.0)),
    ]
    assert xs.subscriptions == [Subscription(200, 1000)]


def test_real_candle_frames_keep_newest_version() -> None:
    """Upbit's 2026 candle.1m frames (one minute resent as SNAPSHOT) replayed twice: each version once."""
    frames = [json.loads(line) for line in (DATA / "ws_candle_default_2026.jsonl").read_text().splitlines()]

    def to_candle(f: dict[str, Any]) -> Candle:
        start = datetime.fromisoformat(f["candle_date_time_utc"]).replace(tzinfo=UTC)
        return Candle(
            symbol=f["code"],
            unit=f["type"].removeprefix("candle."),
            start=int(start.timestamp() * 1000),
            open=f["opening_price"],
            high=f["high_price"],
            low=f["low_price"],
            close=f["trade_price"],
            volume=f["candle_acc_trade_volume"],
            value=f["candle_acc_trade_price"],
            timestamp=f["timestamp"],
            stream_type=f["stream_type"],
        )

    candles = [to_candle(f) for f in frames]
    out: list[Candle] = []
    reactivex.from_iterable(candles + candles).pipe(ops.dedupe()).subscribe(out.append)
    assert out == candles  # the 07:47 resend has a later tick and more volume: both versions pass once


def test_same_trade_over_rest_and_websocket_is_one_trade() -> None:
    """Upbit's 2026 WS frame and REST tick of one trade: the second to arrive is dropped."""
    ws = msgspec.json.decode((DATA / "ws_trade_default_2026.json").read_bytes(), type=Trade)
    (tick,) = json.loads((DATA / "rest_trade_paired_with_ws_2026.json").read_text())
    rest = Trade(
        symbol=tick["market"],
        price=tick["trade_price"],
        volume=tick["trade_volume"],
        ask_bid=tick["ask_bid"],
        timestamp=tick["timestamp"],
        sequential_id=tick["sequential_id"],
        source="rest",
    )
    out: list[Trade] = []
    reactivex.of(ws, rest).pipe(ops.dedupe()).subscribe(out.append)
    assert out == [ws]


def test_same_millisecond_trades_are_both_kept() -> None:
    """Two real ticks equal in every field but sequential_id are two trades."""
    ticks = json.loads((DATA / "rest_trades_same_ms_2026.json").read_text())
    trades = [trade(t["sequential_id"], ts=t["timestamp"], symbol=t["market"]) for t in ticks]
    out: list[Trade] = []
    reactivex.from_iterable(trades).pipe(ops.dedupe()).subscribe(out.append)
    assert out == trades


def test_tickers_pass_only_when_newer() -> None:
    """Tickers are keyed by symbol: an equal or older timestamp is a repeat."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, ticker(5)),
        on_next(220, ticker(5)),
        on_next(230, ticker(4)),
        on_next(240, ticker(6)),
        on_next(250, ticker(1, symbol="KRW-ETH")),
    )
    results = scheduler.start(lambda: xs.pipe(ops.dedupe()))
    assert results.messages == [
        on_next(210, ticker(5)),
        on_next(240, ticker(6)),
        on_next(250, ticker(1, symbol="KRW-ETH")),
    ]


def test_caller_key_without_version_drops_every_repeat() -> None:
    """Any type works with a key function; without a version, a held key is always a repeat."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, {"id": 1, "v": 1}),
        on_next(220, {"id": 1, "v": 2}),
        on_next(230, {"id": 2, "v": 1}),
    )
    results = scheduler.start(lambda: xs.pipe(ops.dedupe(lambda m: m["id"])))
    assert results.messages == [on_next(210, {"id": 1, "v": 1}), on_next(230, {"id": 2, "v": 1})]


def test_caller_key_with_version_passes_newer() -> None:
    """With key and version functions, a newer version of a held key passes."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, {"id": 1, "v": 1}),
        on_next(220, {"id": 1, "v": 2}),
        on_next(230, {"id": 1, "v": 2}),
    )
    results = scheduler.start(lambda: xs.pipe(ops.dedupe(lambda m: m["id"], version=lambda m: m["v"])))
    assert results.messages == [on_next(210, {"id": 1, "v": 1}), on_next(220, {"id": 1, "v": 2})]


def test_ttl_window_in_virtual_time() -> None:
    """With ttl=50 (ticks are seconds), a key resent 50 ticks after its last sighting passes again."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, trade(1)),
        on_next(240, trade(1)),
        on_next(289, trade(1)),
        on_next(339, trade(1)),
    )
    results = scheduler.start(lambda: xs.pipe(ops.dedupe(ttl=50.0, max_keys=None)))
    # 240 and 289 are within 50 s of the previous sighting (each refreshes the key); 339 is 50 s after 289.
    assert results.messages == [on_next(210, trade(1)), on_next(339, trade(1))]


def test_max_keys_bounds_memory_and_forgets_least_recent() -> None:
    """With max_keys=2 the least recently seen key is forgotten, so its resend passes again."""
    scheduler = TestScheduler()
    op = ops.dedupe(max_keys=2)
    xs = scheduler.create_hot_observable(
        on_next(210, trade(1)),
        on_next(220, trade(2)),
        on_next(230, trade(1)),
        on_next(240, trade(3)),
        on_next(250, trade(2)),
        on_next(260, trade(1)),
    )
    results = scheduler.start(lambda: xs.pipe(op), disposed=500)
    # 230: trade 1 is a repeat (and now the most recent); 240 evicts 2; 250 evicts 1; 260 evicts 3.
    assert results.messages == [
        on_next(210, trade(1)),
        on_next(220, trade(2)),
        on_next(240, trade(3)),
        on_next(250, trade(2)),
        on_next(260, trade(1)),
    ]
    stats = op.stats()
    assert (stats.passed, stats.dropped, stats.evicted, stats.keys) == (5, 1, 3, 0)


def test_stats_count_live_keys_and_fold_on_dispose() -> None:
    """stats().keys counts keys held by live subscriptions; they are released on dispose."""
    op = ops.dedupe()
    subject: reactivex.subject.Subject[Trade] = reactivex.subject.Subject()
    subscription = subject.pipe(op).subscribe()
    for seq in (1, 2, 2, 3):
        subject.on_next(trade(seq))
    assert op.stats() == type(op.stats())(passed=3, dropped=1, evicted=0, expired=0, keys=3)
    subscription.dispose()
    assert op.stats().keys == 0


def test_subscriptions_are_independent() -> None:
    """Each subscription has its own memory: both see the first sighting of every key."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, trade(1)), on_next(220, trade(1)))
    deduped = xs.pipe(ops.dedupe())
    first = scheduler.create_observer()
    second = scheduler.create_observer()
    deduped.subscribe(first)
    deduped.subscribe(second)
    scheduler.start()
    assert first.messages == second.messages == [on_next(210, trade(1))]


def test_key_function_error_goes_to_on_error() -> None:
    """An exception in the caller's key function ends the stream with that exception (not swallowed)."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, {"id": 1}), on_next(220, {}), on_next(230, {"id": 2}))
    results = scheduler.start(lambda: xs.pipe(ops.dedupe(lambda m: m["id"])))
    assert results.messages == [on_next(210, {"id": 1}), on_error(220, KeyError("id"))]
    assert isinstance(results.messages[-1].value.exception, KeyError)
    assert xs.subscriptions == [Subscription(200, 220)]


def test_unknown_type_without_key_is_a_config_error() -> None:
    """An item with no natural key (and no key function) ends the stream with a ConfigError naming it."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, trade(1)), on_next(220, "text"))
    results = scheduler.start(lambda: xs.pipe(ops.dedupe()))
    assert results.messages[0] == on_next(210, trade(1))
    error = results.messages[1]
    assert (error.time, error.value.kind, len(results.messages)) == (220, "E", 2)
    assert isinstance(error.value.exception, ConfigError)
    assert "no natural key for str" in str(error.value.exception)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_keys": None}, {"max_keys": 0}, {"ttl": 0.0}, {"key": 5}, {"version": "timestamp"}],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, Any]) -> None:
    """Unbounded memory, bad bounds and non-callable functions are refused when the operator is built."""
    with pytest.raises(ConfigError):
        ops.dedupe(**kwargs)


# ----------------------------------------------------------------------------------------- properties

events = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 12)), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(events=events, ttl=st.integers(1, 100))
def test_property_no_key_twice_within_window(events: list[tuple[int, int]], ttl: int) -> None:
    """Two emissions of one key are always at least ttl apart (ticks = seconds)."""
    scheduler = TestScheduler()
    time, messages = 200, []
    for gap, seq in events:
        time += gap
        messages.append(on_next(time, trade(seq)))
    xs = scheduler.create_hot_observable(messages)
    results = scheduler.start(lambda: xs.pipe(ops.dedupe(ttl=float(ttl), max_keys=None)), disposed=10_000)
    last: dict[Hashable, int] = {}
    for message in results.messages:
        key = natural_key(message.value.value)
        if key in last:
            assert message.time - last[key] >= ttl
        last[key] = message.time
    assert {natural_key(m.value.value) for m in results.messages} == {("KRW-BTC", s) for _, s in events}


@settings(max_examples=150, deadline=None)
@given(seqs=st.lists(st.integers(0, 30), max_size=80), max_keys=st.integers(1, 8))
def test_property_never_holds_more_than_max_keys(seqs: list[int], max_keys: int) -> None:
    """Checked before every item and at the end: the keys held never exceed max_keys."""
    op = ops.dedupe(max_keys=max_keys)
    held: list[int] = []
    subject: reactivex.subject.Subject[Trade] = reactivex.subject.Subject()
    subject.pipe(rx_ops.do_action(lambda _: held.append(op.stats().keys)), op).subscribe()
    for seq in seqs:
        subject.on_next(trade(seq))
    held.append(op.stats().keys)
    assert max(held) <= max_keys
    assert held[-1] == min(max_keys, len(set(seqs)))


@settings(max_examples=150, deadline=None)
@given(seqs=st.lists(st.integers(0, 30), max_size=80))
def test_property_unbounded_window_emits_first_sightings(seqs: list[int]) -> None:
    """While no bound is reached, the output is exactly the first sighting of each key, in order."""
    out: list[Trade] = []
    reactivex.from_iterable([trade(s) for s in seqs]).pipe(ops.dedupe()).subscribe(out.append)
    assert [t.sequential_id for t in out] == list(dict.fromkeys(seqs))


def test_doc_example(capsys: pytest.CaptureFixture[str]) -> None:
    """The example in docs/reference/operators/dedupe.md prints what the page shows."""
    printed, shown = run_doc_example("dedupe.md", capsys)
    assert printed == shown


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 4)), max_size=60),
    max_keys=st.integers(1, 5),
    versioned=st.booleans(),
)
def test_property_operator_decides_as_the_key_store(
    events: list[tuple[int, int]], max_keys: int, versioned: bool
) -> None:
    """The operator's inlined hot path passes exactly what KeyStore.offer calls NEW or NEWER."""
    items = [{"k": k, "v": v} for k, v in events]
    store = KeyStore(max_keys=max_keys)
    expected = [m for m in items if store.offer(m["k"], m["v"] if versioned else None) in (NEW, NEWER)]
    out: list[dict[str, int]] = []
    op = ops.dedupe(lambda m: m["k"], version=(lambda m: m["v"]) if versioned else None, max_keys=max_keys)
    reactivex.from_iterable(items).pipe(op).subscribe(out.append)
    assert out == expected

"""ops.validate, its built-in checks and repairs: real Upbit payloads, marble tests, and properties."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import msgspec
import pytest
import reactivex
from _docs import run_doc_example
from _models import ticker
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.subscription import Subscription

from rxmarket import ops
from rxmarket.errors import ConfigError, ValidationError
from rxmarket.models import Candle, Orderbook, OrderbookUnit, Ticker, Trade
from rxmarket.operators._validate import Quarantine, QuarantineStats, Rejected
from rxmarket.policy.checks import (
    PRICE_TOLERANCE,
    RATE_TOLERANCE,
    check_candle,
    check_orderbook,
    check_ticker,
    check_trade,
    repair_candle,
    repair_orderbook,
    repair_ticker,
    repair_trade,
)
from rxmarket.policy.checks import _book_failure as book_failure_slow_path

on_next, on_error, on_completed = ReactiveTest.on_next, ReactiveTest.on_error, ReactiveTest.on_completed




DATA = Path(__file__).resolve().parents[2] / "data" / "upbit"
WS = msgspec.json.Decoder(Ticker | Orderbook | Trade)


def book(asks: list[tuple[float, float]], bids: list[tuple[float, float]], ts: int = 1_000) -> Orderbook:
    return Orderbook.from_levels(symbol="KRW-BTC", timestamp=ts, asks=asks, bids=bids)


GOOD_BOOK = book([(101.0, 1.0), (102.0, 2.0)], [(100.0, 1.5), (99.0, 0.5)])


def trade(**changes: Any) -> Trade:
    t = Trade(
        symbol="KRW-BTC",
        price=99.0,
        volume=0.5,
        ask_bid="ASK",
        timestamp=1_000,
        sequential_id=1,
        prev_close=100.0,
        change="FALL",
        change_price=1.0,
    )
    return replace(t, **changes) if changes else t


def candle(**changes: Any) -> Candle:
    c = Candle(
        symbol="KRW-BTC",
        unit="1d",
        start=86_400_000,
        open=100.0,
        high=110.0,
        low=95.0,
        close=105.0,
        volume=3.0,
        value=300.0,
        timestamp=86_500_000,
        prev_close=100.0,
        change_price=5.0,
        change_rate=0.05,
    )
    return replace(c, **changes) if changes else c


# ------------------------------------------------------------------------------- real data passes


def real_items() -> list[Any]:
    items: list[Any] = [
        WS.decode((DATA / name).read_bytes())
        for name in (
            "ws_ticker_default.json",
            "ws_orderbook_default.json",
            "ws_orderbook_default_docs2025.json",
            "ws_trade_default.json",
            "ws_trade_default_2026.json",
        )
    ]
    items += [
        WS.decode(line) for line in (DATA / "ws_orderbook_default_2026.jsonl").read_bytes().splitlines()
    ]
    items += [WS.decode(line) for line in (DATA / "ws_stream_default.jsonl").read_bytes().splitlines()]
    for name in ("rest_ticker_2021.json", "rest_ticker_2026.json"):
        for t in json.loads((DATA / name).read_text()):
            items.append(
                Ticker(
                    symbol=t["market"],
                    price=t["trade_price"],
                    open=t["opening_price"],
                    high=t["high_price"],
                    low=t["low_price"],
                    prev_close=t["prev_closing_price"],
                    change=t["change"],
                    change_price=t["signed_change_price"],
                    change_rate=t["signed_change_rate"],
                    volume_24h=t["acc_trade_volume_24h"],
                    value_24h=t["acc_trade_price_24h"],
                    timestamp=t["timestamp"],
                    source="rest",
                )
            )
    for name in ("rest_candles_days_2021.json", "rest_candles_days_converted_2023.json"):
        for c in json.loads((DATA / name).read_text()):
            items.append(
                Candle(
                    symbol=c["market"],
                    unit="1d",
                    start=1,
                    open=c["opening_price"],
                    high=c["high_price"],
                    low=c["low_price"],
                    close=c["trade_price"],
                    volume=c["candle_acc_trade_volume"],
                    value=c["candle_acc_trade_price"],
                    timestamp=c["timestamp"],
                    prev_close=c["prev_closing_price"],
                    change_price=c["change_price"],
                    change_rate=c["change_rate"],
                    source="rest",
                )
            )
    return items


def test_real_upbit_payloads_pass_every_check() -> None:
    """Every captured Upbit ticker, book, trade and day candle (and the synthetic stream) passes unchanged."""
    items = real_items()
    out: list[Any] = []
    op = ops.validate(monotonic=False)  # captures of different days: their order means nothing
    reactivex.from_iterable(items).pipe(op).subscribe(out.append)
    assert op.quarantine.recent() == []
    assert out == items
    assert op.quarantine.stats().passed == len(items) > 300


# ------------------------------------------------------------------------------ built-in checks


@pytest.mark.parametrize(
    ("item", "check", "repairable"),
    [
        (ticker(price=-1.0), "positive_prices", False),
        (ticker(price=math.nan), "positive_prices", False),
        (ticker(prev_close=0.0), "positive_prices", False),
        (ticker(high=math.inf), "positive_prices", False),
        (ticker(price=120.0, high=110.0), "price_range", False),
        (ticker(open=90.0), "price_range", False),
        (ticker(volume_24h=-1.0), "sizes", False),
        (ticker(ts=0), "timestamp", False),
        (ticker(price=105.0, change="FALL"), "change", True),
        (ticker(price=105.0, change_price=-5.0), "change", True),
        (ticker(price=105.0, change_rate=0.5), "change", True),
    ],
)
def test_ticker_checks(item: Ticker, check: str, repairable: bool) -> None:
    """Each broken ticker fails the named check; only change fields are repairable."""
    failure = check_ticker(item)
    assert failure is not None
    assert (failure.check, failure.repairable) == (check, repairable)


@pytest.mark.parametrize(
    ("item", "check", "repairable"),
    [
        (book([(102.0, 1.0), (101.0, 1.0)], [(100.0, 1.0)]), "asks_ascending", True),
        (book([(101.0, 1.0), (101.0, 1.0)], [(100.0, 1.0)]), "asks_ascending", True),
        (book([(101.0, 1.0)], [(99.0, 1.0), (100.0, 1.0)]), "bids_descending", True),
        (book([(101.0, 1.0)], [(102.0, 1.0)]), "crossed", True),
        (book([(101.0, 1.0)], [(101.0, 1.0)]), "crossed", True),
        (book([(-101.0, 1.0)], [(100.0, 1.0)]), "positive_prices", False),
        (book([(101.0, 1.0)], [(math.nan, 1.0)]), "positive_prices", False),
        (book([(101.0, 1.0)], [(math.inf, 1.0)]), "positive_prices", False),
        (book([(101.0, -1.0)], [(100.0, 1.0)]), "sizes", False),
        (book([(101.0, 1.0)], [(100.0, math.nan)]), "sizes", False),
        (book([(101.0, 1.0)], [(100.0, 1.0)], ts=0), "timestamp", False),
    ],
)
def test_orderbook_checks(item: Orderbook, check: str, repairable: bool) -> None:
    """Each broken book fails the named check; order and crossing are repairable."""
    failure = check_orderbook(item)
    assert failure is not None
    assert (failure.check, failure.repairable) == (check, repairable)


def test_book_padding_allowed_only_at_the_end_of_a_side() -> None:
    """Upbit pads a thin side with zeros at its end; a zero followed by a real level is out of order."""
    thin = book([(101.0, 1.0), (102.0, 1.0), (103.0, 1.0)], [(100.0, 1.0)])
    assert thin.units[-1].bid_price == 0.0
    assert check_orderbook(thin) is None
    assert check_orderbook(book([], [(100.0, 1.0)])) is None
    holed = Orderbook(
        symbol="KRW-BTC",
        timestamp=1,
        total_ask_size=2.0,
        total_bid_size=2.0,
        units=(
            OrderbookUnit(101.0, 100.0, 1.0, 1.0),
            OrderbookUnit(0.0, 99.0, 0.0, 1.0),
            OrderbookUnit(102.0, 98.0, 1.0, 1.0),
        ),
    )
    failure = check_orderbook(holed)
    assert failure is not None
    assert failure.check == "asks_ascending"


@pytest.mark.parametrize(
    ("item", "check", "repairable"),
    [
        (trade(price=0.0), "positive_prices", False),
        (trade(volume=0.0), "sizes", False),
        (trade(ask_bid="BUY"), "side", False),
        (trade(timestamp=-5), "timestamp", False),
        (trade(prev_close=-1.0), "positive_prices", False),
        (trade(change="RISE"), "change", True),
        (trade(change_price=3.0), "change", True),
    ],
)
def test_trade_checks(item: Trade, check: str, repairable: bool) -> None:
    """Each broken trade fails the named check; change fields are repairable."""
    failure = check_trade(item)
    assert failure is not None
    assert (failure.check, failure.repairable) == (check, repairable)


def test_trade_change_may_be_signed_or_unsigned() -> None:
    """A trade's change_price agrees in Upbit's unsigned WebSocket form and in REST's signed form."""
    assert check_trade(trade(change_price=1.0)) is None
    assert check_trade(trade(change_price=-1.0)) is None
    assert check_trade(trade(prev_close=None, change=None, change_price=None)) is None


@pytest.mark.parametrize(
    ("item", "check", "repairable"),
    [
        (candle(low=-1.0), "positive_prices", False),
        (candle(close=120.0), "price_range", False),
        (candle(open=90.0), "price_range", False),
        (candle(volume=-0.1), "sizes", False),
        (candle(unit="2m"), "unit", False),
        (candle(start=0), "timestamp", False),
        (candle(change_price=7.0), "change", True),
        (candle(change_rate=0.07), "change", True),
    ],
)
def test_candle_checks(item: Candle, check: str, repairable: bool) -> None:
    """Each broken candle fails the named check; change fields are repairable."""
    failure = check_candle(item)
    assert failure is not None
    assert (failure.check, failure.repairable) == (check, repairable)


# -------------------------------------------------------------------------------------- repairs


def test_repair_ticker_recomputes_change_fields() -> None:
    """A ticker's change, change_price and change_rate are recomputed from price and prev_close."""
    fixed = repair_ticker(ticker(price=95.0, change="RISE", change_price=5.0, change_rate=0.05))
    assert (fixed.change, fixed.change_price, fixed.change_rate) == ("FALL", -5.0, -0.05)
    assert check_ticker(fixed) is None


def test_repair_orderbook_sorts_drops_crossed_and_recomputes_totals() -> None:
    """Levels are re-sorted, bids at or above the best ask dropped, totals summed from what is kept."""
    broken = book([(102.0, 2.0), (101.0, 1.0)], [(99.0, 1.0), (101.5, 4.0), (100.0, 3.0)])
    fixed = repair_orderbook(broken)
    assert [(lv.price, lv.size) for lv in fixed.asks] == [(101.0, 1.0), (102.0, 2.0)]
    assert [(lv.price, lv.size) for lv in fixed.bids] == [(100.0, 3.0), (99.0, 1.0)]
    assert (fixed.total_ask_size, fixed.total_bid_size) == (3.0, 4.0)
    assert (fixed.symbol, fixed.timestamp, fixed.source) == (broken.symbol, broken.timestamp, broken.source)
    assert check_orderbook(fixed) is None


def test_repair_trade_and_candle_recompute_change() -> None:
    """Trade: unsigned change_price and direction; candle: the signed fields that were sent."""
    fixed_trade = repair_trade(trade(change="RISE", change_price=5.0))
    assert (fixed_trade.change, fixed_trade.change_price) == ("FALL", 1.0)
    fixed_candle = repair_candle(candle(change_price=1.0, change_rate=None))
    assert (fixed_candle.change_price, fixed_candle.change_rate) == (5.0, None)


# ------------------------------------------------------------------------------------- operator


def test_drop_mode_quarantines_with_reason() -> None:
    """Invalid items are dropped and published on the quarantine with check, reason and action."""
    scheduler = TestScheduler()
    bad = ticker(ts=1_100, price=-3.0)
    xs = scheduler.create_hot_observable(
        on_next(210, ticker(1_000)), on_next(220, bad), on_next(230, ticker(1_200)), on_completed(300)
    )
    op = ops.validate()
    rejected: list[Rejected] = []
    op.quarantine.subscribe(rejected.append)
    results = scheduler.start(lambda: xs.pipe(op))
    assert results.messages == [on_next(210, ticker(1_000)), on_next(230, ticker(1_200)), on_completed(300)]
    assert xs.subscriptions == [Subscription(200, 300)]
    assert [(r.item, r.check, r.action) for r in rejected] == [(bad, "positive_prices", "dropped")]
    assert "-3.0" in rejected[0].reason
    assert op.quarantine.stats() == QuarantineStats(
        passed=2, dropped=1, corrected=0, errors=0, by_check={"positive_prices": 1}
    )


def test_error_mode_ends_the_stream_with_validation_error() -> None:
    """on_invalid="error": the first invalid item ends the stream; upstream is disposed at that tick."""
    scheduler = TestScheduler()
    bad = book([(101.0, 1.0)], [(102.0, 1.0)])
    xs = scheduler.create_hot_observable(on_next(210, GOOD_BOOK), on_next(220, bad), on_next(230, GOOD_BOOK))
    op = ops.validate(on_invalid="error")
    results = scheduler.start(lambda: xs.pipe(op))
    assert results.messages[0] == on_next(210, GOOD_BOOK)
    error = results.messages[1]
    assert (len(results.messages), error.time) == (2, 220)
    assert isinstance(error.value.exception, ValidationError)
    assert error.value.exception.item is bad
    assert error.value.exception.reason.startswith("crossed:")
    assert xs.subscriptions == [Subscription(200, 220)]
    assert [r.action for r in op.quarantine.recent()] == ["error"]
    assert op.quarantine.stats().errors == 1


def test_correct_mode_emits_repaired_copy_and_tags_it() -> None:
    """on_invalid="correct": a repairable item is replaced by its repair; the quarantine records both."""
    scheduler = TestScheduler()
    bad = book([(102.0, 1.0), (101.0, 1.0)], [(100.0, 1.0)], ts=2_000)
    xs = scheduler.create_hot_observable(on_next(210, bad))
    op = ops.validate(on_invalid="correct")
    results = scheduler.start(lambda: xs.pipe(op))
    fixed = repair_orderbook(bad)
    assert results.messages == [on_next(210, fixed)]
    (record,) = op.quarantine.recent()
    assert (record.item, record.corrected, record.action, record.check) == (
        bad,
        fixed,
        "corrected",
        "asks_ascending",
    )
    assert op.quarantine.stats().corrected == 1


def test_correct_mode_drops_what_cannot_be_repaired() -> None:
    """A failure that is not repairable, or a repair that still fails, is dropped and says why."""
    duplicated = book([(101.0, 1.0), (101.0, 2.0)], [(100.0, 1.0)])  # re-sorting cannot fix a repeat
    out: list[Any] = []
    op = ops.validate(on_invalid="correct")
    reactivex.of(ticker(price=0.0), duplicated).pipe(op).subscribe(out.append)
    assert out == []
    reasons = [(r.check, r.action, "after repair" in r.reason) for r in op.quarantine.recent()]
    assert reasons == [("positive_prices", "dropped", False), ("asks_ascending", "dropped", True)]


def test_older_timestamp_per_symbol_is_rejected() -> None:
    """Tickers and books may not go back in time per symbol; equal timestamps and other symbols pass."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, ticker(1_000)),
        on_next(220, ticker(900)),
        on_next(230, ticker(1_000)),
        on_next(240, ticker(500, symbol="KRW-ETH")),
    )
    op = ops.validate()
    results = scheduler.start(lambda: xs.pipe(op))
    assert results.messages == [
        on_next(210, ticker(1_000)),
        on_next(230, ticker(1_000)),
        on_next(240, ticker(500, symbol="KRW-ETH")),
    ]
    assert [r.check for r in op.quarantine.recent()] == ["timestamp_order"]


def test_a_book_is_not_held_back_by_a_newer_ticker_of_its_market() -> None:
    """Tickers and books of one market are separate streams: a book older than the last ticker passes."""
    book = Orderbook.from_levels(symbol="KRW-BTC", timestamp=900, asks=[(101.0, 1.0)], bids=[(99.0, 1.0)])
    out: list[Any] = []
    op = ops.validate()
    reactivex.of(ticker(1_000), book).pipe(op).subscribe(out.append)
    assert (out, op.quarantine.stats().passed) == ([ticker(1_000), book], 2)


def test_books_at_two_levels_keep_their_own_watermark() -> None:
    """A book grouped at another price level is another stream: its older timestamp is not a step back."""
    def book(ts: int, level: float | None) -> Orderbook:
        return Orderbook.from_levels(
            symbol="KRW-BTC", timestamp=ts, asks=[(101.0, 1.0)], bids=[(99.0, 1.0)], level=level
        )

    out: list[Any] = []
    books_in = [book(1_000, None), book(900, 10.0), book(800, None)]
    reactivex.from_iterable(books_in).pipe(ops.validate()).subscribe(out.append)
    assert out == [book(1_000, None), book(900, 10.0)]


def test_rejected_item_does_not_move_the_watermark() -> None:
    """A far-future ticker that fails another check does not block the good tickers after it."""
    out: list[Ticker] = []
    reactivex.of(ticker(10**13, price=-1.0), ticker(1_000)).pipe(ops.validate()).subscribe(out.append)
    assert out == [ticker(1_000)]


def test_trades_may_arrive_out_of_order() -> None:
    """Trades are events (a REST page is newest first): no timestamp-order check for them."""
    out: list[Trade] = []
    reactivex.of(trade(timestamp=2_000), trade(timestamp=1_000)).pipe(ops.validate()).subscribe(out.append)
    assert [t.timestamp for t in out] == [2_000, 1_000]


def test_max_age_uses_the_scheduler_clock() -> None:
    """max_age=5 s rejects an item whose exchange time is more than 5 s behind virtual time."""
    scheduler = TestScheduler()
    # tick 210 is 210 s after the epoch: 210_000 ms
    fresh, stale = ticker(ts=206_000), ticker(ts=204_000, symbol="KRW-ETH")
    xs = scheduler.create_hot_observable(on_next(210, fresh), on_next(210, stale))
    op = ops.validate(max_age=5.0)
    results = scheduler.start(lambda: xs.pipe(op))
    assert results.messages == [on_next(210, fresh)]
    assert [r.check for r in op.quarantine.recent()] == ["max_age"]


def test_user_checks_true_none_false_and_reason() -> None:
    """A user check passes with None/True and fails with False (its name) or a reason string."""

    def small(t: Trade) -> bool:
        return t.volume < 1.0

    op = ops.validate(small, lambda t: None if t.price < 1_000 else f"price {t.price} too high")
    out: list[Trade] = []
    reactivex.of(trade(), trade(volume=2.0), trade(price=2_000.0, prev_close=None)).pipe(op).subscribe(
        out.append
    )
    assert out == [trade()]
    assert [(r.check, r.reason) for r in op.quarantine.recent()] == [
        ("small", "small returned False"),
        ("<lambda>", "price 2000.0 too high"),
    ]


def test_user_checks_work_on_any_type() -> None:
    """Items that are not models get only the user checks."""
    out: list[int] = []
    reactivex.of(1, -2, 3).pipe(ops.validate(lambda n: n > 0)).subscribe(out.append)
    assert out == [1, 3]


def test_user_check_error_goes_to_on_error() -> None:
    """A user check that raises ends the stream with that exception, counted as an error."""
    scheduler = TestScheduler()
    boom = ZeroDivisionError("float division by zero")
    xs = scheduler.create_hot_observable(on_next(210, trade()), on_next(220, trade(volume=0.0)))
    op = ops.validate(lambda t: 1 / t.volume > 0, builtins=False)
    results = scheduler.start(lambda: xs.pipe(op))
    assert results.messages == [on_next(210, trade()), on_error(220, boom)]
    assert isinstance(results.messages[-1].value.exception, ZeroDivisionError)
    assert xs.subscriptions == [Subscription(200, 220)]
    assert op.quarantine.stats().errors == 1


def test_user_check_returning_nonsense_is_a_type_error() -> None:
    """A check must return None, a bool or a str; anything else ends the stream with TypeError."""
    errors: list[Exception] = []
    reactivex.of(trade()).pipe(ops.validate(lambda t: 3)).subscribe(on_error=errors.append)
    assert len(errors) == 1
    assert isinstance(errors[0], TypeError)


def test_one_quarantine_shared_by_two_operators() -> None:
    """Two validate operators given one quarantine add to the same counters and stream."""
    quarantine = Quarantine()
    seen: list[Rejected] = []
    quarantine.subscribe(seen.append)
    reactivex.of(ticker(price=-1.0)).pipe(ops.validate(quarantine=quarantine)).subscribe()
    reactivex.of(trade(volume=-1.0), trade()).pipe(ops.validate(quarantine=quarantine)).subscribe()
    assert [r.check for r in seen] == ["positive_prices", "sizes"]
    assert (quarantine.stats().dropped, quarantine.stats().passed) == (2, 1)


def test_quarantine_keeps_recent_and_closes() -> None:
    """recent() keeps the last `keep` rejects; close() completes the quarantine stream."""
    quarantine = Quarantine(keep=2)
    completed: list[bool] = []
    quarantine.subscribe(on_completed=lambda: completed.append(True))
    reactivex.of(*(trade(volume=-float(i)) for i in range(1, 4))).pipe(
        ops.validate(quarantine=quarantine)
    ).subscribe()
    assert [r.item.volume for r in quarantine.recent()] == [-2.0, -3.0]
    quarantine.close()
    assert completed == [True]


def test_subscriptions_have_their_own_watermarks() -> None:
    """Each subscription keeps its own per-symbol timestamps."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, ticker(1_000)), on_next(220, ticker(900)))
    validated = xs.pipe(ops.validate())
    first, second = scheduler.create_observer(), scheduler.create_observer()
    validated.subscribe(first)
    scheduler.schedule_absolute(215, lambda *_: validated.subscribe(second))
    scheduler.start()
    assert first.messages == [on_next(210, ticker(1_000))]
    assert second.messages == [on_next(220, ticker(900))]


@pytest.mark.parametrize(
    "kwargs",
    [{"on_invalid": "ignore"}, {"max_age": 0.0}, {"max_keys": 0}],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, Any]) -> None:
    """An unknown mode, a max_age not above 0 or a bad bound is refused when the operator is built."""
    with pytest.raises(ConfigError):
        ops.validate(**kwargs)


def test_non_callable_check_is_a_config_error() -> None:
    """A check must be callable."""
    with pytest.raises(ConfigError, match="function of one item"):
        ops.validate("price > 0")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- properties
# An independent oracle, written from the rules in the docs rather than from the code under test.


def _ok_price(x: float) -> bool:
    return math.isfinite(x) and x > 0


def ticker_ok(t: Ticker) -> bool:
    prices = (t.price, t.open, t.high, t.low, t.prev_close)
    if not all(_ok_price(p) for p in prices) or t.timestamp <= 0:
        return False
    if not (t.low <= t.price <= t.high and t.low <= t.open <= t.high):
        return False
    if math.isnan(t.volume_24h) or math.isnan(t.value_24h) or min(t.volume_24h, t.value_24h) < 0:
        return False
    diff = t.price - t.prev_close
    direction = "RISE" if diff > 0 else "FALL" if diff < 0 else "EVEN"
    return (
        t.change == direction
        and abs(t.change_price - diff) <= PRICE_TOLERANCE * t.prev_close
        and abs(t.change_rate - diff / t.prev_close) <= RATE_TOLERANCE
    )


def book_ok(b: Orderbook) -> bool:
    if (
        b.timestamp <= 0
        or math.isnan(b.total_ask_size + b.total_bid_size)
        or min(b.total_ask_size, b.total_bid_size) < 0
    ):
        return False
    for side, ascending in (([u.ask_price for u in b.units], True), ([u.bid_price for u in b.units], False)):
        real = side[: next((i for i, p in enumerate(side) if p == 0.0), len(side))]  # before the padding
        if any(p != 0.0 for p in side[len(real) :]) or not all(_ok_price(p) for p in real):
            return False
        if not all((x < y) if ascending else (x > y) for x, y in pairwise(real)):
            return False
    sizes = [s for u in b.units for s in (u.ask_size, u.bid_size)]
    if any(math.isnan(s) or s < 0 for s in sizes):
        return False
    asks, bids = b.asks, b.bids
    return not (asks and bids and bids[0].price >= asks[0].price)


def trade_ok(t: Trade) -> bool:
    if not (_ok_price(t.price) and math.isfinite(t.volume) and t.volume > 0 and t.timestamp > 0):
        return False
    if t.ask_bid not in ("ASK", "BID"):
        return False
    if t.prev_close is None:
        return True
    if not _ok_price(t.prev_close):
        return False
    diff = t.price - t.prev_close
    if (
        t.change_price is not None
        and not abs(abs(t.change_price) - abs(diff)) <= PRICE_TOLERANCE * t.prev_close
    ):
        return False
    direction = "RISE" if diff > 0 else "FALL" if diff < 0 else "EVEN"
    return t.change is None or t.change == direction


ORACLE = {Ticker: ticker_ok, Orderbook: book_ok, Trade: trade_ok}

prices = st.one_of(
    st.sampled_from([0.0, -1.0, math.nan, math.inf]),
    st.floats(90.0, 110.0),
    st.sampled_from([99.0, 100.0, 101.0]),
)
sizes = st.one_of(st.sampled_from([0.0, -0.5, math.nan]), st.floats(0.0, 5.0))


@st.composite
def tickers(draw: st.DrawFn) -> Ticker:
    """A consistent ticker, or one with one or two fields replaced by arbitrary (often bad) values."""
    t = ticker(
        ts=draw(st.integers(0, 5)), price=draw(st.floats(95.0, 105.0)), symbol=draw(st.sampled_from("AB"))
    )
    fields: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 2))):
        name = draw(
            st.sampled_from(
                [
                    "price",
                    "high",
                    "low",
                    "open",
                    "prev_close",
                    "volume_24h",
                    "change_price",
                    "change_rate",
                    "change",
                ]
            )
        )
        fields[name] = draw(st.sampled_from(["RISE", "FALL", "EVEN"]) if name == "change" else prices)
    return replace(t, **fields)


@st.composite
def books(draw: st.DrawFn) -> Orderbook:
    asks = draw(st.lists(st.tuples(prices, sizes), max_size=5))
    bids = draw(st.lists(st.tuples(prices, sizes), max_size=5))
    if draw(st.booleans()):  # mostly well-formed books, so the valid path is exercised too
        asks = sorted((p + 20.0, abs(s)) for p, s in asks if _ok_price(p) and s == s)
        bids = sorted(((p - 20.0, abs(s)) for p, s in bids if _ok_price(p) and s == s), reverse=True)
    units = [
        OrderbookUnit(a[0], b[0], a[1], b[1])
        for a, b in zip(asks + [(0.0, 0.0)] * 5, bids + [(0.0, 0.0)] * 5, strict=False)
    ][: max(len(asks), len(bids))]
    return Orderbook(
        symbol=draw(st.sampled_from(["A", "B"])),
        timestamp=draw(st.integers(0, 5)),
        units=tuple(units),
        total_ask_size=draw(sizes),
        total_bid_size=1.0,
    )


@st.composite
def trades(draw: st.DrawFn) -> Trade:
    """A consistent trade, or one with one or two fields replaced by arbitrary (often bad) values."""
    price = draw(st.floats(95.0, 105.0))
    diff = price - 100.0
    t = trade(
        price=price, change="RISE" if diff > 0 else "FALL" if diff < 0 else "EVEN", change_price=abs(diff)
    )
    choices: dict[str, st.SearchStrategy[Any]] = {
        "price": prices,
        "volume": sizes,
        "ask_bid": st.sampled_from(["ASK", "BID", "X"]),
        "timestamp": st.integers(-1, 5),
        "prev_close": st.one_of(st.none(), prices),
        "change": st.sampled_from([None, "RISE", "FALL", "EVEN"]),
        "change_price": st.one_of(st.none(), sizes),
    }
    fields: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(sorted(choices)))
        fields[name] = draw(choices[name])
    return replace(t, **fields)


models = st.lists(st.one_of(tickers(), books(), trades()), max_size=30)


@settings(max_examples=300, deadline=None)
@given(items=models)
def test_property_drop_mode_lets_nothing_invalid_through(items: list[Any]) -> None:
    """In drop mode every emitted item satisfies the oracle, and nothing is lost: passed + dropped = all."""
    out: list[Any] = []
    op = ops.validate(monotonic=False)
    reactivex.from_iterable(items).pipe(op).subscribe(out.append)
    assert all(ORACLE[type(x)](x) for x in out)
    assert [x for x in items if ORACLE[type(x)](x)] == out  # and every valid item passes
    stats = op.quarantine.stats()
    assert (stats.passed, stats.dropped) == (len(out), len(items) - len(out))


@settings(max_examples=300, deadline=None)
@given(items=models)
def test_property_correct_mode_emits_only_valid_items(items: list[Any]) -> None:
    """In correct mode every emitted item (original or repaired) satisfies the oracle."""
    out: list[Any] = []
    op = ops.validate(on_invalid="correct", monotonic=False)
    reactivex.from_iterable(items).pipe(op).subscribe(out.append)
    assert all(ORACLE[type(x)](x) for x in out)
    stats = op.quarantine.stats()
    assert stats.passed + stats.corrected + stats.dropped == len(items)


@settings(max_examples=300, deadline=None)
@given(
    book=st.one_of(
        books(),
        st.builds(
            lambda units, ts, total: Orderbook(
                symbol="A", timestamp=ts, units=tuple(units), total_ask_size=total, total_bid_size=1.0
            ),
            st.lists(st.builds(OrderbookUnit, prices, prices, sizes, sizes), max_size=4),
            st.integers(-1, 2),
            sizes,
        ),
    )
)
def test_property_book_fast_path_agrees_with_the_slow_path(book: Orderbook) -> None:
    """check_orderbook's fast path gives the verdict of the slow path, which examines every rule in turn."""
    assert check_orderbook(book) == book_failure_slow_path(book)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(tickers(), max_size=30))
def test_property_timestamps_never_go_back_per_symbol(items: list[Ticker]) -> None:
    """With the default monotonic check, each symbol's emitted timestamps never decrease."""
    out: list[Ticker] = []
    reactivex.from_iterable(items).pipe(ops.validate()).subscribe(out.append)
    for symbol in ("A", "B"):
        stamps = [t.timestamp for t in out if t.symbol == symbol]
        assert stamps == sorted(stamps)


def test_doc_example(capsys: pytest.CaptureFixture[str]) -> None:
    """The example in docs/reference/operators/validate.md prints what the page shows."""
    printed, shown = run_doc_example("validate.md", capsys)
    assert printed == shown

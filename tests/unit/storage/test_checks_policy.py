"""verify judges items by the policy checks of ops.validate: one source of truth, real payloads still pass."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from rxmarket import ops
from rxmarket.exchanges.upbit import protocol
from rxmarket.models import Candle, Orderbook, Status, Ticker, Trade
from rxmarket.operators._validate import Rejected
from rxmarket.policy.checks import BUILTIN_CHECKS
from rxmarket.storage import (
    Marker,
    RecordingWriter,
    book_not_crossed,
    default_checks,
    positive_prices,
    verify,
    within_range,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "upbit"
T0 = 1_785_397_531_885
START = T0 - T0 % 60_000
REST_CANDLE_UNITS = {
    "minutes": None, "days": "1d", "weeks": "1w", "months": "1mo", "seconds": "1s", "years": "1y",
}


def _ticker(**kw: Any) -> Ticker:
    base: dict[str, Any] = dict(
        symbol="KRW-BTC", price=100.0, open=100.0, high=110.0, low=90.0, prev_close=99.0, change="RISE",
        change_price=1.0, change_rate=1.0 / 99.0, volume_24h=1000.0, value_24h=1e8, timestamp=T0,
    )
    return Ticker(**(base | kw))


def _trade(**kw: Any) -> Trade:
    base: dict[str, Any] = dict(
        symbol="KRW-BTC", price=100.0, volume=0.01, ask_bid="BID", timestamp=T0, sequential_id=1,
        prev_close=99.0, change="RISE", change_price=1.0,
    )
    return Trade(**(base | kw))


def _candle(**kw: Any) -> Candle:
    base: dict[str, Any] = dict(
        symbol="KRW-BTC", unit="1m", start=START, open=100.0, high=105.0, low=95.0, close=100.0,
        volume=1.0, value=100.0, timestamp=START + 30_000,
    )
    return Candle(**(base | kw))


def _book(asks: list[tuple[float, float]] | None = None, bids: list[tuple[float, float]] | None = None,
          ts: int = T0) -> Orderbook:
    return Orderbook.from_levels(
        symbol="KRW-BTC", timestamp=ts, asks=asks or [(101.0, 1.0), (102.0, 2.0)],
        bids=bids or [(99.0, 1.5), (98.0, 3.0)], level=0.0,
    )


def _record(path: Path, items: list[Any]) -> Path:
    with RecordingWriter(path, flush_every=10_000) as w:
        for item in items:
            w.write(item)
    return path


def _real_items() -> list[Any]:
    """Every Ticker/Orderbook/Trade/Candle in the captured Upbit payloads, through our own decoders."""
    items: list[Any] = []
    for p in sorted(DATA.glob("ws_*.json*")):
        frames = p.read_bytes().splitlines() if p.suffix == ".jsonl" else [p.read_bytes()]
        for frame in frames:
            try:
                item = protocol.decode_ws(frame)
            except Exception:  # error frames, status answers: not market data
                continue
            if type(item) in BUILTIN_CHECKS:
                items.append(item)
    for p in sorted(DATA.glob("rest_*.json")):
        name = p.stem.split("_")
        if name[1] in ("ticker", "trades") or (name[1] == "orderbook" and "instruments" not in name):
            items += protocol.decode_rest(name[1], p.read_bytes())
        elif name[1] == "candles":
            items += protocol.decode_rest("candles", p.read_bytes(), unit=REST_CANDLE_UNITS[name[2]])
    return items


# ---------------------------------------------------------------------------------------- one truth


def test_real_upbit_payloads_pass_the_default_checks(tmp_path: Path) -> None:
    """Every captured Upbit ticker, book, trade and candle, recorded, fails no default check of verify."""
    items = _real_items()
    report = verify(_record(tmp_path / "r", items), allow_gaps=True)
    assert report.records == len(items) > 500
    assert {kind for kind in report.counts} == {"ticker", "orderbook", "trade", "candle"}
    assert (report.check_failures, report.samples["check"]) == (0, [])


_BAD = st.sampled_from([0.0, -1.0, math.nan, math.inf, 50.0, 100.0, 120.0, 200.0])


@st.composite
def _items(draw: st.DrawFn) -> Any:
    """A model, consistent or broken in one or two fields (values, order, change fields, side, unit)."""
    kind = draw(st.sampled_from(["ticker", "trade", "candle", "book"]))
    if kind == "ticker":
        fields = ["price", "open", "high", "low", "prev_close", "volume_24h", "change_price"]
        field = draw(st.sampled_from(fields))
        item: Any = _ticker(**{field: draw(_BAD)})
        if draw(st.booleans()):
            item = replace(item, change=draw(st.sampled_from(["RISE", "EVEN", "FALL"])))
        return item
    if kind == "trade":
        field = draw(st.sampled_from(["price", "volume", "prev_close", "change_price"]))
        item = _trade(**{field: draw(_BAD)}, ask_bid=draw(st.sampled_from(["BID", "ASK", "bid"])))
        return replace(item, timestamp=draw(st.sampled_from([T0, 0])))
    if kind == "candle":
        field = draw(st.sampled_from(["open", "high", "low", "close", "volume", "value"]))
        return _candle(**{field: draw(_BAD)}, unit=draw(st.sampled_from(["1m", "1d", "2m"])))
    ask = draw(st.sampled_from([101.0, 99.0, 98.5, 0.0, -1.0]))
    bid = draw(st.sampled_from([99.0, 101.0, 102.0, math.nan]))
    asks = [(ask, 1.0), (102.0, draw(st.sampled_from([2.0, -2.0])))]
    return _book(asks=asks, bids=[(bid, 1.5), (98.0, 3.0)])


@settings(max_examples=40, deadline=None)
@given(st.lists(_items(), min_size=1, max_size=25))
def test_verify_reports_exactly_what_validate_rejects(items: list[Any]) -> None:
    """verify's check findings are ops.validate's rejects: same items, same check, same reason."""
    rejected: list[Rejected] = []
    check = ops.validate(monotonic=False)  # order is verify's own finding, apart from the checks
    check.quarantine.subscribe(rejected.append)
    reactivex.from_iterable(items).pipe(check).subscribe()
    position = {id(item): i for i, item in enumerate(items)}
    expected = [(position[id(r.item)], f"{r.check}: {r.reason}") for r in rejected]
    with tempfile.TemporaryDirectory() as tmp:
        report = verify(_record(Path(tmp) / "r", items), allow_gaps=True, max_samples=len(items))
    assert [(f.index, f.reason) for f in report.samples["check"]] == expected
    assert report.check_failures == len(expected)


def test_verify_now_reports_what_the_interim_checks_missed(tmp_path: Path) -> None:
    """Items the old storage checks passed but the policy rejects are check failures, named by check."""
    items = [
        _trade(volume=0.0),                                  # a trade of nothing did not happen
        _trade(timestamp=0, sequential_id=2),                # no exchange time
        _trade(ask_bid="bid", sequential_id=3, timestamp=T0 + 1),  # not an Upbit side
        _ticker(change="FALL"),                              # change disagrees with price - prev_close
        _candle(unit="2m"),                                  # not an Upbit candle unit
        _book(asks=[(102.0, 1.0), (101.0, 1.0)]),            # asks not ascending
    ]
    report = verify(_record(tmp_path / "r", items), allow_gaps=True)
    assert [f.reason.split(":")[0] for f in report.samples["check"]] == [
        "sizes", "timestamp", "side", "change", "unit", "asks_ascending"]
    assert not report.ok


# ----------------------------------------------------------------------------------- the adapters


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (_trade(price=0.0), ("positive_prices: trade price 0.0 is not a finite price > 0", None, None)),
        (_trade(volume=-1.0), ("sizes: trade volume -1.0 is not > 0", None, None)),
        (_candle(close=200.0), (None, "price_range: candle open 100.0 / close 200.0 outside "
                                      "[low 95.0, high 105.0]", None)),
        (_ticker(price=120.0), (None, "price_range: ticker price 120.0 / open 100.0 outside the day's "
                                      "range [90.0, 110.0]", None)),
        (_book(bids=[(102.0, 1.0)]), (None, None, "crossed: book crossed: best bid 102.0 >= best ask 101.0")),
        (_ticker(change="FALL"), (None, None, None)),  # fails only `change`: none of the three
        (_ticker(), (None, None, None)),
        (_candle(), (None, None, None)),
    ],
)
def test_the_three_named_checks_report_their_own_policy_failures(
    item: Any, expected: tuple[str | None, str | None, str | None]
) -> None:
    """positive_prices, within_range and book_not_crossed each report the policy failure of their kind."""
    assert (positive_prices(item), within_range(item), book_not_crossed(item)) == expected


@pytest.mark.parametrize(
    "item",
    [_ticker(low=-1.0), _trade(ask_bid="X"), _candle(high=10.0), _book(asks=[(0.0, 1.0), (101.0, 1.0)]),
     _ticker()],
)
def test_default_checks_give_the_policy_verdict(item: Any) -> None:
    """The default checks fail an item exactly when its model's built-in check does, with its reason."""
    failure = BUILTIN_CHECKS[type(item)](item)
    reasons = [r for r in (check(item) for check in default_checks()) if r is not None]
    assert reasons == ([] if failure is None else [f"{failure.check}: {failure.reason}"])


def test_items_without_built_in_checks_pass() -> None:
    """A marker, a Status or any other object is not judged by the default or the named checks."""
    status = Status(kind="live", timestamp=T0 / 1000)
    for item in (Marker(kind="note", timestamp=T0), status, object()):
        assert [c(item) for c in (*default_checks(), positive_prices, within_range, book_not_crossed)] == [
            None] * (len(default_checks()) + 3)

"""Properties of the decoder, checked with hypothesis and exhaustive truncation.

* A generated DEFAULT frame and its SIMPLE re-encoding (built with the protocol doc's key tables, section 5,
  keys in any order) decode to **equal** models, whose fields are the generated values.
* Random bytes, random JSON, mutated real frames and every truncation of every real frame raise nothing but
  the library's typed errors (``ProtocolError`` for anything undecodable).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxmarket.errors import ExchangeRejected, ProtocolError, RateLimited
from rxmarket.exchanges.upbit import protocol
from rxmarket.exchanges.upbit.protocol import WS_CANDLE_UNITS, KeepAlive, SubscriptionList
from rxmarket.models import Candle, Orderbook, Ticker, Trade

DATA = Path(__file__).resolve().parent.parent / "data" / "upbit"
MESSAGES = (Ticker, Orderbook, Trade, Candle, KeepAlive, SubscriptionList)
FAST = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

# DEFAULT key -> SIMPLE key, protocol doc section 5 (written out here, independently of _wire.py).
TICKER_KEYS = {
    "type": "ty", "code": "cd", "opening_price": "op", "high_price": "hp", "low_price": "lp",
    "trade_price": "tp", "prev_closing_price": "pcp", "change": "c", "change_price": "cp",
    "signed_change_price": "scp", "change_rate": "cr", "signed_change_rate": "scr", "trade_volume": "tv",
    "acc_trade_volume": "atv", "acc_trade_volume_24h": "atv24h", "acc_trade_price": "atp",
    "acc_trade_price_24h": "atp24h", "trade_date": "tdt", "trade_time": "ttm", "trade_timestamp": "ttms",
    "ask_bid": "ab", "acc_ask_volume": "aav", "acc_bid_volume": "abv", "highest_52_week_price": "h52wp",
    "highest_52_week_date": "h52wdt", "lowest_52_week_price": "l52wp", "lowest_52_week_date": "l52wdt",
    "market_state": "ms", "delisting_date": "dd", "is_trading_suspended": "its", "market_warning": "mw",
    "trade_status": "ts", "market_state_for_ios": "msfi", "timestamp": "tms", "stream_type": "st",
}
TRADE_KEYS = {
    "type": "ty", "code": "cd", "trade_price": "tp", "trade_volume": "tv", "ask_bid": "ab",
    "prev_closing_price": "pcp", "change": "c", "change_price": "cp", "trade_date": "td",
    "trade_time": "ttm", "trade_timestamp": "ttms", "timestamp": "tms", "sequential_id": "sid",
    "best_ask_price": "bap", "best_ask_size": "bas", "best_bid_price": "bbp", "best_bid_size": "bbs",
    "stream_type": "st",
}
BOOK_KEYS = {
    "type": "ty", "code": "cd", "total_ask_size": "tas", "total_bid_size": "tbs", "orderbook_units": "obu",
    "timestamp": "tms", "level": "lv", "stream_type": "st",
}
UNIT_KEYS = {"ask_price": "ap", "ask_size": "as", "bid_price": "bp", "bid_size": "bs"}
CANDLE_KEYS = {
    "type": "ty", "code": "cd", "candle_date_time_utc": "cdttmu", "candle_date_time_kst": "cdttmk",
    "opening_price": "op", "high_price": "hp", "low_price": "lp", "trade_price": "tp",
    "candle_acc_trade_volume": "catv", "candle_acc_trade_price": "catp", "timestamp": "tms",
    "stream_type": "st",
}

# --- strategies -------------------------------------------------------------------------------------------

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**15), max_value=10**15),  # Upbit also sends prices without a dot
)
millis = st.integers(min_value=0, max_value=2**53)
text = st.text(max_size=12)
codes = st.from_regex(r"[A-Z]{3,4}-[A-Z0-9]{2,6}", fullmatch=True)
stream_types = st.sampled_from(["SNAPSHOT", "REALTIME"])
changes = st.sampled_from(["RISE", "EVEN", "FALL"])


def optional(**fields: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    """Optional keys may also be JSON null, as Upbit sends for unset fields."""
    return {k: st.one_of(st.none(), v) for k, v in fields.items()}


tickers = st.fixed_dictionaries(
    {
        "type": st.just("ticker"), "code": codes, "opening_price": numbers, "high_price": numbers,
        "low_price": numbers, "trade_price": numbers, "prev_closing_price": numbers, "change": changes,
        "signed_change_price": numbers, "signed_change_rate": numbers, "acc_trade_volume_24h": numbers,
        "acc_trade_price_24h": numbers, "timestamp": millis,
    },
    optional={
        "change_price": numbers, "change_rate": numbers,  # unsigned twins: ignored, must not break
        **optional(
            trade_volume=numbers, acc_trade_volume=numbers, acc_trade_price=numbers, trade_date=text,
            trade_time=text, trade_timestamp=millis, ask_bid=st.sampled_from(["ASK", "BID"]),
            acc_ask_volume=numbers, acc_bid_volume=numbers, highest_52_week_price=numbers,
            highest_52_week_date=text, lowest_52_week_price=numbers, lowest_52_week_date=text,
            market_state=text, is_trading_suspended=st.booleans(), market_warning=text, trade_status=text,
            market_state_for_ios=text, stream_type=stream_types,
            delisting_date=st.fixed_dictionaries(
                {"year": st.integers(2000, 2100), "month": st.integers(1, 12)}
            ),
        ),
    },
)
trades = st.fixed_dictionaries(
    {
        "type": st.just("trade"), "code": codes, "trade_price": numbers, "trade_volume": numbers,
        "ask_bid": st.sampled_from(["ASK", "BID"]), "trade_timestamp": millis,
        "sequential_id": st.integers(min_value=0, max_value=2**63 - 1),
    },
    optional=optional(
        prev_closing_price=numbers, change=changes, change_price=numbers, trade_date=text, trade_time=text,
        timestamp=millis, best_ask_price=numbers, best_ask_size=numbers, best_bid_price=numbers,
        best_bid_size=numbers, stream_type=stream_types,
    ),
)
units = st.fixed_dictionaries({k: numbers for k in UNIT_KEYS})
books = st.fixed_dictionaries(
    {
        "type": st.just("orderbook"), "code": codes, "timestamp": millis, "total_ask_size": numbers,
        "total_bid_size": numbers, "orderbook_units": st.lists(units, max_size=30),
    },
    optional=optional(level=numbers, stream_type=stream_types),
)
moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1))
candles = st.fixed_dictionaries(
    {
        "type": st.sampled_from([f"candle.{u}" for u in WS_CANDLE_UNITS]), "code": codes,
        "candle_date_time_utc": moments.map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%S")),
        "opening_price": numbers, "high_price": numbers, "low_price": numbers, "trade_price": numbers,
        "candle_acc_trade_volume": numbers, "candle_acc_trade_price": numbers,
    },
    optional=optional(candle_date_time_kst=text, timestamp=millis, stream_type=stream_types),
)


def to_simple(frame: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    out = {table[k]: v for k, v in frame.items()}
    if "obu" in out:
        out["obu"] = [{UNIT_KEYS[k]: v for k, v in u.items()} for u in out["obu"]]
    return out


@st.composite
def shuffled(draw: st.DrawFn, frames: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A frame with its keys in a random order (the tag need not come first)."""
    frame = draw(frames)
    return {k: frame[k] for k in draw(st.permutations(list(frame)))}


def both(frame: dict[str, Any], table: dict[str, str]) -> tuple[Any, Any]:
    default = protocol.decode_ws(json.dumps(frame).encode())
    simple = protocol.decode_ws(json.dumps(to_simple(frame, table)).encode())
    return default, simple


# --- DEFAULT == SIMPLE ------------------------------------------------------------------------------------


@FAST
@given(shuffled(tickers))
def test_ticker_default_equals_simple(frame: dict[str, Any]) -> None:
    """Any ticker decodes equally from DEFAULT and SIMPLE, with the signed pair as change fields."""
    default, simple = both(frame, TICKER_KEYS)
    assert isinstance(default, Ticker)
    assert default == simple
    assert default.price == frame["trade_price"]
    assert default.change_price == frame["signed_change_price"]
    assert default.change_rate == frame["signed_change_rate"]
    assert default.delisting_date == frame.get("delisting_date")


@FAST
@given(shuffled(trades))
def test_trade_default_equals_simple(frame: dict[str, Any]) -> None:
    """Any trade decodes equally from DEFAULT and SIMPLE; trade time vs frame time kept apart."""
    default, simple = both(frame, TRADE_KEYS)
    assert isinstance(default, Trade)
    assert default == simple
    assert default.timestamp == frame["trade_timestamp"]
    assert default.frame_timestamp == frame.get("timestamp")
    assert default.sequential_id == frame["sequential_id"]


@FAST
@given(shuffled(books))
def test_orderbook_default_equals_simple(frame: dict[str, Any]) -> None:
    """Any book decodes equally from DEFAULT and SIMPLE, every unit in order."""
    default, simple = both(frame, BOOK_KEYS)
    assert isinstance(default, Orderbook)
    assert default == simple
    assert [u.ask_price for u in default.units] == [u["ask_price"] for u in frame["orderbook_units"]]
    assert [u.bid_size for u in default.units] == [u["bid_size"] for u in frame["orderbook_units"]]


@FAST
@given(shuffled(candles))
def test_candle_default_equals_simple(frame: dict[str, Any]) -> None:
    """Any candle decodes equally from DEFAULT and SIMPLE; start is the UTC date-time in exact ms."""
    default, simple = both(frame, CANDLE_KEYS)
    assert isinstance(default, Candle)
    assert default == simple
    assert default.unit == frame["type"].removeprefix("candle.")
    moment = datetime.strptime(frame["candle_date_time_utc"], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    assert default.start == int(moment.timestamp()) * 1000
    assert default.close == frame["trade_price"]


@FAST
@given(trades, st.sampled_from([protocol.decode_ws, protocol.decoder_for("SIMPLE")]))
def test_list_frames_match_single_decoding(frame: dict[str, Any], decode: Any) -> None:
    """A SIMPLE_LIST/JSON_LIST of frames decodes to what each frame decodes to alone."""
    items = [frame, to_simple(frame, TRADE_KEYS)]
    assert protocol.decode_ws_many(json.dumps(items)) == [decode(json.dumps(i)) for i in items]


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_rest_trade_sign_becomes_direction(signed: float) -> None:
    """A REST trade's signed change_price becomes abs value + RISE/EVEN/FALL, and back via the property."""
    body = json.dumps([{
        "market": "KRW-BTC", "timestamp": 1, "trade_price": 1.0, "trade_volume": 1.0,
        "change_price": signed, "ask_bid": "BID", "sequential_id": 1,
    }])
    (trade,) = protocol.decode_rest("trades", body)
    assert trade.change_price == abs(signed)
    assert trade.change == ("RISE" if signed > 0 else "FALL" if signed < 0 else "EVEN")
    assert trade.signed_change_price == signed


# --- nothing but typed errors -----------------------------------------------------------------------------


def check_only_typed(decode: Any, data: Any) -> None:
    """``decode(data)`` returns a message (or list of them) or raises one of our typed errors."""
    try:
        result = decode(data)
    except (ProtocolError, ExchangeRejected, RateLimited):
        return
    for item in result if isinstance(result, list) else [result]:
        assert isinstance(item, MESSAGES)


DECODERS = [protocol.decode_ws, protocol.decode_ws_many, protocol.decoder_for("SIMPLE")]


@FAST
@given(st.binary(max_size=400), st.sampled_from(DECODERS))
def test_random_bytes_raise_only_protocol_error(data: bytes, decode: Any) -> None:
    """Random bytes are a ProtocolError (or, by chance, a valid message), never another exception."""
    try:
        result = decode(data)
    except ProtocolError:
        return
    assert all(isinstance(r, MESSAGES) for r in (result if isinstance(result, list) else [result]))


@FAST
@given(st.text(max_size=200), st.sampled_from(DECODERS))
def test_random_text_raises_only_protocol_error(data: str, decode: Any) -> None:
    """Random str frames behave like random bytes."""
    try:
        result = decode(data)
    except ProtocolError:
        return
    assert all(isinstance(r, MESSAGES) for r in (result if isinstance(result, list) else [result]))


KEYS = sorted({*TICKER_KEYS, *TICKER_KEYS.values(), *TRADE_KEYS, *TRADE_KEYS.values(), *BOOK_KEYS,
               *BOOK_KEYS.values(), *CANDLE_KEYS, *CANDLE_KEYS.values(), "error", "status", "method",
               "result", "name", "message"})
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, text, st.sampled_from(["ticker", "trade", "orderbook",
              "candle.1m", "UP", "LIST_SUBSCRIPTIONS"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)
    ),
    max_leaves=20,
)


@FAST
@given(json_values, st.sampled_from(DECODERS))
def test_random_json_raises_only_typed_errors(value: Any, decode: Any) -> None:
    """Random JSON built from Upbit's own keys never escapes as anything but our typed errors."""
    check_only_typed(decode, json.dumps(value))


def fixture_frames() -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(DATA.glob("ws_*")):
        data = path.read_bytes()
        lines = [ln for ln in data.splitlines() if ln.strip()] if path.suffix == ".jsonl" else [data]
        out.extend(ln.strip() for ln in lines[:30])
    return out


FRAMES = fixture_frames()


@FAST
@given(st.sampled_from(FRAMES), st.data())
def test_mutated_real_frames_raise_only_typed_errors(frame: bytes, data: st.DataObject) -> None:
    """A real frame with one key re-valued or dropped decodes or raises a typed error, nothing else."""
    obj = json.loads(frame)
    key = data.draw(st.sampled_from(sorted(obj)))
    if data.draw(st.booleans()):
        del obj[key]
    else:
        obj[key] = data.draw(json_values)
    for decode in DECODERS:
        check_only_typed(decode, json.dumps(obj))


@pytest.mark.parametrize("frame", FRAMES, ids=range(len(FRAMES)))
def test_every_truncation_is_protocol_error(frame: bytes) -> None:
    """Every strict prefix of a real frame raises ProtocolError from each decoder."""
    for end in range(len(frame)):
        for decode in DECODERS:
            with pytest.raises(ProtocolError):
                decode(frame[:end])


REST = [
    ("ticker", "rest_ticker_2026.json", None), ("orderbook", "rest_orderbook.json", None),
    ("trades", "rest_trades_2026.json", None), ("candles", "rest_candles_days_2021.json", "1d"),
    ("markets", "rest_markets_details_2026.json", None), ("ticker", "rest_error.json", None),
]


@pytest.mark.parametrize(("kind", "name", "unit"), REST)
def test_every_rest_truncation_is_protocol_error(kind: str, name: str, unit: str | None) -> None:
    """Every strict prefix of a REST body (error bodies included) raises ProtocolError."""
    data = (DATA / name).read_bytes().strip()
    for end in range(len(data)):
        with pytest.raises(ProtocolError):
            protocol.decode_rest(kind, data[:end], unit=unit)


@FAST
@given(st.binary(max_size=300), st.sampled_from(["ticker", "orderbook", "trades", "candles", "markets"]))
def test_random_rest_bodies_raise_only_protocol_error(data: bytes, kind: str) -> None:
    """Random bytes as a 200 REST body are a ProtocolError (or, by chance, a valid empty list)."""
    try:
        result = protocol.decode_rest(kind, data, unit="1m")
    except ProtocolError:
        return
    assert result == []

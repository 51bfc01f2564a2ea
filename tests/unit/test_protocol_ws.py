"""WebSocket frames -> models: every captured frame in tests/data/upbit, checked against its raw JSON.

Each test loads the fixture twice: once through ``protocol.decode_ws`` and once with the standard ``json``
module, and compares the model's fields with the raw values through the key tables of the protocol doc
(section 5), so a wrong rename or a dropped field fails here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rxmarket.errors import ConfigError, ExchangeRejected, NotFound, ProtocolError, RateLimited
from rxmarket.exchanges.upbit import protocol
from rxmarket.exchanges.upbit.protocol import (
    KEEPALIVE,
    KeepAlive,
    SubscriptionInfo,
    SubscriptionList,
    UpbitProtocolConfig,
)
from rxmarket.models import Candle, Orderbook, Ticker, Trade

DATA = Path(__file__).resolve().parent.parent / "data" / "upbit"


def frames(name: str) -> list[bytes]:
    """The frames of a fixture: the whole file for ``.json``, one per non-empty line for ``.jsonl``."""
    data = (DATA / name).read_bytes()
    if name.endswith(".jsonl"):
        return [line for line in data.splitlines() if line.strip()]
    return [data]


def raw(frame: bytes) -> dict[str, Any]:
    value = json.loads(frame)
    assert isinstance(value, dict)
    return value


def utc_ms(text: str) -> int:
    """Independent reference for candle starts: naive ISO text read as UTC, in epoch ms."""
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()) * 1000


# model field -> wire key, from the protocol doc's tables (5.1-5.4); the signed ticker pair is on purpose.
TICKER_DEFAULT = {
    "symbol": "code", "price": "trade_price", "open": "opening_price", "high": "high_price",
    "low": "low_price", "prev_close": "prev_closing_price", "change": "change",
    "change_price": "signed_change_price", "change_rate": "signed_change_rate",
    "volume_24h": "acc_trade_volume_24h", "value_24h": "acc_trade_price_24h", "timestamp": "timestamp",
    "trade_volume": "trade_volume", "acc_trade_volume": "acc_trade_volume",
    "acc_trade_price": "acc_trade_price", "trade_date": "trade_date", "trade_time": "trade_time",
    "trade_timestamp": "trade_timestamp", "ask_bid": "ask_bid", "acc_ask_volume": "acc_ask_volume",
    "acc_bid_volume": "acc_bid_volume", "highest_52_week_price": "highest_52_week_price",
    "highest_52_week_date": "highest_52_week_date", "lowest_52_week_price": "lowest_52_week_price",
    "lowest_52_week_date": "lowest_52_week_date", "market_state": "market_state",
    "delisting_date": "delisting_date", "is_trading_suspended": "is_trading_suspended",
    "market_warning": "market_warning", "trade_status": "trade_status",
    "market_state_for_ios": "market_state_for_ios", "stream_type": "stream_type",
}
TICKER_SIMPLE = {
    "symbol": "cd", "price": "tp", "open": "op", "high": "hp", "low": "lp", "prev_close": "pcp",
    "change": "c", "change_price": "scp", "change_rate": "scr", "volume_24h": "atv24h",
    "value_24h": "atp24h", "timestamp": "tms", "trade_volume": "tv", "acc_trade_volume": "atv",
    "acc_trade_price": "atp", "trade_date": "tdt", "trade_time": "ttm", "trade_timestamp": "ttms",
    "ask_bid": "ab", "acc_ask_volume": "aav", "acc_bid_volume": "abv", "highest_52_week_price": "h52wp",
    "highest_52_week_date": "h52wdt", "lowest_52_week_price": "l52wp", "lowest_52_week_date": "l52wdt",
    "market_state": "ms", "delisting_date": "dd", "is_trading_suspended": "its", "market_warning": "mw",
    "trade_status": "ts", "market_state_for_ios": "msfi", "stream_type": "st",
}
TRADE_DEFAULT = {
    "symbol": "code", "price": "trade_price", "volume": "trade_volume", "ask_bid": "ask_bid",
    "timestamp": "trade_timestamp", "frame_timestamp": "timestamp", "sequential_id": "sequential_id",
    "prev_close": "prev_closing_price", "change": "change", "change_price": "change_price",
    "trade_date": "trade_date", "trade_time": "trade_time", "best_ask_price": "best_ask_price",
    "best_ask_size": "best_ask_size", "best_bid_price": "best_bid_price", "best_bid_size": "best_bid_size",
    "stream_type": "stream_type",
}
TRADE_SIMPLE = {
    "symbol": "cd", "price": "tp", "volume": "tv", "ask_bid": "ab", "timestamp": "ttms",
    "frame_timestamp": "tms", "sequential_id": "sid", "prev_close": "pcp", "change": "c",
    "change_price": "cp", "trade_date": "td", "trade_time": "ttm", "best_ask_price": "bap",
    "best_ask_size": "bas", "best_bid_price": "bbp", "best_bid_size": "bbs", "stream_type": "st",
}
BOOK_DEFAULT = {
    "symbol": "code", "timestamp": "timestamp", "total_ask_size": "total_ask_size",
    "total_bid_size": "total_bid_size", "level": "level", "stream_type": "stream_type",
}
BOOK_SIMPLE = {
    "symbol": "cd", "timestamp": "tms", "total_ask_size": "tas", "total_bid_size": "tbs", "level": "lv",
    "stream_type": "st",
}
UNIT_DEFAULT = {k: k for k in ("ask_price", "bid_price", "ask_size", "bid_size")}
UNIT_SIMPLE = {"ask_price": "ap", "bid_price": "bp", "ask_size": "as", "bid_size": "bs"}
CANDLE_DEFAULT_TO_SIMPLE = {
    "type": "ty", "code": "cd", "candle_date_time_utc": "cdttmu", "candle_date_time_kst": "cdttmk",
    "opening_price": "op", "high_price": "hp", "low_price": "lp", "trade_price": "tp",
    "candle_acc_trade_volume": "catv", "candle_acc_trade_price": "catp", "timestamp": "tms",
    "stream_type": "st",
}


def assert_fields(model: object, frame: dict[str, Any], table: dict[str, str]) -> None:
    """Every wire key present in the frame has its value in the model; absent ones are ``None``."""
    for field, key in table.items():
        expected = frame.get(key)
        actual = getattr(model, field)
        assert actual == expected, f"{field} (wire {key!r}): {actual!r} != {expected!r}"


def assert_book(book: Orderbook, frame: dict[str, Any], table: dict[str, str], units_key: str,
                unit_table: dict[str, str]) -> None:
    assert_fields(book, frame, table)
    raw_units = frame[units_key]
    assert len(book.units) == len(raw_units)
    for unit, raw_unit in zip(book.units, raw_units, strict=True):
        assert_fields(unit, raw_unit, unit_table)
    asks = [a.price for a in book.asks]
    bids = [b.price for b in book.bids]
    assert asks == sorted(asks)
    assert bids == sorted(bids, reverse=True)
    assert book.best_ask is not None
    assert book.best_bid is not None
    assert book.best_ask.price == raw_units[0][unit_table["ask_price"]]
    assert book.best_bid.price == raw_units[0][unit_table["bid_price"]]
    best = raw_units[0]
    assert book.spread == pytest.approx(best[unit_table["ask_price"]] - best[unit_table["bid_price"]])


# --- DEFAULT ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [*frames("ws_ticker_default.json"),
     *(f for f in frames("ws_stream_default.jsonl") if raw(f)["type"] == "ticker")],
)
def test_default_ticker_fields_match_raw(frame: bytes) -> None:
    """A DEFAULT ticker decodes to a Ticker whose every field equals its wire value (signed change pair)."""
    ticker = protocol.decode_ws(frame)
    data = raw(frame)
    assert isinstance(ticker, Ticker)
    assert_fields(ticker, data, TICKER_DEFAULT)
    assert abs(ticker.change_price) == data["change_price"]
    assert abs(ticker.change_rate) == data["change_rate"]
    assert ticker.source == "websocket"


def test_default_ticker_2020_keeps_legacy_fields() -> None:
    """The 2020 capture's null trade_status/market_state_for_ios and FALL sign come through."""
    ticker = protocol.decode_ws(frames("ws_ticker_default.json")[0])
    assert isinstance(ticker, Ticker)
    assert ticker.change == "FALL"
    assert ticker.change_price == -0.00024553
    assert ticker.trade_status is None
    assert ticker.market_state == "ACTIVE"
    assert ticker.is_trading_suspended is False


@pytest.mark.parametrize(
    "frame",
    [*frames("ws_trade_default.json"), *frames("ws_trade_default_2026.json"),
     *(f for f in frames("ws_stream_default.jsonl") if raw(f)["type"] == "trade")],
)
def test_default_trade_fields_match_raw(frame: bytes) -> None:
    """A DEFAULT trade: ``timestamp`` = trade time, ``frame_timestamp`` = frame time, side from ask_bid."""
    trade = protocol.decode_ws(frame)
    data = raw(frame)
    assert isinstance(trade, Trade)
    assert_fields(trade, data, TRADE_DEFAULT)
    assert trade.timestamp == data["trade_timestamp"]
    assert trade.side == ("sell" if data["ask_bid"] == "ASK" else "buy")
    assert trade.source == "websocket"


def test_default_trade_2026_has_best_quotes() -> None:
    """The 2026 frame's best_* fields (added ~2023) are decoded."""
    trade = protocol.decode_ws(frames("ws_trade_default_2026.json")[0])
    assert isinstance(trade, Trade)
    assert (trade.best_ask_price, trade.best_bid_price) == (91370000.0, 91361000.0)
    assert trade.sequential_id == 17853950437790001
    assert trade.signed_change_price == -63000.0


@pytest.mark.parametrize(
    "frame",
    [*frames("ws_orderbook_default.json"), *frames("ws_orderbook_default_docs2025.json"),
     *frames("ws_orderbook_default_2026.jsonl"),
     *(f for f in frames("ws_stream_default.jsonl") if raw(f)["type"] == "orderbook")],
)
def test_default_orderbook_levels_match_raw(frame: bytes) -> None:
    """A DEFAULT book keeps every unit; asks ascend, bids descend; best levels are unit 0."""
    book = protocol.decode_ws(frame)
    assert isinstance(book, Orderbook)
    assert_book(book, raw(frame), BOOK_DEFAULT, "orderbook_units", UNIT_DEFAULT)
    assert book.source == "websocket"


def test_docs2025_orderbook_has_30_levels() -> None:
    """The docs' 2025 example is a full 30-level book with ``level`` 0."""
    book = protocol.decode_ws(frames("ws_orderbook_default_docs2025.json")[0])
    assert isinstance(book, Orderbook)
    assert len(book.asks) == len(book.bids) == 30
    assert book.level == 0


def test_exponent_form_numbers_decode_as_floats() -> None:
    """``1.16539E8`` and ``0.00077720`` (as Upbit spells them) are the floats they denote."""
    book = protocol.decode_ws(frames("ws_orderbook_default_2026.jsonl")[0])
    assert isinstance(book, Orderbook)
    assert book.units[0].ask_price == 116539000.0
    assert isinstance(book.units[0].ask_price, float)
    assert book.units[1].ask_size == 0.0007772
    simple = protocol.decode_ws(frames("ws_orderbook_simple_2026.json")[0])
    assert isinstance(simple, Orderbook)
    assert simple.units[0].bid_size == 0.00079276
    assert simple.units[1].ask_size == 0.0005
    assert isinstance(simple.units[0].ask_price, float)


def test_snapshot_then_realtime_books_are_whole() -> None:
    """Consecutive 2026 frames are each a whole book: the second replaces the first, sizes as sent."""
    first, second = (protocol.decode_ws(f) for f in frames("ws_orderbook_default_2026.jsonl"))
    assert isinstance(first, Orderbook)
    assert isinstance(second, Orderbook)
    assert (first.stream_type, second.stream_type) == ("SNAPSHOT", "REALTIME")
    assert first.units[0].bid_size == 0.08120946
    assert second.units[0].bid_size == 0.06612366


# --- SIMPLE -----------------------------------------------------------------------------------------------


def test_simple_ticker_2021_fields_match_raw() -> None:
    """The 2021 SIMPLE capture maps through the SIMPLE key table, signed ``scp``/``scr``."""
    frame = frames("ws_ticker_simple_2021.json")[0]
    ticker = protocol.decode_ws(frame)
    assert isinstance(ticker, Ticker)
    assert_fields(ticker, raw(frame), TICKER_SIMPLE)
    assert ticker.symbol == "KRW-BTC"
    assert ticker.price == 40441000.0
    assert ticker.source == "websocket"


def test_simple_trade_2020_fields_match_raw() -> None:
    """The 2020 SIMPLE trade: ``ttms`` is the trade time, ``tms`` the frame time, ``cp`` unsigned."""
    frame = frames("ws_trade_simple_2020.json")[0]
    trade = protocol.decode_ws(frame)
    assert isinstance(trade, Trade)
    assert_fields(trade, raw(frame), TRADE_SIMPLE)
    assert (trade.timestamp, trade.frame_timestamp) == (1584257228000, 1584257228806)
    assert trade.side == "buy"


@pytest.mark.parametrize("name", ["ws_orderbook_simple_2020.json", "ws_orderbook_simple_2026.json"])
def test_simple_orderbook_levels_match_raw(name: str) -> None:
    """SIMPLE books (``obu`` rows of ``ap``/``as``/``bp``/``bs``) keep every level."""
    frame = frames(name)[0]
    book = protocol.decode_ws(frame)
    assert isinstance(book, Orderbook)
    assert_book(book, raw(frame), BOOK_SIMPLE, "obu", UNIT_SIMPLE)


def test_simple_stream_equals_default_stream() -> None:
    """The 300 SIMPLE frames decode to exactly the models of their 300 DEFAULT twins."""
    default = frames("ws_stream_default.jsonl")
    simple = frames("ws_stream_simple.jsonl")
    assert len(default) == len(simple) == 300
    for d, s in zip(default, simple, strict=True):
        assert protocol.decode_ws(s) == protocol.decode_ws(d)


# --- candles ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame", [*frames("ws_candle_default_2025.json"), *frames("ws_candle_default_2026.jsonl")]
)
def test_default_candle_fields_match_raw(frame: bytes) -> None:
    """``candle.1s``/``.1m`` -> unit ``1s``/``1m``; start from the UTC date-time; close = trade_price."""
    candle = protocol.decode_ws(frame)
    data = raw(frame)
    assert isinstance(candle, Candle)
    assert candle.unit == data["type"].removeprefix("candle.")
    assert candle.symbol == data["code"]
    assert candle.start == utc_ms(data["candle_date_time_utc"])
    assert (candle.open, candle.high, candle.low, candle.close) == (
        data["opening_price"], data["high_price"], data["low_price"], data["trade_price"],
    )
    assert candle.volume == data["candle_acc_trade_volume"]
    assert candle.value == data["candle_acc_trade_price"]
    assert candle.timestamp == data["timestamp"]
    assert candle.stream_type == data["stream_type"]
    assert candle.source == "websocket"


def test_candle_2025_start_is_utc() -> None:
    """``2025-04-22T09:50:34`` is 09:50:34 UTC, not KST (``candle_date_time_kst`` is 9 h later)."""
    candle = protocol.decode_ws(frames("ws_candle_default_2025.json")[0])
    assert isinstance(candle, Candle)
    assert candle.start == 1745315434000
    assert candle.unit == "1s"


@pytest.mark.parametrize("frame", frames("ws_candle_default_2026.jsonl"))
def test_simple_candle_equals_default_candle(frame: bytes) -> None:
    """A candle frame re-keyed to SIMPLE (``cdttmu``, ``catv`` ...) decodes to the same Candle."""
    simple = {CANDLE_DEFAULT_TO_SIMPLE[k]: v for k, v in raw(frame).items()}
    assert protocol.decode_ws(json.dumps(simple)) == protocol.decode_ws(frame)


def test_candle_rollover_keeps_each_version() -> None:
    """Two frames of the 07:47 candle decode to two versions with the same start (last one wins later)."""
    candles = [protocol.decode_ws(f) for f in frames("ws_candle_default_2026.jsonl")]
    assert all(isinstance(c, Candle) for c in candles)
    starts = [c.start for c in candles if isinstance(c, Candle) and c.symbol == "KRW-BTC"]
    assert starts.count(utc_ms("2026-07-30T07:47:00")) == 2


@pytest.mark.parametrize("kind", ["candle.7m", "candle.", "candle.1d"])
def test_unknown_candle_unit_is_protocol_error(kind: str) -> None:
    """A candle type whose unit Upbit does not stream is rejected, naming the type."""
    data = raw(frames("ws_candle_default_2025.json")[0]) | {"type": kind}
    with pytest.raises(ProtocolError, match="candle type"):
        protocol.decode_ws(json.dumps(data))


def test_candle_with_bad_date_is_protocol_error() -> None:
    """A candle start that is not an ISO date-time is a ProtocolError, not a ValueError."""
    data = raw(frames("ws_candle_default_2025.json")[0]) | {"candle_date_time_utc": "yesterday"}
    with pytest.raises(ProtocolError, match="yesterday"):
        protocol.decode_ws(json.dumps(data))


# --- control frames ---------------------------------------------------------------------------------------


def test_status_up_is_the_keepalive_singleton() -> None:
    """``{"status":"UP"}`` decodes to KEEPALIVE itself."""
    message = protocol.decode_ws(frames("ws_status_up.json")[0])
    assert message is KEEPALIVE
    assert isinstance(message, KeepAlive)
    assert message.status == "UP"


def test_other_status_is_protocol_error() -> None:
    """A status other than UP is not silently taken for a keep-alive."""
    with pytest.raises(ProtocolError, match="DOWN"):
        protocol.decode_ws(b'{"status":"DOWN"}')


@pytest.mark.parametrize("frame", frames("ws_errors.jsonl"))
def test_error_frames_raise_exchange_rejected(frame: bytes) -> None:
    """Each captured error frame raises ExchangeRejected with Upbit's name and message, whatever key order."""
    error = raw(frame)["error"]
    with pytest.raises(ExchangeRejected) as info:
        protocol.decode_ws(frame)
    assert type(info.value) is ExchangeRejected
    assert info.value.name == error["name"]
    assert info.value.error_message == error["message"]
    assert info.value.status is None


def test_too_many_requests_error_frame_is_rate_limited() -> None:
    """An error frame named "too_many_requests" (any case) raises RateLimited with the configured floor."""
    with pytest.raises(RateLimited) as info:
        protocol.decode_ws(b'{"error":{"name":"TOO_MANY_REQUESTS","message":"slow down"}}')
    assert info.value.retry_after == 1.0


def test_rate_limit_names_are_configurable() -> None:
    """With a custom name list, that name is RateLimited and the default one is a plain rejection."""
    config = UpbitProtocolConfig(too_many_requests_names=("TOO_MANY_REQ",), default_retry_after=2.5)
    with pytest.raises(RateLimited) as info:
        protocol.decode_ws(b'{"error":{"name":"TOO_MANY_REQ","message":"x"}}', config=config)
    assert info.value.retry_after == 2.5
    with pytest.raises(ExchangeRejected):
        protocol.decode_ws(b'{"error":{"name":"too_many_requests","message":"x"}}', config=config)


@pytest.mark.parametrize("frame", [b'{"error":"boom"}', b'{"error":{"message":"no name"}}'])
def test_malformed_error_frame_is_protocol_error(frame: bytes) -> None:
    """An ``error`` key without a proper ``{"name", "message"}`` object is a ProtocolError."""
    with pytest.raises(ProtocolError, match="error frame"):
        protocol.decode_ws(frame)


def test_list_subscriptions_answer_default() -> None:
    """The docs' LIST_SUBSCRIPTIONS answer decodes to a SubscriptionList with its channels and levels."""
    frame = frames("ws_list_subscriptions_default.json")[0]
    data = raw(frame)
    answer = protocol.decode_ws(frame)
    assert isinstance(answer, SubscriptionList)
    assert answer.ticket == data["ticket"]
    assert answer.subscriptions == tuple(
        SubscriptionInfo(r["type"], tuple(r["codes"]), r.get("level")) for r in data["result"]
    )


def test_list_subscriptions_answer_simple_equals_default() -> None:
    """The SIMPLE keys of the same answer (``mthd``/``rslt``/``ty``/``cds``/``lv``/``tckt``) give the same."""
    data = raw(frames("ws_list_subscriptions_default.json")[0])
    simple = {
        "mthd": data["method"],
        "rslt": [
            {{"type": "ty", "codes": "cds", "level": "lv"}[k]: v for k, v in r.items()}
            for r in data["result"]
        ],
        "tckt": data["ticket"],
    }
    assert protocol.decode_ws(json.dumps(simple)) == protocol.decode_ws(json.dumps(data))


# --- LIST formats -----------------------------------------------------------------------------------------


def test_array_frame_points_to_decode_ws_many() -> None:
    """decode_ws refuses a JSON_LIST frame with a ProtocolError that names decode_ws_many."""
    frame = b"[" + b",".join(frames("ws_stream_default.jsonl")[:3]) + b"]"
    with pytest.raises(ProtocolError, match="decode_ws_many"):
        protocol.decode_ws(frame)


def test_decode_ws_many_json_list() -> None:
    """A JSON_LIST frame decodes to the same models, in order, as its items one by one."""
    items = frames("ws_stream_default.jsonl")[:10]
    got = protocol.decode_ws_many(b"[" + b",".join(items) + b"]")
    assert got == [protocol.decode_ws(i) for i in items]


def test_decode_ws_many_simple_list_with_candles_and_status() -> None:
    """A SIMPLE_LIST frame, plus items that take the slow path (candle, keep-alive), all decode."""
    items = [*frames("ws_stream_simple.jsonl")[:5], frames("ws_candle_default_2025.json")[0],
             frames("ws_status_up.json")[0]]
    got = protocol.decode_ws_many(b"[" + b",".join(items) + b"]")
    assert got == [protocol.decode_ws(i) for i in items]
    assert got[-1] is KEEPALIVE


def test_decode_ws_many_single_object_and_empty() -> None:
    """A single-object frame gives a one-item list; ``[]`` gives an empty list."""
    frame = frames("ws_trade_default.json")[0]
    assert protocol.decode_ws_many(frame) == [protocol.decode_ws(frame)]
    assert protocol.decode_ws_many(b"[]") == []


def test_decode_ws_many_names_the_bad_item() -> None:
    """A bad item makes the whole frame a ProtocolError that says which item."""
    good = frames("ws_trade_default.json")[0]
    with pytest.raises(ProtocolError, match="item 1"):
        protocol.decode_ws_many(b"[" + good + b',{"type":"nope"}]')


def test_decode_ws_many_error_item_raises_rejection() -> None:
    """An error frame inside a list still raises the exchange's error."""
    with pytest.raises(ExchangeRejected):
        protocol.decode_ws_many(b"[" + frames("ws_errors.jsonl")[0] + b"]")


def test_decode_ws_many_garbage_is_protocol_error() -> None:
    """Garbage given to decode_ws_many is a ProtocolError too."""
    with pytest.raises(ProtocolError):
        protocol.decode_ws_many(b"\x00not json")


# --- bad input --------------------------------------------------------------------------------------------

TRADE = raw(frames("ws_trade_default_2026.json")[0])


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (json.dumps(TRADE | {"trade_price": "abc"}), "trade_price"),
        (json.dumps({k: v for k, v in TRADE.items() if k != "sequential_id"}), "sequential_id"),
        (json.dumps(TRADE | {"sequential_id": 1.5}), "sequential_id"),
        (json.dumps(TRADE | {"type": "nope"}), "nope"),
        (json.dumps({"type": 7}), "type"),
        (json.dumps({"hello": "world"}), "no 'type'"),
        (b"42", "JSON object"),
        (b'"ticker"', "JSON object"),
        (b"null", "JSON object"),
        (b"", "not a JSON"),
        (b'{"type":"trade",', "not a JSON"),
        (b"\xff\xfe\x00garbage", "not a JSON"),
    ],
)
def test_bad_frames_are_protocol_errors(frame: bytes | str, needle: str) -> None:
    """Wrong types, missing fields, unknown types, non-objects, non-JSON: a ProtocolError saying why."""
    with pytest.raises(ProtocolError, match=needle) as info:
        protocol.decode_ws(frame)
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    assert info.value.excerpt.startswith(text[:20].replace("\n", "\\n"))


def test_protocol_error_excerpt_is_short() -> None:
    """A huge bad frame is quoted by a short excerpt, not in full."""
    frame = json.dumps(TRADE | {"trade_price": "x" * 10_000})
    with pytest.raises(ProtocolError) as info:
        protocol.decode_ws(frame)
    assert len(info.value.excerpt) <= 121
    assert len(str(info.value)) < 400


@pytest.mark.parametrize("frame", [123, None, 4.5, ["x"]])
def test_non_buffer_input_is_protocol_error(frame: Any) -> None:
    """Something that is not bytes or str is a ProtocolError, not a TypeError."""
    with pytest.raises(ProtocolError, match="bytes or str"):
        protocol.decode_ws(frame)


def test_lone_surrogate_str_is_protocol_error() -> None:
    """A str that cannot be UTF-8 encoded is a ProtocolError, not a UnicodeEncodeError."""
    with pytest.raises(ProtocolError):
        protocol.decode_ws('{"type":"trade","code":"\ud800"}')


def test_deep_nesting_is_protocol_error() -> None:
    """Pathologically nested JSON is a ProtocolError, not a RecursionError."""
    with pytest.raises(ProtocolError):
        protocol.decode_ws(b"[" * 200_000)
    with pytest.raises(ProtocolError):
        protocol.decode_ws(b'{"type":"ticker","delisting_date":' + b"[" * 200_000)
    with pytest.raises(ProtocolError):
        protocol.decode_ws_many(b"[" * 200_000)


@pytest.mark.parametrize("convert", [bytes, bytearray, memoryview, lambda b: b.decode()])
def test_frame_buffer_types_decode_alike(convert: Any) -> None:
    """bytes, bytearray, memoryview and str frames give equal models."""
    frame = frames("ws_trade_default_2026.json")[0]
    assert protocol.decode_ws(convert(frame)) == protocol.decode_ws(frame)


def test_error_frames_are_not_not_found() -> None:
    """WebSocket rejections carry no HTTP status, so none is a NotFound."""
    for frame in frames("ws_errors.jsonl"):
        with pytest.raises(ExchangeRejected) as info:
            protocol.decode_ws(frame)
        assert not isinstance(info.value, NotFound)


# --- decoder_for ------------------------------------------------------------------------------------------

ALL_WS = [
    f
    for name in sorted(p.name for p in DATA.glob("ws_*"))
    if name != "ws_errors.jsonl"
    for f in frames(name)
]


def test_decoder_for_simple_agrees_with_decode_ws() -> None:
    """The SIMPLE-first decoder returns exactly what decode_ws returns, for every WS fixture frame."""
    decode = protocol.decoder_for("SIMPLE")
    for frame in ALL_WS:
        assert decode(frame) == protocol.decode_ws(frame)


def test_decoder_for_simple_raises_like_decode_ws() -> None:
    """The SIMPLE-first decoder raises the same error types for garbage and error frames."""
    decode = protocol.decoder_for("SIMPLE")
    with pytest.raises(ProtocolError):
        decode(b"{")
    with pytest.raises(ExchangeRejected):
        decode(frames("ws_errors.jsonl")[1])


def test_decoder_for_default_is_decode_ws() -> None:
    """For DEFAULT with the default config the decoder is decode_ws itself (no wrapper cost)."""
    assert protocol.decoder_for("DEFAULT") is protocol.decode_ws


def test_decoder_for_custom_config_uses_it() -> None:
    """A decoder built with a config applies it (here: a custom rate-limit name)."""
    config = UpbitProtocolConfig(too_many_requests_names=("SLOW",))
    for fmt in ("DEFAULT", "SIMPLE"):
        with pytest.raises(RateLimited):
            protocol.decoder_for(fmt, config=config)(b'{"error":{"name":"SLOW","message":""}}')


@pytest.mark.parametrize("fmt", ["JSON_LIST", "SIMPLE_LIST", "simple", "XML"])
def test_decoder_for_rejects_other_formats(fmt: str) -> None:
    """LIST formats (use decode_ws_many) and unknown names are a ConfigError."""
    with pytest.raises(ConfigError):
        protocol.decoder_for(fmt)

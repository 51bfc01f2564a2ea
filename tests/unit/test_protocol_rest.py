"""REST bodies and HTTP metadata -> models and typed errors, checked against the raw fixtures.

Covers every ``rest_*.json`` fixture, ``http/rest_error_responses.jsonl`` and
``http/remaining_req_headers.jsonl``; the raw JSON is loaded separately with ``json`` and compared field by
field, with REST's own names (protocol doc sections 2 and 6).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from rxmarket.errors import (
    Banned,
    ConfigError,
    ExchangeRejected,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
)
from rxmarket.exchanges.upbit import protocol
from rxmarket.exchanges.upbit.protocol import OrderbookInstrument, RemainingReq, UpbitProtocolConfig
from rxmarket.models import Candle, Market, Orderbook, Ticker, Trade

DATA = Path(__file__).resolve().parent.parent / "data" / "upbit"


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


def items(name: str) -> list[dict[str, Any]]:
    value = json.loads(body(name))
    assert isinstance(value, list)
    return value


def jsonl(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body(name).splitlines() if line.strip()]


def utc_ms(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()) * 1000


# --- tickers ----------------------------------------------------------------------------------------------

TICKER_REST = {
    "symbol": "market", "price": "trade_price", "open": "opening_price", "high": "high_price",
    "low": "low_price", "prev_close": "prev_closing_price", "change": "change",
    "change_price": "signed_change_price", "change_rate": "signed_change_rate",
    "volume_24h": "acc_trade_volume_24h", "value_24h": "acc_trade_price_24h", "timestamp": "timestamp",
    "trade_volume": "trade_volume", "acc_trade_volume": "acc_trade_volume",
    "acc_trade_price": "acc_trade_price", "trade_date": "trade_date", "trade_time": "trade_time",
    "trade_date_kst": "trade_date_kst", "trade_time_kst": "trade_time_kst",
    "trade_timestamp": "trade_timestamp", "highest_52_week_price": "highest_52_week_price",
    "highest_52_week_date": "highest_52_week_date", "lowest_52_week_price": "lowest_52_week_price",
    "lowest_52_week_date": "lowest_52_week_date",
}


@pytest.mark.parametrize("name", ["rest_ticker.json", "rest_ticker_2021.json", "rest_ticker_2026.json"])
def test_rest_tickers_match_raw(name: str) -> None:
    """REST tickers: ``market`` is the symbol, the signed pair is kept, KST twins kept, source rest."""
    tickers = protocol.decode_rest("ticker", body(name))
    raws = items(name)
    assert len(tickers) == len(raws)
    for ticker, data in zip(tickers, raws, strict=True):
        assert isinstance(ticker, Ticker)
        for field, key in TICKER_REST.items():
            assert getattr(ticker, field) == data[key], field
        assert abs(ticker.change_price) == data["change_price"]
        assert ticker.ask_bid is None  # WS-only field
        assert ticker.source == "rest"


def test_rest_ticker_2026_fall_is_negative() -> None:
    """A FALL ticker has a negative change_price and change_rate."""
    (ticker,) = protocol.decode_rest("ticker", body("rest_ticker_2026.json"))
    assert ticker.change == "FALL"
    assert ticker.change_price == -224000.0
    assert ticker.change_rate == -0.0024501225


# --- orderbooks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rest_orderbook.json", "rest_orderbook_2023.json"])
def test_rest_orderbooks_match_raw(name: str) -> None:
    """REST books keep every unit, totals and ``level`` (absent before 2023 -> None)."""
    books = protocol.decode_rest("orderbook", body(name))
    raws = items(name)
    for book, data in zip(books, raws, strict=True):
        assert isinstance(book, Orderbook)
        assert book.symbol == data["market"]
        assert book.timestamp == data["timestamp"]
        assert book.total_ask_size == data["total_ask_size"]
        assert book.total_bid_size == data["total_bid_size"]
        assert book.level == data.get("level")
        assert len(book.units) == len(data["orderbook_units"])
        for unit, raw_unit in zip(book.units, data["orderbook_units"], strict=True):
            assert (unit.ask_price, unit.bid_price, unit.ask_size, unit.bid_size) == (
                raw_unit["ask_price"], raw_unit["bid_price"], raw_unit["ask_size"], raw_unit["bid_size"],
            )
        asks = [a.price for a in book.asks]
        bids = [b.price for b in book.bids]
        assert asks == sorted(asks)
        assert bids == sorted(bids, reverse=True)
        assert book.source == "rest"


def test_rest_orderbook_2023_best_levels() -> None:
    """The 2023 book's best bid/ask and spread come from its first unit."""
    (book,) = protocol.decode_rest("orderbook", body("rest_orderbook_2023.json"))
    assert book.best_ask is not None
    assert book.best_bid is not None
    assert (book.best_ask.price, book.best_bid.price) == (28252000.0, 28242000.0)
    assert book.spread == 10000.0
    assert book.level == 0


# --- trades -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["rest_trades.json", "rest_trades_2026.json", "rest_trades_same_ms_2026.json",
     "rest_trade_paired_with_ws_2026.json"],
)
def test_rest_trades_match_raw(name: str) -> None:
    """REST ticks: ``timestamp`` is the trade time; signed change_price -> unsigned + change."""
    trades = protocol.decode_rest("trades", body(name))
    raws = items(name)
    assert len(trades) == len(raws)
    for trade, data in zip(trades, raws, strict=True):
        assert isinstance(trade, Trade)
        assert trade.symbol == data["market"]
        assert trade.price == data["trade_price"]
        assert trade.volume == data["trade_volume"]
        assert trade.ask_bid == data["ask_bid"]
        assert trade.timestamp == data["timestamp"]
        assert trade.frame_timestamp is None
        assert trade.sequential_id == data["sequential_id"]
        assert trade.prev_close == data["prev_closing_price"]
        assert trade.change_price == abs(data["change_price"])
        assert trade.signed_change_price == data["change_price"]
        expected = "RISE" if data["change_price"] > 0 else "FALL" if data["change_price"] < 0 else "EVEN"
        assert trade.change == expected
        assert trade.trade_date == data["trade_date_utc"]
        assert trade.trade_time == data["trade_time_utc"]
        assert trade.source == "rest"


def test_rest_trades_same_ms_differ_only_by_sequential_id() -> None:
    """Two ticks equal in every field but sequential_id stay two distinct trades."""
    first, second = protocol.decode_rest("trades", body("rest_trades_same_ms_2026.json"))
    assert first.sequential_id != second.sequential_id
    assert (first.price, first.volume, first.timestamp) == (second.price, second.volume, second.timestamp)
    assert first != second


def test_rest_trade_exponent_volume() -> None:
    """``5.485e-05`` (2026 body) is the float it denotes."""
    trades = protocol.decode_rest("trades", body("rest_trades_2026.json"))
    assert trades[1].volume == 0.00005485


def test_rest_and_ws_views_of_one_trade_agree() -> None:
    """The same trade over REST and WebSocket decodes to the same price, volume, side, time, id and change."""
    (rest,) = protocol.decode_rest("trades", body("rest_trade_paired_with_ws_2026.json"))
    ws = protocol.decode_ws(body("ws_trade_default_2026.json"))
    assert isinstance(ws, Trade)
    for field in ("symbol", "price", "volume", "side", "timestamp", "sequential_id", "change",
                  "change_price", "signed_change_price", "prev_close", "trade_date", "trade_time"):
        assert getattr(rest, field) == getattr(ws, field), field
    assert rest.change == "FALL"
    assert rest.change_price == 63000.0
    assert (rest.source, ws.source) == ("rest", "websocket")


# --- candles ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "unit", "expected_unit"),
    [
        ("rest_candles_minutes.json", None, "1m"),
        ("rest_candles_minutes_2021.json", None, "1m"),
        ("rest_candles_minutes_2021.json", "1m", "1m"),
        ("rest_candles_days_2021.json", "1d", "1d"),
        ("rest_candles_days_converted_2023.json", "1d", "1d"),
        ("rest_candles_weeks_2021.json", "1w", "1w"),
        ("rest_candles_months_2021.json", "1mo", "1mo"),
        ("rest_candles_seconds_2024.json", "1s", "1s"),
        ("rest_candles_years_2026.json", "1y", "1y"),
    ],
)
def test_rest_candles_match_raw(name: str, unit: str | None, expected_unit: str) -> None:
    """Every candle endpoint: unit from the argument or body, start from UTC, extras kept."""
    candles = protocol.decode_rest("candles", body(name), unit=unit)
    raws = items(name)
    for candle, data in zip(candles, raws, strict=True):
        assert isinstance(candle, Candle)
        assert candle.unit == expected_unit
        assert candle.symbol == data["market"]
        assert candle.start == utc_ms(data["candle_date_time_utc"])
        assert (candle.open, candle.high, candle.low, candle.close) == (
            data["opening_price"], data["high_price"], data["low_price"], data["trade_price"],
        )
        assert candle.volume == data["candle_acc_trade_volume"]
        assert candle.value == data["candle_acc_trade_price"]
        assert candle.timestamp == data["timestamp"]
        assert candle.prev_close == data.get("prev_closing_price")
        assert candle.change_price == data.get("change_price")
        assert candle.change_rate == data.get("change_rate")
        assert candle.converted_close == data.get("converted_trade_price")
        assert candle.first_day_of_period == data.get("first_day_of_period")
        assert candle.source == "rest"


def test_rest_candles_years_eight_decimal_spelling() -> None:
    """``128000000.00000000`` is 128000000.0; the 2026 yearly candle starts 2026-01-01T00:00Z."""
    (candle,) = protocol.decode_rest("candles", body("rest_candles_years_2026.json"), unit="1y")
    assert candle.open == 128000000.0
    assert candle.start == 1767225600000


def test_rest_candles_converted_price() -> None:
    """The USDT-BTC daily candle priced in KRW keeps ``converted_trade_price``."""
    (candle,) = protocol.decode_rest("candles", body("rest_candles_days_converted_2023.json"), unit="1d")
    assert candle.converted_close == 28139000.000001043
    assert candle.symbol == "USDT-BTC"


def test_rest_candles_without_unit_need_the_argument() -> None:
    """Seconds candles carry no ``unit`` field: without unit= that is the caller's ConfigError."""
    with pytest.raises(ConfigError, match="unit="):
        protocol.decode_rest("candles", body("rest_candles_seconds_2024.json"))


def test_rest_candles_unit_mismatch_is_protocol_error() -> None:
    """Asking for 5m candles and getting a body that says unit 1 is a ProtocolError."""
    with pytest.raises(ProtocolError, match="5m"):
        protocol.decode_rest("candles", body("rest_candles_minutes.json"), unit="5m")


@pytest.mark.parametrize("unit", ["2m", "1h", "", "minutes"])
def test_rest_unknown_unit_is_config_error(unit: str) -> None:
    """A unit outside CANDLE_UNITS is a ConfigError before anything is decoded."""
    with pytest.raises(ConfigError):
        protocol.decode_rest("candles", body("rest_candles_minutes.json"), unit=unit)


# --- markets and instruments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["rest_markets.json", "rest_markets_details_2026.json", "rest_markets_regional_legacy_2026.json"]
)
def test_rest_markets_match_raw(name: str) -> None:
    """Markets keep names, ``market_event`` (details) and the regional ``market_warning``."""
    markets = protocol.decode_rest("markets", body(name))
    raws = items(name)
    assert len(markets) == len(raws)
    for market, data in zip(markets, raws, strict=True):
        assert isinstance(market, Market)
        assert market.symbol == data["market"]
        assert market.english_name == data["english_name"]
        assert market.korean_name == data.get("korean_name")
        assert market.market_warning == data.get("market_warning")
        assert market.market_event == data.get("market_event")
        assert market.source == "rest"


def test_rest_markets_details_flags() -> None:
    """KRW-ZIL's GLOBAL_PRICE_DIFFERENCES caution and warning flag survive decoding."""
    markets = {m.symbol: m for m in protocol.decode_rest("markets", body("rest_markets_details_2026.json"))}
    event = markets["KRW-ZIL"].market_event
    assert event is not None
    assert event["warning"] is True
    assert event["caution"]["GLOBAL_PRICE_DIFFERENCES"] is True


def test_rest_orderbook_instruments() -> None:
    """``/orderbook/instruments`` keeps tick size and levels as decimal strings."""
    (inst,) = protocol.decode_rest("instruments", body("rest_orderbook_instruments.json"))
    data = items("rest_orderbook_instruments.json")[0]
    assert isinstance(inst, OrderbookInstrument)
    assert inst.symbol == data["market"]
    assert inst.quote_currency == data["quote_currency"]
    assert inst.tick_size == data["tick_size"] == "1000"
    assert inst.supported_levels == tuple(data["supported_levels"])


# --- checks on the answer ---------------------------------------------------------------------------------


def test_symbol_check_accepts_matching_market() -> None:
    """``symbol=`` (any case) accepts an answer about that market."""
    trades = protocol.decode_rest("trades", body("rest_trades_2026.json"), symbol="krw-btc")
    assert [t.symbol for t in trades] == ["KRW-BTC", "KRW-BTC"]


def test_symbol_check_rejects_other_market() -> None:
    """An answer about another market than asked is a ProtocolError naming both."""
    with pytest.raises(ProtocolError, match="KRW-ETH"):
        protocol.decode_rest("trades", body("rest_trades_2026.json"), symbol="KRW-ETH")


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("ticker", b"not json"),
        ("ticker", b'{"market":"KRW-BTC"}'),
        ("trades", b'[{"market":"KRW-BTC"}]'),
        ("orderbook", b'[{"market":"KRW-BTC","timestamp":"soon"}]'),
        ("markets", b"[1,2]"),
        ("candles", b'[{"market":"KRW-BTC","candle_date_time_utc":"nope","opening_price":1,"high_price":1,'
                    b'"low_price":1,"trade_price":1,"candle_acc_trade_price":1,"candle_acc_trade_volume":1}]'),
    ],
)
def test_malformed_rest_bodies_are_protocol_errors(kind: str, data: bytes) -> None:
    """Non-JSON, non-arrays, missing or mistyped fields: a ProtocolError quoting the body."""
    with pytest.raises(ProtocolError) as info:
        protocol.decode_rest(kind, data, unit="1d" if kind == "candles" else None)
    assert info.value.excerpt.startswith(data[:10].decode())


def test_empty_array_is_no_items() -> None:
    """``[]`` (e.g. ``level`` on a non-KRW market) decodes to an empty list."""
    assert protocol.decode_rest("orderbook", b"[]") == []


def test_unknown_kind_is_config_error() -> None:
    """An unknown kind is the caller's error."""
    with pytest.raises(ConfigError, match="kind"):
        protocol.decode_rest("tickers", b"[]")


# --- errors -----------------------------------------------------------------------------------------------

KINDS_BY_PATH = {"/v1/orderbook": "orderbook", "/v1/ticker": "ticker", "/v1/nope": "markets"}


@pytest.mark.parametrize("case", jsonl("http/rest_error_responses.jsonl"), ids=lambda c: c["request"])
def test_captured_rest_errors_map_to_typed_errors(case: dict[str, Any]) -> None:
    """Each captured error answer raises NotFound (404) or ExchangeRejected (400) with Upbit's name."""
    status, error = case["http_status"], case["body"]["error"]
    kind = KINDS_BY_PATH[case["request"].split()[1].split("?")[0]]
    with pytest.raises(ExchangeRejected) as info:
        protocol.decode_rest(kind, json.dumps(case["body"]).encode(), status=status)
    assert isinstance(info.value, NotFound) == (status == 404)
    assert info.value.name == error["name"]
    assert info.value.error_message == error["message"]
    assert info.value.status == status


def test_rest_error_fixture_with_its_status() -> None:
    """``rest_error.json`` (numeric name 400) under status 400 is an ExchangeRejected, not NotFound."""
    with pytest.raises(ExchangeRejected) as info:
        protocol.decode_rest("ticker", body("rest_error.json"), status=400)
    assert type(info.value) is ExchangeRejected
    assert info.value.name == 400
    assert info.value.error_message == json.loads(body("rest_error.json"))["error"]["message"]


def test_error_body_under_200_is_still_rejected() -> None:
    """An error object with a 2xx status is the exchange's rejection, not a decoding problem."""
    with pytest.raises(ExchangeRejected) as info:
        protocol.decode_rest("ticker", body("rest_error.json"))
    assert info.value.status == 200


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_server_error(status: int) -> None:
    """Any 5xx is a ServerError carrying the status, whatever the body."""
    error = protocol.error_from_response(status, b"<html>bad gateway</html>", {})
    assert isinstance(error, ServerError)
    assert error.status == status
    assert "bad gateway" in str(error)


def test_429_uses_retry_after_header_and_group() -> None:
    """429 with ``Retry-After: 3`` -> RateLimited(3 s) in the Remaining-Req group (any header case)."""
    error = protocol.error_from_response(
        429, b"Too many API requests.", {"retry-after": "3", "Remaining-Req": "group=ticker; min=600; sec=0"}
    )
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0
    assert error.group == "ticker"
    assert "Too many API requests." in str(error)


def test_429_http_date_retry_after() -> None:
    """``Retry-After`` as an HTTP-date is converted to seconds from ``now``."""
    now = 1_800_000_000.0
    header = format_datetime(datetime.fromtimestamp(now + 7, tz=UTC), usegmt=True)
    error = protocol.error_from_response(429, b"", {"Retry-After": header}, now=now)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0


@pytest.mark.parametrize("header", [None, "soon", "nan", "inf"])
def test_429_without_usable_retry_after_uses_default(header: str | None) -> None:
    """No (or an unreadable) Retry-After gives the configured default wait."""
    headers = {} if header is None else {"Retry-After": header}
    config = UpbitProtocolConfig(default_retry_after=4.0)
    error = protocol.error_from_response(
        429, b'{"error":{"name":"too_many_requests","message":"x"}}', headers, config=config
    )
    assert isinstance(error, RateLimited)
    assert error.retry_after == 4.0


def test_too_many_requests_name_under_400_is_rate_limited() -> None:
    """A body named too_many_requests is RateLimited even under another 4xx status."""
    error = protocol.error_from_response(400, b'{"error":{"name":"too_many_requests","message":"x"}}')
    assert isinstance(error, RateLimited)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("blocked for 30 seconds", 30.0),
        ("IP banned: 5 minutes", 300.0),
        ("retry in 1.5h", 5400.0),
        ("10분간 요청이 제한됩니다", 600.0),
        ('{"error":{"name":418,"message":"120초 동안 차단"}}', 120.0),
    ],
)
def test_418_reads_ban_duration_from_body(text: str, seconds: float) -> None:
    """A 418 body stating the block's length (English or Korean units) sets duration and until."""
    error = protocol.error_from_response(418, text.encode(), {}, now=1000.0)
    assert isinstance(error, Banned)
    assert error.duration == seconds
    assert error.until == 1000.0 + seconds


def test_418_without_duration_uses_configured_default() -> None:
    """A 418 body that states no length gives the configured ban length."""
    config = UpbitProtocolConfig(ban_duration=900.0)
    error = protocol.error_from_response(418, b"I'm a teapot", {}, now=50.0, config=config)
    assert isinstance(error, Banned)
    assert (error.duration, error.until) == (900.0, 950.0)


def test_418_custom_pattern() -> None:
    """A custom regex reads a duration written in another shape (here: ``ban=NNN``, seconds)."""
    config = UpbitProtocolConfig(ban_duration_pattern=r"ban=(?P<value>\d+)")
    error = protocol.error_from_response(418, b"ban=45;", {}, now=0.0, config=config)
    assert isinstance(error, Banned)
    assert error.duration == 45.0


def test_decode_rest_raises_the_mapped_error() -> None:
    """decode_rest with a 418 raises Banned (the same mapping as error_from_response)."""
    with pytest.raises(Banned):
        protocol.decode_rest("ticker", b"", status=418)


def test_2xx_without_error_object_is_protocol_error() -> None:
    """error_from_response for a 200 with a normal body returns a ProtocolError, never a rejection."""
    assert isinstance(protocol.error_from_response(200, b"[]"), ProtocolError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_retry_after": -1.0},
        {"ban_duration": float("inf")},
        {"ban_duration_pattern": "("},
        {"ban_duration_pattern": r"\d+"},
        {"subscribe_flag_style": "kebab-case"},
    ],
)
def test_bad_config_is_config_error(kwargs: dict[str, Any]) -> None:
    """Impossible configuration values fail when the config is made, not later."""
    with pytest.raises(ConfigError):
        UpbitProtocolConfig(**kwargs)


# --- Remaining-Req ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", jsonl("http/remaining_req_headers.jsonl"), ids=lambda c: c["header"])
def test_remaining_req_headers_parse(case: dict[str, Any]) -> None:
    """Every observed Remaining-Req value parses to the group and numbers it states."""
    parts = dict(p.strip().split("=") for p in case["header"].split(";"))
    assert protocol.parse_remaining_req(case["header"]) == RemainingReq(
        parts["group"], int(parts["min"]), int(parts["sec"])
    )


@pytest.mark.parametrize(
    "header",
    [
        "", "group=ticker", "group=ticker; min=x; sec=1", "sec=1; min=2; group=a", "group=a; min=1; sec=-1",
        None,
    ],
)
def test_remaining_req_garbage_is_protocol_error(header: Any) -> None:
    """Anything but ``group=<name>; min=<n>; sec=<n>`` is a ProtocolError."""
    with pytest.raises(ProtocolError, match="Remaining-Req"):
        protocol.parse_remaining_req(header)


def test_bad_remaining_req_header_does_not_hide_rate_limit() -> None:
    """A 429 whose Remaining-Req is garbage is still RateLimited (group unknown)."""
    error = protocol.error_from_response(429, b"", {"Remaining-Req": "???"})
    assert isinstance(error, RateLimited)
    assert error.group is None

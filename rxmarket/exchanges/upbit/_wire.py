"""Upbit wire shapes that do not decode straight into the models: SIMPLE frames, candles, REST bodies.

DEFAULT ticker/trade/orderbook frames need no shape here: the models in :mod:`rxmarket.models` carry the
DEFAULT keys as their encoded names and decode in one pass. Everything else is described here as a
``msgspec.Struct`` whose **Python attribute names are the model's field names** and whose encoded names
are the wire keys of that format (``protocol.md`` section 5 for SIMPLE, section 2.1 for REST). That lets
``msgspec.convert(wire, Model, from_attributes=True)`` build the model in C, with no per-field Python.

Field order follows the order Upbit sends the keys in (captures in ``tests/data/upbit``): msgspec looks up
each key at the position after the previous one first, so matching the wire order makes decoding faster.

SIMPLE frames, error bodies and REST bodies have one ``Decoder`` each, built once at import (msgspec's
advice: reuse decoders). Candle frames and LIST_SUBSCRIPTIONS answers are rare and reach their shape with
``msgspec.convert`` from the generic decode that recognised them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from rxmarket.models import OrderbookUnit

__all__ = [
    "ERROR_FRAME_DECODER",
    "REST_CANDLES_DECODER",
    "REST_INSTRUMENTS_DECODER",
    "REST_MARKETS_DECODER",
    "REST_ORDERBOOKS_DECODER",
    "REST_TICKERS_DECODER",
    "REST_TRADES_DECODER",
    "SIMPLE_DECODER",
    "DefaultCandle",
    "DefaultSubscriptionList",
    "ErrorBody",
    "ErrorFrame",
    "RestCandle",
    "RestInstrument",
    "RestMarket",
    "RestOrderbook",
    "RestTicker",
    "RestTrade",
    "SimpleCandle",
    "SimpleOrderbook",
    "SimpleOrderbookUnit",
    "SimpleSubscriptionList",
    "SimpleTicker",
    "SimpleTrade",
    "WireSubscription",
]

_f = msgspec.field


# ---------------------------------------------------------------------------------------------------------
# SIMPLE WebSocket frames (protocol.md 5.1-5.3): tagged on "ty", converted to Ticker / Trade / Orderbook.
# ---------------------------------------------------------------------------------------------------------


class SimpleTicker(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="ty", tag="ticker"):
    """A SIMPLE ``ticker`` frame. ``cp``/``cr`` (unsigned) are left out: the model keeps the signed pair."""

    symbol: str = _f(name="cd")
    open: float = _f(name="op")
    high: float = _f(name="hp")
    low: float = _f(name="lp")
    price: float = _f(name="tp")
    prev_close: float = _f(name="pcp")
    acc_trade_price: float | None = _f(default=None, name="atp")
    change: str = _f(name="c")
    change_price: float = _f(name="scp")
    change_rate: float = _f(name="scr")
    ask_bid: str | None = _f(default=None, name="ab")
    trade_volume: float | None = _f(default=None, name="tv")
    acc_trade_volume: float | None = _f(default=None, name="atv")
    trade_date: str | None = _f(default=None, name="tdt")
    trade_time: str | None = _f(default=None, name="ttm")
    trade_timestamp: int | None = _f(default=None, name="ttms")
    acc_ask_volume: float | None = _f(default=None, name="aav")
    acc_bid_volume: float | None = _f(default=None, name="abv")
    highest_52_week_price: float | None = _f(default=None, name="h52wp")
    highest_52_week_date: str | None = _f(default=None, name="h52wdt")
    lowest_52_week_price: float | None = _f(default=None, name="l52wp")
    lowest_52_week_date: str | None = _f(default=None, name="l52wdt")
    trade_status: str | None = _f(default=None, name="ts")
    market_state: str | None = _f(default=None, name="ms")
    market_state_for_ios: str | None = _f(default=None, name="msfi")
    is_trading_suspended: bool | None = _f(default=None, name="its")
    delisting_date: Any = _f(default=None, name="dd")
    market_warning: str | None = _f(default=None, name="mw")
    timestamp: int = _f(name="tms")
    value_24h: float = _f(name="atp24h")
    volume_24h: float = _f(name="atv24h")
    stream_type: str | None = _f(default=None, name="st")


class SimpleTrade(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="ty", tag="trade"):
    """A SIMPLE ``trade`` frame: ``ttms`` is the trade's time (model ``timestamp``), ``tms`` the frame's."""

    symbol: str = _f(name="cd")
    frame_timestamp: int | None = _f(default=None, name="tms")
    trade_date: str | None = _f(default=None, name="td")
    trade_time: str | None = _f(default=None, name="ttm")
    timestamp: int = _f(name="ttms")
    price: float = _f(name="tp")
    volume: float = _f(name="tv")
    ask_bid: str = _f(name="ab")
    prev_close: float | None = _f(default=None, name="pcp")
    change: str | None = _f(default=None, name="c")
    change_price: float | None = _f(default=None, name="cp")
    sequential_id: int = _f(name="sid")
    best_ask_price: float | None = _f(default=None, name="bap")
    best_ask_size: float | None = _f(default=None, name="bas")
    best_bid_price: float | None = _f(default=None, name="bbp")
    best_bid_size: float | None = _f(default=None, name="bbs")
    stream_type: str | None = _f(default=None, name="st")


class SimpleOrderbookUnit(msgspec.Struct, frozen=True, gc=False):
    """One SIMPLE book row (``ap``/``as``/``bp``/``bs``); ``as`` is a Python keyword, hence the renames."""

    ask_price: float = _f(name="ap")
    bid_price: float = _f(name="bp")
    ask_size: float = _f(name="as")
    bid_size: float = _f(name="bs")


class SimpleOrderbook(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="ty", tag="orderbook"):
    """A SIMPLE ``orderbook`` frame (always the whole book)."""

    symbol: str = _f(name="cd")
    timestamp: int = _f(name="tms")
    total_ask_size: float = _f(name="tas")
    total_bid_size: float = _f(name="tbs")
    units: tuple[SimpleOrderbookUnit, ...] = _f(name="obu")
    stream_type: str | None = _f(default=None, name="st")
    level: float | None = _f(default=None, name="lv")


SIMPLE_DECODER = msgspec.json.Decoder(SimpleTicker | SimpleTrade | SimpleOrderbook)
"""The SIMPLE hot path: one decoder for the three frame kinds, dispatched on ``ty``."""


# ---------------------------------------------------------------------------------------------------------
# Candle frames (protocol.md 5.4). Their type varies ("candle.1s" ... "candle.240m"), so they cannot be a
# msgspec tag; the frame kind is kept as a string and turned into the model's ``unit``. Candle frames come
# at most once a second per code, so they are converted from the generic decode (no typed decoder).
# ---------------------------------------------------------------------------------------------------------


class DefaultCandle(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A DEFAULT ``candle.*`` frame."""

    kind: str = _f(name="type")
    symbol: str = _f(name="code")
    start_utc: str = _f(name="candle_date_time_utc")
    start_kst: str | None = _f(default=None, name="candle_date_time_kst")
    open: float = _f(name="opening_price")
    high: float = _f(name="high_price")
    low: float = _f(name="low_price")
    close: float = _f(name="trade_price")
    volume: float = _f(name="candle_acc_trade_volume")
    value: float = _f(name="candle_acc_trade_price")
    timestamp: int | None = None
    stream_type: str | None = None


class SimpleCandle(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A SIMPLE ``candle.*`` frame (same attributes as :class:`DefaultCandle`)."""

    kind: str = _f(name="ty")
    symbol: str = _f(name="cd")
    start_utc: str = _f(name="cdttmu")
    start_kst: str | None = _f(default=None, name="cdttmk")
    open: float = _f(name="op")
    high: float = _f(name="hp")
    low: float = _f(name="lp")
    close: float = _f(name="tp")
    volume: float = _f(name="catv")
    value: float = _f(name="catp")
    timestamp: int | None = _f(default=None, name="tms")
    stream_type: str | None = _f(default=None, name="st")


# ---------------------------------------------------------------------------------------------------------
# Control frames: errors (4.5) and LIST_SUBSCRIPTIONS answers (4.6).
# ---------------------------------------------------------------------------------------------------------


class ErrorBody(msgspec.Struct, frozen=True, gc=False):
    """``{"name": ..., "message": ...}``; REST quotation errors use the HTTP code as an integer name."""

    name: str | int
    message: str = ""


class ErrorFrame(msgspec.Struct, frozen=True, gc=False):
    """``{"error": {...}}``, the same shape for WebSocket error frames and REST error bodies."""

    error: ErrorBody


ERROR_FRAME_DECODER = msgspec.json.Decoder(ErrorFrame)


class WireSubscription(msgspec.Struct, frozen=True, gc=False):
    """One entry of a LIST_SUBSCRIPTIONS answer, DEFAULT keys."""

    channel: str = _f(name="type")
    codes: tuple[str, ...] = ()
    level: float | None = None


class DefaultSubscriptionList(msgspec.Struct, frozen=True, gc=False):
    """The DEFAULT LIST_SUBSCRIPTIONS answer; the docs' table calls the ticket a Long, examples a string."""

    method: str
    result: tuple[WireSubscription, ...] = ()
    ticket: str | int | None = None


class _SimpleWireSubscription(msgspec.Struct, frozen=True, gc=False):
    channel: str = _f(name="ty")
    codes: tuple[str, ...] = _f(default=(), name="cds")
    level: float | None = _f(default=None, name="lv")


class SimpleSubscriptionList(msgspec.Struct, frozen=True, gc=False):
    """The SIMPLE LIST_SUBSCRIPTIONS answer (``mthd``/``rslt``/``tckt``)."""

    method: str = _f(name="mthd")
    result: tuple[_SimpleWireSubscription, ...] = _f(default=(), name="rslt")
    ticket: str | int | None = _f(default=None, name="tckt")


# ---------------------------------------------------------------------------------------------------------
# REST bodies (protocol.md 2.1). Every list endpoint answers a JSON array, even for one item.
# ---------------------------------------------------------------------------------------------------------


class RestTicker(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``GET /ticker`` item; ``market`` instead of ``code``, KST twins of the trade date/time."""

    symbol: str = _f(name="market")
    trade_date: str | None = None
    trade_time: str | None = None
    trade_date_kst: str | None = None
    trade_time_kst: str | None = None
    trade_timestamp: int | None = None
    open: float = _f(name="opening_price")
    high: float = _f(name="high_price")
    low: float = _f(name="low_price")
    price: float = _f(name="trade_price")
    prev_close: float = _f(name="prev_closing_price")
    change: str
    change_price: float = _f(name="signed_change_price")
    change_rate: float = _f(name="signed_change_rate")
    trade_volume: float | None = None
    acc_trade_price: float | None = None
    value_24h: float = _f(name="acc_trade_price_24h")
    acc_trade_volume: float | None = None
    volume_24h: float = _f(name="acc_trade_volume_24h")
    highest_52_week_price: float | None = None
    highest_52_week_date: str | None = None
    lowest_52_week_price: float | None = None
    lowest_52_week_date: str | None = None
    timestamp: int


class RestOrderbook(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``GET /orderbook`` item; units share the DEFAULT keys (bid first in key order, which is irrelevant)."""

    symbol: str = _f(name="market")
    timestamp: int
    total_ask_size: float
    total_bid_size: float
    units: tuple[OrderbookUnit, ...] = _f(name="orderbook_units")
    level: float | None = None


class RestTrade(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``GET /trades/ticks`` item. ``timestamp`` is the trade's time; ``change_price`` is **signed**."""

    market: str
    trade_date_utc: str | None = None
    trade_time_utc: str | None = None
    timestamp: int
    trade_price: float
    trade_volume: float
    prev_closing_price: float | None = None
    change_price: float | None = None
    ask_bid: str
    sequential_id: int


class RestCandle(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A candle from any ``/candles/*`` endpoint, with every endpoint's extra fields optional."""

    market: str
    candle_date_time_utc: str
    candle_date_time_kst: str | None = None
    opening_price: float
    high_price: float
    low_price: float
    trade_price: float
    timestamp: int | None = None
    candle_acc_trade_price: float
    candle_acc_trade_volume: float
    unit: int | None = None
    prev_closing_price: float | None = None
    change_price: float | None = None
    change_rate: float | None = None
    converted_trade_price: float | None = None
    first_day_of_period: str | None = None


class RestMarket(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``GET /market/all`` item; ``korean_name`` is absent on regional hosts."""

    market: str
    korean_name: str | None = None
    english_name: str | None = None
    market_warning: str | None = None
    market_event: dict[str, Any] | None = None


class RestInstrument(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``GET /orderbook/instruments`` item; ``tick_size`` and levels are decimal strings on the wire."""

    market: str
    quote_currency: str
    tick_size: str
    supported_levels: tuple[str, ...] = ()


REST_TICKERS_DECODER = msgspec.json.Decoder(list[RestTicker])
REST_ORDERBOOKS_DECODER = msgspec.json.Decoder(list[RestOrderbook])
REST_TRADES_DECODER = msgspec.json.Decoder(list[RestTrade])
REST_CANDLES_DECODER = msgspec.json.Decoder(list[RestCandle])
REST_MARKETS_DECODER = msgspec.json.Decoder(list[RestMarket])
REST_INSTRUMENTS_DECODER = msgspec.json.Decoder(list[RestInstrument])

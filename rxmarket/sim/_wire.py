"""The simulator's own wire shapes: Upbit's DEFAULT, SIMPLE and REST key sets, in Upbit's key order.

This module is deliberately independent of ``rxmarket.models`` and ``rxmarket.exchanges``: the simulator is
a second implementation of the wire format, so a decoding bug on the client side cannot be mirrored here.
Key sets and orders follow the captures in ``tests/data/upbit`` of the current era (2025-2026): ticker
frames without the legacy ``trade_status``/``market_state_for_ios``, trade frames with ``best_*``,
orderbook frames with ``level``. SIMPLE frames keep the DEFAULT order with the short keys (as the 2026
SIMPLE orderbook capture shows); the short names come from ``upbit-protocol.md`` section 5.

Each shape is a msgspec Struct built once with :func:`msgspec.defstruct` from ``(DEFAULT, SIMPLE)`` key
pairs, and filled positionally, which is the cheapest way msgspec offers to write a JSON object in a fixed
key order.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = [
    "CANDLE_TYPES",
    "ENCODE",
    "ORDERBOOK_DEPTHS",
    "REST_CANDLE_BASE",
    "REST_MARKET",
    "REST_ORDERBOOK",
    "REST_ORDERBOOK_UNIT",
    "REST_TICKER",
    "REST_TRADE",
    "WS_CANDLE",
    "WS_ORDERBOOK",
    "WS_ORDERBOOK_UNIT",
    "WS_TICKER",
    "WS_TRADE",
    "Shape",
    "error_frame",
    "list_subscriptions_frame",
    "status_frame",
]

ENCODE: Final = msgspec.json.Encoder().encode

#: Candle stream types and their unit names (``candle.60m`` -> ``60m``).
CANDLE_TYPES: Final[dict[str, str]] = {
    f"candle.{unit}": unit for unit in ("1s", "1m", "3m", "5m", "10m", "15m", "30m", "60m", "240m")
}
#: Orderbook depths a ``KRW-BTC.{n}`` code may ask for (since 2025-07-02); anything else gets 30.
ORDERBOOK_DEPTHS: Final = frozenset({1, 5, 15, 30})


class Shape:
    """One JSON object shape with a DEFAULT and a SIMPLE spelling, filled positionally.

    Args:
        name: a class name for the generated Structs.
        keys: ``(default_key, simple_key)`` pairs in wire order; for REST-only shapes both are equal.
    """

    __slots__ = ("default", "keys", "simple")

    def __init__(self, name: str, keys: tuple[tuple[str, str], ...]) -> None:
        fields = [(f"f{i}", Any) for i in range(len(keys))]
        self.keys = tuple(default for default, _ in keys)
        self.default: type[msgspec.Struct] = msgspec.defstruct(
            name, fields, rename={f"f{i}": d for i, (d, _) in enumerate(keys)}, gc=False
        )
        self.simple: type[msgspec.Struct] = msgspec.defstruct(
            name + "Simple", fields, rename={f"f{i}": s for i, (_, s) in enumerate(keys)}, gc=False
        )

    def make(self, simple: bool, values: tuple[Any, ...]) -> msgspec.Struct:
        """An instance ready to encode, in the SIMPLE or DEFAULT spelling."""
        return (self.simple if simple else self.default)(*values)


def _same(*keys: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, k) for k in keys)


WS_TICKER: Final = Shape(
    "WsTicker",
    (
        ("type", "ty"), ("code", "cd"), ("opening_price", "op"), ("high_price", "hp"), ("low_price", "lp"),
        ("trade_price", "tp"), ("prev_closing_price", "pcp"), ("acc_trade_price", "atp"), ("change", "c"),
        ("change_price", "cp"), ("signed_change_price", "scp"), ("change_rate", "cr"),
        ("signed_change_rate", "scr"), ("ask_bid", "ab"), ("trade_volume", "tv"), ("acc_trade_volume", "atv"),
        ("trade_date", "tdt"), ("trade_time", "ttm"), ("trade_timestamp", "ttms"), ("acc_ask_volume", "aav"),
        ("acc_bid_volume", "abv"), ("highest_52_week_price", "h52wp"), ("highest_52_week_date", "h52wdt"),
        ("lowest_52_week_price", "l52wp"), ("lowest_52_week_date", "l52wdt"), ("market_state", "ms"),
        ("is_trading_suspended", "its"), ("delisting_date", "dd"), ("market_warning", "mw"),
        ("timestamp", "tms"), ("acc_trade_price_24h", "atp24h"), ("acc_trade_volume_24h", "atv24h"),
        ("stream_type", "st"),
    ),
)

WS_TRADE: Final = Shape(
    "WsTrade",
    (
        ("type", "ty"), ("code", "cd"), ("timestamp", "tms"), ("trade_date", "td"), ("trade_time", "ttm"),
        ("trade_timestamp", "ttms"), ("trade_price", "tp"), ("trade_volume", "tv"), ("ask_bid", "ab"),
        ("prev_closing_price", "pcp"), ("change", "c"), ("change_price", "cp"), ("sequential_id", "sid"),
        ("best_ask_price", "bap"), ("best_ask_size", "bas"), ("best_bid_price", "bbp"),
        ("best_bid_size", "bbs"), ("stream_type", "st"),
    ),
)

WS_ORDERBOOK_UNIT: Final = Shape(
    "WsOrderbookUnit", (("ask_price", "ap"), ("bid_price", "bp"), ("ask_size", "as"), ("bid_size", "bs"))
)

WS_ORDERBOOK: Final = Shape(
    "WsOrderbook",
    (
        ("type", "ty"), ("code", "cd"), ("timestamp", "tms"), ("total_ask_size", "tas"),
        ("total_bid_size", "tbs"), ("orderbook_units", "obu"), ("stream_type", "st"), ("level", "lv"),
    ),
)

WS_CANDLE: Final = Shape(
    "WsCandle",
    (
        ("type", "ty"), ("code", "cd"), ("candle_date_time_utc", "cdttmu"),
        ("candle_date_time_kst", "cdttmk"),
        ("opening_price", "op"), ("high_price", "hp"), ("low_price", "lp"), ("trade_price", "tp"),
        ("candle_acc_trade_volume", "catv"), ("candle_acc_trade_price", "catp"), ("timestamp", "tms"),
        ("stream_type", "st"),
    ),
)

REST_TICKER: Final = Shape(
    "RestTicker",
    _same(
        "market", "trade_date", "trade_time", "trade_date_kst", "trade_time_kst", "trade_timestamp",
        "opening_price", "high_price", "low_price", "trade_price", "prev_closing_price", "change",
        "change_price", "change_rate", "signed_change_price", "signed_change_rate", "trade_volume",
        "acc_trade_price", "acc_trade_price_24h", "acc_trade_volume", "acc_trade_volume_24h",
        "highest_52_week_price", "highest_52_week_date", "lowest_52_week_price", "lowest_52_week_date",
        "timestamp",
    ),
)

REST_TRADE: Final = Shape(
    "RestTrade",
    _same(
        "market", "trade_date_utc", "trade_time_utc", "timestamp", "trade_price", "trade_volume",
        "prev_closing_price", "change_price", "ask_bid", "sequential_id",
    ),
)

REST_ORDERBOOK_UNIT: Final = Shape(
    "RestOrderbookUnit", _same("ask_price", "bid_price", "ask_size", "bid_size")
)

REST_ORDERBOOK: Final = Shape(
    "RestOrderbook",
    _same("market", "timestamp", "total_ask_size", "total_bid_size", "level", "orderbook_units"),
)

REST_MARKET: Final = Shape("RestMarket", _same("market", "korean_name", "english_name"))

#: Keys every REST candle starts with; each endpoint appends its own (``unit``, ``first_day_of_period``...).
REST_CANDLE_BASE: Final = (
    "market", "candle_date_time_utc", "candle_date_time_kst", "opening_price", "high_price", "low_price",
    "trade_price", "timestamp", "candle_acc_trade_price", "candle_acc_trade_volume",
)

# Messages as the 2026 probes on api.upbit.com recorded them (tests/data/upbit/ws_errors.jsonl); the ones
# no capture shows are ours. Clients must not match on message text.
_WS_ERROR_MESSAGES: Final = {
    "NO_TICKET": "티켓이 존재하지 않거나, 유효하지 않습니다.",
    "NO_TYPE": "타입이 존재하지 않습니다.",
    "NO_CODES": "코드가 존재하지 않습니다.",
    "WRONG_FORMAT": "Format 이 맞지 않습니다.",
    "INVALID_PARAM": "{} 은 지원하지 않는 타입입니다.",
    "TOO_MANY_REQUESTS": "요청 수 제한을 초과했습니다.",
}


def error_frame(name: str, detail: str = "") -> bytes:
    """An Upbit WebSocket error frame body.

    Key order follows the captures: ``NO_TICKET`` puts ``name`` first, the others ``message`` first.

    Args:
        name: the error code (``WRONG_FORMAT``, ``NO_TICKET``, ``NO_TYPE``, ``NO_CODES``, ``INVALID_PARAM``,
            or the configured rate-limit name).
        detail: the offending value for ``INVALID_PARAM``.

    Returns:
        The JSON bytes.
    """
    message = _WS_ERROR_MESSAGES.get(name, "요청을 처리할 수 없습니다.").format(detail)
    body: dict[str, str] = {"name": name, "message": message}
    if name != "NO_TICKET":
        body = {"message": message, "name": name}
    return ENCODE({"error": body})


def status_frame() -> bytes:
    """The keep-alive answer to a text ``PING``."""
    return b'{"status":"UP"}'


def list_subscriptions_frame(ticket: str, result: list[dict[str, Any]], simple: bool) -> bytes:
    """The answer to ``{"method": "LIST_SUBSCRIPTIONS"}``.

    Args:
        ticket: the ticket of the request that asked.
        result: one ``{"type", "codes"[, "level"]}`` dict per subscribed type object.
        simple: SIMPLE spelling (``mthd``/``rslt``/``ty``/``cds``/``lv``/``tckt``).

    Returns:
        The JSON bytes.
    """
    if not simple:
        return ENCODE({"method": "LIST_SUBSCRIPTIONS", "result": result, "ticket": ticket})
    short = {"type": "ty", "codes": "cds", "level": "lv"}
    rslt = [{short[k]: v for k, v in item.items()} for item in result]
    return ENCODE({"mthd": "LIST_SUBSCRIPTIONS", "rslt": rslt, "tckt": ticket})

"""The Upbit quotation protocol, sans I/O: bytes in, models out; request frames out.

Nothing here touches a socket, a clock of its own or an event loop (no asyncio, aiohttp, websockets or
reactivex import): the transports pump bytes and call these functions, so every rule about Upbit's wire is
tested with plain values. The field meanings are summarised in ``docs``' protocol reference (our
``upbit-protocol.md``); each rule below cites its section.

WebSocket frames (:func:`decode_ws`)::

    DEFAULT ticker/trade/orderbook --(one typed decode, straight into the model)--------> model
        | fails (no/unknown "type")
        v
    SIMPLE ticker/trade/orderbook --(typed decode into _wire shape, C-level convert)----> model
        | fails
        v
    generic decode, then dispatch:  candle.*  -> Candle       {"status":"UP"} -> KEEPALIVE
                                    {"error"} -> raises       LIST_SUBSCRIPTIONS -> SubscriptionList
                                    [..] (JSON_LIST/SIMPLE_LIST) -> use decode_ws_many()
                                    anything else -> ProtocolError

The first step is what keeps :func:`decode_ws` within 10 % of a raw typed decode: the models carry the
DEFAULT wire keys as their encoded names and are tagged on ``type`` (see :mod:`rxmarket.models`).

Every failure is a typed error from :mod:`rxmarket.errors`: undecodable input is a ``ProtocolError``
(with an excerpt of the frame), whatever the input; an error frame or body is ``ExchangeRejected`` (or
``NotFound``, ``RateLimited``, ``Banned``, ``ServerError``); a bad argument is ``ConfigError``.

Behaviour that no source pinned down (429/418 bodies, ban length, flag spellings) is a field of
:class:`UpbitProtocolConfig`, never a hard-coded guess.
"""

from __future__ import annotations

import functools
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal, TypeAlias, cast, overload

import msgspec

from rxmarket.errors import (
    Banned,
    ConfigError,
    ExchangeRejected,
    NotFound,
    ProtocolError,
    RateLimited,
    RxMarketError,
    ServerError,
    excerpt,
)
from rxmarket.exchanges.upbit._wire import (
    ERROR_FRAME_DECODER,
    REST_CANDLES_DECODER,
    REST_INSTRUMENTS_DECODER,
    REST_MARKETS_DECODER,
    REST_ORDERBOOKS_DECODER,
    REST_TICKERS_DECODER,
    REST_TRADES_DECODER,
    SIMPLE_DECODER,
    DefaultCandle,
    DefaultSubscriptionList,
    ErrorFrame,
    RestCandle,
    SimpleCandle,
    SimpleOrderbook,
    SimpleSubscriptionList,
    SimpleTicker,
    SimpleTrade,
)
from rxmarket.models import CANDLE_UNITS, Candle, Market, Orderbook, OrderbookUnit, Ticker, Trade

__all__ = [
    "CHANNELS",
    "DEFAULT_CONFIG",
    "FORMATS",
    "KEEPALIVE",
    "ORDERBOOK_DEPTHS",
    "WS_CANDLE_UNITS",
    "Frame",
    "KeepAlive",
    "OrderbookInstrument",
    "RemainingReq",
    "RestKind",
    "Subscription",
    "SubscriptionInfo",
    "SubscriptionList",
    "UpbitProtocolConfig",
    "WsMessage",
    "build_list_subscriptions",
    "build_subscribe",
    "decode_rest",
    "decode_ws",
    "decode_ws_many",
    "decoder_for",
    "error_from_response",
    "market_code",
    "parse_remaining_req",
]

WS_CANDLE_UNITS: Final = ("1s", "1m", "3m", "5m", "10m", "15m", "30m", "60m", "240m")
"""Candle units Upbit streams over WebSocket (``candle.1s`` ... ``candle.240m``), protocol.md 4.2."""

CHANNELS: Final = ("ticker", "trade", "orderbook", *(f"candle.{u}" for u in WS_CANDLE_UNITS))
"""WebSocket channel (``type``) names accepted in a subscription."""

FORMATS: Final = ("DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST")
"""WebSocket ``format`` values (the LIST forms since 2025-07-07)."""

ORDERBOOK_DEPTHS: Final = (1, 5, 15, 30)
"""Orderbook depths Upbit serves through the ``CODE.n`` suffix (since 2025-07-02; other n give 30)."""


# ---------------------------------------------------------------------------------------------------------
# Configuration of what Upbit never documented precisely (protocol.md section 8).
# ---------------------------------------------------------------------------------------------------------

_DEFAULT_BAN_PATTERN = (
    r"(?P<value>\d+(?:\.\d+)?)\s*"
    r"(?P<unit>milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|초|분|시간)(?![A-Za-z])"
)

_UNIT_SECONDS: Final[Mapping[str, float]] = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0, "초": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0, "분": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0, "시간": 3600.0,
}


class UpbitProtocolConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs for the parts of Upbit's protocol that no source confirmed.

    Attributes:
        default_retry_after: seconds to wait after a 429 without a ``Retry-After`` header, or after a
            "too many requests" error frame (Upbit's limits are per second, so 1 s is the natural floor).
        ban_duration: assumed length in seconds of an HTTP 418 block whose body states none.
        ban_duration_pattern: regex that finds the block's length in a 418 body; it needs a group
            ``value`` (a number) and may have a group ``unit`` (``s``, ``minutes``, ``초``, ``분`` ...;
            seconds when absent).
        too_many_requests_names: error ``name`` values (compared case-insensitively) that mean "too
            many requests", in WebSocket error frames and REST bodies alike.
        subscribe_flag_style: spelling of the snapshot/realtime flags in subscribe frames:
            ``"snake_case"`` (``is_only_snapshot``, current docs) or ``"camelCase"`` (``isOnlySnapshot``).
        details_param: query name of ``/market/all``'s details flag (older docs: ``isDetails``).
        days_ago_param: query name of ``/trades/ticks``' day offset (older docs: ``daysAgo``).
        converting_price_unit_param: query name on ``/candles/days`` (older docs: ``convertingPriceUnit``).

    Raises:
        ConfigError: a negative duration, an invalid regex or an unknown flag style.
    """

    default_retry_after: float = 1.0
    ban_duration: float = 60.0
    ban_duration_pattern: str = _DEFAULT_BAN_PATTERN
    too_many_requests_names: tuple[str, ...] = ("too_many_requests",)
    subscribe_flag_style: Literal["snake_case", "camelCase"] = "snake_case"
    details_param: str = "is_details"
    days_ago_param: str = "days_ago"
    converting_price_unit_param: str = "converting_price_unit"

    def __post_init__(self) -> None:
        for name in ("default_retry_after", "ban_duration"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"UpbitProtocolConfig.{name} must be a finite number >= 0, got {value!r}")
        try:
            pattern = re.compile(self.ban_duration_pattern)
        except (re.error, TypeError) as exc:
            raise ConfigError(f"UpbitProtocolConfig.ban_duration_pattern is not a regex: {exc}") from exc
        if "value" not in pattern.groupindex:
            raise ConfigError("UpbitProtocolConfig.ban_duration_pattern needs a group named 'value'")
        if self.subscribe_flag_style not in ("snake_case", "camelCase"):
            raise ConfigError(
                f"subscribe_flag_style must be 'snake_case' or 'camelCase', got {self.subscribe_flag_style!r}"
            )

    def is_too_many_requests(self, name: object) -> bool:
        """Whether an error ``name`` means "too many requests" under this configuration."""
        if not isinstance(name, str):
            return False
        folded = name.casefold()
        return any(folded == n.casefold() for n in self.too_many_requests_names)


DEFAULT_CONFIG: Final = UpbitProtocolConfig()


# ---------------------------------------------------------------------------------------------------------
# Non-model messages.
# ---------------------------------------------------------------------------------------------------------


class KeepAlive(msgspec.Struct, frozen=True, gc=False):
    """The server's ``{"status":"UP"}``, sent every 10 s after a text ``PING`` (protocol.md 4.4).

    It carries no market data; it only proves the link is alive. :func:`decode_ws` returns the one
    instance :data:`KEEPALIVE`, so ``msg is KEEPALIVE`` is a valid test.
    """

    status: str = "UP"


KEEPALIVE: Final = KeepAlive()


class SubscriptionInfo(msgspec.Struct, frozen=True, gc=False):
    """One active subscription as listed by the server (``channel`` is Upbit's ``type``)."""

    channel: str
    codes: tuple[str, ...] = ()
    level: float | None = None


class SubscriptionList(msgspec.Struct, frozen=True, gc=False):
    """The answer to :func:`build_list_subscriptions`: what this connection is subscribed to."""

    subscriptions: tuple[SubscriptionInfo, ...]
    ticket: str | None = None


class OrderbookInstrument(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """``GET /orderbook/instruments``: a market's tick size and the orderbook ``level`` values it accepts.

    ``tick_size`` and ``supported_levels`` stay decimal strings, as sent, so no precision is lost.
    """

    symbol: str
    quote_currency: str
    tick_size: str
    supported_levels: tuple[str, ...] = ()
    source: str = "rest"


class RemainingReq(msgspec.Struct, frozen=True, gc=False):
    """A parsed ``Remaining-Req`` header: ``sec`` requests are left this second in ``group``.

    ``min`` is a deprecated fixed number (protocol.md 3); it is kept only because Upbit still sends it.
    """

    group: str
    min: int
    sec: int


Frame: TypeAlias = bytes | bytearray | memoryview | str
"""A WebSocket frame's payload as a transport may hand it over."""

WsMessage: TypeAlias = Ticker | Orderbook | Trade | Candle | KeepAlive | SubscriptionList
"""Everything :func:`decode_ws` can return."""


# ---------------------------------------------------------------------------------------------------------
# WebSocket decoding.
# ---------------------------------------------------------------------------------------------------------

_DEFAULT_DECODER: msgspec.json.Decoder[Ticker | Orderbook | Trade] = msgspec.json.Decoder(
    Ticker | Orderbook | Trade
)
_DEFAULT_DECODE = _DEFAULT_DECODER.decode  # bound once: the hot path skips an attribute lookup
_DEFAULT_LIST_DECODE = msgspec.json.Decoder(list[Ticker | Orderbook | Trade]).decode
_SIMPLE_DECODE = SIMPLE_DECODER.decode
_RAW_LIST_DECODE = msgspec.json.Decoder(list[msgspec.Raw]).decode
_ANY_DECODE = msgspec.json.Decoder().decode

# What decoding may raise for hostile input: msgspec.DecodeError (a ValueError), UnicodeEncodeError for
# a str with lone surrogates (a ValueError), TypeError for a non-buffer, RecursionError for deep nesting.
_DECODE_FAILURES = (ValueError, TypeError, RecursionError)

_SIMPLE_TARGET: Final[Mapping[type[Any], type[Any]]] = {
    SimpleTicker: Ticker,
    SimpleTrade: Trade,
    SimpleOrderbook: Orderbook,
}
_DEFAULT_SHAPES: Final[Mapping[str, type[Any]]] = {"ticker": Ticker, "trade": Trade, "orderbook": Orderbook}
_SIMPLE_SHAPES: Final[Mapping[str, type[Any]]] = {
    "ticker": SimpleTicker,
    "trade": SimpleTrade,
    "orderbook": SimpleOrderbook,
}


def decode_ws(frame: Frame, *, config: UpbitProtocolConfig = DEFAULT_CONFIG) -> WsMessage:
    """Decode one WebSocket frame (DEFAULT or SIMPLE format) into a model or a control message.

    DEFAULT ticker/trade/orderbook frames decode in one typed pass; everything else takes the slower
    path described in the module docstring. Every model has ``source="websocket"``.

    Args:
        frame: the frame's payload as received (Upbit sends binary frames of UTF-8 JSON).
        config: how to read error frames (which names mean "too many requests", the retry floor).

    Returns:
        A ``Ticker``, ``Orderbook``, ``Trade`` or ``Candle``; :data:`KEEPALIVE` for ``{"status":"UP"}``;
        a :class:`SubscriptionList` for a ``LIST_SUBSCRIPTIONS`` answer.

    Raises:
        ProtocolError: anything that is not one of those: invalid JSON, a non-object, a missing or
            mistyped field, an unknown type, and JSON_LIST/SIMPLE_LIST array frames (a frame of several
            messages has no single result: decode those with :func:`decode_ws_many`).
        RateLimited: an error frame whose name is in ``config.too_many_requests_names``.
        ExchangeRejected: any other error frame (``name`` = Upbit's code, e.g. ``"INVALID_PARAM"``);
            the server closes the socket right after one (protocol.md 4.5).
    """
    try:
        return _DEFAULT_DECODE(frame)
    except _DECODE_FAILURES:
        pass
    # Leaving the except block first keeps the failed fast attempt out of any later traceback.
    return _decode_ws_slow(frame, config)


def decode_ws_many(frame: Frame, *, config: UpbitProtocolConfig = DEFAULT_CONFIG) -> list[WsMessage]:
    """Decode a frame that may hold several messages (``JSON_LIST`` / ``SIMPLE_LIST`` formats).

    A single-object frame (DEFAULT / SIMPLE format) gives a one-item list, so a connection can use this
    function whatever format it subscribed with.

    Args:
        frame: the frame's payload as received.
        config: as for :func:`decode_ws`.

    Returns:
        The messages in frame order (an empty list for ``[]``).

    Raises:
        ProtocolError: the frame, or one item of it, is not a valid message; the message names the item.
        ExchangeRejected: an error frame (alone or as an item), as for :func:`decode_ws`.
        RateLimited: a "too many requests" error frame.
    """
    try:
        return cast("list[WsMessage]", _DEFAULT_LIST_DECODE(frame))
    except _DECODE_FAILURES:
        pass
    try:
        parts = _RAW_LIST_DECODE(frame)
    except _DECODE_FAILURES:
        return [decode_ws(frame, config=config)]  # not an array: one message, or a ProtocolError
    out: list[WsMessage] = []
    for index, part in enumerate(parts):
        try:
            out.append(decode_ws(memoryview(part), config=config))
        except ProtocolError as exc:
            raise ProtocolError(f"item {index} of a list frame: {exc}", frame) from None
    return out


def decoder_for(
    format: str = "DEFAULT", *, config: UpbitProtocolConfig = DEFAULT_CONFIG
) -> Callable[[Frame], WsMessage]:
    """A :func:`decode_ws` that tries the connection's own format first.

    :func:`decode_ws` tries DEFAULT first, so every SIMPLE frame pays for one failed DEFAULT attempt. A
    connection knows the format it subscribed with; the decoder returned here starts with that format
    and still accepts everything :func:`decode_ws` does, with the same results and errors.

    Args:
        format: the format of the connection's subscription, ``"DEFAULT"`` or ``"SIMPLE"``.
        config: as for :func:`decode_ws`.

    Returns:
        A function ``frame -> message``.

    Raises:
        ConfigError: an unknown format, or a LIST format (those frames need :func:`decode_ws_many`).
    """
    if format == "DEFAULT":
        return decode_ws if config is DEFAULT_CONFIG else functools.partial(decode_ws, config=config)
    if format != "SIMPLE":
        raise ConfigError(
            f"decoder_for() takes 'DEFAULT' or 'SIMPLE', got {format!r}; "
            "JSON_LIST/SIMPLE_LIST frames hold several messages: use decode_ws_many()"
        )

    def decode_simple_first(frame: Frame) -> WsMessage:
        try:
            wire = _SIMPLE_DECODE(frame)
        except _DECODE_FAILURES:
            return decode_ws(frame, config=config)
        return _from_simple(wire)

    return decode_simple_first


def _decode_ws_slow(frame: Frame, config: UpbitProtocolConfig) -> WsMessage:
    """Everything but a well-formed DEFAULT ticker/trade/orderbook frame."""
    try:
        wire = _SIMPLE_DECODE(frame)
    except _DECODE_FAILURES:
        pass
    else:
        return _from_simple(wire)
    try:
        obj = _ANY_DECODE(frame)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not a JSON frame: {exc}", frame) from None
    except TypeError:
        raise ProtocolError(
            f"a frame must be bytes or str, got {type(frame).__name__}", frame
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"undecodable frame: {type(exc).__name__}", frame) from None
    return _dispatch_ws(obj, frame, config)


def _from_simple(wire: SimpleTicker | SimpleTrade | SimpleOrderbook) -> Ticker | Trade | Orderbook:
    """SIMPLE wire shape -> model. The shapes use the model's attribute names, so ``asdict`` is the map.

    (``msgspec.convert(..., from_attributes=True)`` does the same but measured twice as slow.)
    """
    fields = msgspec.structs.asdict(wire)
    if type(wire) is SimpleOrderbook:
        fields["units"] = tuple(
            [OrderbookUnit(u.ask_price, u.bid_price, u.ask_size, u.bid_size) for u in wire.units]
        )
        return Orderbook(**fields)
    return cast("Ticker | Trade", _SIMPLE_TARGET[type(wire)](**fields))


def _dispatch_ws(obj: Any, frame: Frame, config: UpbitProtocolConfig) -> WsMessage:
    """Route a generically decoded frame by its keys."""
    if isinstance(obj, list):
        raise ProtocolError(
            "a JSON array frame (format JSON_LIST or SIMPLE_LIST) holds several messages; "
            "decode it with decode_ws_many()",
            frame,
        )
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got a JSON {type(obj).__name__}", frame)
    if "error" in obj:
        raise _ws_error(obj, frame, config)
    if "status" in obj:
        if obj["status"] == "UP":
            return KEEPALIVE
        raise ProtocolError(f"unknown status frame {obj['status']!r} (expected 'UP')", frame)
    simple = "type" not in obj
    kind = obj.get("ty") if simple else obj["type"]
    if kind is None:
        method = obj.get("mthd") if "method" not in obj else obj["method"]
        if method == "LIST_SUBSCRIPTIONS":
            return _subscription_list(obj, simple="method" not in obj, frame=frame)
        raise ProtocolError("frame has no 'type' (DEFAULT) or 'ty' (SIMPLE) field", frame)
    if not isinstance(kind, str):
        raise ProtocolError(f"frame type must be a string, got {kind!r}", frame)
    fmt = "SIMPLE" if simple else "DEFAULT"
    if kind.startswith("candle."):
        return _candle_from_ws(obj, kind, simple=simple, frame=frame)
    shape = (_SIMPLE_SHAPES if simple else _DEFAULT_SHAPES).get(kind)
    if shape is None:
        raise ProtocolError(f"unknown {fmt} message type {kind!r}", frame)
    try:
        wire = msgspec.convert(obj, shape)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"malformed {fmt} {kind} frame: {exc}", frame) from None
    # Reached only if the typed decoders failed on something the generic route accepts.
    return _from_simple(wire) if simple else cast("WsMessage", wire)


def _candle_from_ws(obj: dict[str, Any], kind: str, *, simple: bool, frame: Frame) -> Candle:
    """``candle.1m`` -> ``unit="1m"``; ``start`` from ``candle_date_time_utc`` (protocol.md 5.4)."""
    unit = kind[len("candle."):]
    fmt = "SIMPLE" if simple else "DEFAULT"
    if unit not in WS_CANDLE_UNITS:
        known = ", ".join(WS_CANDLE_UNITS)
        raise ProtocolError(f"unknown {fmt} candle type {kind!r} (known units: {known})", frame)
    wire: DefaultCandle | SimpleCandle
    try:
        wire = msgspec.convert(obj, SimpleCandle) if simple else msgspec.convert(obj, DefaultCandle)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"malformed {fmt} {kind} frame: {exc}", frame) from None
    return Candle(
        symbol=wire.symbol,
        unit=unit,
        start=_utc_ms(wire.start_utc, frame),
        open=wire.open,
        high=wire.high,
        low=wire.low,
        close=wire.close,
        volume=wire.volume,
        value=wire.value,
        timestamp=wire.timestamp,
        stream_type=wire.stream_type,
        source="websocket",
    )


def _subscription_list(obj: dict[str, Any], *, simple: bool, frame: Frame) -> SubscriptionList:
    """A LIST_SUBSCRIPTIONS answer in either format (protocol.md 4.6)."""
    wire: DefaultSubscriptionList | SimpleSubscriptionList
    try:
        if simple:
            wire = msgspec.convert(obj, SimpleSubscriptionList)
        else:
            wire = msgspec.convert(obj, DefaultSubscriptionList)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"malformed LIST_SUBSCRIPTIONS answer: {exc}", frame) from None
    subs = tuple(SubscriptionInfo(s.channel, tuple(s.codes), s.level) for s in wire.result)
    return SubscriptionList(subs, None if wire.ticket is None else str(wire.ticket))


def _ws_error(obj: dict[str, Any], frame: Frame, config: UpbitProtocolConfig) -> RxMarketError:
    """Map ``{"error": {"name", "message"}}`` to a typed error (protocol.md 4.5; never match messages)."""
    try:
        err = msgspec.convert(obj, ErrorFrame).error
    except msgspec.ValidationError as exc:
        return ProtocolError(f"malformed error frame: {exc}", frame)
    if config.is_too_many_requests(err.name):
        return RateLimited(config.default_retry_after, detail=f"{err.name}: {err.message}")
    return ExchangeRejected(err.name, err.message)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


def _utc_ms(text: str, data: Any) -> int:
    """``"2026-07-30T07:45:00"`` (UTC when no offset is given) -> epoch milliseconds, exactly."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ProtocolError(f"candle start {text!r} is not an ISO 8601 date-time", data) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


# ---------------------------------------------------------------------------------------------------------
# REST decoding (protocol.md 2 and 6).
# ---------------------------------------------------------------------------------------------------------

RestKind = Literal["ticker", "orderbook", "trades", "candles", "markets", "instruments"]
_REST_KINDS: Final = ("ticker", "orderbook", "trades", "candles", "markets", "instruments")


@overload
def decode_rest(
    kind: Literal["ticker"], body: bytes | str, *, status: int = ..., unit: str | None = ...,
    symbol: str | None = ..., headers: Mapping[str, str] | None = ..., config: UpbitProtocolConfig = ...,
) -> list[Ticker]: ...
@overload
def decode_rest(
    kind: Literal["orderbook"], body: bytes | str, *, status: int = ..., unit: str | None = ...,
    symbol: str | None = ..., headers: Mapping[str, str] | None = ..., config: UpbitProtocolConfig = ...,
) -> list[Orderbook]: ...
@overload
def decode_rest(
    kind: Literal["trades"], body: bytes | str, *, status: int = ..., unit: str | None = ...,
    symbol: str | None = ..., headers: Mapping[str, str] | None = ..., config: UpbitProtocolConfig = ...,
) -> list[Trade]: ...
@overload
def decode_rest(
    kind: Literal["candles"], body: bytes | str, *, status: int = ..., unit: str | None = ...,
    symbol: str | None = ..., headers: Mapping[str, str] | None = ..., config: UpbitProtocolConfig = ...,
) -> list[Candle]: ...
@overload
def decode_rest(
    kind: Literal["markets"], body: bytes | str, *, status: int = ..., unit: str | None = ...,
    symbol: str | None = ..., headers: Mapping[str, str] | None = ..., config: UpbitProtocolConfig = ...,
) -> list[Market]: ...
@overload
def decode_rest(
    kind: Literal["instruments"], body: bytes | str, *, status: int = ..., unit: str | None = ...,
    symbol: str | None = ..., headers: Mapping[str, str] | None = ..., config: UpbitProtocolConfig = ...,
) -> list[OrderbookInstrument]: ...
@overload
def decode_rest(
    kind: str, body: bytes | str, *, status: int = ..., unit: str | None = ...,
    symbol: str | None = ..., headers: Mapping[str, str] | None = ..., config: UpbitProtocolConfig = ...,
) -> list[Any]: ...


def decode_rest(
    kind: str,
    body: bytes | str,
    *,
    status: int = 200,
    unit: str | None = None,
    symbol: str | None = None,
    headers: Mapping[str, str] | None = None,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> list[Any]:
    """Decode a REST answer into models with ``source="rest"``.

    REST names and conventions differ from the WebSocket's (protocol.md 6): ``market`` is the symbol; a
    trade's ``timestamp`` is the trade's time and its signed ``change_price`` becomes the model's
    unsigned ``change_price`` plus ``change`` (``RISE``/``EVEN``/``FALL``); candles take their unit from
    ``unit`` (the endpoint asked) or the body's ``unit`` field (minute candles).

    Args:
        kind: ``"ticker"``, ``"orderbook"``, ``"trades"``, ``"candles"``, ``"markets"`` or
            ``"instruments"`` (``/orderbook/instruments``).
        body: the response body.
        status: the HTTP status; anything but 2xx is turned into an error by
            :func:`error_from_response`.
        unit: the candle unit asked for (``"1s"``, ``"1m"`` ... ``"1y"``); needed for ``"candles"``
            unless every item carries a ``unit`` field (minute candles).
        symbol: if given, the market every item must be about (a check that the answer matches the
            request); compared case-insensitively, as REST accepts lower-case codes.
        headers: response headers, used for the error of a non-2xx status (``Retry-After``,
            ``Remaining-Req``).
        config: see :class:`UpbitProtocolConfig`.

    Returns:
        A list of ``Ticker``, ``Orderbook``, ``Trade``, ``Candle``, ``Market`` or
        :class:`OrderbookInstrument`, in the order of the body (candles and trades: newest first).

    Raises:
        ConfigError: unknown ``kind`` or ``unit``; ``"candles"`` without a unit from either source.
        NotFound, ExchangeRejected, RateLimited, Banned, ServerError: an error status or error body.
        ProtocolError: a body that is not the expected JSON array, or items about another market or unit.
    """
    if kind not in _REST_KINDS:
        raise ConfigError(f"unknown REST kind {kind!r}; expected one of {', '.join(_REST_KINDS)}")
    if unit is not None and unit not in CANDLE_UNITS:
        raise ConfigError(f"unknown candle unit {unit!r}; expected one of {', '.join(CANDLE_UNITS)}")
    if not 200 <= status < 300:
        raise error_from_response(status, body, headers, config=config)
    try:
        items = _decode_rest_items(kind, body, unit)
    except RxMarketError:
        raise  # already typed (ConfigError is also a ValueError: keep it out of the next clause)
    except _DECODE_FAILURES as exc:
        error = error_from_response(status, body, headers, config=config)
        if not isinstance(error, ProtocolError):
            raise error from None  # a 2xx status carrying an error object is still the exchange's error
        raise ProtocolError(f"REST {kind} body is not the expected JSON array: {exc}", body) from None
    if symbol is not None:
        wanted = symbol.upper()
        for item in items:
            if item.symbol != wanted:
                raise ProtocolError(f"REST {kind} answer is about {item.symbol!r}, not {wanted!r}", body)
    return items


def _decode_rest_items(kind: str, body: bytes | str, unit: str | None) -> list[Any]:
    if kind == "ticker":
        tickers = REST_TICKERS_DECODER.decode(body)
        return [Ticker(**msgspec.structs.asdict(w), source="rest") for w in tickers]
    if kind == "orderbook":
        books = REST_ORDERBOOKS_DECODER.decode(body)
        return [Orderbook(**msgspec.structs.asdict(w), source="rest") for w in books]
    if kind == "trades":
        return [
            Trade(
                symbol=w.market,
                price=w.trade_price,
                volume=w.trade_volume,
                ask_bid=w.ask_bid,
                timestamp=w.timestamp,
                sequential_id=w.sequential_id,
                prev_close=w.prev_closing_price,
                # REST's change_price is signed; the model keeps WebSocket's unsigned value + direction.
                change=None if w.change_price is None else _direction(w.change_price),
                change_price=None if w.change_price is None else abs(w.change_price),
                trade_date=w.trade_date_utc,
                trade_time=w.trade_time_utc,
                source="rest",
            )
            for w in REST_TRADES_DECODER.decode(body)
        ]
    if kind == "candles":
        return [_candle_from_rest(w, unit, body) for w in REST_CANDLES_DECODER.decode(body)]
    if kind == "markets":
        return [
            Market(
                symbol=w.market,
                english_name=w.english_name,
                korean_name=w.korean_name,
                market_warning=w.market_warning,
                market_event=w.market_event,
                source="rest",
            )
            for w in REST_MARKETS_DECODER.decode(body)
        ]
    return [
        OrderbookInstrument(
            symbol=w.market,
            quote_currency=w.quote_currency,
            tick_size=w.tick_size,
            supported_levels=w.supported_levels,
        )
        for w in REST_INSTRUMENTS_DECODER.decode(body)
    ]


def _direction(change_price: float) -> str:
    return "RISE" if change_price > 0 else "FALL" if change_price < 0 else "EVEN"


def _candle_from_rest(w: RestCandle, unit: str | None, body: bytes | str) -> Candle:
    body_unit = None if w.unit is None else f"{w.unit}m"
    if unit is None:
        if body_unit is None:
            raise ConfigError(
                "decode_rest('candles') needs unit=: this endpoint's candles carry no 'unit' field"
            )
        unit = body_unit
    elif body_unit is not None and body_unit != unit:
        raise ProtocolError(f"asked for {unit!r} candles, the body says unit {w.unit!r}", body)
    if unit not in CANDLE_UNITS:
        raise ProtocolError(f"unknown candle unit {unit!r} in the body", body)
    return Candle(
        symbol=w.market,
        unit=unit,
        start=_utc_ms(w.candle_date_time_utc, body),
        open=w.opening_price,
        high=w.high_price,
        low=w.low_price,
        close=w.trade_price,
        volume=w.candle_acc_trade_volume,
        value=w.candle_acc_trade_price,
        timestamp=w.timestamp,
        prev_close=w.prev_closing_price,
        change_price=w.change_price,
        change_rate=w.change_rate,
        converted_close=w.converted_trade_price,
        first_day_of_period=w.first_day_of_period,
        source="rest",
    )


# ---------------------------------------------------------------------------------------------------------
# HTTP errors and headers (protocol.md 2.2 and 3).
# ---------------------------------------------------------------------------------------------------------


def error_from_response(
    status: int,
    body: bytes | str,
    headers: Mapping[str, str] | None = None,
    *,
    now: float | None = None,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> RxMarketError:
    """Turn an HTTP error answer into the matching error (returned, not raised: the caller raises it).

    Mapping: 418 -> :class:`Banned`; 429, or an error name meaning "too many requests" ->
    :class:`RateLimited`; 404 -> :class:`NotFound`; other 4xx -> :class:`ExchangeRejected`; 5xx ->
    :class:`ServerError`. Upbit's error body is ``{"error": {"name", "message"}}`` with the HTTP code
    as an integer ``name`` for quotation errors, ``"not_found"`` for an unknown path; the bodies of 429
    and 418 are unconfirmed, so any body (JSON or plain text) is accepted.

    Args:
        status: the HTTP status code.
        body: the response body (may be empty or not JSON).
        headers: the response headers (case-insensitive lookup); ``Retry-After`` gives a 429's wait,
            ``Remaining-Req`` its rate-limit group.
        now: the current time in epoch seconds, for a ban's ``until`` and an HTTP-date ``Retry-After``
            (default: ``time.time()``).
        config: defaults for what the answer does not say (see :class:`UpbitProtocolConfig`).

    Returns:
        The error to raise. A non-error status with no error object gives a :class:`ProtocolError`.
    """
    name, message = _error_fields(body)
    detail = message if name is None else f"{name}: {message}"
    if status == 418:
        duration = _ban_duration(body, config)
        start = time.time() if now is None else now
        return Banned(until=start + duration, duration=duration, detail=detail)
    if status == 429 or config.is_too_many_requests(name):
        retry_after = _retry_after(_header(headers, "Retry-After"), now, config)
        return RateLimited(retry_after, group=_group(headers), detail=detail)
    if status >= 500:
        return ServerError(status, detail)
    if status == 404:
        return NotFound(404 if name is None else name, message, status)
    if 400 <= status < 500 or name is not None:
        return ExchangeRejected(status if name is None else name, message, status)
    return ProtocolError(f"HTTP {status} with no error object in the body", body)


def _error_fields(body: bytes | str) -> tuple[str | int | None, str]:
    """``(name, message)`` of an error body; ``(None, text excerpt)`` when it holds no error object."""
    try:
        err = ERROR_FRAME_DECODER.decode(body).error
    except _DECODE_FAILURES:
        return None, excerpt(body).strip()
    return err.name, err.message


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header value, looked up case-insensitively whatever mapping the HTTP layer passes."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    folded = name.casefold()
    for key, value in headers.items():
        if key.casefold() == folded:
            return value
    return None


def _group(headers: Mapping[str, str] | None) -> str | None:
    value = _header(headers, "Remaining-Req")
    if value is None:
        return None
    try:
        return parse_remaining_req(value).group
    except ProtocolError:
        return None


def _retry_after(value: str | None, now: float | None, config: UpbitProtocolConfig) -> float:
    """``Retry-After`` as delta-seconds or an HTTP-date (RFC 9110 10.2.3); the default when absent/bad."""
    if value is None:
        return config.default_retry_after
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else config.default_retry_after
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return config.default_retry_after
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    start = time.time() if now is None else now
    return max(0.0, when.timestamp() - start)


def _ban_duration(body: bytes | str, config: UpbitProtocolConfig) -> float:
    """The block length stated in a 418 body, else ``config.ban_duration``."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)
    match = re.search(config.ban_duration_pattern, text)
    if match is None:
        return config.ban_duration
    try:
        value = float(match.group("value"))
    except (TypeError, ValueError):
        return config.ban_duration
    unit = match.groupdict().get("unit")
    scale = 1.0 if not unit else _UNIT_SECONDS.get(unit.lower(), 1.0)
    seconds = value * scale
    return seconds if math.isfinite(seconds) else config.ban_duration


_REMAINING_REQ = re.compile(r"\s*group=([a-z\-]+);\s*min=([0-9]+);\s*sec=([0-9]+)\s*")


def parse_remaining_req(header: str) -> RemainingReq:
    """Parse a ``Remaining-Req`` header, e.g. ``group=ticker; min=600; sec=9`` (protocol.md 3).

    Args:
        header: the header's value.

    Returns:
        The group and the requests left (``sec`` this second; ``min`` is a legacy fixed number).

    Raises:
        ProtocolError: the value does not have that shape.
    """
    match = _REMAINING_REQ.fullmatch(header) if isinstance(header, str) else None
    if match is None:
        raise ProtocolError("Remaining-Req header is not 'group=<name>; min=<n>; sec=<n>'", header)
    return RemainingReq(match.group(1), int(match.group(2)), int(match.group(3)))


# ---------------------------------------------------------------------------------------------------------
# Request frames (protocol.md 4.2 and 4.6).
# ---------------------------------------------------------------------------------------------------------


class Subscription(msgspec.Struct, frozen=True):
    """One channel for some markets, as asked by a caller of :func:`build_subscribe`.

    Attributes:
        channel: ``"ticker"``, ``"trade"``, ``"orderbook"`` or ``"candle.1s"`` ... ``"candle.240m"``.
        codes: market codes (upper-cased on the wire: Upbit's WebSocket ignores lower-case codes).
        depth: orderbook only: 1, 5, 15 or 30 levels, sent as the ``CODE.n`` suffix.
        level: orderbook only: the price grouping step (KRW markets), e.g. ``10000``.
        only_snapshot: ask for the first (SNAPSHOT) frame of each code only.
        only_realtime: ask for REALTIME frames only (no snapshot).
    """

    channel: str
    codes: tuple[str, ...]
    depth: int | None = None
    level: int | float | None = None
    only_snapshot: bool = False
    only_realtime: bool = False


def build_subscribe(
    subscriptions: Iterable[Subscription],
    *,
    ticket: str | None = None,
    format: str | None = "DEFAULT",
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> bytes:
    """Build the one request frame that subscribes a connection to everything it needs.

    Upbit replaces a connection's whole subscription set with each new request (protocol.md 4.1), so all
    subscriptions go into **one** frame under one ticket: ``[{"ticket"}, {type...}, ..., {"format"}]``.
    Subscriptions with the same channel, level and flags share one type object (codes in first-seen
    order, duplicates dropped; if one code is asked at two depths, the deeper wins, no depth meaning
    Upbit's full 30).

    Args:
        subscriptions: what to subscribe to.
        ticket: the request's ticket (default: a new UUID4).
        format: ``"DEFAULT"``, ``"SIMPLE"``, ``"JSON_LIST"`` or ``"SIMPLE_LIST"``; ``None`` leaves the
            format object out (Upbit then uses DEFAULT).
        config: spelling of the snapshot/realtime flags.

    Returns:
        The frame as UTF-8 JSON bytes, ready to send.

    Raises:
        ConfigError: no subscription, an unknown channel or format, no or malformed codes, a depth
            other than 1/5/15/30, ``depth``/``level`` on a non-orderbook channel, or both flags set.
    """
    groups: dict[tuple[str, int | float | None, bool, bool], dict[str, int | None]] = {}
    for sub in subscriptions:
        _check_subscription(sub)
        key = (sub.channel, sub.level, sub.only_snapshot, sub.only_realtime)
        codes = groups.setdefault(key, {})
        for raw in sub.codes:
            code = raw.strip().upper()
            if code in codes:
                old = codes[code]
                codes[code] = None if old is None or sub.depth is None else max(old, sub.depth)
            else:
                codes[code] = sub.depth
    if not groups:
        raise ConfigError("build_subscribe() needs at least one Subscription")
    snapshot, realtime = (
        ("is_only_snapshot", "is_only_realtime")
        if config.subscribe_flag_style == "snake_case"
        else ("isOnlySnapshot", "isOnlyRealtime")
    )
    frame: list[dict[str, Any]] = [{"ticket": _ticket(ticket)}]
    for (channel, level, only_snapshot, only_realtime), codes in groups.items():
        obj: dict[str, Any] = {
            "type": channel,
            "codes": [code if depth is None else f"{code}.{depth}" for code, depth in codes.items()],
        }
        if level is not None:
            obj["level"] = level
        if only_snapshot:
            obj[snapshot] = True
        if only_realtime:
            obj[realtime] = True
        frame.append(obj)
    if format is not None:
        frame.append({"format": _format(format)})
    return msgspec.json.encode(frame)


def build_list_subscriptions(
    ticket: str | None = None,
    format: str | None = "DEFAULT",
) -> bytes:
    """Build a ``LIST_SUBSCRIPTIONS`` request (protocol.md 4.6); the answer decodes to a SubscriptionList.

    Its ``format`` also switches the format of the connection's live streams, so pass the one the
    connection subscribed with. It counts against the per-connection message limit (5/s, 100/min).

    Args:
        ticket: the request's ticket (default: a new UUID4).
        format: as for :func:`build_subscribe`; ``None`` leaves the format object out.

    Returns:
        The frame as UTF-8 JSON bytes.

    Raises:
        ConfigError: an empty ticket or an unknown format.
    """
    frame: list[dict[str, Any]] = [{"ticket": _ticket(ticket)}, {"method": "LIST_SUBSCRIPTIONS"}]
    if format is not None:
        frame.append({"format": _format(format)})
    return msgspec.json.encode(frame)


def _ticket(ticket: str | None) -> str:
    if ticket is None:
        return str(uuid.uuid4())
    if not isinstance(ticket, str) or not ticket.strip():
        raise ConfigError(f"ticket must be a non-empty string, got {ticket!r}")
    return ticket


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown WebSocket format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return fmt


_CODE = re.compile(r"[A-Z0-9]+-[A-Z0-9]+")


def market_code(code: object) -> str:
    """A market code in Upbit's spelling: ``" krw-btc"`` -> ``"KRW-BTC"`` (WebSocket codes are upper case).

    Raises:
        ConfigError: ``code`` is not ``QUOTE-BASE`` (letters and digits on each side of one dash).
    """
    if not isinstance(code, str) or not _CODE.fullmatch(normal := code.strip().upper()):
        raise ConfigError(f"market code {code!r} is not QUOTE-BASE, e.g. 'KRW-BTC'")
    return normal


def _check_subscription(sub: Subscription) -> None:
    """Reject what Upbit would refuse (an error frame closes the socket) or silently ignore."""
    if not isinstance(sub, Subscription):
        raise ConfigError(f"expected a Subscription, got {type(sub).__name__}")
    if sub.channel not in CHANNELS:
        raise ConfigError(f"unknown channel {sub.channel!r}; expected one of {', '.join(CHANNELS)}")
    codes: object = sub.codes  # typed as a tuple, but callers may pass anything
    if isinstance(codes, str) or not sub.codes:
        raise ConfigError(f"codes must be a non-empty sequence of market codes, got {sub.codes!r}")
    for code in sub.codes:
        try:
            market_code(code)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; give orderbook depth as depth=, not as a '.N' suffix") from None
    if sub.channel != "orderbook" and (sub.depth is not None or sub.level is not None):
        raise ConfigError(f"depth and level apply to the orderbook channel only, not {sub.channel!r}")
    if sub.depth is not None and (isinstance(sub.depth, bool) or sub.depth not in ORDERBOOK_DEPTHS):
        raise ConfigError(
            f"orderbook depth {sub.depth!r} is not served; expected one of {ORDERBOOK_DEPTHS} (or None: 30)"
        )
    if sub.level is not None and (
        isinstance(sub.level, bool)
        or not isinstance(sub.level, int | float)
        or not math.isfinite(sub.level)
        or sub.level < 0
    ):
        raise ConfigError(f"orderbook level must be a number >= 0, got {sub.level!r}")
    if sub.only_snapshot and sub.only_realtime:
        raise ConfigError("only_snapshot and only_realtime together would receive nothing; choose one")

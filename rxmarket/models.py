"""Typed market-data models: frozen msgspec Structs, pure data, no I/O.

The models are decoded *directly* from Upbit's DEFAULT WebSocket frames: each contract field carries
the wire key as its encoded name (``symbol`` is ``"code"`` on the wire, ``price`` is ``"trade_price"``),
and the three hot models are tagged on ``type``. That lets ``msgspec`` build the model in one pass with no
intermediate object, which is what keeps ``decode_ws`` within 10 % of a raw typed decode. SIMPLE frames
and REST bodies go through their own wire shapes (``rxmarket.exchanges.upbit._wire``) and are converted to
the same models, with the same meaning per field.

Conventions:

* prices and sizes are ``float``; timestamps are ``int`` milliseconds since the epoch (UTC), exchange time;
* ``source`` says where an item came from: ``"websocket"``, ``"rest"``, ``"cache"`` or ``"replay"``;
* every field Upbit documents is kept (optional ones default to ``None``) so a decode is lossless;
* derived values (``Trade.side``, ``Orderbook.asks``/``bids``/``best_bid``/...) are properties, computed
  from the stored fields, so they can never disagree with them.

Candle units are spelled ``"1s"``, ``"1m"``, ``"3m"``, ``"5m"``, ``"10m"``, ``"15m"``, ``"30m"``,
``"60m"``, ``"240m"``, ``"1d"``, ``"1w"``, ``"1mo"``, ``"1y"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "CANDLE_UNITS",
    "Candle",
    "Market",
    "Model",
    "Orderbook",
    "OrderbookLevel",
    "OrderbookUnit",
    "Source",
    "Status",
    "StatusKind",
    "Ticker",
    "Trade",
]

Source = Literal["websocket", "rest", "cache", "replay"]

CANDLE_UNITS: Final = (
    "1s", "1m", "3m", "5m", "10m", "15m", "30m", "60m", "240m", "1d", "1w", "1mo", "1y",
)


class Ticker(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="type", tag="ticker"):
    """The 24-hour summary of one market, updated on every trade.

    ``change_price`` and ``change_rate`` are **signed** (a fall is negative); Upbit's unsigned twins are
    ``abs()`` of these. Day fields (``open``, ``acc_trade_*``) reset at 00:00 UTC; ``*_24h`` are rolling.
    """

    # Declared in Upbit's DEFAULT key order: msgspec matches keys fastest when they arrive in field order.
    symbol: str = msgspec.field(name="code")
    open: float = msgspec.field(name="opening_price")
    high: float = msgspec.field(name="high_price")
    low: float = msgspec.field(name="low_price")
    price: float = msgspec.field(name="trade_price")
    prev_close: float = msgspec.field(name="prev_closing_price")
    acc_trade_price: float | None = None
    change: str
    change_price: float = msgspec.field(name="signed_change_price")
    change_rate: float = msgspec.field(name="signed_change_rate")
    ask_bid: str | None = None
    trade_volume: float | None = None
    acc_trade_volume: float | None = None
    trade_date: str | None = None
    trade_time: str | None = None
    trade_timestamp: int | None = None
    acc_ask_volume: float | None = None
    acc_bid_volume: float | None = None
    highest_52_week_price: float | None = None
    highest_52_week_date: str | None = None
    lowest_52_week_price: float | None = None
    lowest_52_week_date: str | None = None
    trade_status: str | None = None
    market_state: str | None = None
    market_state_for_ios: str | None = None
    is_trading_suspended: bool | None = None
    delisting_date: Any = None
    market_warning: str | None = None
    timestamp: int
    value_24h: float = msgspec.field(name="acc_trade_price_24h")
    volume_24h: float = msgspec.field(name="acc_trade_volume_24h")
    trade_date_kst: str | None = None
    trade_time_kst: str | None = None
    stream_type: str | None = None
    source: str = "websocket"


class OrderbookUnit(msgspec.Struct, frozen=True, gc=False):
    """One row of an Upbit book as sent: the i-th best ask beside the i-th best bid."""

    ask_price: float
    bid_price: float
    ask_size: float
    bid_size: float


class OrderbookLevel(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One price level of one side of a book."""

    price: float
    size: float


class Orderbook(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="type", tag="orderbook"):
    """A whole order book (Upbit never sends deltas: each one replaces the previous).

    The rows are kept as Upbit sends them (``units``, best first). ``asks`` (ascending) and ``bids``
    (descending) are the per-side views; levels Upbit pads with price 0 on a thin side are left out.
    Build one from per-side levels with :meth:`from_levels`.
    """

    symbol: str = msgspec.field(name="code")
    timestamp: int
    units: tuple[OrderbookUnit, ...] = msgspec.field(name="orderbook_units")
    total_ask_size: float
    total_bid_size: float
    level: float | None = None
    stream_type: str | None = None
    source: str = "websocket"

    @classmethod
    def from_levels(
        cls,
        *,
        symbol: str,
        timestamp: int,
        asks: Iterable[OrderbookLevel | tuple[float, float]],
        bids: Iterable[OrderbookLevel | tuple[float, float]],
        total_ask_size: float | None = None,
        total_bid_size: float | None = None,
        level: float | None = None,
        stream_type: str | None = None,
        source: str = "websocket",
    ) -> Orderbook:
        """Build a book from per-side levels (best first); the shorter side is padded with zeros."""
        ask_list = [OrderbookLevel(*a) if isinstance(a, tuple) else a for a in asks]
        bid_list = [OrderbookLevel(*b) if isinstance(b, tuple) else b for b in bids]
        zero = OrderbookLevel(0.0, 0.0)
        depth = max(len(ask_list), len(bid_list))
        ask_list += [zero] * (depth - len(ask_list))
        bid_list += [zero] * (depth - len(bid_list))
        units = tuple(
            OrderbookUnit(a.price, b.price, a.size, b.size) for a, b in zip(ask_list, bid_list, strict=True)
        )
        return cls(
            symbol=symbol,
            timestamp=timestamp,
            units=units,
            total_ask_size=sum(a.size for a in ask_list) if total_ask_size is None else total_ask_size,
            total_bid_size=sum(b.size for b in bid_list) if total_bid_size is None else total_bid_size,
            level=level,
            stream_type=stream_type,
            source=source,
        )

    @property
    def asks(self) -> list[OrderbookLevel]:
        """Ask levels, best (lowest) first; zero padding left out."""
        return [OrderbookLevel(u.ask_price, u.ask_size) for u in self.units if u.ask_price > 0]

    @property
    def bids(self) -> list[OrderbookLevel]:
        """Bid levels, best (highest) first; zero padding left out."""
        return [OrderbookLevel(u.bid_price, u.bid_size) for u in self.units if u.bid_price > 0]

    @property
    def best_ask(self) -> OrderbookLevel | None:
        """The lowest ask, or ``None`` on an empty ask side."""
        for u in self.units:
            if u.ask_price > 0:
                return OrderbookLevel(u.ask_price, u.ask_size)
        return None

    @property
    def best_bid(self) -> OrderbookLevel | None:
        """The highest bid, or ``None`` on an empty bid side."""
        for u in self.units:
            if u.bid_price > 0:
                return OrderbookLevel(u.bid_price, u.bid_size)
        return None

    @property
    def spread(self) -> float | None:
        """``best_ask.price - best_bid.price`` (negative when crossed), or ``None`` if a side is empty."""
        ask, bid = self.best_ask, self.best_bid
        if ask is None or bid is None:
            return None
        return ask.price - bid.price

    @property
    def mid(self) -> float | None:
        """The mid price, or ``None`` if a side is empty."""
        ask, bid = self.best_ask, self.best_bid
        if ask is None or bid is None:
            return None
        return (ask.price + bid.price) / 2


class Trade(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="type", tag="trade"):
    """One executed trade.

    ``timestamp`` is the trade's own time (WebSocket ``trade_timestamp``, REST ``timestamp``);
    ``frame_timestamp`` is when the WebSocket frame was made (absent over REST). ``change_price`` is
    unsigned with its direction in ``change``, as Upbit sends it over WebSocket; REST's signed value is
    converted to this form. ``sequential_id`` is unique per trade but not an ordering key.
    """

    # Declared in Upbit's DEFAULT key order (see Ticker).
    symbol: str = msgspec.field(name="code")
    frame_timestamp: int | None = msgspec.field(default=None, name="timestamp")
    trade_date: str | None = None
    trade_time: str | None = None
    timestamp: int = msgspec.field(name="trade_timestamp")
    price: float = msgspec.field(name="trade_price")
    volume: float = msgspec.field(name="trade_volume")
    ask_bid: str
    prev_close: float | None = msgspec.field(default=None, name="prev_closing_price")
    change: str | None = None
    change_price: float | None = None
    sequential_id: int
    best_ask_price: float | None = None
    best_ask_size: float | None = None
    best_bid_price: float | None = None
    best_bid_size: float | None = None
    stream_type: str | None = None
    source: str = "websocket"

    @property
    def side(self) -> Literal["buy", "sell"]:
        """The taker's side: ``"sell"`` for Upbit's ``ASK`` (seller-initiated), ``"buy"`` for ``BID``."""
        return "sell" if self.ask_bid == "ASK" else "buy"

    @property
    def signed_change_price(self) -> float | None:
        """``change_price`` with a minus sign for a fall."""
        if self.change_price is None:
            return None
        return -self.change_price if self.change == "FALL" else self.change_price


class Candle(msgspec.Struct, frozen=True, gc=False, kw_only=True, tag_field="type", tag="candle"):
    """One OHLCV candle. ``start`` is the candle's start (ms, UTC); ``close`` is its last trade price.

    Upbit resends an open candle as it changes: the newest version of a ``(symbol, unit, start)`` wins.
    """

    symbol: str
    unit: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    value: float
    timestamp: int | None = None
    prev_close: float | None = None
    change_price: float | None = None
    change_rate: float | None = None
    converted_close: float | None = None
    first_day_of_period: str | None = None
    stream_type: str | None = None
    source: str = "websocket"


class Market(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="market"):
    """A tradable pair from ``/market/all`` (``symbol`` is ``QUOTE-BASE``, e.g. ``KRW-BTC``)."""

    symbol: str
    english_name: str | None = None
    korean_name: str | None = None
    market_warning: str | None = None
    market_event: dict[str, Any] | None = None
    source: str = "rest"


StatusKind = Literal[
    "connecting",
    "live",
    "stale",
    "backoff",
    "reconnected",
    "gap_filled",
    "gave_up",
    "quarantined",
    "rate_limited",
    "circuit",
    "closed",
]


class Status(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="status"):
    """One event about the health of a feed, as published on ``market.status``.

    ``kind`` says what happened; the optional fields say where and how much:

    * ``connecting`` / ``live``: a connection is being made / is up and streaming;
    * ``stale``: ``symbol`` on ``channel`` has been silent for ``delay`` seconds;
    * ``backoff``: the next attempt waits ``delay`` seconds (attempt number in ``count``);
    * ``reconnected``: back up after ``downtime`` seconds;
    * ``gap_filled``: ``count`` missed items fetched over REST after a reconnect;
    * ``gave_up``: too many failures; ``detail`` holds the last error;
    * ``quarantined``: a frame or item was rejected (``detail`` says why);
    * ``rate_limited``: the exchange asked us to wait ``delay`` seconds;
    * ``circuit``: a breaker changed state (``detail`` is the new state);
    * ``closed``: the feed was shut down by its owner.
    """

    kind: str
    timestamp: float
    connection: int | None = None
    channel: str | None = None
    symbol: str | None = None
    delay: float | None = None
    downtime: float | None = None
    count: int | None = None
    detail: str = ""


Model = Ticker | Orderbook | Trade | Candle


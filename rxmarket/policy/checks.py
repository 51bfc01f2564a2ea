"""The built-in consistency checks of ``ops.validate`` and their repairs: pure functions of one item.

Each ``check_<model>`` returns ``None`` for a consistent item or the *first* :class:`Failure` found; each
``repair_<model>`` returns a corrected copy (models are frozen: ``msgspec.structs.replace`` or
``Orderbook.from_levels``). A repair is only attempted for a failure marked ``repairable``, and its result
is checked again by the caller, so a repair can never let an invalid item through.

Checks by model (name in the ``check`` column of a quarantine record; (R) = repairable):

* ``Ticker``: ``positive_prices`` (price, open, high, low, prev_close finite and > 0), ``price_range``
  (``low <= price <= high``, ``low <= open <= high``), ``sizes`` (24 h volume and value >= 0),
  ``timestamp`` (> 0), ``change`` (R: ``change``/``change_price``/``change_rate`` agree with
  ``price - prev_close``; the repair recomputes them).
* ``Orderbook``: ``positive_prices`` (levels finite and > 0, Upbit's zero padding allowed at the end of a
  side), ``asks_ascending`` / ``bids_descending`` (R: strictly, best first; the repair re-sorts),
  ``sizes`` (>= 0), ``crossed`` (R: best bid < best ask; the repair drops the bids at or above the best
  ask, the ask side being the reference), ``timestamp``. Repaired books get recomputed totals.
* ``Trade``: ``positive_prices``, ``sizes`` (volume > 0: a trade of nothing did not happen), ``side``
  (``ask_bid`` is ``"ASK"`` or ``"BID"``), ``timestamp``, ``change`` (R, when Upbit sent
  ``prev_close``: ``change_price`` is ``|price - prev_close|`` and ``change`` its direction).
* ``Candle``: ``positive_prices``, ``price_range`` (``low <= open, close <= high``), ``sizes``,
  ``unit`` (one of :data:`rxmarket.models.CANDLE_UNITS`), ``timestamp`` (``start`` > 0), ``change`` (R,
  day candles: ``change_price``/``change_rate`` agree with ``close - prev_close``, signed or not).

Comparisons are written so that NaN fails them (``not (x >= 0)`` rather than ``x < 0``).

Two checks depend on more than the item and live in ``ops.validate``: ``timestamp_order`` (a ticker's or
book's timestamp never goes back per symbol; the last one per symbol is per-subscription state) and
``max_age`` (:func:`check_age`: not older than a limit; the time is passed in).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from msgspec.structs import replace

from rxmarket.models import CANDLE_UNITS, Candle, Orderbook, OrderbookLevel, Ticker, Trade

__all__ = [
    "BUILTIN_CHECKS",
    "REPAIRS",
    "Failure",
    "check_age",
    "check_candle",
    "check_orderbook",
    "check_ticker",
    "check_trade",
    "repair_candle",
    "repair_orderbook",
    "repair_ticker",
    "repair_trade",
]

_INF: Final = math.inf
_UNITS: Final = frozenset(CANDLE_UNITS)

PRICE_TOLERANCE: Final = 1e-8
"""Relative tolerance (of ``prev_close``) between a sent change price and ``price - prev_close``."""
RATE_TOLERANCE: Final = 1e-6
"""Absolute tolerance of a sent change rate (Upbit rounds rates to 10 decimals, some sources to 8)."""


class Failure(NamedTuple):
    """Why an item failed a check.

    Attributes:
        check: the check's short name (``"price_range"``, ``"crossed"``, a user check's ``__name__`` ...).
        reason: what was wrong, with the values, for a person to read.
        repairable: whether ``on_invalid="correct"`` may repair it.
    """

    check: str
    reason: str
    repairable: bool = False


def _positive(x: float) -> bool:
    return 0.0 < x < _INF


def _direction(diff: float) -> str:
    return "RISE" if diff > 0 else "FALL" if diff < 0 else "EVEN"


# ---------------------------------------------------------------------------------------------- Ticker


def check_ticker(t: Ticker) -> Failure | None:
    """The first failed built-in check of a ticker, or ``None``."""
    p, lo, hi, pc = t.price, t.low, t.high, t.prev_close
    # Happy path first: chained comparisons cover positivity, finiteness, range, sizes and NaN at once;
    # only a failing item pays for finding out which check failed.
    if not (
        0.0 < lo <= p <= hi < _INF
        and lo <= t.open <= hi
        and 0.0 < pc < _INF
        and t.volume_24h >= 0.0
        and t.value_24h >= 0.0
        and t.timestamp > 0
    ):
        return _ticker_failure(t)
    diff = p - pc
    price_error = t.change_price - diff
    rate_error = t.change_rate - diff / pc
    tolerance = PRICE_TOLERANCE * pc
    change = t.change
    if (
        -tolerance <= price_error <= tolerance
        and -RATE_TOLERANCE <= rate_error <= RATE_TOLERANCE
        and (change == "RISE" if diff > 0.0 else change == "FALL" if diff < 0.0 else change == "EVEN")
    ):
        return None
    return Failure(
        "change",
        f"ticker change {change!r} {t.change_price!r} ({t.change_rate!r}) disagrees with "
        f"price {p!r} - prev_close {pc!r} = {diff!r} ({diff / pc!r})",
        repairable=True,
    )


def _ticker_failure(t: Ticker) -> Failure:
    """Which of the ticker's value checks failed (the slow path of :func:`check_ticker`)."""
    p, lo, hi, op = t.price, t.low, t.high, t.open
    for name, value in (("price", p), ("low", lo), ("high", hi), ("open", op), ("prev_close", t.prev_close)):
        if not _positive(value):
            return Failure("positive_prices", f"ticker {name} {value!r} is not a finite price > 0")
    if not (lo <= p <= hi and lo <= op <= hi):
        return Failure(
            "price_range", f"ticker price {p!r} / open {op!r} outside the day's range [{lo!r}, {hi!r}]"
        )
    if not (t.volume_24h >= 0.0 and t.value_24h >= 0.0):
        return Failure("sizes", f"ticker 24h volume {t.volume_24h!r} / value {t.value_24h!r} below 0")
    return Failure("timestamp", f"ticker timestamp {t.timestamp!r} is not > 0")


def repair_ticker(t: Ticker) -> Ticker:
    """Recompute ``change``, ``change_price`` and ``change_rate`` from ``price`` and ``prev_close``."""
    diff = t.price - t.prev_close
    return replace(t, change=_direction(diff), change_price=diff, change_rate=diff / t.prev_close)


# ------------------------------------------------------------------------------------------- Orderbook


def check_orderbook(b: Orderbook) -> Failure | None:
    """The first failed built-in check of a book, or ``None``.

    Upbit pads a thin side with price-0 levels; padding may only end a side.
    """
    # Fast path for a full, well-formed book: asks strictly ascending from > 0, bids strictly descending,
    # sizes >= 0 (NaN fails every comparison). Ascending asks need only the last one checked for
    # finiteness, descending bids only the last one for positivity. Anything else (padding included)
    # takes the slow path, which also says what is wrong.
    # Each price is read once: the walrus stores it as the next level's bound after the old bound was
    # loaded for the comparison (left operand first). On failure the bounds are garbage, but unused.
    last_ask = 0.0
    last_bid = _INF
    for u in b.units:
        if (
            last_ask < (last_ask := u.ask_price)
            and last_bid > (last_bid := u.bid_price)
            and u.ask_size >= 0.0
            and u.bid_size >= 0.0
        ):
            continue
        return _book_failure(b)
    if not (
        last_ask < _INF
        and last_bid > 0.0
        and b.timestamp > 0
        and b.total_ask_size >= 0.0
        and b.total_bid_size >= 0.0
    ):
        return _book_failure(b)
    if b.units:
        best = b.units[0]
        if best.ask_price <= best.bid_price:
            return Failure(
                "crossed",
                f"book crossed: best bid {best.bid_price!r} >= best ask {best.ask_price!r}",
                repairable=True,
            )
    return None


def _book_failure(b: Orderbook) -> Failure | None:
    """The slow path of :func:`check_orderbook`: allows end-of-side padding, names the failed check."""
    if not b.timestamp > 0:
        return Failure("timestamp", f"book timestamp {b.timestamp!r} is not > 0")
    last_ask = 0.0  # becomes inf once the ask side's padding starts: only zeros may follow
    last_bid = _INF  # becomes 0 once the bid side's padding starts
    for u in b.units:
        a = u.ask_price
        if last_ask < a < _INF:
            last_ask = a
        elif a == 0.0:
            last_ask = _INF
        else:
            return _bad_level(b, "ask", a)
        bp = u.bid_price
        if 0.0 < bp < last_bid:
            last_bid = bp
        elif bp == 0.0:
            last_bid = 0.0
        else:
            return _bad_level(b, "bid", bp)
        if not (u.ask_size >= 0.0 and u.bid_size >= 0.0):
            return Failure("sizes", f"book level size {u.ask_size!r} / {u.bid_size!r} below 0")
    if not (b.total_ask_size >= 0.0 and b.total_bid_size >= 0.0):
        return Failure("sizes", f"book totals {b.total_ask_size!r} / {b.total_bid_size!r} below 0")
    if b.units:
        best = b.units[0]
        if 0.0 < best.ask_price <= best.bid_price:
            return Failure(
                "crossed",
                f"book crossed: best bid {best.bid_price!r} >= best ask {best.ask_price!r}",
                repairable=True,
            )
    return None


def _bad_level(b: Orderbook, side: str, price: float) -> Failure:
    """Classify a level that broke the side's order: a bad price, or only a bad place (repairable)."""
    if not _positive(price):
        return Failure("positive_prices", f"book {side} price {price!r} is not a finite price > 0")
    prices = [u.ask_price if side == "ask" else u.bid_price for u in b.units]
    if side == "ask":
        return Failure("asks_ascending", f"book asks not strictly ascending: {prices!r}", repairable=True)
    return Failure("bids_descending", f"book bids not strictly descending: {prices!r}", repairable=True)


def repair_orderbook(b: Orderbook) -> Orderbook:
    """Re-sort both sides (asks ascending, bids descending), drop bids at or above the best ask.

    Every non-zero level is kept (a negative price sorts first and fails the re-check); the totals are
    recomputed from the levels kept.
    """
    asks = sorted(
        (OrderbookLevel(u.ask_price, u.ask_size) for u in b.units if u.ask_price != 0.0),
        key=lambda level: level.price,
    )
    bids = sorted(
        (OrderbookLevel(u.bid_price, u.bid_size) for u in b.units if u.bid_price != 0.0),
        key=lambda level: level.price,
        reverse=True,
    )
    if asks:
        best_ask = asks[0].price
        bids = [level for level in bids if level.price < best_ask]
    return Orderbook.from_levels(
        symbol=b.symbol,
        timestamp=b.timestamp,
        asks=asks,
        bids=bids,
        level=b.level,
        stream_type=b.stream_type,
        source=b.source,
    )


# ----------------------------------------------------------------------------------------------- Trade


def check_trade(t: Trade) -> Failure | None:
    """The first failed built-in check of a trade, or ``None``."""
    p = t.price
    side = t.ask_bid
    if not (
        0.0 < p < _INF and 0.0 < t.volume < _INF and t.timestamp > 0 and (side == "BID" or side == "ASK")
    ):
        return _trade_failure(t)
    pc = t.prev_close
    if pc is None:
        return None
    if not 0.0 < pc < _INF:
        return Failure("positive_prices", f"trade prev_close {pc!r} is not a finite price > 0")
    diff = p - pc
    cp, change = t.change_price, t.change
    # Upbit's trade change_price is unsigned (direction in ``change``); compare magnitudes, so that a
    # signed REST value agrees too. (Conditional negation instead of abs(): no call on the hot path.)
    if cp is not None:
        error = (cp if cp >= 0.0 else -cp) - (diff if diff >= 0.0 else -diff)
        tolerance = PRICE_TOLERANCE * pc
        if not -tolerance <= error <= tolerance:
            return _trade_change_failure(t, diff)
    if change is not None and not (
        change == "RISE" if diff > 0.0 else change == "FALL" if diff < 0.0 else change == "EVEN"
    ):
        return _trade_change_failure(t, diff)
    return None


def _trade_failure(t: Trade) -> Failure:
    """Which of the trade's value checks failed (the slow path of :func:`check_trade`)."""
    if not _positive(t.price):
        return Failure("positive_prices", f"trade price {t.price!r} is not a finite price > 0")
    if not _positive(t.volume):
        return Failure("sizes", f"trade volume {t.volume!r} is not > 0")
    if not t.timestamp > 0:
        return Failure("timestamp", f"trade timestamp {t.timestamp!r} is not > 0")
    return Failure("side", f"trade ask_bid {t.ask_bid!r} is neither 'ASK' nor 'BID'")


def _trade_change_failure(t: Trade, diff: float) -> Failure:
    return Failure(
        "change",
        f"trade change {t.change!r} {t.change_price!r} disagrees with "
        f"price {t.price!r} - prev_close {t.prev_close!r} = {diff!r}",
        repairable=True,
    )


def repair_trade(t: Trade) -> Trade:
    """Recompute ``change`` and the unsigned ``change_price`` from ``price`` and ``prev_close``."""
    if t.prev_close is None:
        return t
    diff = t.price - t.prev_close
    return replace(t, change=_direction(diff), change_price=abs(diff))


# ---------------------------------------------------------------------------------------------- Candle


def check_candle(c: Candle) -> Failure | None:
    """The first failed built-in check of a candle, or ``None``."""
    lo, hi, op, cl = c.low, c.high, c.open, c.close
    if not (0.0 < lo <= op <= hi < _INF and lo <= cl <= hi):
        for name, value in (("open", op), ("high", hi), ("low", lo), ("close", cl)):
            if not _positive(value):
                return Failure("positive_prices", f"candle {name} {value!r} is not a finite price > 0")
        return Failure("price_range", f"candle open {op!r} / close {cl!r} outside [low {lo!r}, high {hi!r}]")
    if not (c.volume >= 0.0 and c.value >= 0.0):
        return Failure("sizes", f"candle volume {c.volume!r} / value {c.value!r} below 0")
    if c.unit not in _UNITS:
        return Failure("unit", f"candle unit {c.unit!r} is not one of {', '.join(CANDLE_UNITS)}")
    if not c.start > 0:
        return Failure("timestamp", f"candle start {c.start!r} is not > 0")
    pc = c.prev_close
    if pc is None or (c.change_price is None and c.change_rate is None):
        return None
    if not _positive(pc):
        return Failure("positive_prices", f"candle prev_close {pc!r} is not a finite price > 0")
    diff = cl - pc
    if not (
        _agrees(c.change_price, diff, PRICE_TOLERANCE * pc)
        and _agrees(c.change_rate, diff / pc, RATE_TOLERANCE)
    ):
        return Failure(
            "change",
            f"candle change {c.change_price!r} ({c.change_rate!r}) disagrees with "
            f"close {cl!r} - prev_close {pc!r} = {diff!r}",
            repairable=True,
        )
    return None


def _agrees(sent: float | None, expected: float, tolerance: float) -> bool:
    """A sent change (signed, or unsigned as some Upbit fields are) matches the expected signed one."""
    if sent is None:
        return True
    return abs(sent - expected) <= tolerance or abs(sent - abs(expected)) <= tolerance


def repair_candle(c: Candle) -> Candle:
    """Recompute the (signed) ``change_price`` / ``change_rate`` that were sent, from close and prev_close."""
    pc = c.prev_close
    if pc is None:
        return c
    diff = c.close - pc
    return replace(
        c,
        change_price=None if c.change_price is None else diff,
        change_rate=None if c.change_rate is None else diff / pc,
    )


BUILTIN_CHECKS: Final[Mapping[type, Callable[[Any], Failure | None]]] = {
    Ticker: check_ticker,
    Orderbook: check_orderbook,
    Trade: check_trade,
    Candle: check_candle,
}
"""The built-in check of each model type."""

REPAIRS: Final[Mapping[type, Callable[[Any], Any]]] = {
    Ticker: repair_ticker,
    Orderbook: repair_orderbook,
    Trade: repair_trade,
    Candle: repair_candle,
}
"""The repair of each model type (only applied after a repairable failure)."""


# -------------------------------------------------------------------------------------------- stateful


def check_age(timestamp: int, now_ms: float, max_age_ms: float) -> Failure | None:
    """``None`` unless the item (exchange time ``timestamp``, ms) is more than ``max_age_ms`` old."""
    age = now_ms - timestamp
    if age > max_age_ms:
        return Failure("max_age", f"item is {age / 1000:.3f}s old (limit {max_age_ms / 1000:.3f}s)")
    return None

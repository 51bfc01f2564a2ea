"""A small default set of consistency checks for ``verify``: item -> reason, or ``None`` when fine.

Interim: the shared checks of the ``validate`` operator (``rxmarket.policy.checks``) are meant to replace
these once they land, so that ``verify`` and ``ops.validate`` judge items the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rxmarket.models import Candle, Orderbook, Ticker, Trade

__all__ = ["Check", "book_not_crossed", "default_checks", "positive_prices", "within_range"]

Check = Callable[[Any], "str | None"]


def positive_prices(item: Any) -> str | None:
    """Prices are > 0 and sizes are >= 0 (tickers, trades, candles)."""
    if isinstance(item, Ticker):
        if not item.price > 0:
            return f"price {item.price!r} is not > 0"
    elif isinstance(item, Trade):
        if not item.price > 0:
            return f"price {item.price!r} is not > 0"
        if not item.volume >= 0:
            return f"volume {item.volume!r} is negative"
    elif isinstance(item, Candle):
        for name in ("open", "high", "low", "close"):
            value = getattr(item, name)
            if not value > 0:
                return f"{name} {value!r} is not > 0"
        if not item.volume >= 0:
            return f"volume {item.volume!r} is negative"
    return None


def within_range(item: Any) -> str | None:
    """``low <= price <= high`` for a ticker, ``low <= open, close <= high`` for a candle."""
    if isinstance(item, Ticker):
        if not item.low <= item.price <= item.high:
            return f"price {item.price!r} outside [low {item.low!r}, high {item.high!r}]"
    elif isinstance(item, Candle):
        for name in ("open", "close"):
            value = getattr(item, name)
            if not item.low <= value <= item.high:
                return f"{name} {value!r} outside [low {item.low!r}, high {item.high!r}]"
    return None


def book_not_crossed(item: Any) -> str | None:
    """The best bid is below the best ask."""
    if isinstance(item, Orderbook):
        bid, ask = item.best_bid, item.best_ask
        if bid is not None and ask is not None and bid.price >= ask.price:
            return f"crossed book: best bid {bid.price!r} >= best ask {ask.price!r}"
    return None


def default_checks() -> tuple[Check, ...]:
    """The checks ``verify`` runs when given none."""
    return (positive_prices, within_range, book_not_crossed)

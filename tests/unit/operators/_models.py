"""Model builders shared by the operator tests (not a test module)."""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from rxmarket.models import Ticker


def ticker(ts: int = 1_000, price: float = 100.0, symbol: str = "KRW-BTC", **fields: Any) -> Ticker:
    """A consistent ticker (change fields agree with ``price`` against a previous close of 100).

    ``fields`` replace any other field afterwards (``source=...``, ``acc_trade_volume=...``, or an
    inconsistent value on purpose).
    """
    diff = price - 100.0
    t = Ticker(
        symbol=symbol,
        price=price,
        open=100.0,
        high=max(price, 100.0),
        low=min(price, 100.0),
        prev_close=100.0,
        change="RISE" if diff > 0 else "FALL" if diff < 0 else "EVEN",
        change_price=diff,
        change_rate=diff / 100.0,
        volume_24h=1.0,
        value_24h=100.0,
        timestamp=ts,
    )
    return replace(t, **fields) if fields else t

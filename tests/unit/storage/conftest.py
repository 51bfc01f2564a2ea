"""Builders of models and recordings shared by the storage tests (as fixtures: no test-package imports)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rxmarket.models import Candle, Orderbook, Ticker, Trade
from rxmarket.storage import RecordingWriter

T0 = 1_785_397_531_885  # 2026-07-30T07:45:31.885Z, a real Upbit frame time


class Clock:
    """A settable wall clock in ns, for the writer's ``clock=``."""

    def __init__(self, start_ms: int = T0) -> None:
        self.ns = start_ms * 1_000_000

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)


def ticker(symbol: str = "KRW-BTC", ts: int = T0, price: float = 100.0, **kw: Any) -> Ticker:
    base: dict[str, Any] = dict(
        symbol=symbol, price=price, open=100.0, high=max(110.0, price), low=min(90.0, price),
        prev_close=99.0, change="RISE", change_price=price - 99.0, change_rate=(price - 99.0) / 99.0,
        volume_24h=1000.0, value_24h=1e8, timestamp=ts, trade_volume=0.5, stream_type="REALTIME",
    )
    base.update(kw)
    return Ticker(**base)


def trade(symbol: str = "KRW-BTC", ts: int = T0, seq: int = 1, price: float = 100.0, **kw: Any) -> Trade:
    base: dict[str, Any] = dict(
        symbol=symbol, price=price, volume=0.01, ask_bid="BID", timestamp=ts, sequential_id=seq,
        prev_close=99.0, change="RISE", change_price=1.0, frame_timestamp=ts + 3,
    )
    base.update(kw)
    return Trade(**base)


def book(symbol: str = "KRW-BTC", ts: int = T0, bid: float = 99.0, ask: float = 101.0) -> Orderbook:
    return Orderbook.from_levels(
        symbol=symbol, timestamp=ts, asks=[(ask, 1.0), (ask + 1, 2.0)], bids=[(bid, 1.5), (bid - 1, 3.0)],
        level=0.0,
    )


def candle(symbol: str = "KRW-BTC", start: int = T0 - T0 % 60_000, unit: str = "1m",
           ts: int | None = None, close: float = 100.0, **kw: Any) -> Candle:
    base: dict[str, Any] = dict(
        symbol=symbol, unit=unit, start=start, open=100.0, high=max(105.0, close), low=min(95.0, close),
        close=close, volume=1.0, value=100.0, timestamp=start + 30_000 if ts is None else ts,
    )
    base.update(kw)
    return Candle(**base)


Write = Callable[..., Path]


@pytest.fixture
def models() -> SimpleNamespace:
    """The model builders: ``models.ticker(...)``, ``.trade``, ``.book``, ``.candle``, ``.T0``, ``.Clock``."""
    return SimpleNamespace(ticker=ticker, trade=trade, book=book, candle=candle, T0=T0, Clock=Clock)


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """``write(items, name="rec", **writer_opts) -> path``: a recording holding ``items``, closed."""

    def _write(items: Iterable[Any], name: str = "rec", **opts: Any) -> Path:
        path = tmp_path / name
        with RecordingWriter(path, **opts) as w:
            for item in items:
                w.write(item)
        return path

    return _write

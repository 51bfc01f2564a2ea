"""``examples/ma_crossover.py``: the script runs, and its strategy operators do what they say."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import reactivex

from rxmarket.models import Candle

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ma_crossover.py"
MINUTE = 60_000
T = 1_785_397_500_000


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ma_crossover_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # NamedTuple classes look their module up while being built
    spec.loader.exec_module(module)
    return module


def candle(minute: int, close: float, version: int = 0) -> Candle:
    return Candle(symbol="KRW-BTC", unit="1m", start=T + minute * MINUTE, open=close, high=close, low=close,
                  close=close, volume=1.0, value=close, timestamp=T + minute * MINUTE + 1000 + version)


def collect(source: reactivex.Observable[Any]) -> list[Any]:
    out: list[Any] = []
    source.subscribe(out.append)
    return out


async def test_the_example_prints_the_same_signals_live_and_on_replay() -> None:
    """``python examples/ma_crossover.py`` exits 0 after printing equal, non-empty signal lists for the live
    run and the replay."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    live = [line.split(None, 1)[1] for line in lines if line.startswith("live ")]
    replayed = [line.split(None, 1)[1] for line in lines if line.startswith("replay ")]
    assert live
    assert live == replayed
    assert lines[0].startswith("backfilled ")
    assert lines[-1].endswith("the same")


def test_closed_candles_keeps_the_last_version_of_each_candle() -> None:
    """A candle is emitted once, in its last version, when the next one starts; a late older version is
    ignored and the still-open last candle is not emitted."""
    example = load()
    source = reactivex.from_iterable([
        candle(0, 10.0), candle(0, 11.0, 1), candle(1, 12.0), candle(0, 99.0, 2), candle(1, 13.0, 1),
        candle(2, 14.0),
    ])
    closed = collect(source.pipe(example.closed_candles()))
    assert [(c.start, c.close) for c in closed] == [(T, 11.0), (T + MINUTE, 13.0)]


def test_crossover_signals_each_cross_once_on_its_candle() -> None:
    """With fast=2 and slow=3, a rise makes the fast average cross above (BUY) and a fall below (SELL)."""
    example = load()
    closes = [10.0, 10.0, 10.0, 9.0, 12.0, 13.0, 14.0, 8.0, 7.0, 7.0]
    candles = [candle(i, c) for i, c in enumerate(closes)]
    source = reactivex.from_iterable([*candles, candle(len(closes), 0.0)])  # the last one closes candle 9
    signals = collect(source.pipe(example.crossover(2, 3)))
    assert [(s.side, (s.start - T) // MINUTE) for s in signals] == [("SELL", 3), ("BUY", 4), ("SELL", 7)]
    buy = signals[1]
    assert buy.fast == pytest.approx((9.0 + 12.0) / 2)
    assert buy.slow == pytest.approx((10.0 + 9.0 + 12.0) / 3)


def test_crossover_needs_a_faster_fast_average() -> None:
    """fast must be smaller than slow."""
    example = load()
    with pytest.raises(ValueError, match="fast < slow"):
        example.crossover(5, 5)

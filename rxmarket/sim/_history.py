"""Candle bars and the deterministic history before the simulator started.

History is generated *backwards* from the price at the anchor (the start of the simulated trading), one UTC
day at a time, each day from its own RNG stream, so it is the same whatever order it is asked in. Minutes
come first (``minute_history_days`` full days plus today up to the anchor), with some minutes missing
(nothing traded); older days come as daily bars only. Weeks, months and years are built from days.
"""

from __future__ import annotations

import bisect
import math
import random
from typing import Final

from rxmarket.sim._catalog import MarketInfo

__all__ = ["Bar", "History", "merge_bars"]

DAY_MS: Final = 86_400_000
MINUTE_MS: Final = 60_000


class Bar:
    """One OHLCV candle (mutable while it aggregates live trades).

    Attributes:
        start: period start, ms UTC.
        open, high, low, close: prices.
        volume: base-currency volume.
        value: quote-currency turnover.
        ts: time of the last trade in the period, ms.
    """

    __slots__ = ("close", "high", "low", "open", "start", "ts", "value", "volume")

    def __init__(
        self,
        start: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        value: float,
        ts: int,
    ) -> None:
        self.start = start
        self.open = open_
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.value = value
        self.ts = ts

    def add(self, price: float, volume: float, ts: int) -> None:
        """Fold one trade into the bar."""
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.volume += volume
        self.value += price * volume
        self.ts = ts

    def copy(self) -> Bar:
        """An independent copy."""
        return Bar(self.start, self.open, self.high, self.low, self.close, self.volume, self.value, self.ts)

    def __repr__(self) -> str:
        return (
            f"Bar(start={self.start}, o={self.open}, h={self.high}, l={self.low}, c={self.close}, "
            f"v={self.volume:.8f})"
        )


def merge_bars(start: int, bars: list[Bar]) -> Bar | None:
    """One bar covering ``bars`` (in time order) with the given start; ``None`` if there are none."""
    if not bars:
        return None
    first, last = bars[0], bars[-1]
    out = Bar(start, first.open, first.high, first.low, last.close, 0.0, 0.0, last.ts)
    for bar in bars:
        if bar.high > out.high:
            out.high = bar.high
        if bar.low < out.low:
            out.low = bar.low
        out.volume += bar.volume
        out.value += bar.value
    return out


class History:
    """Generated candles of one market before ``anchor``.

    Args:
        info: the market.
        seed: the simulator seed.
        anchor: ms; history covers minutes before it (a minute boundary).
        anchor_ticks: the price at ``anchor``, in ticks.
        minute_days: full UTC days of minutes before the anchor's day.
        daily_days: days of daily bars before the oldest minute day.
        gap_probability: chance that a minute had no trade.
    """

    def __init__(
        self,
        info: MarketInfo,
        seed: int,
        anchor: int,
        anchor_ticks: int,
        *,
        minute_days: int,
        daily_days: int,
        gap_probability: float,
    ) -> None:
        self.info = info
        self._seed = seed
        self.anchor = anchor
        self._anchor_ticks = anchor_ticks
        self._day0 = anchor - anchor % DAY_MS
        self._minute_days = minute_days
        self._daily_days = daily_days
        self._gap = gap_probability
        # Blocks are generated newest first; each starts where the next (newer) one opened.
        self._blocks: list[list[Bar]] = []
        self._block_open: list[int] = []
        self._starts: list[int] = []
        self._bars: list[Bar] = []
        self._day_cache: dict[int, Bar | None] = {}
        self._daily: dict[int, Bar] | None = None

    # -- minutes -------------------------------------------------------------------------------------------

    @property
    def minute_floor(self) -> int:
        """The oldest minute history can hold (ms)."""
        return self._day0 - self._minute_days * DAY_MS

    @property
    def day_floor(self) -> int:
        """The oldest day history can hold (ms)."""
        return self.minute_floor - self._daily_days * DAY_MS

    def _ensure_block(self, k: int) -> None:
        while len(self._blocks) <= k:
            self._generate_block(len(self._blocks))

    def _generate_block(self, k: int) -> None:
        lo = self._day0 - k * DAY_MS
        hi = min(self.anchor, lo + DAY_MS)
        rng = random.Random(f"{self._seed}:{self.info.code}:minutes:{k}")
        cur = self._block_open[k - 1] if k else self._anchor_ticks
        sigma = max(cur * 0.0008, 0.3)
        info = self.info
        bars: list[Bar] = []
        gap = self._gap
        notional = info.notional
        for minute in range((hi - lo) // MINUTE_MS - 1, -1, -1):
            if rng.random() < gap:
                continue
            move = round(rng.gauss(0.0, sigma))
            open_t = max(1, cur - move)
            high_t = max(open_t, cur) + int(rng.random() * sigma)
            low_t = max(1, min(open_t, cur) - int(rng.random() * sigma))
            price = info.price(cur)
            volume = round(notional * (2.0 + 30.0 * rng.random() ** 2) / max(price, 1e-12), 8)
            start = lo + minute * MINUTE_MS
            ts = start + 1_000 + int(rng.random() * 58_000)
            open_p, high_p, low_p = info.price(open_t), info.price(high_t), info.price(low_t)
            mid = (open_p + price) / 2
            bars.append(Bar(start, open_p, high_p, low_p, price, volume, volume * mid, ts))
            cur = open_t
        bars.reverse()
        self._blocks.append(bars)
        self._block_open.append(cur)
        # Blocks arrive newest first, so older bars go in front of the flat index.
        self._bars[:0] = bars
        self._starts[:0] = [b.start for b in bars]

    def minutes(self, lo: int, hi: int) -> list[Bar]:
        """History minute bars with ``lo <= start < hi``, oldest first."""
        lo = max(lo, self.minute_floor)
        hi = min(hi, self.anchor)
        if lo >= hi:
            return []
        self._ensure_block((self._day0 - (lo - lo % DAY_MS)) // DAY_MS)
        i = bisect.bisect_left(self._starts, lo)
        j = bisect.bisect_left(self._starts, hi)
        return self._bars[i:j]

    def today_minutes(self) -> list[Bar]:
        """The anchor day's minutes before the anchor (drives the ticker's day figures at start)."""
        self._ensure_block(0)
        return self._blocks[0]

    # -- days ----------------------------------------------------------------------------------------------

    def day(self, start: int) -> Bar | None:
        """The history part of the daily bar starting at ``start`` (``None`` if nothing traded in it)."""
        if start < self.day_floor or start > self._day0:
            return None
        if start >= self.minute_floor:
            if start not in self._day_cache:
                self._day_cache[start] = merge_bars(start, self.minutes(start, start + DAY_MS))
            return self._day_cache[start]
        return self._daily_bars().get(start)

    def _daily_bars(self) -> dict[int, Bar]:
        if self._daily is None:
            self._ensure_block(self._minute_days)
            cur = self._block_open[self._minute_days]
            rng = random.Random(f"{self._seed}:{self.info.code}:days")
            info = self.info
            sigma = 0.03
            daily: dict[int, Bar] = {}
            for d in range(1, self._daily_days + 1):
                start = self.minute_floor - d * DAY_MS
                open_t = max(1, round(cur / math.exp(rng.gauss(0.0, sigma))))
                high_t = max(open_t, cur) + round(cur * 0.02 * rng.random())
                low_t = max(1, min(open_t, cur) - round(cur * 0.02 * rng.random()))
                price = info.price(cur)
                volume = round(info.notional * (20_000 + 60_000 * rng.random()) / max(price, 1e-12), 8)
                open_p = info.price(open_t)
                mid = (open_p + price) / 2
                ts = start + DAY_MS - 1 - int(rng.random() * 5_000)
                high_p, low_p = info.price(high_t), info.price(low_t)
                daily[start] = Bar(start, open_p, high_p, low_p, price, volume, volume * mid, ts)
                cur = open_t
            self._daily = daily
        return self._daily

"""The deterministic simulated market: random-walk prices, trades, books, tickers and candles.

One :class:`Exchange` holds a lazily built :class:`MarketState` per code. Every step is one trade in one
market: the taker lifts the best ask (``BID``) or hits the best bid (``ASK``), the price then takes a random
step in ticks, and the book is rebuilt around it (never crossed, unless the ``crossed_book`` fault asks).
The trade updates the ticker's day figures and every live candle; ``sequential_id`` grows strictly per
market (``trade_ms * 10000 + n``, the spelling seen on the wire in 2026).

Everything random comes from ``random.Random`` streams seeded by ``(seed, code)``, so one seed gives the
same prices, sizes and sides in every run; timestamps come from the clock the simulator was given.

Frames are built here (the simulator's own wire shapes in ``_wire``) but sent elsewhere: the exchange hands
each :class:`Event` to a ``publish`` callback, and only encodes what a subscriber asks for.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Final

from rxmarket.sim import _times as t
from rxmarket.sim._catalog import MarketInfo
from rxmarket.sim._config import SimOptions
from rxmarket.sim._faults import Faults
from rxmarket.sim._history import DAY_MS, Bar, History, merge_bars
from rxmarket.sim._wire import (
    CANDLE_TYPES,
    ENCODE,
    REST_CANDLE_BASE,
    REST_ORDERBOOK,
    REST_ORDERBOOK_UNIT,
    REST_TICKER,
    REST_TRADE,
    WS_CANDLE,
    WS_ORDERBOOK,
    WS_ORDERBOOK_UNIT,
    WS_TICKER,
    WS_TRADE,
)

__all__ = ["BOOK_DEPTH", "Book", "Event", "Exchange", "MarketState", "TradeRecord"]

BOOK_DEPTH: Final = 30
PREFILL_SPAN_MS: Final = 60_000
PREFILL_MIN_MS: Final = 5_000  # the least time the prefill is spread over when it must avoid a midnight
MAX_TRADE_LAG_MS: Final = 40  # ``next_trade`` stamps a trade up to this much before its ``now_ms``
LIVE_UNITS: Final = ("1s", "1m", "3m", "5m", "10m", "15m", "30m", "60m", "240m", "1d")
_LIVE_SPANS: Final = tuple((unit, t.CANDLE_SECONDS[unit] * 1000) for unit in LIVE_UNITS)
MINUTE_UNITS: Final = frozenset(("1m", "3m", "5m", "10m", "15m", "30m", "60m", "240m"))
LIVE_KEEP: Final = 3000

#: Orderbook variant: (depth, level). Other kinds have the single variant ``None``.
Variant = tuple[int, float] | None


class TradeRecord:
    """One simulated trade, as kept in the per-market history."""

    __slots__ = (
        "ask_bid", "best_ask_price", "best_ask_size", "best_bid_price", "best_bid_size", "code", "frame_ts",
        "prev_close", "price", "sid", "ts", "volume",
    )

    def __init__(
        self,
        code: str,
        ts: int,
        frame_ts: int,
        price: float,
        volume: float,
        ask_bid: str,
        sid: int,
        prev_close: float,
        best: tuple[float, float, float, float],
    ) -> None:
        self.code = code
        self.ts = ts
        self.frame_ts = frame_ts
        self.price = price
        self.volume = volume
        self.ask_bid = ask_bid
        self.sid = sid
        self.prev_close = prev_close
        self.best_ask_price, self.best_ask_size, self.best_bid_price, self.best_bid_size = best

    def __repr__(self) -> str:
        return f"TradeRecord({self.code} {self.ask_bid} {self.volume}@{self.price} sid={self.sid})"


class Book:
    """An immutable book: per side, prices and sizes, best first (prices 0 pad a thin side)."""

    __slots__ = ("ask_prices", "ask_sizes", "bid_prices", "bid_sizes", "ts")

    def __init__(
        self,
        ask_prices: list[float],
        ask_sizes: list[float],
        bid_prices: list[float],
        bid_sizes: list[float],
        ts: int,
    ) -> None:
        self.ask_prices = ask_prices
        self.ask_sizes = ask_sizes
        self.bid_prices = bid_prices
        self.bid_sizes = bid_sizes
        self.ts = ts

    def crossed(self, info: MarketInfo) -> Book:
        """A copy whose bids sit above its asks (the ``crossed_book`` fault)."""
        lift = (self.ask_prices[0] - self.bid_prices[0]) + 2 * info.tick
        bids = [round(p + lift, info.decimals) if p > 0 else 0.0 for p in self.bid_prices]
        return Book(self.ask_prices, self.ask_sizes, bids, self.bid_sizes, self.ts)

    def grouped(self, info: MarketInfo, level: float, depth: int) -> Book:
        """The book grouped into ``level``-wide price steps (Upbit's ``level`` option, KRW markets).

        Asks round up and bids round down to a multiple of ``level``, so a grouped book is never crossed;
        sizes inside one step add up, and steps beyond the simulated depth get a size derived from the
        price so the same book always groups the same way.
        """
        asks: dict[float, float] = {}
        for p, s in zip(self.ask_prices, self.ask_sizes, strict=True):
            if p > 0:
                key = -(-p // level) * level
                asks[key] = asks.get(key, 0.0) + s
        bids: dict[float, float] = {}
        for p, s in zip(self.bid_prices, self.bid_sizes, strict=True):
            if p > 0:
                key = (p // level) * level
                bids[key] = bids.get(key, 0.0) + s
        base = max(self.ask_sizes[0], 1e-8)
        a0 = min(asks) if asks else level
        b0 = max(bids) if bids else 0.0
        ap: list[float] = []
        az: list[float] = []
        bp: list[float] = []
        bz: list[float] = []
        for i in range(depth):
            price = round(a0 + i * level, info.decimals)
            ap.append(price)
            az.append(round(asks.get(price, base * (1 + (int(price / level) * 7919) % 13)), 8))
            bprice = round(b0 - i * level, info.decimals)
            if bprice > 0:
                bp.append(bprice)
                bz.append(round(bids.get(bprice, base * (1 + (int(bprice / level) * 7907) % 11)), 8))
            else:
                bp.append(0.0)
                bz.append(0.0)
        return Book(ap, az, bp, bz, self.ts)


class Event:
    """One market event (a trade, a ticker, a book or a candle of one code), encoded on demand.

    ``frame(simple, variant)`` builds the REALTIME frame for one wire spelling and variant the first time a
    subscriber asks, and reuses it for every other subscriber. Frames must be taken while the event is
    being published: some builders read live market state, which the next step changes.
    """

    __slots__ = ("_build", "_cache", "code", "kind")

    def __init__(self, kind: str, code: str, build: Callable[[bool, Variant], bytes]) -> None:
        self.kind = kind
        self.code = code
        self._build = build
        self._cache: dict[tuple[bool, Hashable], bytes] = {}

    def frame(self, simple: bool, variant: Variant = None) -> bytes:
        """The encoded frame (cached per spelling and variant)."""
        key = (simple, variant)
        frame = self._cache.get(key)
        if frame is None:
            frame = self._cache[key] = self._build(simple, variant)
        return frame


def _signed(price: float, prev: float, decimals: int) -> tuple[str, float, float]:
    diff = round(price - prev, decimals)
    change = "RISE" if diff > 0 else "FALL" if diff < 0 else "EVEN"
    rate = round(diff / prev, 10) if prev else 0.0
    return change, diff, rate


class MarketState:
    """Live state of one market.

    Args:
        info: the market.
        seed: the simulator seed.
        start_ms: when the simulator started (history ends a minute before, prefilled trades fill the gap).
        options: history sizes.
    """

    def __init__(self, info: MarketInfo, seed: int, start_ms: int, options: SimOptions) -> None:
        self.info = info
        self.code = info.code
        self._rng = random.Random(f"{seed}:{info.code}:live")
        anchor = start_ms - PREFILL_SPAN_MS
        anchor -= anchor % 60_000
        self.history = History(
            info, seed, anchor, info.start_ticks,
            minute_days=options.minute_history_days,
            daily_days=options.daily_history_days,
            gap_probability=options.gap_probability,
        )
        self.ticks = info.start_ticks
        self.trades: deque[TradeRecord] = deque(maxlen=options.trade_history)
        self.live: dict[str, dict[int, Bar]] = {unit: {} for unit in LIVE_UNITS}
        self._last_ts = 0
        self._last_sid = 0
        self._prices: dict[int, float] = {}
        self._init_day(anchor)
        self._init_book_shape()
        self.book = self._build_book(self.ticks, anchor)
        self._prefill(anchor, start_ms, options.prefill_trades, options.trades_by_day)

    # -- set-up --------------------------------------------------------------------------------------------

    def _init_day(self, anchor: int) -> None:
        info, rng = self.info, self._rng
        today = self.history.today_minutes()
        price = info.price(self.ticks)
        self.day_start = anchor - anchor % DAY_MS
        self.prev_close = today[0].open if today else price
        self.open = today[0].open if today else price
        self.high = max([b.high for b in today] + [price])
        self.low = min([b.low for b in today] + [price])
        self.acc_volume = sum(b.volume for b in today)
        self.acc_value = sum(b.value for b in today)
        share = 0.35 + 0.3 * rng.random()
        self.acc_ask_volume = self.acc_volume * share
        self.acc_bid_volume = self.acc_volume - self.acc_ask_volume
        elapsed = max((anchor - self.day_start) / DAY_MS, 0.05)
        self.acc_volume_24h = self.acc_volume / elapsed
        self.acc_value_24h = self.acc_value / elapsed
        year_ago = self.day_start - 365 * DAY_MS
        self.high_52w = max(self.high, info.snap(price * (1.3 + 0.7 * rng.random())))
        self.high_52w_date = t.date_dash(year_ago + int(rng.random() * 300) * DAY_MS)
        self.low_52w = min(self.low, info.snap(price * (0.4 + 0.4 * rng.random())))
        self.low_52w_date = t.date_dash(year_ago + int(rng.random() * 300) * DAY_MS)

    def _prefill(self, anchor: int, start_ms: int, count: int, by_day: bool) -> None:
        lo, hi = anchor, start_ms
        day_start = start_ms - start_ms % DAY_MS
        if by_day and anchor < day_start:
            # Started just after a UTC midnight: ``/trades/ticks`` pages keep to the newest trade's day, so
            # a prefill on both sides of midnight could not be paged through whole. Keep it to one side: the
            # new day if it already holds enough time for it, else the day before.
            if start_ms - day_start >= PREFILL_MIN_MS:
                lo = day_start + MAX_TRADE_LAG_MS
            else:
                hi = day_start
        span = max(hi - lo, 1)
        times = sorted(lo + int(self._rng.random() * span) for _ in range(count))
        for ts in times:
            self.next_trade(min(ts, hi - 1))

    # -- the walk ------------------------------------------------------------------------------------------

    def _price(self, ticks: int) -> float:
        # A walk revisits the same few hundred prices, so rounding once per tick count is worth a dict.
        price = self._prices.get(ticks)
        if price is None:
            if len(self._prices) > 20_000:
                self._prices.clear()
            price = self._prices[ticks] = self.info.price(ticks)
        return price

    def _size(self) -> float:
        return round(self._size_base * (0.02 + 4.0 * self._rng.random() ** 3) + 1e-8, 8)

    def _init_book_shape(self) -> None:
        rng = self._rng
        self._size_base = self.info.notional / max(self.info.price(self.ticks), 1e-12)
        self._ask_sizes = [self._size() for _ in range(BOOK_DEPTH)]
        self._bid_sizes = [self._size() for _ in range(BOOK_DEPTH)]
        self._ask_gaps = [_gap(rng.random()) for _ in range(BOOK_DEPTH)]
        self._bid_gaps = [_gap(rng.random()) for _ in range(BOOK_DEPTH)]
        self._ask_gaps[0] = self._bid_gaps[0] = 0

    def _build_book(self, center: int, ts: int) -> Book:
        """The book after a trade: the same shape around the new price, a few levels refreshed."""
        rng = self._rng
        r = rng.random()
        spread = 1 if r < 0.7 else 2 if r < 0.9 else 3
        bid = max(1, center)
        ask = bid + spread
        self._size_base = self.info.notional / max(self._price(center), 1e-12)
        az, bz = self._ask_sizes, self._bid_sizes
        for _ in range(3):
            az[int(rng.random() * BOOK_DEPTH)] = self._size()
            bz[int(rng.random() * BOOK_DEPTH)] = self._size()
        k = 1 + int(rng.random() * (BOOK_DEPTH - 1))
        if r < 0.5:
            self._ask_gaps[k] = _gap(rng.random())
        else:
            self._bid_gaps[k] = _gap(rng.random())
        # Inlined cache lookups: this loop runs 60 times per trade and is the market's hot spot.
        cached = self._prices.get
        price = self._price
        ap: list[float] = []
        for gap in self._ask_gaps:
            ask += gap
            ap.append(cached(ask) or price(ask))
        bp: list[float] = []
        bid_sizes = bz.copy()
        for i, gap in enumerate(self._bid_gaps):
            bid -= gap
            if bid >= 1:
                bp.append(cached(bid) or price(bid))
            else:
                # Upbit pads a thin side with zero-priced, zero-sized units.
                bp.append(0.0)
                bid_sizes[i] = 0.0
        return Book(ap, az.copy(), bp, bid_sizes, ts)

    def next_trade(self, now_ms: int) -> TradeRecord:
        """Make the next trade at ``now_ms``: take the best price, step the price, rebuild the book."""
        rng, info, book = self._rng, self.info, self.book
        side = "BID" if rng.random() < 0.5 else "ASK"
        price = book.ask_prices[0] if side == "BID" else book.bid_prices[0]
        if price <= 0:
            price = info.price(self.ticks)
        ticks = max(1, round(price / info.tick))
        volume = round(info.notional * (0.05 + 3.0 * rng.random() ** 3) / price + 1e-8, 8)
        ts = max(now_ms - 2 - int(rng.random() * 38), self._last_ts)
        sid = max(ts * 10_000, self._last_sid + 1)
        self._last_ts, self._last_sid = ts, sid
        sigma = max(ticks * 0.0001, 0.35)
        self.ticks = ticks
        center = max(1, ticks + round(rng.gauss(0.0, sigma)) - (1 if side == "ASK" else 0))
        self.book = book = self._build_book(center, now_ms)
        if ts >= self.day_start + DAY_MS:
            self._roll_day(ts, price)
        record = TradeRecord(
            info.code, ts, max(now_ms, ts), price, volume, side, sid, self.prev_close,
            (book.ask_prices[0], book.ask_sizes[0], book.bid_prices[0], book.bid_sizes[0]),
        )
        self._apply(record)
        return record

    def _roll_day(self, ts: int, price: float) -> None:
        self.prev_close = self.last.price if self.trades else price
        self.day_start = ts - ts % DAY_MS
        self.open = self.high = self.low = price
        self.acc_volume = self.acc_value = self.acc_ask_volume = self.acc_bid_volume = 0.0
        self.acc_volume_24h *= 0.5
        self.acc_value_24h *= 0.5

    def _apply(self, rec: TradeRecord) -> None:
        price, volume, ts = rec.price, rec.volume, rec.ts
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        value = price * volume
        self.acc_volume += volume
        self.acc_value += value
        self.acc_volume_24h += volume
        self.acc_value_24h += value
        if rec.ask_bid == "ASK":
            self.acc_ask_volume += volume
        else:
            self.acc_bid_volume += volume
        self.high_52w = max(self.high_52w, price)
        self.low_52w = min(self.low_52w, price)
        self.trades.append(rec)
        live = self.live
        for unit, span in _LIVE_SPANS:
            start = ts - ts % span
            bars = live[unit]
            bar = bars.get(start)
            if bar is None:
                bars[start] = Bar(start, price, price, price, price, volume, value, ts)
                if len(bars) > LIVE_KEEP:
                    del bars[next(iter(bars))]
            else:
                bar.add(price, volume, ts)

    @property
    def last(self) -> TradeRecord:
        """The latest trade."""
        return self.trades[-1]

    # -- candles -------------------------------------------------------------------------------------------

    def bar(self, unit: str, start: int) -> Bar | None:
        """The candle of ``unit`` starting at ``start`` (history and live trades merged), or ``None``."""
        if unit == "1s":
            live = self.live["1s"].get(start)
            return live.copy() if live else None
        if unit in MINUTE_UNITS:
            span = t.CANDLE_SECONDS[unit] * 1000
            hist = merge_bars(start, self.history.minutes(start, start + span))
            return _join(hist, self.live[unit].get(start))
        if unit == "1d":
            return _join(self.history.day(start), self.live["1d"].get(start))
        days: list[Bar] = []
        end = t.next_start(unit, start)
        day = start
        while day < end:
            bar = self.bar("1d", day)
            if bar is not None:
                days.append(bar)
            day += DAY_MS
        return merge_bars(start, days)

    def candles(self, unit: str, to_ms: int, count: int, now_ms: int) -> list[Bar]:
        """Up to ``count`` candles starting before ``to_ms`` (exclusive), newest first; gaps skipped."""
        if unit == "1s":
            out: list[Bar] = []
            for live in reversed(self.live["1s"].values()):
                if live.start < to_ms:
                    out.append(live.copy())
                    if len(out) >= count:
                        break
            return out
        floor = self.history.minute_floor if unit in MINUTE_UNITS else self.history.day_floor
        period = t.candle_start(unit, min(to_ms - 1, now_ms))
        out = []
        while len(out) < count and period >= t.candle_start(unit, floor):
            bar = self.bar(unit, period)
            if bar is not None:
                out.append(bar)
            period = t.prev_start(unit, period)
        return out

    # -- wire values ---------------------------------------------------------------------------------------

    def ws_ticker(self, simple: bool, stream_type: str, now_ms: int, shift: int = 0) -> bytes:
        """A ticker frame."""
        info, last = self.info, self.last
        price, prev = last.price, self.prev_close
        change, diff, rate = _signed(price, prev, info.decimals)
        trade_ts = last.ts - shift
        return ENCODE(
            WS_TICKER.make(
                simple,
                (
                    "ticker", info.code, self.open, self.high, self.low, price, prev,
                    round(self.acc_value, 8), change, abs(diff), diff, abs(rate), rate, last.ask_bid,
                    last.volume,
                    round(self.acc_volume, 8), t.date_compact(trade_ts), t.time_compact(trade_ts), trade_ts,
                    round(self.acc_ask_volume, 8), round(self.acc_bid_volume, 8), self.high_52w,
                    self.high_52w_date, self.low_52w, self.low_52w_date, "ACTIVE", False, None, "NONE",
                    now_ms - shift, round(self.acc_value_24h, 8), round(self.acc_volume_24h, 8), stream_type,
                ),
            )
        )

    def rest_ticker(self, now_ms: int) -> Any:
        """A ``/ticker`` item (a Struct, encoded with the list around it)."""
        info, last = self.info, self.last
        price, prev = last.price, self.prev_close
        change, diff, rate = _signed(price, prev, info.decimals)
        kst = last.ts + t.KST_MS
        return REST_TICKER.make(
            False,
            (
                info.code, t.date_compact(last.ts), t.time_compact(last.ts), t.date_compact(kst),
                t.time_compact(kst), last.ts, self.open, self.high, self.low, price, prev, change, abs(diff),
                abs(rate), diff, rate, last.volume, round(self.acc_value, 8), round(self.acc_value_24h, 8),
                round(self.acc_volume, 8), round(self.acc_volume_24h, 8), self.high_52w, self.high_52w_date,
                self.low_52w, self.low_52w_date, now_ms,
            ),
        )

    def ws_trade(self, rec: TradeRecord, simple: bool, stream_type: str, shift: int = 0) -> bytes:
        """A trade frame for ``rec``."""
        change, diff, _ = _signed(rec.price, rec.prev_close, self.info.decimals)
        ts = rec.ts - shift
        return ENCODE(
            WS_TRADE.make(
                simple,
                (
                    "trade", rec.code, rec.frame_ts - shift, t.date_dash(ts), t.time_colon(ts), ts, rec.price,
                    rec.volume, rec.ask_bid, rec.prev_close, change, abs(diff), rec.sid, rec.best_ask_price,
                    rec.best_ask_size, rec.best_bid_price, rec.best_bid_size, stream_type,
                ),
            )
        )

    def rest_trade(self, rec: TradeRecord) -> Any:
        """A ``/trades/ticks`` item; ``change_price`` is signed here, unlike the WebSocket's."""
        _, diff, _ = _signed(rec.price, rec.prev_close, self.info.decimals)
        return REST_TRADE.make(
            False,
            (
                rec.code, t.date_dash(rec.ts), t.time_colon(rec.ts), rec.ts, rec.price, rec.volume,
                rec.prev_close, diff, rec.ask_bid, rec.sid,
            ),
        )

    def view(self, book: Book, depth: int, level: float) -> Book:
        """``book`` cut to ``depth`` levels, grouped by ``level`` when it is positive."""
        if level > 0:
            return book.grouped(self.info, level, depth)
        return Book(
            book.ask_prices[:depth], book.ask_sizes[:depth], book.bid_prices[:depth], book.bid_sizes[:depth],
            book.ts,
        )

    def ws_orderbook(
        self, book: Book, simple: bool, stream_type: str, depth: int, level: float, shift: int = 0
    ) -> bytes:
        """An orderbook frame of ``book``."""
        view = self.view(book, depth, level)
        units = [
            WS_ORDERBOOK_UNIT.make(simple, row)
            for row in zip(view.ask_prices, view.bid_prices, view.ask_sizes, view.bid_sizes, strict=True)
        ]
        return ENCODE(
            WS_ORDERBOOK.make(
                simple,
                (
                    "orderbook", self.code, view.ts - shift, round(sum(view.ask_sizes), 8),
                    round(sum(view.bid_sizes), 8), units, stream_type, _level_number(level),
                ),
            )
        )

    def rest_orderbook(self, depth: int, level: float) -> Any:
        """An ``/orderbook`` item."""
        view = self.view(self.book, depth, level)
        units = [
            REST_ORDERBOOK_UNIT.make(False, row)
            for row in zip(view.ask_prices, view.bid_prices, view.ask_sizes, view.bid_sizes, strict=True)
        ]
        return REST_ORDERBOOK.make(
            False,
            (
                self.code, view.ts, round(sum(view.ask_sizes), 8), round(sum(view.bid_sizes), 8),
                _level_number(level), units,
            ),
        )

    def ws_candle(self, kind: str, bar: Bar, simple: bool, stream_type: str, shift: int = 0) -> bytes:
        """A ``candle.*`` frame of ``bar``."""
        return ENCODE(
            WS_CANDLE.make(
                simple,
                (
                    kind, self.code, t.candle_time(bar.start), t.candle_time(bar.start + t.KST_MS), bar.open,
                    bar.high, bar.low, bar.close, round(bar.volume, 8), round(bar.value, 8), bar.ts - shift,
                    stream_type,
                ),
            )
        )

    def rest_candle(self, unit: str, bar: Bar, extra: dict[str, Any]) -> dict[str, Any]:
        """A REST candle dict in Upbit's key order, followed by the endpoint's extra keys."""
        values = (
            self.code, t.candle_time(bar.start), t.candle_time(bar.start + t.KST_MS), bar.open, bar.high,
            bar.low, bar.close, bar.ts, round(bar.value, 8), round(bar.volume, 8),
        )
        out = dict(zip(REST_CANDLE_BASE, values, strict=True))
        out.update(extra)
        return out


def _gap(r: float) -> int:
    """Ticks between two neighbouring levels: mostly adjacent, sometimes a hole."""
    return 1 if r < 0.7 else 2 if r < 0.92 else 3


def _level_number(level: float) -> float | int:
    return int(level) if float(level).is_integer() else level


def _join(hist: Bar | None, live: Bar | None) -> Bar | None:
    """History part (earlier) followed by the live part (later) of one period."""
    if live is None:
        return hist.copy() if hist is not None else None
    if hist is None:
        return live.copy()
    return Bar(
        hist.start, hist.open, max(hist.high, live.high), min(hist.low, live.low), live.close,
        hist.volume + live.volume, hist.value + live.value, live.ts,
    )


class Exchange:
    """All simulated markets, the step function, and the event fan-out.

    Args:
        catalog: the markets.
        seed: the RNG seed.
        options: history sizes and candle pacing.
        clock: seconds since the epoch (``time.time`` unless a test pins it).
        faults: consulted for ``stale`` and ``crossed_book``.
    """

    def __init__(
        self,
        catalog: list[MarketInfo],
        seed: int,
        options: SimOptions,
        clock: Callable[[], float],
        faults: Faults,
    ) -> None:
        self.catalog = catalog
        self.by_code = {m.code: m for m in catalog}
        self._seed = seed
        self._options = options
        self._clock = clock
        self._faults = faults
        self._markets: dict[str, MarketState] = {}
        self._chooser = random.Random(f"{seed}:chooser")
        self.start_ms = self.now_ms()
        self.trade_count = 0
        self.publish: Callable[[Event], None] = lambda _event: None
        self.wants: Callable[[str, str], bool] = lambda _kind, _code: False
        self._candle_sent: dict[tuple[str, str], float] = {}
        self._candle_pending: set[tuple[str, str]] = set()

    def now_ms(self) -> int:
        """The clock, in ms."""
        return int(self._clock() * 1000)

    def market(self, code: str) -> MarketState:
        """The state of ``code`` (built on first use).

        Raises:
            KeyError: unknown code.
        """
        state = self._markets.get(code)
        if state is None:
            info = self.by_code[code]
            state = self._markets[code] = MarketState(info, self._seed, self.start_ms, self._options)
        return state

    def step(self, n: int = 1, code: str | None = None) -> list[TradeRecord]:
        """Make ``n`` trades (in ``code``, or in markets the seeded RNG picks) and publish their events.

        Raises:
            KeyError: unknown ``code``.
        """
        out: list[TradeRecord] = []
        if code is not None and code not in self.by_code:
            raise KeyError(code)
        for _ in range(n):
            info = self.by_code[code] if code is not None else self._chooser.choice(self.catalog)
            state = self.market(info.code)
            now = self.now_ms()
            rec = state.next_trade(now)
            self.trade_count += 1
            out.append(rec)
            self._emit(state, rec, now)
        return out

    def _emit(self, state: MarketState, rec: TradeRecord, now: int) -> None:
        code, wants = state.code, self.wants
        faults = self._faults
        want_trade, want_ticker = wants("trade", code), wants("ticker", code)
        want_book = wants("orderbook", code)
        candles = [(kind, unit) for kind, unit in CANDLE_TYPES.items() if wants(kind, code)]
        shift = 0
        # Counted faults are spent only on events someone receives, so "the next n" means n the client sees.
        if (want_trade or want_ticker or want_book or candles) and faults.take("stale"):
            shift = faults.stale_age_ms
        if want_trade:
            self.publish(Event("trade", code, lambda s, _v: state.ws_trade(rec, s, "REALTIME", shift)))
        if want_ticker:
            # Built lazily but always during ``publish``: the hub takes every frame before the next step.
            self.publish(Event("ticker", code, lambda s, _v: state.ws_ticker(s, "REALTIME", now, shift)))
        if want_book:
            book = state.book.crossed(state.info) if faults.take("crossed_book") else state.book
            self.publish(
                Event(
                    "orderbook", code,
                    lambda s, v: state.ws_orderbook(book, s, "REALTIME", *(v or (BOOK_DEPTH, 0.0)), shift),
                )
            )
        for kind, unit in candles:
            self._candle(state, kind, unit, rec.ts, shift)

    def _candle(self, state: MarketState, kind: str, unit: str, ts: int, shift: int = 0) -> None:
        interval = self._options.candle_interval
        key = (state.code, kind)
        now = self._clock()
        if interval > 0 and now - self._candle_sent.get(key, -1e18) < interval:
            self._candle_pending.add(key)
            return
        self._candle_sent[key] = now
        self._candle_pending.discard(key)
        bar = state.bar(unit, t.candle_start(unit, ts))
        if bar is not None:
            event = Event(kind, state.code, lambda s, _v: state.ws_candle(kind, bar, s, "REALTIME", shift))
            self.publish(event)

    def flush_candles(self) -> None:
        """Send candle frames held back by the one-per-second pacing, once their second has passed."""
        for code, kind in list(self._candle_pending):
            if self.wants(kind, code):
                state = self.market(code)
                self._candle(state, kind, CANDLE_TYPES[kind], state.last.ts)
            else:
                self._candle_pending.discard((code, kind))

    def snapshot(self, kind: str, code: str, simple: bool, variant: Variant) -> bytes | None:
        """The SNAPSHOT frame of ``(kind, code)`` now (``None`` when there is nothing to show yet)."""
        state = self.market(code)
        now = self.now_ms()
        if kind == "ticker":
            return state.ws_ticker(simple, "SNAPSHOT", now)
        if kind == "trade":
            return state.ws_trade(state.last, simple, "SNAPSHOT")
        if kind == "orderbook":
            depth, level = variant or (BOOK_DEPTH, 0.0)
            return state.ws_orderbook(state.book, simple, "SNAPSHOT", depth, level)
        unit = CANDLE_TYPES[kind]
        # The current period's candle, or the previous one when nothing traded yet in this period.
        bars = state.candles(unit, now + 1, 1, now)
        return state.ws_candle(kind, bars[0], simple, "SNAPSHOT") if bars else None

    def markets(self, codes: Iterable[str]) -> list[MarketState]:
        """States of ``codes`` in order (all must be known)."""
        return [self.market(code) for code in codes]

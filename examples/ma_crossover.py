"""A moving-average crossover on 1-minute candles, run on a live stream and on a replay of the same data.

Run it from anywhere; it needs no network (a local simulator plays the exchange)::

    python examples/ma_crossover.py

The strategy is written once, as an operator over ``Observable[Candle]`` (:func:`crossover`), and knows
nothing of where its candles come from. The script:

1. starts an :class:`~rxmarket.sim.UpbitSimulator` whose clock runs 600 times faster than the wall clock,
   so that a 1-minute candle closes every 0.1 s;
2. **backfills** an hour of 1-minute candles over REST into ``history/`` to warm the averages up;
3. runs the strategy **live**: the history, then the simulator's WebSocket candles, which it **records**
   into ``live/`` as they arrive, for 30 (simulated) minutes;
4. runs the very same strategy on a **replay** of ``history/`` then ``live/``;
5. prints the signals of both runs and exits 0 when they are the same, 1 when they differ.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import reactivex
from reactivex import Observable
from reactivex import operators as ops

from rxmarket.exchanges.upbit.source import SourceConfig, UpbitSource
from rxmarket.models import Candle
from rxmarket.sim import UpbitSimulator
from rxmarket.storage import backfill, record, replay

SYMBOL = "KRW-BTC"
FAST, SLOW = 5, 15  # candles in each moving average
SPEED = 600.0  # simulated seconds per wall-clock second
WARM_UP_MINUTES = 60
LIVE_MINUTES = 30
MINUTE_MS = 60_000


# -- the strategy: one operator, any source of candles ---------------------------------------------------


class Signal(NamedTuple):
    """A crossover: the fast average crossed the slow one on the close of the candle starting at ``start``."""

    start: int
    side: str  # "BUY": fast crossed above slow; "SELL": below
    close: float
    fast: float
    slow: float

    def __str__(self) -> str:
        when = datetime.fromtimestamp(self.start / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        return f"{self.side:4} {when}  close {self.close:,.0f}  fast {self.fast:,.1f}  slow {self.slow:,.1f}"


_Held = tuple[Candle | None, Candle | None]  # (the candle held open, the one just closed)


def closed_candles() -> Callable[[Observable[Candle]], Observable[Candle]]:
    """Each candle once, in its final version: when the first version of the next candle arrives.

    Upbit resends the open candle on every trade (same ``start``, newer figures); the last version before a
    newer ``start`` is the closed candle. A version older than the one held (a late frame) is ignored.

    ::

        --a1--a2--a3--b1--b2--c1--|      (letter: candle start, digit: version)
        closed_candles()
        --------------a3------b2--|
    """

    def step(state: _Held, candle: Candle) -> _Held:
        held, _closed = state
        if held is None or candle.start == held.start:
            return candle, None  # the first candle, or a newer version of the open one
        if candle.start > held.start:
            return candle, held  # a new candle: the one held is final
        return held, None  # older than what we hold: late, ignore

    def just_closed(state: _Held) -> Candle | None:
        return state[1]

    def closed(source: Observable[Candle]) -> Observable[Candle]:
        seed: _Held = (None, None)
        return source.pipe(
            ops.scan(step, seed),
            ops.map(just_closed),
            ops.filter(lambda candle: candle is not None),
        )

    return closed


class _Averages(NamedTuple):
    closes: tuple[float, ...]  # the last SLOW closes
    diff: float | None  # fast - slow after the last candle, once there are SLOW closes
    signal: Signal | None  # what the last candle triggered


def crossover(fast: int = FAST, slow: int = SLOW) -> Callable[[Observable[Candle]], Observable[Signal]]:
    """Signals when the ``fast``-candle simple moving average of the closes crosses the ``slow`` one.

    ::

        candles (open versions and all) --closed_candles()--> closes --SMA fast vs slow--> BUY / SELL
    """
    if not 0 < fast < slow:
        raise ValueError(f"need 0 < fast < slow, got fast={fast} slow={slow}")

    def step(state: _Averages, candle: Candle) -> _Averages:
        closes = (*state.closes, candle.close)[-slow:]
        if len(closes) < slow:
            return _Averages(closes, None, None)
        f = sum(closes[-fast:]) / fast
        s = sum(closes) / slow
        diff = f - s
        signal = None
        if state.diff is not None:
            if state.diff <= 0 < diff:
                signal = Signal(candle.start, "BUY", candle.close, f, s)
            elif state.diff >= 0 > diff:
                signal = Signal(candle.start, "SELL", candle.close, f, s)
        return _Averages(closes, diff, signal)

    def signal_of(state: _Averages) -> Signal | None:
        return state.signal

    def signals(source: Observable[Candle]) -> Observable[Signal]:
        return source.pipe(
            closed_candles(),
            ops.scan(step, _Averages((), None, None)),
            ops.map(signal_of),
            ops.filter(lambda signal: signal is not None),
        )

    return signals


# -- the two runs ------------------------------------------------------------------------------------------


class FastClock:
    """Seconds since the epoch, running ``speed`` times faster than the wall clock from now on."""

    def __init__(self, speed: float) -> None:
        self._t0 = time.time()
        self._m0 = time.monotonic()
        self._speed = speed

    def __call__(self) -> float:
        return self._t0 + (time.monotonic() - self._m0) * self._speed

    def ms(self) -> int:
        return int(self() * 1000)


async def run_live(source: UpbitSource, history: Path, live: Path, since: int, until: int) -> list[Signal]:
    """The strategy on the stored history followed by live candles starting in ``[since, until)``,
    recording the live candles into ``live`` exactly as the strategy sees them."""
    candles: Observable[Candle] = source.stream("candle.1m", SYMBOL)
    feed = candles.pipe(
        ops.filter(lambda c: c.start >= since),  # older ones are in the history already
        ops.take_while(lambda c: c.start < until),
        ops.publish(),  # one upstream for the recorder and the strategy, started by connect()
    )
    recorder = record(feed, live)
    signals: list[Signal] = []
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_signal(signal: Signal) -> None:
        signals.append(signal)
        print(f"live    {signal}")

    def on_error(exc: Exception) -> None:
        if not done.done():
            done.set_exception(exc)

    def on_completed() -> None:
        if not done.done():
            done.set_result(None)

    reactivex.concat(replay(history), feed).pipe(crossover()).subscribe(on_signal, on_error, on_completed)
    feed.connect()
    async with asyncio.timeout(60):
        await done
        await recorder.wait_closed()
    return signals


def run_replay(history: Path, live: Path) -> list[Signal]:
    """The same strategy on the recordings, as fast as they can be read."""
    signals: list[Signal] = []

    def on_signal(signal: Signal) -> None:
        signals.append(signal)
        print(f"replay  {signal}")

    reactivex.concat(replay(history), replay(live)).pipe(crossover()).subscribe(on_signal)
    return signals


async def main() -> int:
    clock = FastClock(SPEED)
    with tempfile.TemporaryDirectory(prefix="ma-crossover-") as tmp:
        history, live = Path(tmp, "history"), Path(tmp, "live")
        async with UpbitSimulator(markets=1, seed=7, rate=200, clock=clock) as sim:
            config = SourceConfig(ws_url=sim.ws_url, rest_url=sim.rest_url)
            async with UpbitSource(config) as source:
                now = clock.ms()
                this_minute = now - now % MINUTE_MS
                done = await backfill(source, SYMBOL, "candles", this_minute - WARM_UP_MINUTES * MINUTE_MS,
                                      this_minute, history, unit="1m")
                print(f"backfilled {done.written} candles of {SYMBOL} in {done.pages} request(s)")
                live_signals = await run_live(
                    source, history, live, this_minute, this_minute + LIVE_MINUTES * MINUTE_MS
                )
        replay_signals = run_replay(history, live)
    same = live_signals == replay_signals
    print(f"{len(live_signals)} signals live, {len(replay_signals)} on the replay: "
          f"{'the same' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""A pipeline of your own: recent trades over REST, then live ones, deduplicated, checked, VWAP per second.

Run it (no network needed: a local simulator plays Upbit)::

    python examples/custom_pipeline.py
    python examples/custom_pipeline.py --rest-url https://api.upbit.com/v1 --ws-url wss://api.upbit.com/websocket/v1

The chain, operator by operator::

    REST history (cold, up to 50 trades) -----+
                                              +-- merge --> ops.dedupe()                  one trade once
    live trades (hot, WebSocket) -------------+         --> ops.validate(not_a_whale)     a check of ours
                                                        --> buffer_with_time(1 s)         one list per second
                                                        --> map(vwap)                     -> Window

The REST page and the live feed overlap (Upbit starts a trade subscription with the latest trade), so
``dedupe`` drops the trades seen twice, by ``(symbol, sequential_id)``. ``buffer_with_time`` is a
reactivex operator that needs a clock: give it the asyncio loop's scheduler, so that its timer runs on
the loop like everything else (reactivex's default would be a thread).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import NamedTuple

import reactivex
from reactivex import operators as rx
from reactivex.scheduler.eventloop import AsyncIOScheduler

import rxmarket
from rxmarket import Trade, ops
from rxmarket.sim import UpbitSimulator

SYMBOL = "KRW-BTC"
WHALE_KRW = 150_000  # small, so that the simulator's market has a few "whales"


class Window(NamedTuple):
    """The trades of one second: how many (and how many came over REST), volume, and their VWAP."""

    trades: int
    from_rest: int
    volume: float
    vwap: float


def vwap(trades: list[Trade]) -> Window:
    volume = sum(t.volume for t in trades)
    rest = sum(1 for t in trades if t.source == "rest")
    return Window(len(trades), rest, volume, sum(t.price * t.volume for t in trades) / volume)


def nonempty(trades: list[Trade]) -> bool:
    return len(trades) > 0


def not_a_whale(trade: Trade) -> bool | str:
    """A user check for ``ops.validate``: ``True`` passes; a string is the reason for a rejection."""
    return trade.price * trade.volume < WHALE_KRW or f"whale trade (over {WHALE_KRW:,} KRW)"


async def run(market: rxmarket.MarketData, seconds: float) -> int:
    loop = asyncio.get_running_loop()
    history = market.source.trades(SYMBOL, 50)  # REST, oldest first; completes after the page
    live = market.trades([SYMBOL])  # WebSocket; gaps after a reconnect are filled by the source
    dedupe = ops.dedupe(max_keys=10_000)
    check = ops.validate(not_a_whale)
    windows: list[Window] = []

    def show(window: Window) -> None:
        windows.append(window)
        print(f"second {len(windows)}: {window.trades:3} trades ({window.from_rest:2} over REST), "
              f"volume {window.volume:.6f}, VWAP {window.vwap:,.0f}")

    subscription = reactivex.merge(history, live).pipe(
        dedupe,
        check,
        rx.buffer_with_time(1.0, scheduler=AsyncIOScheduler(loop)),
        rx.filter(nonempty),  # a quiet second makes an empty list
        rx.map(vwap),
    ).subscribe(show, lambda exc: print(f"the pipeline failed: {exc!r}"))
    await asyncio.sleep(seconds)
    subscription.dispose()

    d, q = dedupe.stats(), check.quarantine.stats()
    print(f"dedupe: {d.passed} passed, {d.dropped} seen twice; validate: {q.passed} passed, "
          f"{q.dropped} rejected {dict(q.by_check)}")
    return 0 if windows else 1


async def main(seconds: float, rest_url: str | None, ws_url: str | None) -> int:
    async with contextlib.AsyncExitStack() as stack:
        if rest_url is None or ws_url is None:
            sim = await stack.enter_async_context(UpbitSimulator(markets=3, seed=7, rate=30))
            rest_url, ws_url = sim.rest_url, sim.ws_url
        market = await stack.enter_async_context(rxmarket.upbit(rest_url=rest_url, ws_url=ws_url))
        return await run(market, seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.5, help="how long to run (default 3.5)")
    parser.add_argument("--rest-url", help="an Upbit-compatible REST base (default: a local simulator)")
    parser.add_argument("--ws-url", help="an Upbit-compatible WebSocket URL (default: a local simulator)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.seconds, args.rest_url, args.ws_url)))

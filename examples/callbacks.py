"""Consume live tickers with callbacks: subscribe functions, let them run, dispose.

Run it (no network needed: a local simulator plays Upbit)::

    python examples/callbacks.py
    python examples/callbacks.py --seconds 10 --rest-url https://api.upbit.com/v1 \
        --ws-url wss://api.upbit.com/websocket/v1          # the real exchange

``market.ticker(...)`` returns an Observable at once; subscribing connects. Your functions are called on
the event loop, one item at a time: ``on_next`` for each ticker, ``on_error`` if the stream fails for good
(it does not for a dropped connection: that is healed underneath and reported on ``market.status``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections import Counter

import rxmarket
from rxmarket import Status, Ticker
from rxmarket.sim import UpbitSimulator

MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP"]


def px(price: float) -> str:
    """A price with thousands separators, and decimals only where the market has them."""
    return f"{price:,.0f}" if price >= 100 else f"{price:,.4g}"


async def watch(market: rxmarket.MarketData, seconds: float) -> int:
    counts: Counter[str] = Counter()
    failed: list[Exception] = []

    def on_ticker(ticker: Ticker) -> None:
        counts[ticker.symbol] += 1
        print(f"{ticker.symbol:9} {px(ticker.price):>14} {ticker.change_rate:+7.2%}  [{ticker.source}]")

    def on_error(exc: Exception) -> None:
        failed.append(exc)
        print(f"the ticker stream failed: {exc!r}")

    def on_status(event: Status) -> None:
        if event.kind in ("live", "reconnected", "backoff", "circuit", "gave_up"):
            print(f"  status: {event.kind} {event.detail}".rstrip())

    subscriptions = [
        market.status.subscribe(on_status),
        market.ticker(MARKETS).subscribe(on_ticker, on_error),
    ]
    await asyncio.sleep(seconds)  # the callbacks run on the event loop meanwhile
    for subscription in subscriptions:
        subscription.dispose()  # the last subscriber gone: the market unsubscribes upstream

    print(f"received {sum(counts.values())} tickers: "
          + ", ".join(f"{symbol} {counts[symbol]}" for symbol in MARKETS))
    return 0 if counts and not failed else 1


async def main(seconds: float, rest_url: str | None, ws_url: str | None) -> int:
    async with contextlib.AsyncExitStack() as stack:
        if rest_url is None or ws_url is None:
            sim = await stack.enter_async_context(UpbitSimulator(markets=5, seed=7, rate=10))
            rest_url, ws_url = sim.rest_url, sim.ws_url
        market = await stack.enter_async_context(rxmarket.upbit(rest_url=rest_url, ws_url=ws_url))
        return await watch(market, seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to watch (default 3)")
    parser.add_argument("--rest-url", help="an Upbit-compatible REST base (default: a local simulator)")
    parser.add_argument("--ws-url", help="an Upbit-compatible WebSocket URL (default: a local simulator)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.seconds, args.rest_url, args.ws_url)))

"""Consume live data with ``async for``: a bounded buffer between the feed and a consumer that awaits.

Run it (no network needed: a local simulator plays Upbit)::

    python examples/async_for.py
    python examples/async_for.py --rest-url https://api.upbit.com/v1 --ws-url wss://api.upbit.com/websocket/v1

Two loops:

1. the first tickers, printed as they come, then ``break`` (which unsubscribes);
2. orderbooks read by a *slow* consumer (it awaits 0.2 s per book, as a database write would). The feed
   does not wait for it: the iterator's buffer uses ``overflow="latest"`` (the default for books), so
   only the newest book per market waits and the consumer never works through stale ones. Every book
   that was replaced is counted in ``dropped``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

import rxmarket
from rxmarket.sim import UpbitSimulator


async def first_tickers(market: rxmarket.MarketData, n: int) -> int:
    seen = 0
    async with market.stream_ticker(["KRW-BTC", "KRW-ETH"]) as tickers:
        async for ticker in tickers:
            seen += 1
            print(f"ticker {seen:2}: {ticker.symbol:8} {ticker.price:>14,.0f}  [{ticker.source}]")
            if seen == n:
                break  # leaving the loop disposes the subscription
    return seen


async def slow_consumer(market: rxmarket.MarketData, n: int) -> int:
    handled = 0
    books = market.stream_orderbook(["KRW-BTC", "KRW-ETH"], depth=5, maxsize=8, overflow="latest")
    async with books:
        async for book in books:
            await asyncio.sleep(0.2)  # slow work; meanwhile newer books replace the waiting ones
            handled += 1
            bid, ask = book.best_bid, book.best_ask
            if bid is not None and ask is not None:
                print(f"book   {handled:2}: {book.symbol:8} bid {bid.price:,.0f} ask {ask.price:,.0f}  "
                      f"(waiting: {books.buffered})")
            if handled == n:
                break
    print(f"books: {books.received} received, {handled} handled, {books.dropped} replaced by newer ones "
          f"(at most {books.high_water} waited at once)")
    return handled


async def main(rest_url: str | None, ws_url: str | None) -> int:
    async with contextlib.AsyncExitStack() as stack:
        if rest_url is None or ws_url is None:
            sim = await stack.enter_async_context(UpbitSimulator(markets=5, seed=7, rate=50))
            rest_url, ws_url = sim.rest_url, sim.ws_url
        market = await stack.enter_async_context(rxmarket.upbit(rest_url=rest_url, ws_url=ws_url))
        tickers = await first_tickers(market, 10)
        books = await slow_consumer(market, 8)
        print(f"market: {market.stats().drops} items dropped by overflow policies in all")
    return 0 if tickers == 10 and books == 8 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest-url", help="an Upbit-compatible REST base (default: a local simulator)")
    parser.add_argument("--ws-url", help="an Upbit-compatible WebSocket URL (default: a local simulator)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rest_url, args.ws_url)))

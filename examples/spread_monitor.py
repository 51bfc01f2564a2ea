"""An orderbook spread monitor: an alert when a market's bid-ask spread gets wide, and when it is back.

Run it (no network needed: a local simulator plays Upbit)::

    python examples/spread_monitor.py
    python examples/spread_monitor.py --threshold 5 --seconds 30 \
        --rest-url https://api.upbit.com/v1 --ws-url wss://api.upbit.com/websocket/v1

``spread_alerts`` is an operator of our own, written from scratch (see
``docs/howto/custom-operators.md``): per market it remembers whether the spread was wide and emits one
alert per crossing of the threshold, not one per book. It sits after the default book pipeline, which
has already dropped inconsistent books: against the simulator the script makes the next three books
*crossed* (best bid above best ask), and they never reach the monitor; they are counted in
``market.stats().rejected`` and published on ``market.status`` as ``quarantined``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

from reactivex import Observable, abc

import rxmarket
from rxmarket import Orderbook, Status
from rxmarket.sim import UpbitSimulator

MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP"]


class SpreadAlert(NamedTuple):
    book: Orderbook
    wide: bool  # True: the spread just went above the threshold; False: back below it
    bps: float  # the spread in basis points of the mid price


def spread_alerts(threshold_bps: float) -> Callable[[Observable[Orderbook]], Observable[SpreadAlert]]:
    """An alert when a market's spread crosses ``threshold_bps`` (basis points of the mid), per crossing."""
    if not threshold_bps > 0:
        raise ValueError(f"threshold_bps must be > 0, got {threshold_bps!r}")

    def operator(source: Observable[Orderbook]) -> Observable[SpreadAlert]:
        def subscribe(observer: abc.ObserverBase[SpreadAlert],
                      scheduler: abc.SchedulerBase | None = None) -> abc.DisposableBase:
            wide: dict[str, bool] = {}  # per subscription

            def on_next(book: Orderbook) -> None:
                if book.spread is None or not book.mid:
                    return  # a side is empty
                bps = book.spread / book.mid * 10_000
                now_wide = bps > threshold_bps
                if now_wide != wide.get(book.symbol, False):
                    wide[book.symbol] = now_wide
                    observer.on_next(SpreadAlert(book, now_wide, bps))

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return operator


def show(alert: SpreadAlert, threshold: float) -> None:
    book = alert.book
    when = datetime.fromtimestamp(book.timestamp / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
    bid, ask = book.best_bid, book.best_ask
    if bid is None or ask is None:  # spread_alerts skips such books; this keeps type checkers sure of it
        return
    state = f"WIDE  > {threshold:g} bps" if alert.wide else f"back <= {threshold:g} bps"
    print(f"{when}  {book.symbol:8} spread {alert.bps:5.2f} bps  {state:15} "
          f"(bid {bid.price:,.0f} / ask {ask.price:,.0f})")


async def monitor(market: rxmarket.MarketData, threshold: float, seconds: float,
                  sim: UpbitSimulator | None) -> int:
    books: dict[str, int] = dict.fromkeys(MARKETS, 0)
    widest: dict[str, float] = dict.fromkeys(MARKETS, 0.0)
    alerts: list[SpreadAlert] = []

    def count(book: Orderbook) -> None:
        books[book.symbol] += 1
        if book.spread is not None and book.mid:
            widest[book.symbol] = max(widest[book.symbol], book.spread / book.mid * 10_000)

    def on_alert(alert: SpreadAlert) -> None:
        alerts.append(alert)
        show(alert, threshold)

    def on_status(event: Status) -> None:
        if event.kind == "quarantined":
            print(f"  quarantined: {event.symbol} {event.detail}")

    feed = market.orderbook(MARKETS, depth=5)  # hot and shared: the two subscriptions use one upstream
    subscriptions = [
        market.status.subscribe(on_status),
        feed.subscribe(count),
        feed.pipe(spread_alerts(threshold)).subscribe(on_alert),
    ]
    if sim is not None:
        await asyncio.sleep(seconds / 2)
        sim.faults.crossed_book(3)  # three broken books: validation must keep them from the monitor
    await asyncio.sleep(seconds / 2 if sim is not None else seconds)
    for subscription in subscriptions:
        subscription.dispose()

    for symbol in MARKETS:
        print(f"{symbol:8} {books[symbol]:4} books, widest spread {widest[symbol]:5.2f} bps")
    print(f"{len(alerts)} alerts; {market.stats().rejected} inconsistent books rejected before the monitor")
    return 0 if sum(books.values()) > 0 else 1


async def main(threshold: float, seconds: float, rest_url: str | None, ws_url: str | None) -> int:
    async with contextlib.AsyncExitStack() as stack:
        sim = None
        if rest_url is None or ws_url is None:
            sim = await stack.enter_async_context(UpbitSimulator(markets=len(MARKETS), seed=7, rate=50))
            rest_url, ws_url = sim.rest_url, sim.ws_url
        market = await stack.enter_async_context(rxmarket.upbit(rest_url=rest_url, ws_url=ws_url))
        return await monitor(market, threshold, seconds, sim)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=4.0, help="alert above this many bps (default 4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to watch (default 3)")
    parser.add_argument("--rest-url", help="an Upbit-compatible REST base (default: a local simulator)")
    parser.add_argument("--ws-url", help="an Upbit-compatible WebSocket URL (default: a local simulator)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.threshold, args.seconds, args.rest_url, args.ws_url)))

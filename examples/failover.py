"""Failover: a ticker stream that switches WebSocket -> REST -> WebSocket by itself when the link fails.

Run it (it needs a local simulator, to break the link on purpose; no network)::

    python examples/failover.py

With ``channel="auto"`` (the default), ``market.ticker(...)`` reads the WebSocket. When the WebSocket goes
down, the stream switches to polling REST every ``poll_interval``; every ``failover_retry`` seconds it
tries the WebSocket again and, on its first ticker, switches back and stops polling. Subscribers see one
unbroken stream: each ticker's ``source`` says which channel it came from, and no ticker is seen twice or
out of order. ``market.status`` reports each step (``circuit`` events: ``open`` = on REST, ``half_open``
= trying the WebSocket, ``closed`` = back on it).

The script waits for WebSocket tickers, then refuses connections for 1 s and drops every WebSocket (the
REST side is refused for that second too, as when a whole host is down), waits until tickers come over
REST, then until they come over the WebSocket again, and prints the sequence it saw.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

import rxmarket
from rxmarket import Status, Ticker
from rxmarket.sim import UpbitSimulator

DEADLINE = 15.0  # seconds each step may take before the script gives up (exit status 1)


async def main() -> int:
    async with UpbitSimulator(markets=3, seed=7, rate=30) as sim, rxmarket.upbit(
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        poll_interval=0.25,  # poll REST 4 times a second while the WebSocket is down
        failover_retry=2.0,  # try the WebSocket again after 2 s on REST
        ping_interval=0.5,  # notice a dead link within a second
        idle_timeout=1.0,
    ) as market:
        start = time.monotonic()
        sources: list[str] = []  # the channel of each run of tickers, in order
        changed = asyncio.Event()

        def stamp() -> str:
            return f"{time.monotonic() - start:5.2f}s"

        def on_ticker(ticker: Ticker) -> None:
            if not sources or sources[-1] != ticker.source:
                sources.append(ticker.source)
                print(f"{stamp()}  {ticker.symbol} {ticker.price:,.0f}  now via {ticker.source}")
                changed.set()

        def on_status(event: Status) -> None:
            if event.kind == "circuit" and event.connection is None:
                print(f"{stamp()}    circuit {event.detail}")
            elif event.kind == "backoff" and event.connection is not None:
                print(f"{stamp()}    the WebSocket is down; next attempt in {event.delay or 0:.2f}s")
            elif event.kind == "backoff":
                print(f"{stamp()}    a REST poll failed: {event.detail}")
            elif event.kind == "reconnected":
                print(f"{stamp()}    the WebSocket reconnected after {event.downtime or 0:.2f}s")

        async def until(condition: Callable[[], bool]) -> None:
            async with asyncio.timeout(DEADLINE):
                while not condition():
                    changed.clear()
                    await changed.wait()

        market.status.subscribe(on_status)
        subscription = market.ticker(["KRW-BTC"]).subscribe(on_ticker)
        try:
            await until(lambda: sources == ["websocket"])
            print(f"{stamp()}  fault: refuse connections for 1 s, drop every WebSocket")
            sim.faults.refuse(1.0)
            sim.faults.disconnect()
            await until(lambda: sources[-1] == "rest")
            await until(lambda: sources[-1] == "websocket")
        except TimeoutError:
            print(f"no failover within {DEADLINE:g}s; sources seen: {sources}")
            return 1
        finally:
            subscription.dispose()
        stats = market.stats()
        print(f"sources in order: {' -> '.join(sources)}")
        print(f"circuit opened {stats.circuit_opens}x, {stats.polls} REST polls "
              f"({stats.poll_errors} refused), {stats.reconnects} reconnect(s), "
              f"{stats.duplicates} repeat(s) dropped at the switches")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

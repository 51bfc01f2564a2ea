"""Cache warm-up: one REST call fills a disk cache; ``get_ticker`` then answers from it, after a restart too.

Run it (it needs a local simulator, to count the REST requests; no network)::

    python examples/cache_warmup.py

Three steps, each printing where its answers came from:

1. **Warm up.** ``get_tickers`` of ten markets: one batched REST request (``/ticker?markets=...``). Each
   ticker is written through to the disk cache in ``cache_dir``.
2. **Hits.** ``get_ticker`` again, market by market: answered from memory (``source="cache"``), with no
   request at all.
3. **Restart.** A *new* ``MarketData`` on the same ``cache_dir`` (as a program started again would be):
   its ``get_ticker`` answers come from the disk cache while they are fresh (``cache_ttl``), and a new
   subscriber of ``market.ticker(...)`` first gets the cached tickers replayed, then the live ones.

The simulator's own request counter shows which steps touched the network.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

import rxmarket
from rxmarket import Ticker
from rxmarket.sim import UpbitSimulator


def line(ticker: Ticker) -> str:
    price = f"{ticker.price:,.0f}" if ticker.price >= 100 else f"{ticker.price:,.4g}"
    return f"{ticker.symbol:9} {price:>14}  [{ticker.source}]"


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rxmarket-cache-") as cache_dir:
        async with UpbitSimulator(markets=10, seed=7, rate=20) as sim:
            markets = sim.markets
            config = rxmarket.MarketConfig(
                rest_url=sim.rest_url,
                ws_url=sim.ws_url,
                cache_dir=cache_dir,  # persistent: survives the MarketData (and the process)
                cache_ttl=60.0,  # a cached ticker is good for a minute
                keep_warm=None,  # answer from the cache only; do not start streams for get_ticker
            )

            print("1. warm up: one REST call for all markets")
            async with rxmarket.upbit(config) as market:
                before = sim.stats.rest_requests
                warmed = await market.get_tickers(markets)
                for ticker in warmed[:3]:
                    print("  ", line(ticker))
                print(f"   ... {len(warmed)} tickers, {sim.stats.rest_requests - before} REST request(s)")

                print("2. get_ticker again: from the cache, no request")
                before = sim.stats.rest_requests
                again = [await market.get_ticker(code) for code in markets]
                for ticker in again[:3]:
                    print("  ", line(ticker))
                stats = market.stats()
                hits = stats.cache_hits
                print(f"   ... {hits} cache hits, {stats.cache_misses} misses, "
                      f"{sim.stats.rest_requests - before} REST request(s)")

            print("3. restart: a new MarketData on the same cache directory")
            async with rxmarket.upbit(config) as market:
                before = sim.stats.rest_requests
                restarted = await market.get_ticker("KRW-ETH")
                print("  ", line(restarted), f"  {sim.stats.rest_requests - before} REST request(s)")
                first: list[Ticker] = []
                got_live = asyncio.Event()

                def on_ticker(ticker: Ticker) -> None:
                    first.append(ticker)
                    if ticker.source == "websocket":
                        got_live.set()

                subscription = market.ticker(["KRW-BTC", "KRW-XRP"]).subscribe(on_ticker)
                try:
                    async with asyncio.timeout(10):
                        await got_live.wait()
                finally:
                    subscription.dispose()
                print("   a new subscriber's first tickers:")
                for ticker in first[:3]:
                    print("     ", line(ticker))

    replayed = [t.source for t in first[:2]] == ["cache", "cache"]
    ok = hits == len(markets) and restarted.source == "cache" and replayed
    print("cache warm-up worked" if ok else "the cache did not answer as expected")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""``get_ticker`` cache hits when polling a few markets every 100 ms, and the default chain's cost per item.

Part 1 (the issue's "done when"): a simulator on 127.0.0.1 (50 markets, the market moving by itself at
20 trades/s, so each market changes every ~2.5 s on average) and a ``MarketData`` on it; every 100 ms
``get_ticker`` is called for each of 5 markets (concurrently). Three configurations, one run:

* **default**: ``keep_warm=60`` (an asked market is streamed), ``cache_ttl=1``, ``live_ttl=30``;
* **no live rule**: the same with ``live_ttl=0`` (a value is fresh only for ``cache_ttl`` after it
  arrived, streamed or not);
* **TTL only**: ``keep_warm=None`` (nothing streamed; REST answers kept for ``cache_ttl``).

The hit rate is ``stats().cache_hits / (hits + misses)``. To show that hits are not stale, on one round in
ten every answer is compared with the exchange's own current ticker (a direct REST request to the
simulator right after, not through rxmarket): "current" means the answer's last trade is the exchange's
last trade. A trade landing between the answer and that check counts against us, so this is a floor.

Part 2: the per-item cost of the default ``"auto"`` ticker chain (``fail_when`` -> ``circuit_break`` ->
``merge_unify`` -> ``validate`` -> ``cache_replay``, coalesced writes) against a bare ``Subject ->
callback``, 200,000 tickers of 20 markets per pass, best of 5, in memory. The budget in the issue is
~1.5 us per item on top of decode.

Run: ``python benchmarks/bench_get_ticker.py [--seconds 30]`` (about 80 s with the default, which runs
the default configuration for 30 s and the two others for 15 s each); writes the ``get_ticker`` section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import reactivex
from reactivex.subject import Subject

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # the benchmarks folder is not a package

import rxmarket
from rxmarket import ops
from rxmarket.errors import TransportError
from rxmarket.market import MarketConfig, MarketData
from rxmarket.models import Ticker
from rxmarket.operators._cache_replay import cache_replay, open_cache
from rxmarket.pipelines import Pipeline, fail_when, ticker_pipeline, ticker_version
from rxmarket.sim import UpbitSimulator

MARKETS = 50
RATE = 20.0  # trades per second over all markets (the simulator's default)
POLLED = 5
PERIOD = 0.1  # seconds between rounds of get_ticker
CHECK_EVERY = 10  # rounds between checks against the exchange's current ticker

CHAIN_ITEMS = 200_000
CHAIN_MARKETS = 20
CHAIN_REPEATS = 5


class Run(msgspec.Struct, kw_only=True):
    name: str
    seconds: float
    calls: int
    hits: int
    misses: int
    by_source: dict[str, int]
    checked: int
    current: int
    hit_us: list[float]
    miss_us: list[float]
    rest_requests: int

    @property
    def hit_rate(self) -> float:
        return self.hits / max(self.hits + self.misses, 1)


async def truth(http: aiohttp.ClientSession, rest_url: str, codes: list[str]) -> dict[str, int]:
    """The exchange's last trade time per market, asked directly (not through rxmarket)."""
    async with http.get(f"{rest_url}/ticker", params={"markets": ",".join(codes)}) as response:
        body = await response.json()
    return {row["market"]: row["trade_timestamp"] for row in body}


async def poll(sim: UpbitSimulator, name: str, seconds: float, **settings: Any) -> Run:
    codes = sim.markets[:POLLED]
    hit_us: list[float] = []
    miss_us: list[float] = []
    sources: Counter[str] = Counter()
    checked = current = calls = checks = 0
    rest_before = sim.stats.rest_by_group.get("ticker", 0)
    async with aiohttp.ClientSession() as http, rxmarket.upbit(
        rest_url=sim.rest_url, ws_url=sim.ws_url, **settings
    ) as market:

        async def one(code: str) -> Ticker:
            started = time.perf_counter()
            ticker = await market.get_ticker(code)
            elapsed = (time.perf_counter() - started) * 1e6
            (hit_us if ticker.source == "cache" else miss_us).append(elapsed)
            return ticker

        loop = asyncio.get_running_loop()
        start = loop.time()
        next_round = start
        rounds = 0
        while loop.time() - start < seconds:
            answers = await asyncio.gather(*(one(code) for code in codes))
            calls += len(answers)
            sources.update(t.source for t in answers)
            if rounds % CHECK_EVERY == 0:
                exchange = await truth(http, sim.rest_url, codes)
                checks += 1
                for ticker in answers:
                    checked += 1
                    current += ticker.trade_timestamp == exchange[ticker.symbol]
            rounds += 1
            next_round += PERIOD
            await asyncio.sleep(max(0.0, next_round - loop.time()))
        elapsed = loop.time() - start
        stats = market.stats()
    return Run(
        name=name,
        seconds=elapsed,
        calls=calls,
        hits=stats.cache_hits,
        misses=stats.cache_misses,
        by_source=dict(sources),
        checked=checked,
        current=current,
        hit_us=hit_us,
        miss_us=miss_us,
        # The simulator counts our checks' requests too: only rxmarket's own are reported.
        rest_requests=sim.stats.rest_by_group.get("ticker", 0) - rest_before - checks,
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def part1(seconds: float) -> list[Run]:
    runs: list[Run] = []
    async with UpbitSimulator(markets=MARKETS, seed=7, rate=RATE) as sim:
        plans: list[tuple[str, float, dict[str, Any]]] = [
            ("default (keep_warm=60, cache_ttl=1, live_ttl=30)", seconds, {}),
            ("no live rule (live_ttl=0)", seconds / 2, {"live_ttl": 0.0}),
            ("TTL only (keep_warm=None)", seconds / 2, {"keep_warm": None}),
        ]
        for name, length, settings in plans:
            run = await poll(sim, name, length, **settings)
            print(
                f"{name}: {run.calls} calls in {run.seconds:.1f}s, hit rate {run.hit_rate:.2%} "
                f"({run.hits}/{run.hits + run.misses}), sources {run.by_source}, "
                f"current {run.current}/{run.checked}, REST ticker requests {run.rest_requests}, "
                f"hit p50 {pct(run.hit_us, 0.5):.0f} us, miss p50 {pct(run.miss_us, 0.5):.0f} us"
            )
            runs.append(run)
    return runs


# -- part 2: the chain's cost per item ----------------------------------------------------------------------


def chain_items() -> list[Ticker]:
    base = dict(
        open=100.0, high=110.0, low=90.0, prev_close=99.0, change="RISE", change_price=1.0,
        change_rate=1.0 / 99.0, volume_24h=10.0, value_24h=1000.0,
    )
    return [
        Ticker(symbol=f"KRW-C{i % CHAIN_MARKETS:02d}", price=100.0, timestamp=1_700_000_000_000 + i,
               acc_trade_volume=float(i), trade_timestamp=1_700_000_000_000 + i, **base)  # type: ignore[arg-type]
        for i in range(CHAIN_ITEMS)
    ]


def best_ns(items: list[Ticker], build: Callable[[Subject[Ticker]], reactivex.Observable[Any]]) -> float:
    best = float("inf")
    for _ in range(CHAIN_REPEATS):
        subject: Subject[Ticker] = Subject()
        count = [0]

        def on_next(_item: Any, count: list[int] = count) -> None:
            count[0] += 1

        subscription = build(subject).subscribe(on_next)
        push = subject.on_next
        gc.collect()
        gc.disable()
        started = time.perf_counter()
        for item in items:
            push(item)
        elapsed = time.perf_counter() - started
        gc.enable()
        subscription.dispose()
        assert count[0] == len(items), count[0]
        best = min(best, elapsed)
    return best / len(items) * 1e9


class FacadeOnSubject(MarketData):
    """A ``MarketData`` whose ticker chains read a ``Subject`` instead of Upbit: the facade's own path
    (``market.ticker(...)``: the shared feed, its latest-value map and fan-out) around the default chain."""

    def __init__(self, subject: Subject[Ticker]) -> None:
        super().__init__(MarketConfig(rest_url="http://127.0.0.1:9/v1", ws_url="ws://127.0.0.1:9/ws"))
        self._subject = subject

    def _build(self, feed: Any) -> Pipeline[Any]:
        never: reactivex.Observable[Any] = reactivex.never()
        return ticker_pipeline(self._subject, never, down=never, cache=self._cache_op("ticker", feed.codes))


async def part2() -> dict[str, float]:
    items = chain_items()
    never: reactivex.Observable[Any] = reactivex.never()
    markets: list[MarketData] = []

    def facade(subject: Subject[Ticker]) -> reactivex.Observable[Any]:
        market = FacadeOnSubject(subject)
        markets.append(market)
        return market.ticker([f"KRW-C{i:02d}" for i in range(CHAIN_MARKETS)])

    with tempfile.TemporaryDirectory() as directory:
        db = open_cache(directory)
        try:
            rows = {
                "bare (Subject -> callback)": best_ns(items, lambda s: s),
                "websocket chain, no cache (merge_unify -> validate)": best_ns(
                    items, lambda s: ticker_pipeline(s, None)
                ),
                "auto chain, no cache": best_ns(items, lambda s: ticker_pipeline(s, never, down=never)),
                "auto chain + cache_replay (default)": best_ns(
                    items,
                    lambda s: ticker_pipeline(
                        s, never, down=never,
                        cache=cache_replay(db, key=attrgetter("symbol"), namespace="rxmarket:ticker:",
                                           ttl=1.0, keys=("KRW-NONE",)),
                    ),
                ),
                "market.ticker(...): the default chain + the facade's shared feed": best_ns(items, facade),
                # The stages on their own, to see where the chain's cost goes:
                "stage: fail_when + circuit_break (closed)": best_ns(
                    items,
                    lambda s: s.pipe(fail_when(never, TransportError), ops.circuit_break(fallback=never)),
                ),
                "stage: merge_unify (ticker_version)": best_ns(
                    items, lambda s: s.pipe(ops.merge_unify(key=attrgetter("symbol"), version=ticker_version))
                ),
                "stage: validate (monotonic=False)": best_ns(
                    items, lambda s: s.pipe(ops.validate(monotonic=False))
                ),
                "stage: cache_replay (coalesced)": best_ns(
                    items,
                    lambda s: s.pipe(cache_replay(db, key=attrgetter("symbol"), namespace="rxmarket:ticker:",
                                                  ttl=1.0, keys=("KRW-NONE",))),
                ),
            }
        finally:
            db.close()
            for market in markets:
                await market.close()
    for name, ns in rows.items():
        print(f"{name}: {ns:.0f} ns/item")
    return rows


def report(runs: list[Run], chain: dict[str, float], seconds: float) -> str:
    default = runs[0]
    verdict = "PASS" if default.hit_rate >= 0.95 else "FAIL"
    lines = [
        "## get_ticker: cache hits at 100 ms polling (`bench_get_ticker.py`)",
        "",
        f"Simulator on 127.0.0.1: {MARKETS} markets moving by themselves at {RATE:g} trades/s in all (each "
        f"market changes every ~{MARKETS / RATE:.1f} s on average). Every {PERIOD * 1000:.0f} ms, "
        f"`get_ticker` for each of {POLLED} markets (concurrently). Ran {seconds:g} s for the default "
        f"configuration and {seconds / 2:g} s for each of the two others, in one run (shorter than the "
        "issue's minute: the measure is the same ratio, and the first call per market, the only forced "
        "miss, weighs more in a shorter run, not less). \"Current\" = on one round in ten, the answer's "
        "last trade is the exchange's last trade, asked directly right after (a floor: a trade in between "
        "counts against us).",
        "",
        "| configuration | calls | hit rate | answers (cache / rest / websocket) | current | "
        "REST /ticker requests | p50 hit | p50 miss |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        src = run.by_source
        lines.append(
            f"| {run.name} | {run.calls:,} | **{run.hit_rate:.2%}** | {src.get('cache', 0)} / "
            f"{src.get('rest', 0)} / {src.get('websocket', 0)} | {run.current}/{run.checked} "
            f"({run.current / max(run.checked, 1):.0%}) | {run.rest_requests} | "
            f"{pct(run.hit_us, 0.5):.0f} us | {pct(run.miss_us, 0.5):.0f} us |"
        )
    ttl_only = runs[2]
    lines += [
        "",
        f"Target: >= 95 % hits with the defaults: **{default.hit_rate:.2%} ({verdict})**. The default "
        f"answers {default.hit_rate / max(ttl_only.hit_rate, 1e-9):.2f}x as often from memory as TTL-only "
        f"caching, with {default.rest_requests} REST request(s) against {ttl_only.rest_requests} in half the "
        "time (the REST column counts rxmarket's requests only, not the checks). How: an asked market is "
        "streamed for `keep_warm` seconds, and "
        "while its WebSocket is healthy (link live, stream not stale, circuit closed) its newest ticker *is* "
        "the current one, since Upbit pushes a ticker on every trade; it is served from memory for up to "
        "`live_ttl` seconds. Without that rule (`live_ttl=0`) a quiet market's value ages past `cache_ttl` "
        "between trades and is fetched again.",
        "",
        "### The default chain's cost per item",
        "",
        f"{CHAIN_ITEMS:,} tickers of {CHAIN_MARKETS} markets per pass through a `Subject`, best of "
        f"{CHAIN_REPEATS}, in memory (the `auto` chain with its breaker closed; `cache_replay` with the "
        "default coalesced writes: the flush, once per second for at most one value per market, is not in "
        "the loop).",
        "",
        "| path | ns / item | added ns / item | throughput vs bare |",
        "|---|---:|---:|---:|",
    ]
    bare = chain["bare (Subject -> callback)"]
    for name, ns in chain.items():
        added = "" if ns == bare else f"+{ns - bare:.0f}"
        lines.append(f"| {name} | {ns:.0f} | {added} | {bare / ns:.2f}x |")
    full = chain["auto chain + cache_replay (default)"] - bare
    whole = chain["market.ticker(...): the default chain + the facade's shared feed"] - bare

    def stage(name: str) -> str:
        return f"{(chain['stage: ' + name] - bare) / 1000:.2f} us"

    lines += [
        "",
        f"The full default chain adds **{full:.0f} ns** per item against the issue's budget of ~1,500 ns "
        f"on top of decode ({full / 1500:.0%} of it). Where it goes (the `stage:` rows, each alone): "
        f"`merge_unify` {stage('merge_unify (ticker_version)')}, `validate` "
        f"{stage('validate (monotonic=False)')}, `cache_replay` {stage('cache_replay (coalesced)')}, "
        f"`fail_when` + `circuit_break` {stage('fail_when + circuit_break (closed)')}. Through "
        "`market.ticker(...)` "
        f"(the facade's shared feed: latest value per market for late subscribers and `get_ticker`, "
        f"fan-out with per-subscriber error isolation) it is {whole:.0f} ns.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the default run (s)")
    args = parser.parse_args()
    runs = asyncio.run(part1(args.seconds))
    chain = asyncio.run(part2())
    body = report(runs, chain, args.seconds)
    print()
    print(body)
    write_section("get_ticker", body)


if __name__ == "__main__":
    main()

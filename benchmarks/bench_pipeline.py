"""Decode + the default pipeline to a callback, against a raw msgspec typed decode of the same frames.

Run: ``python benchmarks/bench_pipeline.py`` (about a minute). Writes the ``pipeline`` section of
docs/benchmarks.md. The figure of DESIGN.md: decode + default pipeline to a callback >= 0.5x raw typed decode
(in memory, mixed Upbit frames).

Setup. The 300 mixed DEFAULT frames of ``tests/data/upbit/ws_stream_default.jsonl`` (tickers, trades and
15-level books of 20 KRW markets), repeated 200 times with every timestamp shifted past the previous copy,
every trade given a new ``sequential_id`` and every ticker more day volume, so that each frame is a new
item that takes the whole path (none is dropped as a repeat). Frames are bytes in memory; nothing touches a
socket.

Cases (each the best of several interleaved rounds, GC paused while timing, as ``timeit`` does):

* **raw**: ``msgspec.json.Decoder(DTicker | DTrade | DOrderbook).decode``, Structs mirroring the frames
  (the baseline, from ``bench_decode.py``);
* **decode**: ``protocol.decode_ws`` and a dispatch on the model's type to a callback;
* **decode + pipeline**: the same, each kind pushed into the chain ``MarketData`` builds for it: tickers and
  books through the ``"auto"`` chain (``fail_when`` -> ``circuit_break`` with a REST fallback ->
  ``merge_unify`` -> ``validate``), trades through ``dedupe`` -> ``validate``; then a counting callback;
* **... + cache**: as above with the facade's write-through ``cache_replay`` (coalesced, 1 s) on tickers
  and books, into a diskcache in a new temporary directory per round.

Runs inside an asyncio loop so that the operators find the loop's scheduler, as they do under
``MarketData``; the coalesced cache writes happen between rounds.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # the benchmarks folder is not a package
from bench_decode import DOrderbook, DTicker, DTrade

from rxmarket import ops
from rxmarket.exchanges.upbit import protocol
from rxmarket.models import Orderbook, Ticker, Trade
from rxmarket.pipelines import orderbook_pipeline, ticker_pipeline, trade_pipeline

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "upbit"
COPIES = 200
ROUNDS = 7
TARGET = 0.5


class Feed(Observable[Any]):
    """A source whose observer the benchmark calls directly: no Subject or scheduler in the timing."""

    def __init__(self) -> None:
        super().__init__()
        self.push: Callable[[Any], None] = lambda _item: None

    def _subscribe_core(
        self, observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        self.push = observer.on_next
        return Disposable()


def frames() -> list[bytes]:
    """COPIES shifted copies of the captured mixed stream, each frame a new item."""
    base = [json.loads(line) for line in (DATA / "ws_stream_default.jsonl").read_bytes().splitlines() if line]
    stamps = [f["timestamp"] for f in base]
    span = max(stamps) - min(stamps) + 1_000
    out: list[bytes] = []
    for copy in range(COPIES):
        for frame in base:
            shifted = dict(frame)
            shifted["timestamp"] += copy * span
            if "trade_timestamp" in shifted:
                shifted["trade_timestamp"] += copy * span
            if shifted["type"] == "trade":
                shifted["sequential_id"] += copy * 10_000_000
            if shifted["type"] == "ticker":
                shifted["acc_trade_volume"] += copy
            out.append(msgspec.json.encode(shifted))
    return out


def timed(fn: Callable[[bytes], object], data: list[bytes]) -> float:
    start = time.perf_counter()
    for frame in data:
        fn(frame)
    return time.perf_counter() - start


class Chain:
    """Decode, dispatch by type, and (optionally) the default chains; counts what reaches the end."""

    def __init__(self, pipelines: bool, cache_dir: str | None) -> None:
        self.delivered = 0
        self.subscriptions: list[abc.DisposableBase] = []
        feeds = {Ticker: Feed(), Orderbook: Feed(), Trade: Feed()}
        if not pipelines:
            sink = self._count
            self.route: dict[type, Callable[[Any], None]] = dict.fromkeys(feeds, sink)
            return
        never: Observable[Any] = reactivex.never()
        caches: dict[type, Any] = {}
        if cache_dir is not None:
            db = ops.open_cache(cache_dir)
            for kind, name in ((Ticker, "ticker"), (Orderbook, "orderbook")):
                caches[kind] = ops.cache_replay(
                    db, key=attrgetter("symbol"), ttl=5.0, namespace=f"rxmarket:{name}:", flush_interval=1.0
                )
        chains = {
            Ticker: ticker_pipeline(feeds[Ticker], never, down=never, cache=caches.get(Ticker)),
            Orderbook: orderbook_pipeline(feeds[Orderbook], never, down=never, cache=caches.get(Orderbook)),
            Trade: trade_pipeline(feeds[Trade]),
        }
        for chain in chains.values():
            self.subscriptions.append(chain.subscribe(self._count))
        self.route = {kind: feed.push for kind, feed in feeds.items()}

    def _count(self, _item: Any) -> None:
        self.delivered += 1

    def __call__(self, frame: bytes) -> None:
        item = protocol.decode_ws(frame)
        self.route[type(item)](item)

    def close(self) -> None:
        for subscription in self.subscriptions:
            subscription.dispose()


async def main() -> None:
    data = frames()
    raw = msgspec.json.Decoder(DTicker | DTrade | DOrderbook).decode
    with tempfile.TemporaryDirectory() as tmp:
        cases: dict[str, Callable[[], Callable[[bytes], object]]] = {
            "raw typed decode (baseline)": lambda: raw,
            "decode_ws + dispatch": lambda: Chain(False, None),
            "decode_ws + default pipeline": lambda: Chain(True, None),
            "decode_ws + default pipeline + cache": lambda: Chain(True, tempfile.mkdtemp(dir=tmp)),
        }
        best = dict.fromkeys(cases, float("inf"))
        delivered: dict[str, int] = {}
        for _ in range(ROUNDS):
            for name, make in cases.items():
                fn = make()  # a fresh chain per round: every frame is new to it
                gc.collect()
                gc.disable()
                try:
                    best[name] = min(best[name], timed(fn, data))
                finally:
                    gc.enable()
                if isinstance(fn, Chain):
                    delivered[name] = fn.delivered
                    fn.close()
                await asyncio.sleep(0)  # let coalesced cache writes and disposals run
    n = len(data)
    base = n / best["raw typed decode (baseline)"]
    lines = [
        "## Decode + default pipeline (in memory, mixed Upbit frames)",
        "",
        f"{n:,} DEFAULT frames ({COPIES} shifted copies of `ws_stream_default.jsonl`: tickers, trades, "
        "15-level books of 20 markets), every one a new item; best of "
        f"{ROUNDS} interleaved rounds. Target (DESIGN.md): decode + default pipeline >= {TARGET}x raw typed "
        "decode.",
        "",
        "| case | msgs/s | us/msg | vs raw decode | items delivered |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds in best.items():
        rate = n / seconds
        got = delivered.get(name)
        lines.append(
            f"| {name} | {rate:,.0f} | {seconds / n * 1e6:.2f} | {rate / base:.2f}x | "
            f"{'-' if got is None else f'{got:,}'} |"
        )
    pipeline_ratio = (n / best["decode_ws + default pipeline"]) / base
    cache_ratio = (n / best["decode_ws + default pipeline + cache"]) / base
    lines += [
        "",
        f"- decode + default pipeline: **{pipeline_ratio:.2f}x** raw typed decode "
        f"({'met' if pipeline_ratio >= TARGET else 'NOT met'}: target >= {TARGET}x)",
        f"- with the facade's write-through disk cache: **{cache_ratio:.2f}x**",
    ]
    off = {k: v for k, v in delivered.items() if v != n}
    if off:
        lines.append(f"- cases that did not deliver exactly one item per frame: {off}")
    text = "\n".join(lines)
    print(text)
    write_section("pipeline", text)


if __name__ == "__main__":
    asyncio.run(main())

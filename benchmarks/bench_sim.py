"""Simulator throughput: frames per second a minimal raw aiohttp client receives from the simulator.

The client is as thin as a client can be: ``aiohttp`` WebSocket, one subscribe frame for 200 markets x 3
channels (ticker, trade, orderbook; DEFAULT format), then ``ws.receive()`` in a loop counting binary frames
(no JSON decode). The figure to hold (issue 3): **bench mode >= 200k frames/s**, so that the simulator is
never the bottleneck of a client benchmark.

Rows:

* bench mode, server in this process: client and server share one core's event loop;
* bench mode, server in a subprocess (``rxmarket sim --bench``): the client has the loop to itself;
* the same two with ticker + trade only (smaller frames: the orderbook frame with 30 levels is ~2 KB);
* normal mode (frames encoded per event and queued per connection, what tests use), in this process:
  ``step()`` bursts, for reference.

Each row is the best of ``REPEATS`` runs of ``FRAMES`` frames; the ratio column is against the 200k target
and, for subprocess rows, against the in-process row of the same run.

Run: ``python benchmarks/bench_sim.py`` (under a minute); writes the ``sim`` section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # the benchmarks folder is not a package

from rxmarket.sim import BenchConfig, UpbitSimulator

MARKETS = 200
FRAMES = 400_000
NORMAL_TRADES = 20_000  # x3 frames
REPEATS = 3
TARGET = 200_000
POOL = 5_000
ALL_TYPES = ("ticker", "trade", "orderbook")
SMALL_TYPES = ("ticker", "trade")


def subscribe_frame(codes: list[str], types: tuple[str, ...]) -> str:
    objects = [{"type": t, "codes": codes} for t in types]
    return json.dumps([{"ticket": "bench"}, *objects, {"format": "DEFAULT"}])


async def receive_frames(
    ws_url: str, codes: list[str], types: tuple[str, ...], frames: int
) -> tuple[float, int]:
    """Subscribe, then time ``frames`` binary frames from the first one; (seconds, bytes)."""
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        await ws.send_str(subscribe_frame(codes, types))
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        size = len(msg.data)
        start = time.perf_counter()
        binary = aiohttp.WSMsgType.BINARY
        for _ in range(frames - 1):
            msg = await ws.receive()
            if msg.type is not binary:
                raise RuntimeError(f"unexpected {msg.type} after {size} bytes")
            size += len(msg.data)
        return time.perf_counter() - start, size


async def in_process(types: tuple[str, ...]) -> tuple[float, float]:
    """Best frames/s and MB/s with the bench-mode server on this loop."""
    best = (0.0, 0.0)
    for _ in range(REPEATS):
        bench = BenchConfig(frames=FRAMES, pool=POOL)
        async with UpbitSimulator(markets=MARKETS, rate=0, bench=bench) as sim:
            seconds, size = await receive_frames(sim.ws_url, sim.markets, types, FRAMES)
        rate = (FRAMES - 1) / seconds
        if rate > best[0]:
            best = (rate, size / seconds / 1e6)
    return best


async def subprocess_server(types: tuple[str, ...]) -> tuple[float, float]:
    """Best frames/s and MB/s with ``rxmarket sim --bench`` in its own process."""
    env = dict(os.environ)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rxmarket.cli", "sim", "--bench", "--bench-frames", str(FRAMES), "--port", "0",
        "--markets", str(MARKETS), stdout=asyncio.subprocess.PIPE, env=env,
    )
    assert proc.stdout is not None
    try:
        ws_url = ""
        while not ws_url:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError("simulator subprocess exited")
            if line.startswith("WebSocket"):
                ws_url = line.split()[1]
        codes = [m["market"] for m in await markets(ws_url)]
        best = (0.0, 0.0)
        for _ in range(REPEATS):
            seconds, size = await receive_frames(ws_url, codes, types, FRAMES)
            rate = (FRAMES - 1) / seconds
            if rate > best[0]:
                best = (rate, size / seconds / 1e6)
        return best
    finally:
        proc.terminate()
        await proc.wait()


async def markets(ws_url: str) -> Any:
    rest = ws_url.replace("ws://", "http://").replace("/websocket/v1", "/v1")
    async with aiohttp.ClientSession() as http, http.get(f"{rest}/market/all") as response:
        return await response.json()


async def normal_mode() -> tuple[float, float]:
    """Best frames/s and MB/s in normal mode: step() bursts, encoded and queued per event."""
    best = (0.0, 0.0)
    frames = NORMAL_TRADES * 3
    for _ in range(REPEATS):
        sim = UpbitSimulator(markets=MARKETS, rate=0)
        async with sim, aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
            types = [{"type": t, "codes": sim.markets, "is_only_realtime": True} for t in ALL_TYPES]
            await ws.send_str(json.dumps([{"ticket": "bench"}, *types]))
            await sim.wait_subscribed(sim.markets, "orderbook")
            start = time.perf_counter()
            size = 0
            for _ in range(NORMAL_TRADES // 1000):
                sim.step(1000)
                for _ in range(3000):
                    size += len((await ws.receive()).data)
            seconds = time.perf_counter() - start
        rate = frames / seconds
        if rate > best[0]:
            best = (rate, size / seconds / 1e6)
    return best


async def main() -> None:
    rows: list[tuple[str, float, float, str]] = []
    t0 = time.perf_counter()
    local_all = await in_process(ALL_TYPES)
    rows.append(
        ("bench mode, in process, ticker+trade+orderbook", *local_all, f"{local_all[0] / TARGET:.2f}x")
    )
    remote_all = await subprocess_server(ALL_TYPES)
    rows.append((
        "bench mode, server subprocess, ticker+trade+orderbook", *remote_all,
        f"{remote_all[0] / TARGET:.2f}x (in-process x{remote_all[0] / local_all[0]:.2f})",
    ))
    local_small = await in_process(SMALL_TYPES)
    rows.append(("bench mode, in process, ticker+trade", *local_small, f"{local_small[0] / TARGET:.2f}x"))
    remote_small = await subprocess_server(SMALL_TYPES)
    rows.append((
        "bench mode, server subprocess, ticker+trade", *remote_small,
        f"{remote_small[0] / TARGET:.2f}x (in-process x{remote_small[0] / local_small[0]:.2f})",
    ))
    normal = await normal_mode()
    rows.append(("normal mode (step bursts), in process, 3 channels", *normal, f"{normal[0] / TARGET:.2f}x"))
    elapsed = time.perf_counter() - t0

    for name, rate, mbps, ratio in rows:
        print(f"{name:<55} {rate:>12,.0f} frames/s {mbps:>8.1f} MB/s  {ratio}")
    print(f"({elapsed:.0f} s)")

    best_bench = max(r[1] for r in rows[:4])
    verdict = "met" if best_bench >= TARGET else "NOT met"
    lines = [
        "## Simulator (bench mode)",
        "",
        f"A minimal raw aiohttp client (`ws.receive()` loop, no decoding) subscribed to {MARKETS} markets x "
        "the listed channels, DEFAULT format; best of "
        f"{REPEATS} runs of {FRAMES:,} frames (normal mode: {NORMAL_TRADES * 3:,} frames). Ratio: against "
        f"the {TARGET:,} frames/s target (and subprocess vs in-process server).",
        "",
        "| setup | frames/s | MB/s | ratio |",
        "|---|---:|---:|---|",
        *(f"| {name} | {rate:,.0f} | {mbps:.1f} | {ratio} |" for name, rate, mbps, ratio in rows),
        "",
        f"Target >= {TARGET:,} frames/s in bench mode: **{verdict}** (best bench row {best_bench:,.0f}). "
        "In bench mode the server writes pre-built WebSocket frames in 256 KiB chunks, so its cost per frame "
        "is near zero and the figures are the client's receive speed; moving the server to its own process "
        "does not raise them on this machine (see the in-process ratio), so the server is not the bottleneck "
        "either way. Timing starts at the first frame: the pool is generated when the simulator starts, and "
        "a connection's chunks (about 0.1 s for 200 markets x 3 channels) when it subscribes. Normal mode "
        "encodes each event once per format and sends each frame through the per-connection writer (the "
        "path tests and the demo use); it is not meant for throughput.",
    ]
    write_section("sim", "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())

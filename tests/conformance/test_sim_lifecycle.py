"""Starting and stopping the simulator, waiting on it, its own market pace, and bench mode."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import aiohttp
import pytest

from rxmarket.sim import BenchConfig, SimConfigError, UpbitSimulator

from ._helpers import fast_options, get_json, receive, receive_json, receive_many, subscribe

Http = aiohttp.ClientSession


def open_fds() -> set[str]:
    """This process's open file descriptors (empty where /proc is missing)."""
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


async def test_close_leaves_no_task_socket_or_port_behind() -> None:
    """Closing with clients attached: clients see 1001, no task is left, the port can be bound again."""
    before = asyncio.all_tasks()
    fds = open_fds()
    sim = UpbitSimulator(markets=3, rate=50, options=fast_options())
    await sim.start()
    port = sim.port
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(sim.ws_url)
        await subscribe(ws, {"type": "trade", "codes": sim.markets})
        await receive_json(ws)
        await ws.send_str("PING")
        await get_json(http, f"{sim.rest_url}/market/all")
        closing = asyncio.create_task(sim.close())
        while (await receive(ws)).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            pass
        await closing
        assert ws.close_code == 1001
    assert asyncio.all_tasks() == before
    if fds:
        assert open_fds() <= fds, "a socket or file was left open"
    with socket.create_server(("127.0.0.1", port)) as again:
        assert again.getsockname()[1] == port


async def test_a_new_simulator_can_take_the_same_port() -> None:
    """After close, a new simulator listens on the very port the old one had."""
    async with UpbitSimulator(markets=1, rate=0) as first:
        port = first.port
    async with UpbitSimulator(markets=1, rate=0, port=port) as second, aiohttp.ClientSession() as http:
        status, body, _ = await get_json(http, f"{second.rest_url}/market/all")
    assert second.port == port
    assert (status, body[0]["market"]) == (200, "KRW-BTC")


async def test_urls_follow_the_bound_port() -> None:
    """rest_url/ws_url/control_url use 127.0.0.1 and the port actually bound."""
    async with UpbitSimulator(markets=1, rate=0) as sim:
        assert sim.port > 0
        assert sim.rest_url == f"http://127.0.0.1:{sim.port}/v1"
        assert sim.ws_url == f"ws://127.0.0.1:{sim.port}/websocket/v1"
        assert sim.control_url == f"http://127.0.0.1:{sim.port}/_sim"


async def test_close_twice_and_step_when_stopped() -> None:
    """close() is idempotent; step() on a stopped simulator raises RuntimeError."""
    sim = UpbitSimulator(markets=1, rate=0)
    with pytest.raises(RuntimeError):
        sim.step()
    await sim.start()
    await sim.close()
    await sim.close()
    assert not sim.running


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_only_loopback_hosts(host: str) -> None:
    """A non-loopback host is refused at construction."""
    with pytest.raises(SimConfigError, match="loopback"):
        UpbitSimulator(host=host)


@pytest.mark.parametrize("kwargs", [{"markets": 0}, {"port": 70000}, {"rate": -1}, {"quote_markets": 9}])
def test_bad_arguments_are_refused(kwargs: dict[str, int]) -> None:
    """Out-of-range arguments raise SimConfigError (a ValueError)."""
    with pytest.raises(SimConfigError):
        UpbitSimulator(**kwargs)  # type: ignore[arg-type]


async def test_wait_helpers_give_up_after_wait_timeout(sim: UpbitSimulator) -> None:
    """A condition that never comes true raises TimeoutError after wait_timeout."""
    sim.wait_timeout = 0.05
    with pytest.raises(TimeoutError):
        await sim.wait_connections(1)


async def test_wait_accepted_counts_reconnects(sim: UpbitSimulator, http: Http) -> None:
    """wait_accepted(total) wakes once a reconnect has been accepted after a drop."""
    async with http.ws_connect(sim.ws_url) as ws:
        await sim.wait_accepted(1)
        sim.faults.disconnect()
        await receive(ws)
    async with http.ws_connect(sim.ws_url):
        await sim.wait_accepted(2)
        await sim.wait_connections(1)
    assert sim.stats.connections_total == 2


async def test_wait_requests_counts_rest_calls(sim: UpbitSimulator, http: Http) -> None:
    """wait_requests sees REST calls per group."""
    await get_json(http, f"{sim.rest_url}/orderbook?markets=KRW-BTC")
    await sim.wait_requests(1, group="orderbook")
    assert sim.stats.rest_by_group == {"orderbook": 1}
    assert sim.stats.rest_by_status == {200: 1}


async def test_drain_waits_for_frames_to_be_written(sim: UpbitSimulator, http: Http) -> None:
    """After step() and drain(), frames_sent counts every frame of the step."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": True})
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        sim.step(25, "KRW-BTC")
        await sim.drain()
        assert sim.stats.frames_sent == 25
        assert sim.stats.open[0].frames_sent == 25


async def test_drain_returns_when_a_held_connection_is_dropped(sim: UpbitSimulator, http: Http) -> None:
    """drain() over a connection whose frames are held (latency) returns normally when the socket drops."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": True})
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        sim.faults.latency(30)
        sim.step(1, "KRW-BTC")
        await sim.wait_for(lambda: sim.stats.frames_delayed == 1)
        draining = asyncio.create_task(sim.drain())
        for _ in range(5):  # a few loop turns (not a wait for time): drain() queues its marker
            await asyncio.sleep(0)
        assert not draining.done()
        assert sim.faults.disconnect() == 1
        async with asyncio.timeout(5):  # a deadline: the drop must end the wait, not this
            await draining
        assert draining.result() is None  # returned, not cancelled
        await sim.wait_connections(0)


async def test_drain_returns_when_a_slow_connection_overflows() -> None:
    """A connection dropped for overflowing max_queue does not leave drain() waiting forever."""
    small = UpbitSimulator(markets=3, rate=0, options=fast_options(max_queue=4))
    async with small as sim, aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": True})
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        sim.faults.latency(30)
        sim.step(1, "KRW-BTC")
        await sim.wait_for(lambda: sim.stats.frames_delayed == 1)
        draining = asyncio.create_task(sim.drain())
        for _ in range(5):  # a few loop turns (not a wait for time): drain() queues its marker
            await asyncio.sleep(0)
        assert not draining.done()
        sim.step(10, "KRW-BTC")
        assert sim.stats.slow_drops == 1
        async with asyncio.timeout(5):  # a deadline: the drop must end the wait, not this
            await draining
        assert draining.result() is None  # returned, not cancelled


async def test_the_market_moves_by_itself_at_rate(http: Http) -> None:
    """With rate > 0 trades arrive without step()."""
    busy = UpbitSimulator(markets=3, rate=500, options=fast_options())
    async with busy as sim, http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": sim.markets, "is_only_realtime": True})
        frames = await receive_many(ws, 50)
        sim.set_rate(0)
    assert {f["stream_type"] for f in frames} == {"REALTIME"}
    assert sim.stats.trades >= 50


async def test_bench_mode_streams_the_frame_budget(http: Http) -> None:
    """Bench mode sends exactly `frames` pre-encoded frames of the subscribed codes and types."""
    bench = BenchConfig(frames=3000, pool=400)
    async with UpbitSimulator(markets=10, rate=0, bench=bench) as sim, http.ws_connect(sim.ws_url) as ws:
        await subscribe(
            ws, {"type": "trade", "codes": ["KRW-BTC", "KRW-ETH"]}, {"type": "ticker", "codes": ["KRW-ETH"]}
        )
        frames = [json.loads((await receive(ws)).data) for _ in range(3000)]
        await sim.wait_frames(3000)
        assert sim.stats.frames_sent == 3000
    assert {(f["type"], f["code"]) for f in frames} == {
        ("trade", "KRW-BTC"), ("trade", "KRW-ETH"), ("ticker", "KRW-ETH"),
    }


async def test_bench_mode_stops_after_its_seconds(http: Http) -> None:
    """BenchConfig(seconds=...) ends an endless stream after that long; the socket stays open."""
    bench = BenchConfig(frames=None, seconds=0.05, pool=100)
    async with UpbitSimulator(markets=2, rate=0, bench=bench) as sim, http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": sim.markets})
        await sim.wait_for(lambda: sim.stats.bench_streams_done == 1)
        sent = sim.stats.frames_sent
        assert not ws.closed
    assert sent > 0


async def test_bench_mode_honours_simple_and_depth(http: Http) -> None:
    """Bench frames use the connection's format and orderbook depth."""
    bench = BenchConfig(frames=100, pool=200)
    async with UpbitSimulator(markets=3, rate=0, bench=bench) as sim, http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "orderbook", "codes": ["KRW-BTC.5"]}, fmt="SIMPLE")
        frames = await receive_many(ws, 100)
    assert {f["ty"] for f in frames} == {"orderbook"}
    assert {len(f["obu"]) for f in frames} == {5}

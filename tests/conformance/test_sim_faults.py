"""Every fault, seen from the client side with plain clients; and the control endpoint."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import aiohttp
import msgspec
import pytest

from rxmarket.sim import UpbitSimulator

from ._helpers import fast_options, get_json, receive, receive_json, receive_many, subscribe

Sim = UpbitSimulator
Http = aiohttp.ClientSession
WS = aiohttp.ClientWebSocketResponse


class TradeShape(msgspec.Struct):
    """What a client's typed decode of a DEFAULT trade frame needs."""

    type: Literal["trade"]
    code: str
    trade_price: float
    sequential_id: int


async def trades_socket(sim: Sim, http: Http, *codes: str) -> WS:
    ws = await http.ws_connect(sim.ws_url)
    await subscribe(ws, {"type": "trade", "codes": list(codes), "is_only_realtime": True})
    await sim.wait_subscribed(codes, "trade")
    return ws


async def test_disconnect_drops_sockets_without_close_frame(sim: Sim, http: Http) -> None:
    """disconnect(): every client sees its socket die with 1006 (no close frame)."""
    async with http.ws_connect(sim.ws_url) as a, http.ws_connect(sim.ws_url) as b:
        await sim.wait_connections(2)
        assert sim.faults.disconnect() == 2
        msgs = [await receive(a), await receive(b)]
        assert all(m.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR) for m in msgs)
        assert (a.close_code, b.close_code) == (1006, 1006)
    await sim.wait_connections(0)
    assert sim.stats.disconnects == 2


async def test_silence_keeps_the_socket_open_and_sends_nothing(sim: Sim, http: Http) -> None:
    """silence(s): no data, no UP, no pong while it lasts, the socket stays open; then traffic resumes."""
    ws = await trades_socket(sim, http, "KRW-BTC")
    async with ws:
        sim.faults.silence(30)
        sim.step(3, "KRW-BTC")
        await ws.send_str("PING")
        await ws.ping()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await ws.receive()
        assert not ws.closed
        sim.faults.clear()
        (made,) = sim.step(1, "KRW-BTC")
        frame = await receive_json(ws)
    assert frame["sequential_id"] == made.sequential_id
    assert sim.stats.frames_dropped >= 3
    assert sim.stats.pongs == 0


async def test_refuse_answers_503_then_recovers(sim: Sim, http: Http) -> None:
    """refuse(s): WebSocket upgrades and REST get 503 while it lasts; afterwards both work again."""
    sim.faults.refuse(30)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(sim.ws_url)
    status, _, _ = await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-BTC")
    assert info.value.status == 503
    assert status == 503
    sim.faults.clear()
    async with http.ws_connect(sim.ws_url) as ws:
        assert not ws.closed
    assert sim.stats.connections_rejected == 1


async def test_hard_refuse_closes_the_listening_socket(sim: Sim) -> None:
    """refuse(s, hard=True): TCP connects are refused outright, and accepted again when it ends."""
    sim.faults.refuse(30, hard=True)
    await sim.wait_for(lambda: sim._site is None)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(sim.host, sim.port)
    sim.faults.clear()
    await sim.wait_for(lambda: sim._site is not None)
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    writer.write(b"GET /v1/market/all HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 200")


async def test_rate_limit_gives_429_everywhere(sim: Sim, http: Http) -> None:
    """rate_limit(s): REST 429 with an error body, upgrade 429, and an error frame on an open socket."""
    async with http.ws_connect(sim.ws_url) as ws:
        sim.faults.rate_limit(5)
        status, body, headers = await get_json(http, f"{sim.rest_url}/orderbook?markets=KRW-BTC")
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(sim.ws_url)
        await subscribe(ws, {"type": "ticker", "codes": ["KRW-BTC"]})
        frame = await receive_json(ws)
    assert status == 429
    assert body["error"]["name"] == "too_many_requests"
    assert headers["Remaining-Req"].endswith("sec=0")
    assert info.value.status == 429
    assert frame["error"]["name"] == "TOO_MANY_REQUESTS"


async def test_server_error_answers_the_chosen_5xx(sim: Sim, http: Http) -> None:
    """server_error(s, status): REST and upgrades get that status."""
    sim.faults.server_error(5, status=502)
    status, _, _ = await get_json(http, f"{sim.rest_url}/market/all")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(sim.ws_url)
    assert status == 502
    assert info.value.status == 502


async def test_ban_answers_418_with_its_length(sim: Sim, http: Http) -> None:
    """ban(s): every REST call gets 418 whose body states the block length."""
    sim.faults.ban(30)
    status, body, _ = await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-BTC")
    assert status == 418
    assert "30 seconds" in body["error"]["message"]


async def test_corrupt_frames_fail_a_typed_decode(sim: Sim, http: Http) -> None:
    """corrupt(n): the next n data frames fail a client's typed decode (five kinds); the next one is fine."""
    decoder = msgspec.json.Decoder(TradeShape)
    ws = await trades_socket(sim, http, "KRW-BTC")
    async with ws:
        sim.faults.corrupt(5)
        sim.step(6, "KRW-BTC")
        frames = [(await receive(ws)).data for _ in range(6)]
    for bad in frames[:5]:
        with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
            decoder.decode(bad)
    assert decoder.decode(frames[5]).code == "KRW-BTC"
    assert sim.stats.frames_corrupted == 5


async def test_duplicate_sends_a_frame_twice(sim: Sim, http: Http) -> None:
    """duplicate(1): the next trade arrives twice with the same sequential_id."""
    ws = await trades_socket(sim, http, "KRW-BTC")
    async with ws:
        sim.faults.duplicate(1)
        made = sim.step(2, "KRW-BTC")
        ids = [f["sequential_id"] for f in await receive_many(ws, 3)]
    assert ids == [made[0].sequential_id, made[0].sequential_id, made[1].sequential_id]


async def test_reorder_swaps_frames(sim: Sim, http: Http) -> None:
    """reorder(1): the next trade is held back and arrives after the one that follows it."""
    ws = await trades_socket(sim, http, "KRW-BTC")
    async with ws:
        sim.faults.reorder(1)
        made = sim.step(3, "KRW-BTC")
        ids = [f["sequential_id"] for f in await receive_many(ws, 3)]
    assert ids == [made[1].sequential_id, made[0].sequential_id, made[2].sequential_id]


async def test_stale_stamps_frames_in_the_past(sim: Sim, http: Http) -> None:
    """stale(1, age): the next event's timestamps lag by age; later ones are current again."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "ticker", "codes": ["KRW-BTC"], "is_only_realtime": True})
        await sim.wait_subscribed(["KRW-BTC"], "ticker")
        sim.faults.stale(1, age=3600)
        sim.step(2, "KRW-BTC")
        old, new = await receive_many(ws, 2)
    assert new["timestamp"] - old["timestamp"] >= 3_600_000 - 1_000
    assert new["trade_timestamp"] - old["trade_timestamp"] >= 3_600_000 - 1_000


async def test_crossed_book_sends_bids_above_asks(sim: Sim, http: Http) -> None:
    """crossed_book(1): the next book has best bid > best ask; the one after is sane again."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "orderbook", "codes": ["KRW-BTC"], "is_only_realtime": True})
        await sim.wait_subscribed(["KRW-BTC"], "orderbook")
        sim.faults.crossed_book(1)
        sim.step(2, "KRW-BTC")
        crossed, sane = await receive_many(ws, 2)
    top, next_top = crossed["orderbook_units"][0], sane["orderbook_units"][0]
    assert top["bid_price"] > top["ask_price"]
    assert next_top["bid_price"] < next_top["ask_price"]


async def test_latency_delays_rest_and_frames(sim: Sim, http: Http) -> None:
    """latency(s): REST cannot answer within a deadline shorter than s; frames are held; 0 turns it off."""
    ws = await trades_socket(sim, http, "KRW-BTC")
    async with ws:
        sim.faults.latency(30)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await get_json(http, f"{sim.rest_url}/market/all")
        sim.step(1, "KRW-BTC")
        await sim.wait_for(lambda: sim.stats.frames_delayed == 1)
        sim.faults.latency(0)
        status, _, _ = await get_json(http, f"{sim.rest_url}/market/all")
    assert status == 200
    assert "latency" not in sim.faults.active


async def test_control_endpoint_injects_and_clears_faults(sim: Sim, http: Http) -> None:
    """POST /_sim/faults/<name> switches a fault on from another process; DELETE clears them all."""
    async with http.post(f"{sim.control_url}/faults/silence", json={"seconds": 30}) as response:
        on = await response.json()
    assert response.status == 200
    assert on["faults"]["active"] == ["silence"]
    assert sim.faults.silenced
    async with http.post(f"{sim.control_url}/faults/corrupt", json={"n": 2}) as response:
        assert (await response.json())["faults"]["remaining"] == {"corrupt": 2}
    async with http.delete(f"{sim.control_url}/faults") as response:
        cleared = await response.json()
    assert cleared["faults"]["active"] == []
    assert sim.faults.active == frozenset()


async def test_control_endpoint_disconnect_returns_the_count(sim: Sim, http: Http) -> None:
    """POST /_sim/faults/disconnect drops sockets and says how many."""
    async with http.ws_connect(sim.ws_url) as ws:
        await sim.wait_connections(1)
        async with http.post(f"{sim.control_url}/faults/disconnect") as response:
            body = await response.json()
        await receive(ws)
    assert body["result"] == 1


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("faults/nope", {}),
        ("faults/silence", {"seconds": -1}),
        ("faults/corrupt", {"m": 1}),
        ("step", {"n": 0}),
    ],
)
async def test_control_endpoint_rejects_bad_calls(
    sim: Sim, http: Http, path: str, payload: dict[str, int]
) -> None:
    """Unknown faults and bad arguments answer 400 and change nothing."""
    async with http.post(f"{sim.control_url}/{path}", data=json.dumps(payload)) as response:
        body = await response.json()
    assert response.status == 400
    assert body["error"]["name"] == 400
    assert sim.faults.active == frozenset()


async def test_control_endpoint_steps_and_reports(sim: Sim, http: Http) -> None:
    """POST /_sim/step makes trades; GET /_sim/stats and /_sim report them."""
    async with http.post(f"{sim.control_url}/step", json={"n": 4, "market": "KRW-ETH"}) as response:
        assert (await response.json())["trades"] == 4
    _, stats, _ = await get_json(http, f"{sim.control_url}/stats")
    _, info, _ = await get_json(http, sim.control_url)
    assert stats["trades"] == 4
    assert info["ws_url"] == sim.ws_url
    assert info["markets"][:2] == ["KRW-BTC", "KRW-ETH"]


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("silence", (0.05,)),
        ("refuse", (0.05,)),
        ("rate_limit", (0.05,)),
        ("server_error", (0.05,)),
        ("ban", (0.05,)),
        ("latency", (1.0, 0.05)),
    ],
)
async def test_timed_faults_end_by_themselves(sim: Sim, name: str, args: tuple[float, ...]) -> None:
    """A timed fault switches itself off after its seconds, and wait_fault_over wakes on it."""
    getattr(sim.faults, name)(*args)
    assert name in sim.faults.active
    await sim.wait_fault_over(name)
    assert sim.faults.active == frozenset()


async def test_hard_refuse_reopens_when_its_time_is_up(sim: Sim, http: Http) -> None:
    """refuse(s, hard=True) reopens the listening socket by itself when s have passed."""
    sim.faults.refuse(0.05, hard=True)
    await sim.wait_fault_over("refuse")
    await sim.wait_for(lambda: sim._site is not None)
    status, _, _ = await get_json(http, f"{sim.rest_url}/market/all")
    assert status == 200


def test_faults_validate_their_arguments() -> None:
    """Bad fault arguments raise a clear error before anything changes."""
    quiet = UpbitSimulator(markets=1, rate=0, options=fast_options())
    with pytest.raises(ValueError, match="seconds"):
        quiet.faults.silence(0)
    with pytest.raises(ValueError, match="positive integer"):
        quiet.faults.corrupt(0)
    with pytest.raises(ValueError, match="5xx"):
        quiet.faults.server_error(1, status=404)
    assert quiet.faults.active == frozenset()

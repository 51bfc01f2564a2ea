"""The simulator's WebSocket API against Upbit's captured frames and documented behaviour.

Clients are plain ``aiohttp`` (and ``websockets`` where a second, independent client library matters);
frames are decoded with ``json`` in the test.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import websockets

from rxmarket.sim import UpbitSimulator

from ._helpers import fast_options, fixture, fixture_lines, receive, receive_json, receive_many, subscribe

Sim = UpbitSimulator
Http = aiohttp.ClientSession
WS = aiohttp.ClientWebSocketResponse

LEGACY_TICKER = {"trade_status", "market_state_for_ios", "ts", "msfi"}
BEST = ["bap", "bas", "bbp", "bbs"]
SIMPLE_CANDLE = ["ty", "cd", "cdttmu", "cdttmk", "op", "hp", "lp", "tp", "catv", "catp", "tms", "st"]


def keys(obj: dict[str, Any]) -> list[str]:
    return list(obj.keys())


async def snapshot_of(sim: Sim, http: Http, kind: str, code: str = "KRW-BTC", fmt: str | None = None) -> Any:
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": kind, "codes": [code]}, fmt=fmt)
        return await receive_json(ws)


@pytest.mark.parametrize(
    ("kind", "fmt", "capture"),
    [
        ("ticker", None, "ws_ticker_default.json"),
        ("ticker", "SIMPLE", "ws_ticker_simple_2021.json"),
        ("trade", "DEFAULT", "ws_trade_default_2026.json"),
        ("orderbook", None, "ws_orderbook_default_2026.jsonl"),
        ("orderbook", "SIMPLE", "ws_orderbook_simple_2026.json"),
        ("candle.1m", None, "ws_candle_default_2026.jsonl"),
    ],
)
async def test_frames_have_the_captured_keys_in_order(
    sim: Sim, http: Http, kind: str, fmt: str | None, capture: str
) -> None:
    """Each frame kind has exactly the keys of its current-era capture, in the capture's order.

    Ticker captures predate the removal of trade_status/market_state_for_ios (ts/msfi), which current
    servers no longer send.
    """
    want = fixture_lines(capture)[0] if capture.endswith(".jsonl") else fixture(capture)
    frame = await snapshot_of(sim, http, kind, fmt=fmt)
    assert keys(frame) == [k for k in keys(want) if k not in LEGACY_TICKER]
    units = "orderbook_units" if "orderbook_units" in want else "obu"
    if units in want:
        assert all(keys(u) == keys(want[units][0]) for u in frame[units])


async def test_simple_trade_has_the_2020_keys_plus_best_prices(sim: Sim, http: Http) -> None:
    """A SIMPLE trade frame has the 2020 capture's short keys plus bap/bas/bbp/bbs (added 2023)."""
    frame = await snapshot_of(sim, http, "trade", fmt="SIMPLE")
    assert set(frame) == set(fixture("ws_trade_simple_2020.json")) | set(BEST)


async def test_simple_candle_uses_the_documented_short_keys(sim: Sim, http: Http) -> None:
    """A SIMPLE candle frame uses the short keys of the protocol notes, in DEFAULT order."""
    frame = await snapshot_of(sim, http, "candle.1m", fmt="SIMPLE")
    assert keys(frame) == SIMPLE_CANDLE


async def test_every_frame_is_binary(sim: Sim, http: Http) -> None:
    """Data, status and error frames are all binary WebSocket frames (opcode 2)."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "ticker", "codes": ["KRW-BTC"]})
        await ws.send_str("PING")
        await ws.send_str("nope")
        kinds = [(await receive(ws)).type for _ in range(3)]
    assert kinds == [aiohttp.WSMsgType.BINARY] * 3


async def test_snapshot_then_realtime(sim: Sim, http: Http) -> None:
    """The first frame per code is SNAPSHOT, then each trade brings REALTIME frames."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": ["KRW-BTC", "KRW-ETH"]})
        first = await receive_many(ws, 2)
        await sim.wait_subscribed(["KRW-BTC", "KRW-ETH"], "trade")
        made = sim.step(3, "KRW-ETH")
        later = await receive_many(ws, 3)
    assert sorted(f["code"] for f in first) == ["KRW-BTC", "KRW-ETH"]
    assert [f["stream_type"] for f in first] == ["SNAPSHOT"] * 2
    assert [f["stream_type"] for f in later] == ["REALTIME"] * 3
    assert [f["sequential_id"] for f in later] == [t.sequential_id for t in made]


async def test_only_snapshot_sends_nothing_after_the_snapshot(sim: Sim, http: Http) -> None:
    """is_only_snapshot: the ticker snapshot arrives, later trades bring no ticker frames."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(
            ws,
            {"type": "ticker", "codes": ["KRW-BTC"], "is_only_snapshot": True},
            {"type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": True},
        )
        snap = await receive_json(ws)
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        sim.step(2, "KRW-BTC")
        after = await receive_many(ws, 2)
    assert (snap["type"], snap["stream_type"]) == ("ticker", "SNAPSHOT")
    assert [(f["type"], f["stream_type"]) for f in after] == [("trade", "REALTIME")] * 2


async def test_only_realtime_skips_the_snapshot(sim: Sim, http: Http) -> None:
    """is_only_realtime: the first frame is a REALTIME one."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "orderbook", "codes": ["KRW-XRP"], "is_only_realtime": True})
        await sim.wait_subscribed(["KRW-XRP"], "orderbook")
        sim.step(1, "KRW-XRP")
        frame = await receive_json(ws)
    assert frame["stream_type"] == "REALTIME"


async def test_camel_case_flags_are_accepted(sim: Sim, http: Http) -> None:
    """Older clients' isOnlyRealtime works like is_only_realtime."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": ["KRW-XRP"], "isOnlyRealtime": True})
        await sim.wait_subscribed(["KRW-XRP"], "trade")
        sim.step(1, "KRW-XRP")
        frame = await receive_json(ws)
    assert frame["stream_type"] == "REALTIME"


@pytest.mark.parametrize(
    ("code", "units"),
    [("KRW-BTC.5", 5), ("KRW-BTC.1", 1), ("KRW-BTC.15", 15), ("KRW-BTC.7", 30), ("KRW-BTC", 30)],
)
async def test_orderbook_unit_count_suffix(sim: Sim, http: Http, code: str, units: int) -> None:
    """KRW-BTC.{n} picks 1, 5, 15 or 30 units (anything else: 30); frames carry the bare code."""
    frame = await snapshot_of(sim, http, "orderbook", code=code)
    assert frame["code"] == "KRW-BTC"
    assert len(frame["orderbook_units"]) == units


async def test_orderbook_level_groups_and_skips_non_krw(sim: Sim, http: Http) -> None:
    """level groups a KRW book on multiples of it; on a BTC- market nothing is sent for that code."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(
            ws,
            {"type": "orderbook", "codes": ["BTC-ETH"], "level": 10000},
            {"type": "orderbook", "codes": ["KRW-BTC.5"], "level": 100000},
        )
        frame = await receive_json(ws)
    assert frame["code"] == "KRW-BTC"
    assert frame["level"] == 100000
    units = frame["orderbook_units"]
    assert all(u["ask_price"] % 100000 == 0 and u["bid_price"] % 100000 == 0 for u in units)
    assert units[0]["bid_price"] < units[0]["ask_price"]


async def test_new_request_replaces_the_subscription(sim: Sim, http: Http) -> None:
    """A second request on the same socket replaces the first set: old codes stop, new ones start."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": ["KRW-BTC"]})
        await receive_json(ws)
        await subscribe(ws, {"type": "trade", "codes": ["KRW-ETH"]})
        snap = await receive_json(ws)
        await sim.wait_subscribed(["KRW-ETH"], "trade")
        assert sim.stats.open[0].subscriptions == {"trade": ("KRW-ETH",)}
        sim.step(1, "KRW-BTC")
        (eth,) = sim.step(1, "KRW-ETH")
        frame = await receive_json(ws)
    assert snap["code"] == "KRW-ETH"
    assert frame["sequential_id"] == eth.sequential_id


async def test_unknown_and_lower_case_codes_are_ignored(sim: Sim, http: Http) -> None:
    """Unknown and lower-case codes are dropped silently; the valid ones are served, the socket stays open."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "ticker", "codes": ["KRW-NOPE", "krw-btc", "KRW-ETH"]})
        frame = await receive_json(ws)
        await sim.wait_subscribed(["KRW-ETH"], "ticker")
        assert sim.stats.open[0].subscriptions == {"ticker": ("KRW-ETH",)}
        assert not ws.closed
    assert frame["code"] == "KRW-ETH"


async def test_many_codes_in_one_request(http: Http) -> None:
    """One request with every code of 60 markets gets a snapshot for each."""
    big = UpbitSimulator(markets=60, rate=0, options=fast_options())
    async with big, http.ws_connect(big.ws_url) as ws:
        await subscribe(ws, {"type": "ticker", "codes": big.markets})
        frames = await receive_many(ws, 60)
    assert sorted(f["code"] for f in frames) == sorted(big.markets)


async def test_text_ping_gets_status_up_repeatedly(http: Http) -> None:
    """Text PING is answered by {"status":"UP"} (the captured frame), repeated every status_interval."""
    quick = UpbitSimulator(markets=2, rate=0, options=fast_options(status_interval=0.05))
    async with quick, http.ws_connect(quick.ws_url) as ws:
        await ws.send_str("PING")
        frames = await receive_many(ws, 2)
    assert frames == [fixture("ws_status_up.json")] * 2


async def test_status_frames_wake_the_simulators_waiters(http: Http) -> None:
    """Each {"status":"UP"} keep-alive tick moves status_frames and wakes sim.wait_for, like other frames."""
    quick = UpbitSimulator(markets=2, rate=0, options=fast_options(status_interval=0.05))
    async with quick, http.ws_connect(quick.ws_url) as ws:
        await ws.send_str("PING")
        async with asyncio.timeout(5):  # the fault: waiting forever, as the market itself is quiet (rate=0)
            await quick.wait_for(lambda: quick.stats.status_frames >= 3)
        frames = await receive_many(ws, 3)
    assert frames == [fixture("ws_status_up.json")] * 3


async def test_protocol_ping_gets_a_pong(sim: Sim) -> None:
    """An RFC 6455 ping from a websockets client is answered with a pong."""
    async with websockets.connect(sim.ws_url) as ws:
        waiter = await ws.ping(b"hello")
        async with asyncio.timeout(5):
            latency = await waiter
    assert latency >= 0
    assert sim.stats.pings == 1
    assert sim.stats.pongs == 1


async def test_idle_socket_is_dropped_without_close_frame(http: Http) -> None:
    """A socket with no traffic for idle_timeout is dropped without a close frame (the client sees 1006)."""
    async with UpbitSimulator(markets=2, rate=0, options=fast_options(idle_timeout=0.2)) as quick:
        async with http.ws_connect(quick.ws_url, autoping=False) as ws:
            msg = await receive(ws)
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            assert ws.close_code == 1006
        await quick.wait_connections(0)
        assert quick.stats.idle_closes == 1


async def test_traffic_keeps_an_idle_socket_alive(http: Http) -> None:
    """Data frames reset the idle clock: a socket that keeps streaming outlives the idle timeout."""
    busy = UpbitSimulator(markets=2, rate=800, options=fast_options(idle_timeout=0.5))
    async with busy, http.ws_connect(busy.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": busy.markets})
        frames = await receive_many(ws, 600)
        assert not ws.closed
    assert len(frames) == 600
    assert busy.stats.idle_closes == 0


@pytest.mark.parametrize(
    ("request_text", "name"),
    [
        ("hello", "WRONG_FORMAT"),
        ('{"ticket": "x"}', "WRONG_FORMAT"),
        ('[{"type": "ticker", "codes": ["KRW-BTC"]}]', "NO_TICKET"),
        ('[{"ticket": "x"}, {"codes": ["KRW-BTC"]}]', "NO_TYPE"),
        ('[{"ticket": "x"}, {"type": "ticker"}]', "NO_CODES"),
        ('[{"ticket": "x"}, {"type": "nope", "codes": ["KRW-BTC"]}]', "INVALID_PARAM"),
        ('[{"ticket": "x"}, {"type": "ticker", "codes": []}]', "INVALID_PARAM"),
        ('[{"ticket": "x"}, {"type": "ticker", "codes": ["KRW-BTC"]}, {"format": "XML"}]', "INVALID_PARAM"),
    ],
)
async def test_bad_requests_get_an_error_frame_then_close_1000(
    sim: Sim, http: Http, request_text: str, name: str
) -> None:
    """A bad request gets {"error": {"name", "message"}} with Upbit's code, then a 1000 close."""
    async with http.ws_connect(sim.ws_url) as ws:
        await ws.send_str(request_text)
        frame = await receive_json(ws)
        closing = await receive(ws)
    assert set(frame) == {"error"}
    assert set(frame["error"]) == {"name", "message"}
    assert frame["error"]["name"] == name
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1000


def test_error_names_are_those_of_the_captures() -> None:
    """The codes the simulator uses include every code seen in the captured error frames but auth."""
    captured = {f["error"]["name"] for f in fixture_lines("ws_errors.jsonl")}
    ours = {"WRONG_FORMAT", "NO_TICKET", "NO_TYPE", "NO_CODES", "INVALID_PARAM"}
    assert captured - {"INVALID_AUTH"} <= ours


async def test_list_subscriptions_matches_the_docs_example(sim: Sim, http: Http) -> None:
    """LIST_SUBSCRIPTIONS answers with the documented keys and the connection's current set."""
    want = fixture("ws_list_subscriptions_default.json")
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(
            ws, {"type": "ticker", "codes": ["KRW-BTC", "KRW-ETH"], "is_only_realtime": True},
            {"type": "orderbook", "codes": ["KRW-BTC", "KRW-ETH"], "is_only_realtime": True},
        )
        await ws.send_str(json.dumps([{"ticket": "unique uuid"}, {"method": "LIST_SUBSCRIPTIONS"}]))
        answer = await receive_json(ws)
    assert keys(answer) == keys(want)
    assert answer == want


async def test_list_subscriptions_format_changes_the_live_format(sim: Sim, http: Http) -> None:
    """A LIST_SUBSCRIPTIONS in SIMPLE answers in SIMPLE and switches the live streams to SIMPLE."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(ws, {"type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": True})
        ask = [{"ticket": "t"}, {"method": "LIST_SUBSCRIPTIONS"}, {"format": "SIMPLE"}]
        await ws.send_str(json.dumps(ask))
        answer = await receive_json(ws)
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        sim.step(1, "KRW-BTC")
        frame = await receive_json(ws)
    want = {"mthd": "LIST_SUBSCRIPTIONS", "rslt": [{"ty": "trade", "cds": ["KRW-BTC"]}], "tckt": "t"}
    assert answer == want
    assert frame["ty"] == "trade"


@pytest.mark.parametrize(("fmt", "type_key"), [("JSON_LIST", "type"), ("SIMPLE_LIST", "ty")])
async def test_list_formats_wrap_each_frame_in_an_array(
    sim: Sim, http: Http, fmt: str, type_key: str
) -> None:
    """JSON_LIST / SIMPLE_LIST frames are JSON arrays of one object each."""
    frame = await snapshot_of(sim, http, "ticker", fmt=fmt)
    assert isinstance(frame, list)
    assert frame[0][type_key] == "ticker"


async def test_upgrade_reply_carries_remaining_req(sim: Sim, http: Http) -> None:
    """The 101 reply carries Remaining-Req for group websocket, as observed."""
    async with http.ws_connect(sim.ws_url) as ws:
        header = ws._response.headers["Remaining-Req"]
    assert header.startswith("group=websocket; min=300; sec=")


@pytest.mark.parametrize("request_frame", fixture_lines("client/ws_subscribe_requests.jsonl"), ids=str)
async def test_documented_client_requests_are_accepted(
    sim: Sim, http: Http, request_frame: list[Any]
) -> None:
    """Every subscribe/list frame from Upbit's docs is accepted: no error frame, the socket stays open."""
    async with http.ws_connect(sim.ws_url) as ws:
        await ws.send_str(json.dumps(request_frame))
        await ws.send_str(json.dumps([{"ticket": "probe"}, {"method": "LIST_SUBSCRIPTIONS"}]))
        while True:
            frame = await receive_json(ws)
            assert "error" not in frame
            if isinstance(frame, dict) and frame.get("method") == "LIST_SUBSCRIPTIONS":
                break
        assert not ws.closed


async def test_a_third_party_client_works_with_compression(sim: Sim) -> None:
    """The websockets library (permessage-deflate on by default) subscribes and reads binary frames."""
    async with websockets.connect(sim.ws_url) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        await ws.send(json.dumps([{"ticket": "w"}, {"type": "trade", "codes": ["KRW-BTC"]}]))
        async with asyncio.timeout(5):
            snap = await ws.recv()
        await sim.wait_subscribed(["KRW-BTC"], "trade")
        (made,) = sim.step(1, "KRW-BTC")
        async with asyncio.timeout(5):
            live = await ws.recv()
    assert "permessage-deflate" in extensions
    assert isinstance(snap, bytes)
    assert json.loads(snap)["stream_type"] == "SNAPSHOT"
    assert json.loads(live)["sequential_id"] == made.sequential_id


async def test_three_subscribers_share_one_socket_in_stats(sim: Sim, http: Http) -> None:
    """stats shows per connection what it is subscribed to (what client tests assert sharing with)."""
    async with http.ws_connect(sim.ws_url) as ws:
        await subscribe(
            ws, {"type": "ticker", "codes": ["KRW-BTC", "KRW-ETH"]}, {"type": "trade", "codes": ["KRW-BTC"]}
        )
        await sim.wait_subscribed(["KRW-BTC", "KRW-ETH"], "ticker")
        stats = sim.stats
    assert stats.connections == 1
    assert stats.open[0].subscriptions == {"ticker": ("KRW-BTC", "KRW-ETH"), "trade": ("KRW-BTC",)}
    assert stats.open[0].ticket == "conformance"

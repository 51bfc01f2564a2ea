"""Rate limits as Upbit enforces them: per-second REST groups, 429, growing 418 blocks, WebSocket limits."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from rxmarket.sim import SimLimits, UpbitSimulator
from rxmarket.sim._ratelimit import MessageLimiter, RestLimiter, Window

from ._helpers import fast_options, get_json, receive_json, subscribe

Http = aiohttp.ClientSession


def tight(**overrides: Any) -> UpbitSimulator:
    params: dict[str, Any] = {"rest_per_sec": 3, "ban_after": 3, "ban_durations": (30.0, 60.0), **overrides}
    limits = SimLimits(**params)
    return UpbitSimulator(markets=3, rate=0, limits=limits, options=fast_options())


async def test_remaining_req_counts_down_then_429(http: Http) -> None:
    """With 3 requests a second, sec goes 2, 1, 0 and the fourth request in the second gets 429."""
    async with tight() as sim:
        answers = [await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-BTC") for _ in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 429]
    assert [a[2]["Remaining-Req"] for a in answers] == [
        "group=ticker; min=600; sec=2",
        "group=ticker; min=600; sec=1",
        "group=ticker; min=600; sec=0",
        "group=ticker; min=600; sec=0",
    ]
    assert answers[3][1] == {"error": {"name": "too_many_requests", "message": "Too many API requests."}}


async def test_groups_are_counted_separately(http: Http) -> None:
    """Exhausting the ticker group leaves the orderbook group untouched."""
    async with tight() as sim:
        for _ in range(4):
            await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-BTC")
        status, _, headers = await get_json(http, f"{sim.rest_url}/orderbook?markets=KRW-BTC")
    assert status == 200
    assert headers["Remaining-Req"] == "group=orderbook; min=600; sec=2"


async def test_repeated_429s_earn_a_418_block(http: Http) -> None:
    """After ban_after 429s the client is blocked: 418 on every group, the body states the length."""
    async with tight() as sim:
        statuses = [(await get_json(http, f"{sim.rest_url}/ticker?markets=KRW-BTC"))[0] for _ in range(6)]
        status, body, _ = await get_json(http, f"{sim.rest_url}/market/all")
    assert statuses == [200, 200, 200, 429, 429, 418]
    assert status == 418
    assert body["error"]["message"] == "Too many API requests. Blocked for 30 seconds."


async def test_text_bodies_and_retry_after_are_configurable(http: Http) -> None:
    """limit_body="text" answers 429 in plain text; retry_after=True adds Retry-After."""
    async with tight(limit_body="text", retry_after=True) as sim:
        for _ in range(3):
            await get_json(http, f"{sim.rest_url}/market/all")
        async with http.get(f"{sim.rest_url}/market/all") as response:
            text = await response.text()
    assert response.status == 429
    assert text == "Too many API requests."
    assert response.headers["Retry-After"] == "1"


async def test_origin_requests_have_their_own_group(http: Http) -> None:
    """A request with an Origin header counts in group origin (1 per 10 s, min=6)."""
    async with tight(origin_per_window=1) as sim:
        headers = {"Origin": "https://example.com"}
        async with http.get(f"{sim.rest_url}/market/all", headers=headers) as first:
            pass
        async with http.get(f"{sim.rest_url}/market/all", headers=headers) as second:
            pass
    assert first.headers["Remaining-Req"] == "group=origin; min=6; sec=0"
    assert second.status == 429


async def test_websocket_connects_over_the_limit_get_429(http: Http) -> None:
    """ws_connect_per_sec=2: the third upgrade in a second is answered 429."""
    sim = tight(ws_connect_per_sec=2)
    async with sim, http.ws_connect(sim.ws_url), http.ws_connect(sim.ws_url):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(sim.ws_url)
    assert info.value.status == 429
    assert info.value.headers is not None
    assert info.value.headers["Remaining-Req"] == "group=websocket; min=300; sec=0"


async def test_websocket_messages_over_the_limit_get_an_error_frame(http: Http) -> None:
    """ws_messages_per_sec=2: the third request in a second gets an error frame; the socket stays open."""
    async with tight(ws_messages_per_sec=2) as sim, http.ws_connect(sim.ws_url) as ws:
        for _ in range(3):
            await subscribe(ws, {"type": "ticker", "codes": ["KRW-BTC"], "is_only_realtime": True})
        frame = await receive_json(ws)
        assert not ws.closed
    assert frame["error"]["name"] == "TOO_MANY_REQUESTS"


def test_window_slides() -> None:
    """A window allows `limit` events per span and frees a slot exactly when the oldest leaves it."""
    window = Window(2, 1.0)
    assert [window.hit(0.0), window.hit(0.5), window.hit(0.9)] == [True, True, False]
    assert window.remaining(1.0) == 1
    assert window.hit(1.0)


def test_blocks_grow_with_each_ban() -> None:
    """Each new block lasts the next of ban_durations; the last one repeats."""
    limiter = RestLimiter(SimLimits(rest_per_sec=1, ban_after=1, ban_durations=(10.0, 20.0)))
    lengths = []
    now = 0.0
    for _ in range(3):
        limiter.check("ip", "ticker", now)
        decision = limiter.check("ip", "ticker", now)
        assert decision.status == 418
        lengths.append(decision.ban_seconds)
        now += decision.ban_seconds + 1.0
    assert lengths == [10.0, 20.0, 20.0]
    assert limiter.check("ip", "ticker", now).status == 200


def test_failed_requests_do_not_count() -> None:
    """A 429 does not use up the window: once the second passes the full quota is back."""
    limiter = RestLimiter(SimLimits(rest_per_sec=2, ban_after=100))
    statuses = [limiter.check("ip", "market", 0.1 * i).status for i in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    # Had the 429s counted, the window at 1.15 s would still hold three of them.
    assert limiter.check("ip", "market", 1.15).header == "group=market; min=600; sec=1"


def test_message_limiter_has_second_and_minute_windows() -> None:
    """WebSocket messages are limited per second and per minute."""
    limiter = MessageLimiter(SimLimits(ws_messages_per_sec=5, ws_messages_per_min=7))
    first = [limiter.hit(0.0) for _ in range(6)]
    later = [limiter.hit(2.0) for _ in range(3)]
    assert first == [True] * 5 + [False]
    assert later == [True, True, False]


def test_upbit_limits_are_upbit_numbers() -> None:
    """SimLimits.upbit() carries Upbit's documented numbers."""
    limits = SimLimits.upbit()
    assert (limits.rest_per_sec, limits.ws_connect_per_sec, limits.ws_messages_per_sec) == (10, 5, 5)
    assert (limits.ws_messages_per_min, limits.origin_per_window, limits.origin_window) == (100, 1, 10.0)

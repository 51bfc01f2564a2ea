"""HTTP transport over real loopback sockets, against an in-test aiohttp server.

Pacing waits go through a fake ``sleep`` on a fake clock (recorded, returning at once), so the exact
waits can be asserted; the timeout test uses a short real timeout against a server that never answers.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from rxmarket.errors import (
    Banned,
    ConfigError,
    ExchangeRejected,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)
from rxmarket.policy.ratelimit import RateLimiter
from rxmarket.transport import HttpClient, status_error

if TYPE_CHECKING:
    from conftest import FakeTime, ScriptedHttpServer


def client_for(server: ScriptedHttpServer, fake_time: FakeTime, **options: Any) -> HttpClient:
    return HttpClient(server.url + "/v1", sleep=fake_time.sleep, clock=fake_time.clock, **options)


async def test_get_returns_status_headers_and_body(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """A 200 answer comes back whole; the path joins the base URL and the params form the query."""
    http_server.answer_always(
        body=b'[{"market":"KRW-BTC"}]', headers={"Remaining-Req": "group=ticker; sec=9"}
    )
    async with client_for(http_server, fake_time) as http:
        response = await http.get("/ticker", {"markets": "KRW-BTC,KRW-ETH", "count": 2}, group="ticker")
    assert response.status == 200
    assert json.loads(response.body) == [{"market": "KRW-BTC"}]
    assert response.headers["remaining-req"] == "group=ticker; sec=9"  # case-insensitive
    (request,) = http_server.requests
    assert request.path == "/v1/ticker"
    assert dict(request.query) == {"markets": "KRW-BTC,KRW-ETH", "count": "2"}


async def test_requests_are_paced_per_group(http_server: ScriptedHttpServer, fake_time: FakeTime) -> None:
    """Two requests per second per group (no margin): the 3rd and 5th wait exactly one second; another
    group does not."""
    async with client_for(http_server, fake_time, limiter=RateLimiter(default=(2, 1.0), margin=0.0)) as http:
        for _ in range(5):
            await http.get("/ticker", group="ticker")
        assert fake_time.sleeps == [1.0, 1.0]
        await http.get("/candles/days", group="candles")
        assert fake_time.sleeps == [1.0, 1.0]
    assert len(http_server.requests) == 6


async def test_remaining_count_from_headers_paces_the_next_request(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """A caller-given reader of the server's remaining count (0 left) makes the next request wait a full
    period plus the margin from the answer."""
    http_server.answer_always(headers={"X-Left": "0"})

    def remaining(headers: Mapping[str, str]) -> int | None:
        value = headers.get("X-Left")
        return int(value) if value is not None else None

    async with client_for(http_server, fake_time, remaining=remaining) as http:
        await http.get("/ticker", group="ticker")
        assert fake_time.sleeps == []
        await http.get("/ticker", group="ticker")
        assert fake_time.sleeps == [pytest.approx(1.05)]  # the server's window is full as of the answer


async def test_caller_error_mapper_decides_and_the_client_raises(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """The caller's mapper sees status, body and headers; the error it returns is raised."""
    http_server.answer_next(status=400, body=b'{"error":{"name":400,"message":"bad"}}')
    seen: list[tuple[int, bytes, str | None]] = []

    def mapper(status: int, body: bytes, headers: Mapping[str, str]) -> Exception | None:
        seen.append((status, body, headers.get("Content-Length")))
        return ExchangeRejected(400, "bad", status) if status == 400 else None

    async with client_for(http_server, fake_time, error_mapper=mapper) as http:
        with pytest.raises(ExchangeRejected) as info:
            await http.get("/ticker", {"markets": "nope"})
        assert info.value.status == 400
        assert (await http.get("/ticker")).status == 200
    assert [(status, body) for status, body, _ in seen] == [
        (400, b'{"error":{"name":400,"message":"bad"}}'),
        (200, b"[]"),
    ]


async def test_rate_limited_answer_holds_the_group_back(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """429 with Retry-After: 3 raises RateLimited(3.0); the group's next request waits 3 s, others don't."""
    http_server.answer_next(status=429, body=b"Too many API requests.", headers={"Retry-After": "3"})
    async with client_for(http_server, fake_time) as http:
        with pytest.raises(RateLimited) as info:
            await http.get("/ticker", group="ticker")
        assert info.value.retry_after == 3.0
        await http.get("/orderbook", group="orderbook")
        assert fake_time.sleeps == []
        await http.get("/ticker", group="ticker")
        assert fake_time.sleeps == [3.0]


async def test_banned_answer_holds_every_group_back(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """A mapper returning Banned (HTTP 418) holds back all groups for the ban's duration."""
    http_server.answer_next(status=418)

    def mapper(status: int, body: bytes, headers: Mapping[str, str]) -> Exception | None:
        return Banned(until=0.0, duration=60.0) if status == 418 else None

    async with client_for(http_server, fake_time, error_mapper=mapper) as http:
        with pytest.raises(Banned):
            await http.get("/ticker", group="ticker")
        await http.get("/candles/days", group="candles")
        assert fake_time.sleeps == [60.0]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(500, ServerError), (503, ServerError), (404, NotFound), (400, ExchangeRejected), (429, RateLimited)],
)
async def test_default_mapper_maps_statuses(
    http_server: ScriptedHttpServer, fake_time: FakeTime, status: int, error_type: type[Exception]
) -> None:
    """Without a caller mapper, generic HTTP semantics apply: 5xx, 404, other 4xx, 429."""
    http_server.answer_next(status=status, body=b"nope")
    async with client_for(http_server, fake_time) as http:
        with pytest.raises(error_type, match="nope"):
            await http.get("/ticker")


async def test_no_mapper_returns_every_answer(http_server: ScriptedHttpServer, fake_time: FakeTime) -> None:
    """error_mapper=None: a 500 is returned like any other answer."""
    http_server.answer_next(status=500, body=b"oops")
    async with client_for(http_server, fake_time, error_mapper=None) as http:
        response = await http.get("/ticker")
    assert (response.status, response.body) == (500, b"oops")


def test_status_error_is_none_for_success_and_reads_retry_after() -> None:
    """The default mapper: no error below 400; Retry-After read when numeric, else 1 s."""
    assert status_error(200, b"", {}) is None
    assert status_error(304, b"", {}) is None
    limited = status_error(429, b"", {"Retry-After": "2.5"})
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 2.5
    dated = status_error(429, b"", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert isinstance(dated, RateLimited)
    assert dated.retry_after == 1.0


async def test_read_timeout_is_a_transport_error(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """A server that never answers: after `timeout` seconds, TransportError."""
    http_server.answer_next(hang=True)
    async with client_for(http_server, fake_time, timeout=0.2) as http:
        with pytest.raises(TransportError, match="timeout"):
            await http.get("/ticker")


async def test_refused_connection_is_a_transport_error(fake_time: FakeTime) -> None:
    """Nothing listening: TransportError, with aiohttp's error as the cause."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with HttpClient(f"http://127.0.0.1:{port}", sleep=fake_time.sleep, clock=fake_time.clock) as http:
        with pytest.raises(TransportError) as info:
            await http.get("/ticker")
    assert info.value.__cause__ is not None


async def test_close_ends_the_session_and_later_requests_fail(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """After close(), get() raises TransportError; close() is idempotent and leaves no task behind."""
    before = asyncio.all_tasks()
    http = client_for(http_server, fake_time)
    await http.get("/ticker")
    await http.close()
    await http.close()
    with pytest.raises(TransportError, match="closed"):
        await http.get("/ticker")
    await http_server.stop()  # ends the server's own tasks: what is left would be the client's
    assert asyncio.all_tasks() - before == set()


async def test_absolute_urls_pass_through(http_server: ScriptedHttpServer, fake_time: FakeTime) -> None:
    """An absolute URL is requested as given, ignoring base_url."""
    async with HttpClient("http://unused.invalid", sleep=fake_time.sleep, clock=fake_time.clock) as http:
        response = await http.get(http_server.url + "/elsewhere")
    assert response.status == 200
    assert http_server.requests[0].path == "/elsewhere"


async def test_a_query_value_of_the_wrong_type_is_a_config_error(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """A bool query value (aiohttp accepts str, int, float) is the caller's error: ConfigError."""
    async with client_for(http_server, fake_time) as http:
        with pytest.raises(ConfigError, match="query parameters"):
            await http.get("/market/all", {"is_details": True})  # type: ignore[dict-item]
    assert http_server.requests == []


@pytest.mark.parametrize("options", [{"timeout": 0}, {"connect_timeout": -1.0}, {"timeout": True}])
def test_bad_timeouts_are_config_errors(options: dict[str, Any]) -> None:
    """Timeouts must be positive numbers."""
    with pytest.raises(ConfigError):
        HttpClient("http://127.0.0.1", **options)


async def test_close_during_a_paced_wait_fails_the_request_with_transport_error(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """A request still waiting for its slot when the client is closed fails with TransportError (not
    aiohttp's RuntimeError about a closed session) and never reaches the server."""

    async def sleep_then_close(delay: float) -> None:
        await http.close()  # the client is closed while this request waits for its slot

    http = HttpClient(
        http_server.url + "/v1",
        sleep=sleep_then_close,
        clock=fake_time.clock,
        limiter=RateLimiter(default=(1, 1.0), margin=0.0),
    )
    await http.get("/ticker")
    with pytest.raises(TransportError, match="closed"):
        await http.get("/ticker")
    assert len(http_server.requests) == 1


async def test_headers_and_timeout_apply_on_a_caller_session(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """With a session of the caller's, ``headers`` still go out with every request and ``timeout`` still
    bounds a request to a server that never answers."""
    http_server.answer_next()
    http_server.answer_next(hang=True)
    async with aiohttp.ClientSession() as session:
        http = client_for(http_server, fake_time, session=session, headers={"X-App": "rx"}, timeout=0.2)
        await http.get("/ticker")
        assert http_server.requests[0].headers.get("X-App") == "rx"
        with pytest.raises(TransportError, match="timeout"):
            await http.get("/ticker")
        await http.close()
        assert not session.closed  # the caller's session stays the caller's


async def test_a_caller_session_closed_by_its_owner_is_a_transport_error(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """When the caller closes its own session, later requests fail with TransportError (not aiohttp's
    RuntimeError) and reach no server."""
    async with aiohttp.ClientSession() as session:
        http = client_for(http_server, fake_time, session=session)
    with pytest.raises(TransportError, match="closed"):
        await http.get("/ticker")
    assert http_server.requests == []


async def test_closed_says_whether_requests_can_still_be_sent(
    http_server: ScriptedHttpServer, fake_time: FakeTime
) -> None:
    """``closed`` is False while usable, True after ``close()`` or once the caller closed its session."""
    own = client_for(http_server, fake_time)
    assert not own.closed
    await own.close()
    assert own.closed
    async with aiohttp.ClientSession() as session:
        borrowed = client_for(http_server, fake_time, session=session)
        assert not borrowed.closed
    assert borrowed.closed

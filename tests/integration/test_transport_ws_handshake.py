"""A refused WebSocket upgrade carries its HTTP status and headers, whichever library made the connection.

Every test runs once per implementation (``ws_client`` is parametrized over aiohttp and websockets). The
server here answers the upgrade with the status and headers a test chooses, on 127.0.0.1 port 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from rxmarket.errors import GaveUp, TransportError
from rxmarket.exchanges.upbit._source_conn import handshake_status
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.transport import ReconnectingWebSocket, WsClient

if TYPE_CHECKING:
    from conftest import FakeTime, Recorder


class RefusingServer:
    """Answers every WebSocket upgrade with ``status`` and ``headers`` (a body of ``text``)."""

    def __init__(self) -> None:
        self.status = 429
        self.headers: dict[str, str] = {}
        self.url = ""
        self.requests = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"ws://127.0.0.1:{self._runner.addresses[0][1]}/ws"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(status=self.status, headers=self.headers, text="Too many requests")


@pytest.fixture
async def refusing() -> AsyncIterator[RefusingServer]:
    server = RefusingServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("status", [429, 418, 503])
async def test_a_refused_upgrade_carries_its_status(
    refusing: RefusingServer, ws_client: WsClient, status: int
) -> None:
    """HTTP 429 / 418 / 503 on the upgrade: TransportError with that status, named in the message too."""
    refusing.status = status
    with pytest.raises(TransportError, match=str(status)) as info:
        await ws_client.connect(refusing.url, ping_interval=None)
    assert info.value.status == status
    assert info.value.__cause__ is not None  # the library's own error stays reachable


async def test_a_refused_upgrade_carries_its_headers(refusing: RefusingServer, ws_client: WsClient) -> None:
    """The answer's headers come along, looked up case-insensitively (Retry-After, Remaining-Req)."""
    refusing.headers = {"Retry-After": "7", "Remaining-Req": "group=websocket; min=300; sec=0"}
    with pytest.raises(TransportError) as info:
        await ws_client.connect(refusing.url, ping_interval=None)
    headers = info.value.headers
    assert headers["retry-after"] == "7"
    assert headers["REMAINING-REQ"] == "group=websocket; min=300; sec=0"


async def test_other_failures_carry_no_status(refused_url: str, ws_client: WsClient) -> None:
    """A refused TCP connection is no HTTP answer: status None, no headers."""
    with pytest.raises(TransportError) as info:
        await ws_client.connect(refused_url, ping_interval=None)
    assert info.value.status is None
    assert dict(info.value.headers) == {}


async def test_reconnect_events_carry_the_status_of_each_refusal(
    refusing: RefusingServer, ws_client: WsClient, ws_recorder: Recorder, fake_time: FakeTime
) -> None:
    """A ReconnectingWebSocket refused with 418 reports it on every backoff event and on the GaveUp."""
    refusing.status = 418
    steady = BackoffPolicy(initial=1.0, multiplier=1.0, max_delay=1.0, jitter=0.0)
    rws = ReconnectingWebSocket(
        refusing.url,
        client=ws_client,
        subscription_frame=lambda: "sub",
        on_frame=ws_recorder.on_frame,
        on_event=ws_recorder.on_event,
        ping_interval=None,
        backoff=steady,
        max_failures=3,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )
    rws.start()
    with pytest.raises(GaveUp) as info:
        await rws.wait_closed()
    assert [handshake_status(event.error) for event in ws_recorder.of_kind("backoff")] == [418, 418]
    assert isinstance(info.value.last_error, TransportError)
    assert info.value.last_error.status == 418
    assert refusing.requests == 3


def test_handshake_status_reads_the_transport_error() -> None:
    """The Upbit source's reader takes the status from TransportError.status; anything else has none."""
    assert handshake_status(TransportError("refused", status=429)) == 429
    assert handshake_status(TransportError("reset")) is None
    assert handshake_status(GaveUp(3, 10.0, None)) is None
    assert handshake_status(ValueError("429")) is None
    assert handshake_status(None) is None

"""Small real servers on 127.0.0.1 (port 0) for the transport tests, and a fake clock for the seams.

* :class:`ScriptedWsServer`: an aiohttp WebSocket endpoint. Every accepted connection is recorded as a
  :class:`Peer` (what the client sent, how the connection ended); what the server does with it is a
  *script* the test sets (send frames, go silent, drop the TCP connection...). It can also refuse the
  upgrade with an HTTP status.
* :class:`ScriptedHttpServer`: an aiohttp HTTP endpoint answering with the status, headers and body the
  test chooses, or never answering.
* :class:`FakeTime`: a clock and a ``sleep`` that records each delay and returns at once, advancing the
  clock: the seam to run backoff and pacing sequences without waiting on the wall clock.

Waiting is always on a condition (with a generous safety timeout that only fails a broken test), never a
sleep.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from rxmarket.transport import AiohttpWsClient, WebsocketsWsClient, WsClient, WsEvent

SAFETY_TIMEOUT = 10.0  # seconds; only reached when a test is broken


@dataclass
class Peer:
    """One WebSocket connection as the server saw it."""

    index: int
    request: web.Request
    ws: web.WebSocketResponse
    received: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None  # set when the connection ended; 1000 = the client closed cleanly
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    got_message: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_received(self, n: int) -> list[str | bytes]:
        """Wait until this connection has received ``n`` messages."""
        async with asyncio.timeout(SAFETY_TIMEOUT):
            while len(self.received) < n:
                self.got_message.clear()
                await self.got_message.wait()
        return self.received

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(data)

    def drop(self) -> None:
        """Close the TCP connection abruptly: no close frame, as a dying link does."""
        transport = self.request.transport
        assert transport is not None
        transport.abort()


Script = Callable[[Peer], Awaitable[None]]


async def stay_open(peer: Peer) -> None:
    """The default script: keep the connection open and send nothing."""
    await asyncio.Event().wait()


class ScriptedWsServer:
    """A WebSocket server whose behaviour per connection is a script chosen by the test."""

    def __init__(self) -> None:
        self.peers: list[Peer] = []
        self.script: Script = stay_open
        self.scripts: list[Script] = []  # consumed one per connection before falling back to `script`
        self.reject_status: int | None = None  # answer the upgrade with this HTTP status instead
        self.autoping = True  # False: never answer the client's pings
        self.url = ""
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/ws"

    async def stop(self) -> None:
        """Stop listening and end every server-side task. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds (re-checked whenever the server sees something)."""
        async with asyncio.timeout(SAFETY_TIMEOUT), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_peers(self, n: int) -> Peer:
        """Wait for the n-th connection (1-based) and return it."""
        await self.wait_for(lambda: len(self.peers) >= n)
        return self.peers[n - 1]

    async def wait_received(self, peer: Peer, n: int) -> list[str | bytes]:
        """Wait until ``peer`` has received ``n`` messages."""
        await self.wait_for(lambda: len(peer.received) >= n)
        return peer.received

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.reject_status is not None:
            return web.Response(status=self.reject_status, text="not now")
        ws = web.WebSocketResponse(autoping=self.autoping)
        await ws.prepare(request)
        peer = Peer(len(self.peers) + 1, request, ws)
        self.peers.append(peer)
        script = self.scripts.pop(0) if self.scripts else self.script
        await self._notify()
        acting = asyncio.ensure_future(script(peer))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    peer.received.append(msg.data)
                    peer.got_message.set()
                    await self._notify()
        finally:
            acting.cancel()
            await asyncio.gather(acting, return_exceptions=True)
            peer.close_code = ws.close_code
            peer.ended.set()
            await self._notify()
        return ws


@pytest.fixture
async def ws_server() -> AsyncIterator[ScriptedWsServer]:
    server = ScriptedWsServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(params=["aiohttp", "websockets"])
async def ws_client(request: pytest.FixtureRequest) -> AsyncIterator[WsClient]:
    """Each WebSocket implementation in turn: both must pass the same suite."""
    client: WsClient = AiohttpWsClient() if request.param == "aiohttp" else WebsocketsWsClient()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def refused_url() -> str:
    """A ws:// URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws"


@dataclass
class Answer:
    """What the HTTP server answers next."""

    status: int = 200
    body: bytes = b"[]"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (to test timeouts)


class ScriptedHttpServer:
    """An HTTP server answering every GET with the next scripted :class:`Answer`."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.default = Answer()
        self.requests: list[web.Request] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._never = asyncio.Event()

    def answer_next(self, **answer: Any) -> None:
        """Queue the answer to the next unanswered request (fields of :class:`Answer`)."""
        self.answers.append(Answer(**answer))

    def answer_always(self, **answer: Any) -> None:
        """The answer once the queue is empty (fields of :class:`Answer`)."""
        self.default = Answer(**answer)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        """Release hanging requests, stop listening and end every server-side task. Idempotent."""
        self._never.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else self.default
        if answer.hang:
            await self._never.wait()
            raise web.HTTPServiceUnavailable()  # the server is stopping; nobody waits for this any more
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


@pytest.fixture
async def http_server() -> AsyncIterator[ScriptedHttpServer]:
    server = ScriptedHttpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class FakeTime:
    """A clock plus a ``sleep`` that records each delay, advances the clock by it and returns at once."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


class Recorder:
    """Collects the frames and events of a ReconnectingWebSocket and lets a test wait on them."""

    def __init__(self) -> None:
        self.frames: list[str | bytes] = []
        self.events: list[WsEvent] = []
        self._changed = asyncio.Event()

    def on_frame(self, data: str | bytes) -> None:
        self.frames.append(data)
        self._changed.set()

    def on_event(self, event: WsEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    def of_kind(self, kind: str) -> list[WsEvent]:
        return [event for event in self.events if event.kind == kind]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds (re-checked on every frame and event)."""
        async with asyncio.timeout(SAFETY_TIMEOUT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def ws_recorder() -> Recorder:
    return Recorder()

"""Helpers of the simulator conformance suite: fixture files and a plain client.

The clients here are deliberately plain (``aiohttp`` and ``websockets`` with ``json`` decoding written in
the tests), never rxmarket's own client: the point is to check the simulator against Upbit's captured
shapes, independently of our decoder.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from rxmarket.sim import SimOptions

DATA = Path(__file__).resolve().parents[1] / "data" / "upbit"
#: A generous deadline for one frame over loopback: a deadline, not a sleep (no test waits it out).
FRAME_DEADLINE = 5.0


def fixture(name: str) -> Any:
    """One JSON fixture file."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def fixture_lines(name: str) -> list[Any]:
    """A JSON-lines fixture file."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def fast_options(**overrides: Any) -> SimOptions:
    """Options for tests: no candle pacing, quick error close, everything else as default."""
    base: dict[str, Any] = {"candle_interval": 0.0, "error_close_delay": 0.0}
    base.update(overrides)
    return SimOptions(**base)


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    """GET ``url``; status, decoded body (``None`` if not JSON) and headers."""
    async with http.get(url) as response:
        text = await response.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return response.status, body, response.headers


async def subscribe(
    ws: aiohttp.ClientWebSocketResponse, *types: dict[str, Any], fmt: str | None = None
) -> None:
    """Send ``[{"ticket"}, *types, {"format"}]`` as a text frame."""
    request: list[dict[str, Any]] = [{"ticket": "conformance"}, *types]
    if fmt is not None:
        request.append({"format": fmt})
    await ws.send_str(json.dumps(request))


async def receive(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """The next message (raises ``TimeoutError`` after :data:`FRAME_DEADLINE`)."""
    async with asyncio.timeout(FRAME_DEADLINE):
        return await ws.receive()


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    """The next frame, checked to be binary, decoded as JSON."""
    msg = await receive(ws)
    assert msg.type == aiohttp.WSMsgType.BINARY, f"expected a binary frame, got {msg.type}: {msg.data!r}"
    return json.loads(msg.data)


async def receive_many(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[Any]:
    """The next ``n`` frames, decoded."""
    return [await receive_json(ws) for _ in range(n)]

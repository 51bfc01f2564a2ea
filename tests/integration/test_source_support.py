"""Helpers shared by the Upbit source tests, and the checks of ``SourceConfig`` (no sockets).

The helpers live here (not in a conftest) because this directory's conftest is not ours to write; other
test modules import them as ``test_source_support`` (pytest puts this directory on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from _recorder import Recorder

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit.history import upbit_http_client
from rxmarket.exchanges.upbit.protocol import UpbitProtocolConfig
from rxmarket.exchanges.upbit.source import SourceConfig, UpbitSource
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.policy.ratelimit import RateLimiter
from rxmarket.sim import SimLimits, UpbitSimulator
from rxmarket.transport import AiohttpWsClient

REST_PER_SEC = 1000  # the simulator's REST limit in these tests, and our limiter's: they must agree


class CountingClient:
    """A ``WsClient`` (the source's ``ws_client`` seam) that counts received frames and lets a test await
    a count: the frames themselves pass through untouched."""

    def __init__(self) -> None:
        self.inner = AiohttpWsClient()
        self.frames = 0
        self._waiters = Recorder()

    async def connect(self, url: str, **kwargs: Any) -> CountingConn:
        return CountingConn(await self.inner.connect(url, **kwargs), self)

    async def close(self) -> None:
        await self.inner.close()

    def received(self) -> None:
        self.frames += 1
        self._waiters.on_next(self.frames)

    async def wait_frames(self, n: int) -> None:
        """Wait until ``n`` frames have been received in total."""
        await self._waiters.wait(lambda: self.frames >= n)


class CountingConn:
    def __init__(self, conn: Any, owner: CountingClient) -> None:
        self._conn = conn
        self._owner = owner

    @property
    def closed(self) -> bool:
        return bool(self._conn.closed)

    async def recv(self) -> Any:
        data = await self._conn.recv()
        self._owner.received()
        return data

    async def send(self, data: Any) -> None:
        await self._conn.send(data)

    async def ping(self) -> None:
        await self._conn.ping()

    async def close(self) -> None:
        await self._conn.close()


def fast_config(sim: UpbitSimulator, **overrides: Any) -> SourceConfig:
    """A source config for tests: the simulator's URLs, short backoff and grace, generous budgets."""
    values: dict[str, Any] = {
        "ws_url": sim.ws_url,
        "rest_url": sim.rest_url,
        "grace": 0.0,
        "backoff": BackoffPolicy(initial=0.01, multiplier=2.0, max_delay=0.05, immediate_first=True),
        "healthy_after": 0.0,
        "max_failures": 1000,
        "open_timeout": 5.0,
        "message_limits": ((1000, 1.0),),
        "connects_per_second": 1000,
        "protocol": UpbitProtocolConfig(default_retry_after=0.05, ban_duration=0.2),
    }
    values.update(overrides)
    return SourceConfig(**values)


def make_sim(**kwargs: Any) -> UpbitSimulator:
    """A simulator with a quiet market (it moves on ``step()`` only) unless told otherwise."""
    kwargs.setdefault("markets", 5)
    kwargs.setdefault("rate", 0)
    kwargs.setdefault("limits", SimLimits(rest_per_sec=REST_PER_SEC, ws_connect_per_sec=1000,
                                          ws_messages_per_sec=1000, ws_messages_per_min=100_000))
    return UpbitSimulator(**kwargs)


@asynccontextmanager
async def running(
    sim_kwargs: dict[str, Any] | None = None, ws_client: Any = None, **config: Any
) -> AsyncIterator[tuple[UpbitSimulator, UpbitSource]]:
    """A started simulator and a source pointed at it; both closed on exit (the source first)."""
    async with make_sim(**(sim_kwargs or {})) as sim:
        http = upbit_http_client(sim.rest_url, limiter=RateLimiter((REST_PER_SEC, 1.0)))
        source = UpbitSource(fast_config(sim, **config), http=http, ws_client=ws_client)
        try:
            async with source:
                yield sim, source
        finally:
            await http.close()


def rxmarket_tasks() -> set[asyncio.Task[Any]]:
    """Tasks of the source and the transports (the simulator's own tasks are not counted)."""
    me = asyncio.current_task()
    return {
        t for t in asyncio.all_tasks()
        if t is not me and not t.done() and t.get_name().startswith(("rxmarket-ws", "rxmarket-upbit"))
    }


def open_client_sessions() -> list[aiohttp.ClientSession]:
    """aiohttp client sessions still open anywhere in the process."""
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed]


# -- SourceConfig -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_connections", 6),
        ("max_connections", 0),
        ("codes_per_connection", 0),
        ("grace", -1.0),
        ("transport", "curl"),
        ("gap_fill_page_size", 501),
        ("ws_url", "http://example.com"),
        ("staleness", {"depth": 1.0}),
        ("idle_timeout", 0.0),
    ],
)
def test_config_rejects_values_that_cannot_work(field: str, value: Any) -> None:
    """A bad setting is a ConfigError at construction, naming the setting."""
    with pytest.raises(ConfigError, match=field.split("_")[0]):
        SourceConfig(**{field: value})


def test_config_defaults_stay_within_upbit_limits() -> None:
    """By default at most 5 connections, 5 connects per second, and every channel has a staleness rule."""
    config = SourceConfig()
    assert config.max_connections == 5
    assert config.connects_per_second == 5
    assert config.staleness_limit("candle.1m") == config.staleness["candle"]
    assert config.staleness_limit("orderbook") == 300.0

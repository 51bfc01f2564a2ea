"""``UpbitSimulator``: the aiohttp server that ties market, REST, WebSocket, faults and control together.

Lifecycle: ``start()`` builds the market, binds 127.0.0.1 (``port=0`` picks a free port) and starts the
market task; ``close()`` closes every WebSocket (1001, then a hard drop for clients that do not answer),
stops the listening socket, cancels every task the simulator started and releases the port. Both run from
``async with``.

Tests never sleep on it: ``step()`` makes trades on demand, and the ``wait_*`` methods wake on the
simulator's own state changes (a connection, a subscription, a request, a frame, a fault ending, the
listening socket closing or reopening).

A hard ``refuse`` closes the listening socket and binds the same port again when it ends. A failed re-bind
is never silent: it is counted in ``stats`` (``listening``, ``rebind_failures``, ``rebind_error``) and logged
at WARNING on this module's logger; the simulator then stays down until the next hard refuse ends or
``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Self

import msgspec
from aiohttp import web

from rxmarket.sim._bench import BenchPool
from rxmarket.sim._catalog import MarketInfo, build_catalog
from rxmarket.sim._config import BenchConfig, SimConfigError, SimLimits, SimOptions, check_loopback
from rxmarket.sim._control import ControlApi
from rxmarket.sim._faults import Faults
from rxmarket.sim._market import Exchange
from rxmarket.sim._ratelimit import RestLimiter
from rxmarket.sim._rest import RestApi, not_found
from rxmarket.sim._stats import Counters, SimStats
from rxmarket.sim._ws import Context, websocket_handler

__all__ = ["WS_PATH", "SimTrade", "UpbitSimulator"]

WS_PATH = "/websocket/v1"

_log = logging.getLogger(__name__)


class SimTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A trade the simulator made (what ``step()`` returns), in Upbit's terms.

    Attributes:
        market: the code.
        price: trade price.
        volume: trade size.
        ask_bid: ``ASK`` (seller took) or ``BID`` (buyer took).
        timestamp: trade time, ms.
        sequential_id: the trade's id, strictly increasing per market.
    """

    market: str
    price: float
    volume: float
    ask_bid: str
    timestamp: int
    sequential_id: int


class UpbitSimulator:
    """A local Upbit quotation server (REST + WebSocket) with fault injection.

    Args:
        markets: number of KRW markets (``KRW-BTC``, ``KRW-ETH``, ``KRW-XRP``, ... then generated codes).
        seed: seeds every random stream: same seed, same prices, sizes and sides.
        port: TCP port on ``host``; 0 picks a free one (read it back from ``port``/``rest_url``).
        host: a loopback address; the simulator never listens elsewhere.
        rate: trades per second the market makes on its own (each gives a trade, a ticker and a book
            frame); 0 for a market that only moves on ``step()``.
        quote_markets: BTC-/USDT- markets appended after the KRW ones (0-6).
        limits: rate limits (generous by default; ``SimLimits.upbit()`` for Upbit's).
        options: timeouts, history sizes, pacing.
        bench: bench mode: subscribed connections get pre-encoded frames as fast as they can read;
            ``True`` for the defaults.
        clock: seconds since the epoch for all timestamps (default ``time.time``).

    Raises:
        SimConfigError: an argument is out of range or ``host`` is not loopback.
    """

    def __init__(
        self,
        markets: int = 50,
        seed: int = 7,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        rate: float = 20.0,
        quote_markets: int = 0,
        limits: SimLimits | None = None,
        options: SimOptions | None = None,
        bench: BenchConfig | bool | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(markets, int) or not 1 <= markets <= 10_000:
            raise SimConfigError("markets must be an integer in 1..10000")
        if not isinstance(port, int) or not 0 <= port <= 65_535:
            raise SimConfigError("port must be in 0..65535")
        if not 0 <= quote_markets <= 6:
            raise SimConfigError("quote_markets must be in 0..6")
        self._check_rate(rate)
        self._host = check_loopback(host)
        self._requested_port = port
        self._seed = seed
        self._rate = float(rate)
        self._limits = limits or SimLimits()
        self._options = options or SimOptions()
        self._bench = BenchConfig() if bench is True else (bench or None)
        self._clock = clock or time.time
        self.catalog: list[MarketInfo] = build_catalog(markets, quote_markets, seed)
        self.faults = Faults(
            on_change=self._notify,
            on_disconnect=self._disconnect_all,
            on_hard_refuse=self._hard_refuse,
            on_ban=self._ban,
        )
        self._counters = Counters()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._exchange: Exchange | None = None
        self._ctx: Context | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0
        self._market_task: asyncio.Task[None] | None = None
        self._pause_task: asyncio.Task[None] | None = None
        self._closing = False
        #: Seconds every ``wait_*`` method waits before raising ``TimeoutError`` (``None``: forever).
        self.wait_timeout: float | None = 10.0

    # -- addresses -----------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The loopback address it listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        return self._port

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self._host}:{self._port}/v1"

    @property
    def ws_url(self) -> str:
        """The WebSocket URL, e.g. ``ws://127.0.0.1:PORT/websocket/v1``."""
        return f"ws://{self._host}:{self._port}{WS_PATH}"

    @property
    def control_url(self) -> str:
        """Base URL of the control endpoint, e.g. ``http://127.0.0.1:PORT/_sim``."""
        return f"http://{self._host}:{self._port}/_sim"

    @property
    def markets(self) -> list[str]:
        """The market codes, in ``/market/all`` order."""
        return [m.code for m in self.catalog]

    @property
    def running(self) -> bool:
        """Started and not closed."""
        return self._runner is not None

    @property
    def rate(self) -> float:
        """Trades per second the market makes by itself."""
        return self._rate

    def set_rate(self, rate: float) -> None:
        """Change the market's own trade rate (0 stops it; ``step()`` still works)."""
        self._check_rate(rate)
        self._rate = float(rate)

    @staticmethod
    def _check_rate(rate: float) -> None:
        if not isinstance(rate, int | float) or not math.isfinite(rate) or not 0 <= rate <= 1_000_000:
            raise SimConfigError("rate must be in 0..1000000 trades per second")

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Build the market, bind the port and start serving.

        Raises:
            RuntimeError: already started.
            OSError: the port cannot be bound.
        """
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        loop = asyncio.get_running_loop()
        exchange = Exchange(self.catalog, self._seed, self._options, self._clock, self.faults)
        pool = None
        if self._bench is not None:
            pool = BenchPool(self.catalog, self._seed, self._options, self._clock, self._bench)
            # Generate the pool now (a fraction of a second) rather than on the first subscription.
            pool.events()
        ctx = Context(
            options=self._options,
            limits=self._limits,
            faults=self.faults,
            exchange=exchange,
            counters=self._counters,
            limiter=RestLimiter(self._limits),
            notify=self._notify,
            notify_pending=lambda: bool(self._waiters),
            bench=self._bench,
            pool=pool,
        )
        exchange.publish = ctx.hub.publish
        exchange.wants = ctx.hub.wants
        self._exchange, self._ctx = exchange, ctx
        app = web.Application()
        app.router.add_get(WS_PATH, partial(websocket_handler, ctx))
        app.add_routes(RestApi(ctx).routes())
        if self._options.control:
            control = ControlApi(
                faults=self.faults, stats=lambda: self.stats, step=self._step_count, info=self._info
            )
            app.add_routes(control.routes())
        app.router.add_route("*", "/{tail:.*}", not_found)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        self._port = int(runner.addresses[0][1])
        self._closing = False
        self._market_task = loop.create_task(self._run_market(), name="rxmarket-sim-market")

    async def close(self) -> None:
        """Close every socket, cancel every task, release the port. Safe to call twice."""
        runner = self._runner
        if runner is None:
            return
        self._closing = True
        self.faults.close()
        for task in (self._market_task, self._pause_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._market_task = self._pause_task = None
        ctx = self._ctx
        if ctx is not None:
            ctx.closing.set()
            connections = list(ctx.hub.connections.values())
            for conn in connections:
                conn.closing = True
            # 1001 "going away" to everyone at once; aiohttp waits up to CLOSE_TIMEOUT for each reply, then
            # closes the transport (flushing the close frame), so a client that reads later still sees it.
            goodbye = b"server shutdown"
            closes = [c.ws.close(code=1001, message=goodbye) for c in connections]
            await asyncio.gather(*closes, return_exceptions=True)
        await runner.cleanup()
        self._runner = self._site = None
        for _predicate, future in self._waiters:
            if not future.done():
                future.set_exception(RuntimeError("simulator closed"))
        self._waiters.clear()

    async def _run_market(self) -> None:
        loop = asyncio.get_running_loop()
        exchange = self._exchange
        assert exchange is not None
        budget = 0.0
        last = loop.time()
        while True:
            rate = self._rate
            interval = 0.05 if rate <= 0 else min(0.05, max(0.002, 1.0 / rate))
            await asyncio.sleep(interval)
            now = loop.time()
            if rate > 0:
                # Catch up after a stall, but never more than one second's worth at once.
                budget = min(budget + (now - last) * rate, max(rate, 1.0))
                n = int(budget)
                if n:
                    budget -= n
                    exchange.step(n)
            last = now
            exchange.flush_candles()

    # -- the market ----------------------------------------------------------------------------------------

    def step(self, n: int = 1, market: str | None = None) -> list[SimTrade]:
        """Make ``n`` trades now (in ``market``, or in markets the seeded RNG picks) and send their frames.

        Args:
            n: how many trades.
            market: a code, or ``None`` for the RNG's choice per trade.

        Returns:
            The trades, in order.

        Raises:
            RuntimeError: not started.
            KeyError: unknown market.
        """
        if self._exchange is None or self._runner is None:
            raise RuntimeError("start the simulator first")
        records = self._exchange.step(n, market)
        self._notify()
        return [
            SimTrade(
                market=r.code, price=r.price, volume=r.volume, ask_bid=r.ask_bid, timestamp=r.ts,
                sequential_id=r.sid,
            )
            for r in records
        ]

    def _step_count(self, n: int, market: str | None) -> int:
        return len(self.step(n, market))

    # -- stats and waiting ---------------------------------------------------------------------------------

    @property
    def stats(self) -> SimStats:
        """A snapshot of the counters and of the open connections."""
        c = self._counters
        conns = tuple(conn.info() for conn in self._ctx.hub.connections.values()) if self._ctx else ()
        return SimStats(
            connections=len(conns),
            connections_total=c.connections_total,
            connections_rejected=c.connections_rejected,
            open=conns,
            ws_messages=c.ws_messages,
            frames_sent=c.frames_sent,
            frames_dropped=c.frames_dropped,
            frames_corrupted=c.frames_corrupted,
            frames_duplicated=c.frames_duplicated,
            frames_reordered=c.frames_reordered,
            frames_delayed=c.frames_delayed,
            status_frames=c.status_frames,
            error_frames=c.error_frames,
            pings=c.pings,
            pongs=c.pongs,
            disconnects=c.disconnects,
            idle_closes=c.idle_closes,
            slow_drops=c.slow_drops,
            rest_requests=c.rest_requests,
            rest_by_group=dict(c.rest_by_group),
            rest_by_status=dict(c.rest_by_status),
            trades=self._exchange.trade_count if self._exchange else 0,
            bench_streams_done=c.bench_streams_done,
            listening=self._site is not None,
            rebind_failures=c.rebind_failures,
            rebind_error=c.rebind_error,
        )

    def _notify(self) -> None:
        if not self._waiters:
            return
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true; it is checked on every state change of the simulator.

        Every ``wait_*`` gives up after ``wait_timeout`` seconds (10 by default, ``None`` for never), so a
        broken test fails instead of hanging; wrap the call in ``asyncio.timeout()`` for a shorter deadline.

        Args:
            predicate: a cheap check over ``sim.stats``, ``sim.faults`` etc.

        Raises:
            TimeoutError: the condition did not come true in time.
        """
        async with asyncio.timeout(self.wait_timeout):
            await self._until(predicate)

    async def _until(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await future
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    async def wait_connections(self, n: int) -> None:
        """Wait until exactly ``n`` WebSocket connections are open."""
        hub = self._require_ctx().hub
        await self.wait_for(lambda: len(hub.connections) == n)

    async def wait_accepted(self, total: int) -> None:
        """Wait until ``total`` WebSocket connections have been accepted since start (reconnects count)."""
        await self.wait_for(lambda: self._counters.connections_total >= total)

    async def wait_subscribed(
        self, codes: Iterable[str], kind: str | None = None
    ) -> None:
        """Wait until one connection receives realtime frames for all ``codes`` (of ``kind``, if given)."""
        wanted = set(codes)
        hub = self._require_ctx().hub

        def done() -> bool:
            for conn in hub.connections.values():
                have = {code for k, code in conn.routes if kind is None or k == kind}
                if wanted <= have:
                    return True
            return False

        await self.wait_for(done)

    async def wait_requests(self, n: int, group: str | None = None) -> None:
        """Wait until ``n`` REST requests arrived (in ``group``, if given)."""
        c = self._counters
        await self.wait_for(
            lambda: (c.rest_requests if group is None else c.rest_by_group.get(group, 0)) >= n
        )

    async def wait_frames(self, n: int) -> None:
        """Wait until ``n`` data frames have been sent in total."""
        await self.wait_for(lambda: self._counters.frames_sent >= n)

    async def wait_fault_over(self, name: str) -> None:
        """Wait until the fault ``name`` is no longer active."""
        await self.wait_for(lambda: name not in self.faults.active)

    async def drain(self) -> None:
        """Wait until every frame queued so far has been handed to its socket."""
        ctx = self._require_ctx()
        await asyncio.gather(*(conn.flushed() for conn in list(ctx.hub.connections.values())))

    def _require_ctx(self) -> Context:
        if self._ctx is None:
            raise RuntimeError("start the simulator first")
        return self._ctx

    # -- fault hooks ---------------------------------------------------------------------------------------

    def _disconnect_all(self) -> int:
        ctx = self._ctx
        if ctx is None:
            return 0
        connections = list(ctx.hub.connections.values())
        for conn in connections:
            conn.abort()
        self._counters.disconnects += len(connections)
        return len(connections)

    def _ban(self, seconds: float) -> None:
        """Block every client for ``seconds``; 0 lifts the block (``faults.clear()``)."""
        if seconds <= 0 and self._ctx is None:
            return  # nothing to lift before start
        ctx = self._require_ctx()
        # A block that ends now is no block: force_ban(now, 0) leaves only the per-IP bans in force.
        ctx.limiter.force_ban(asyncio.get_running_loop().time(), seconds)

    def _hard_refuse(self, _seconds: float) -> None:
        if self._runner is None or self._closing:
            return
        if self._pause_task is not None and not self._pause_task.done():
            return  # the running pause looks at the faults again before it reopens
        loop = asyncio.get_running_loop()
        self._pause_task = loop.create_task(self._pause_listening(), name="rxmarket-sim-refuse")

    async def _pause_listening(self) -> None:
        """Keep the listening socket closed while a hard ``refuse`` is on, then bind the port again.

        The faults are read afresh on every turn rather than trusted from when the task was made: a
        ``clear()`` (or a soft ``refuse``) may come before the task first runs, and a new hard refuse may
        come while the re-bind is under way.
        """
        faults = self.faults
        while not self._closing:
            if faults.refusing_hard:
                site, self._site = self._site, None
                if site is not None:
                    await site.stop()
                    self._notify()
                await self._until(lambda: not faults.refusing_hard)
            elif self._site is None:
                if not await self._listen_again():
                    return
            else:
                return

    async def _listen_again(self) -> bool:
        """Bind the port again; on failure record it where users look (stats, log) and say ``False``."""
        runner = self._runner
        assert runner is not None  # close() cancels this task before it drops the runner
        site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            # The site registered itself with the runner before the bind failed; unregister it so the
            # runner's addresses and cleanup see only live sites.
            await site.stop()
            self._counters.rebind_failures += 1
            self._counters.rebind_error = f"{type(exc).__name__}: {exc}"
            _log.warning(
                "simulator could not listen on %s:%d again after a hard refuse (%s); it stays down until "
                "the next hard refuse ends or close()",
                self._host, self._port, exc,
            )
            self._notify()
            return False
        self._site = site
        self._notify()
        return True

    def _info(self) -> dict[str, Any]:
        return {
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "control_url": self.control_url,
            "markets": self.markets,
            "seed": self._seed,
            "rate": self._rate,
            "bench": self._bench is not None,
        }

    def __repr__(self) -> str:
        state = f"{self.rest_url}" if self.running else "stopped"
        return f"UpbitSimulator(markets={len(self.catalog)}, seed={self._seed}, {state})"

"""The WebSocket side: one :class:`Connection` per client, the :class:`Hub` that routes market events.

Every frame the server sends is binary (``upbit-protocol.md`` 4.1). Each connection has an outbound queue
and a writer task, so a slow client never stalls the market or the other clients; faults that act on frames
(silence, latency, corrupt, duplicate, reorder) are applied by the writer, per frame, as it sends.

A subscription request *replaces* the connection's set (4.1): its old routes go at once, the SNAPSHOT
frames of the new set are sent (after ``snapshot_delay``), and only then its realtime routes start, so a
client always sees the snapshot of a code before its first realtime frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import msgspec
from aiohttp import WSMsgType, web

from rxmarket.sim._bench import BenchPool, stream
from rxmarket.sim._config import BenchConfig, SimLimits, SimOptions
from rxmarket.sim._faults import Faults
from rxmarket.sim._market import Event, Exchange, Variant
from rxmarket.sim._ratelimit import MessageLimiter, RestLimiter, remaining_req
from rxmarket.sim._requests import Request, RequestError, Subscription, parse_code, parse_request
from rxmarket.sim._stats import ConnectionInfo, Counters
from rxmarket.sim._wire import ENCODE, error_frame, list_subscriptions_frame, status_frame

__all__ = ["Connection", "Context", "Hub", "corrupt", "websocket_handler"]

Routes = dict[tuple[str, str], tuple[Variant, ...]]
_DECODE: Final = msgspec.json.Decoder().decode
#: Seconds a frame held back by ``reorder`` waits for the frame it swaps with before going out alone.
REORDER_WAIT: Final = 0.5
#: Seconds the server waits for a client's reply to its close frame before closing the TCP connection.
CLOSE_TIMEOUT: Final = 0.5
# Keys that carry a number in each frame kind, DEFAULT then SIMPLE (the "wrong type" corruption).
_NUMBER_KEYS: Final = ("trade_price", "tp", "total_ask_size", "tas", "opening_price", "op")
_CODE_KEYS: Final = ("code", "cd")
_TYPE_KEYS: Final = ("type", "ty")


class Context:
    """What every connection shares: configuration, market, faults, counters, the hub."""

    def __init__(
        self,
        *,
        options: SimOptions,
        limits: SimLimits,
        faults: Faults,
        exchange: Exchange,
        counters: Counters,
        limiter: RestLimiter,
        notify: Callable[[], None],
        notify_pending: Callable[[], bool],
        bench: BenchConfig | None,
        pool: BenchPool | None,
    ) -> None:
        self.options = options
        self.limits = limits
        self.faults = faults
        self.exchange = exchange
        self.counters = counters
        self.limiter = limiter
        self.notify = notify
        self.notify_pending = notify_pending
        self.bench = bench
        self.pool = pool
        self.hub = Hub()
        self.next_id = 0
        #: Set when the simulator starts closing (wakes handlers held back by the latency fault).
        self.closing = asyncio.Event()


def corrupt(frame: bytes, k: int) -> bytes:
    """Spoil ``frame`` in the ``k``-th of five ways (cycled so a client meets them all).

    0: cut in half (invalid JSON); 1: invalid UTF-8 start; 2: a price becomes a string; 3: unknown
    ``type``; 4: the market code is missing.
    """
    kind = k % 5
    if kind == 0:
        return frame[: max(1, len(frame) // 2)]
    if kind == 1:
        return b"\xff\xfe" + frame[2:]
    obj: Any = _DECODE(frame)
    target = obj[0] if isinstance(obj, list) and obj else obj
    if not isinstance(target, dict):
        return frame[: max(1, len(frame) // 2)]
    keys = _NUMBER_KEYS if kind == 2 else _TYPE_KEYS if kind == 3 else _CODE_KEYS
    for key in keys:
        if key in target:
            if kind == 2:
                target[key] = "corrupt"
            elif kind == 3:
                target[key] = "nope"
            else:
                del target[key]
            break
    return ENCODE(obj)


class Hub:
    """Routes each market event to the connections subscribed to its (kind, code)."""

    def __init__(self) -> None:
        self.connections: dict[int, Connection] = {}
        self.routes: dict[tuple[str, str], dict[Connection, tuple[Variant, ...]]] = {}

    def wants(self, kind: str, code: str) -> bool:
        """Whether anyone receives realtime ``(kind, code)`` frames."""
        return (kind, code) in self.routes

    def publish(self, event: Event) -> None:
        """Queue ``event`` on every subscribed connection, in that connection's spelling and variants."""
        targets = self.routes.get((event.kind, event.code))
        if not targets:
            return
        for conn, variants in tuple(targets.items()):
            for variant in variants:
                conn.send_data(event.frame(conn.simple, variant))

    def set_routes(self, conn: Connection, routes: Routes) -> None:
        """Replace the routes of ``conn``."""
        for key in conn.routes:
            targets = self.routes.get(key)
            if targets is not None:
                targets.pop(conn, None)
                if not targets:
                    del self.routes[key]
        conn.routes = routes
        for key, variants in routes.items():
            self.routes.setdefault(key, {})[conn] = variants

    def add(self, conn: Connection) -> None:
        """Register a new connection."""
        self.connections[conn.id] = conn

    def remove(self, conn: Connection) -> None:
        """Forget ``conn`` and its routes."""
        self.set_routes(conn, {})
        self.connections.pop(conn.id, None)


class Connection:
    """One client WebSocket.

    Args:
        ctx: the shared context.
        ws: the prepared WebSocket response.
        request: the upgrade request (for the transport and the peer address).
    """

    def __init__(self, ctx: Context, ws: web.WebSocketResponse, request: web.Request) -> None:
        ctx.next_id += 1
        self.ctx = ctx
        self.id = ctx.next_id
        self.ws = ws
        self.transport = request.transport
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.remote = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._loop = asyncio.get_running_loop()
        self.format = "DEFAULT"
        self.simple = False
        self.as_list = False
        self.ticket: str | None = None
        self.subscriptions: tuple[Subscription, ...] = ()
        self.routes: Routes = {}
        self.requests = 0
        self.frames_sent = 0
        self.closing = False
        self.limiter = MessageLimiter(ctx.limits)
        self.queue: deque[tuple[bytes | asyncio.Future[None], float, bool]] = deque()
        self._wake = asyncio.Event()
        self._waiting = False
        self._writer: asyncio.Task[None] | None = None
        self._bench: asyncio.Task[int] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle: asyncio.TimerHandle | None = None
        self._status: asyncio.TimerHandle | None = None
        self._snapshot: asyncio.TimerHandle | None = None
        self.last_activity = self._loop.time()

    # -- life ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer and the idle timer."""
        self._writer = self._loop.create_task(self._write_loop(), name=f"rxmarket-sim-ws{self.id}-writer")
        self._arm_idle()

    async def stop(self) -> None:
        """Cancel every timer and task of this connection and wait for them."""
        for handle in (self._idle, self._status, self._snapshot):
            if handle is not None:
                handle.cancel()
        self._idle = self._status = self._snapshot = None
        tasks = [t for t in (self._writer, self._bench, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._drop_queue()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def info(self) -> ConnectionInfo:
        """A snapshot for ``sim.stats``."""
        subs: dict[str, list[str]] = {}
        for kind, code in self.routes:
            subs.setdefault(kind, []).append(code)
        return ConnectionInfo(
            id=self.id,
            remote=self.remote,
            ticket=self.ticket,
            format=self.format,
            subscriptions={k: tuple(sorted(v)) for k, v in subs.items()},
            requests=self.requests,
            frames_sent=self.frames_sent,
        )

    # -- outbound ------------------------------------------------------------------------------------------

    def send_data(self, frame: bytes) -> None:
        """Queue a data frame (subject to the frame faults)."""
        if self.closing:
            return
        if self.as_list:
            frame = b"[" + frame + b"]"
        self._push(frame, True)

    def send_control(self, frame: bytes) -> None:
        """Queue a status, error or list frame (only ``silence`` and ``latency`` act on it)."""
        self._push(frame, False)

    def _push(self, item: bytes | asyncio.Future[None], data: bool) -> None:
        queue = self.queue
        queue.append((item, self._loop.time(), data))
        if len(queue) > self.ctx.options.max_queue:
            # A client that cannot keep up is dropped, as an exchange would, rather than buffered forever.
            self.ctx.counters.slow_drops += 1
            self._drop_queue()
            self.abort()
            return
        if self._waiting:
            self._waiting = False
            self._wake.set()

    def _drop_queue(self) -> None:
        """Forget every queued frame; ``flushed()`` callers waiting on a marker return (nothing is left)."""
        for item, _queued_at, _data in self.queue:
            # Resolved, not cancelled: a cancelled marker would raise CancelledError in the waiting task.
            if isinstance(item, asyncio.Future) and not item.done():
                item.set_result(None)
        self.queue.clear()

    async def flushed(self) -> None:
        """Wait until everything queued so far has been handed to the socket."""
        if self._writer is None or self._writer.done():
            return
        marker: asyncio.Future[None] = self._loop.create_future()
        self._push(marker, False)
        await marker

    async def _next_item(self) -> tuple[bytes | asyncio.Future[None], float, bool] | None:
        """The next queued item, waiting up to ``REORDER_WAIT`` for one (the ``reorder`` fault's partner)."""
        if not self.queue:
            self._waiting = True
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REORDER_WAIT):
                    await self._wake.wait()
            self._waiting = False
        return self.queue.popleft() if self.queue else None

    async def _write_loop(self) -> None:
        ctx, faults, counters = self.ctx, self.ctx.faults, self.ctx.counters
        queue, ws, loop = self.queue, self.ws, self._loop
        try:
            while True:
                if not queue:
                    self._waiting = True
                    self._wake.clear()
                    await self._wake.wait()
                    self._waiting = False
                    continue
                item, queued_at, data = queue.popleft()
                if isinstance(item, asyncio.Future):
                    if not item.done():
                        item.set_result(None)
                    continue
                if faults.silenced:
                    if data:
                        counters.frames_dropped += 1
                    continue
                delay = faults.latency_seconds
                if delay:
                    wait = queued_at + delay - loop.time()
                    if wait > 0:
                        counters.frames_delayed += 1
                        if ctx.notify_pending():
                            ctx.notify()
                        await asyncio.sleep(wait)
                if not data:
                    await ws.send_bytes(item)
                    continue
                if faults.take("reorder"):
                    following = await self._next_item()
                    if following is not None:
                        other = following[0]
                        if isinstance(other, asyncio.Future):
                            queue.appendleft(following)
                        else:
                            counters.frames_reordered += 1
                            await self._send(other, following[2])
                if faults.take("corrupt"):
                    item = corrupt(item, counters.frames_corrupted)
                    counters.frames_corrupted += 1
                await self._send(item, True)
                if faults.take("duplicate"):
                    counters.frames_duplicated += 1
                    await self._send(item, True)
                if ctx.notify_pending():
                    ctx.notify()
        except (ConnectionError, RuntimeError):
            # The socket went away under us; the handler's read loop sees it too and cleans up.
            return

    async def _send(self, frame: bytes, data: bool) -> None:
        await self.ws.send_bytes(frame)
        if data:
            self.frames_sent += 1
            self.ctx.counters.frames_sent += 1
            self.last_activity = self._loop.time()

    # -- timers --------------------------------------------------------------------------------------------

    def _arm_idle(self) -> None:
        timeout = self.ctx.options.idle_timeout
        if timeout is not None:
            self._idle = self._loop.call_at(self.last_activity + timeout, self._idle_check)

    def _idle_check(self) -> None:
        timeout = self.ctx.options.idle_timeout
        assert timeout is not None
        now = self._loop.time()
        if self.ctx.faults.silenced or now - self.last_activity < timeout * 0.999:
            # A silenced server is stalled, not idle: keep the socket so the client can notice.
            self._idle = self._loop.call_at(max(self.last_activity + timeout, now + 0.01), self._idle_check)
            return
        self._idle = None
        self.ctx.counters.idle_closes += 1
        if self.ctx.options.idle_close == "abort":
            self.abort()
        else:
            self.closing = True
            self._spawn(self.ws.close(code=1000))

    def touch(self) -> None:
        """The client did something: reset the idle clock."""
        self.last_activity = self._loop.time()

    def start_status(self) -> None:
        """Answer a text ``PING``: ``{"status":"UP"}`` now, then every ``status_interval`` seconds."""
        if self._status is None:
            self._status_tick()

    def _status_tick(self) -> None:
        ctx = self.ctx
        if not ctx.faults.silenced:
            ctx.counters.status_frames += 1
            self.send_control(status_frame())
            # A counter moved: waiters on ``sim.wait_for`` (e.g. on ``status_frames``) must look again.
            if ctx.notify_pending():
                ctx.notify()
        self._status = self._loop.call_later(ctx.options.status_interval, self._status_tick)

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- inbound -------------------------------------------------------------------------------------------

    async def on_message(self, msg: Any) -> None:
        """Handle one message from the client."""
        ctx = self.ctx
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.touch()
            await self._on_request(msg.data)
        elif msg.type == WSMsgType.PING:
            ctx.counters.pings += 1
            if ctx.options.ping_resets_idle:
                self.touch()
            if not ctx.faults.silenced:
                ctx.counters.pongs += 1
                await self.ws.pong(msg.data)
        elif msg.type == WSMsgType.PONG:
            self.touch()

    async def _on_request(self, data: str | bytes) -> None:
        ctx = self.ctx
        if data in ("PING", b"PING"):
            self.start_status()
            return
        if self.closing:
            return
        ctx.counters.ws_messages += 1
        self.requests += 1
        if ctx.faults.rate_limited or not self.limiter.hit(self._loop.time()):
            ctx.counters.error_frames += 1
            self.send_control(error_frame(ctx.limits.ws_limit_error))
            ctx.notify()
            return
        try:
            request = parse_request(data, accept_camel=ctx.options.camel_case_flags)
        except RequestError as exc:
            ctx.counters.error_frames += 1
            self.send_control(error_frame(exc.name, exc.detail))
            ctx.notify()
            await self._close_after_error()
            return
        if request.method == "LIST_SUBSCRIPTIONS":
            # Its format changes the live streams' format too (docs: list-subscriptions).
            self._set_format(request.format)
            self.send_control(list_subscriptions_frame(request.ticket, self._list_result(), self.simple))
        else:
            self._subscribe(request)
        ctx.notify()

    async def _close_after_error(self) -> None:
        self.closing = True
        self.ctx.hub.set_routes(self, {})
        await self.flushed()
        await asyncio.sleep(self.ctx.options.error_close_delay)
        await self.ws.close(code=1000)

    def _set_format(self, fmt: str) -> None:
        self.format = fmt
        self.simple = fmt in ("SIMPLE", "SIMPLE_LIST")
        self.as_list = fmt in ("JSON_LIST", "SIMPLE_LIST")

    def _list_result(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for sub in self.subscriptions:
            item: dict[str, Any] = {"type": sub.type, "codes": list(sub.codes)}
            if sub.type == "orderbook":
                item["level"] = int(sub.level) if sub.level.is_integer() else sub.level
            out.append(item)
        return out

    def _subscribe(self, request: Request) -> None:
        ctx = self.ctx
        exchange = ctx.exchange
        self.ticket = request.ticket
        self._set_format(request.format)
        self.subscriptions = request.subscriptions
        routes: dict[tuple[str, str], list[Variant]] = {}
        snapshots: dict[tuple[str, str, Variant], None] = {}
        for sub in request.subscriptions:
            for raw in sub.codes:
                parsed = parse_code(sub.type, raw)
                if parsed is None or parsed[0] not in exchange.by_code:
                    continue  # Upbit ignores unknown and lower-case codes silently.
                code, depth = parsed
                variant: Variant = None
                if sub.type == "orderbook":
                    if sub.level > 0 and exchange.by_code[code].quote != "KRW":
                        continue  # level on a non-KRW market: nothing is sent.
                    variant = (depth, sub.level)
                if not sub.only_realtime:
                    snapshots[(sub.type, code, variant)] = None
                if not sub.only_snapshot:
                    variants = routes.setdefault((sub.type, code), [])
                    if variant not in variants:
                        variants.append(variant)
        final: Routes = {k: tuple(v) for k, v in routes.items()}
        ctx.hub.set_routes(self, {})
        if self._snapshot is not None:
            self._snapshot.cancel()
            self._snapshot = None
        if ctx.pool is not None:
            self._start_bench(final)
            return
        delay = ctx.options.snapshot_delay
        if delay > 0:
            self._snapshot = self._loop.call_later(delay, self._activate, final, list(snapshots))
        else:
            self._activate(final, list(snapshots))

    def _activate(self, routes: Routes, snapshots: list[tuple[str, str, Variant]]) -> None:
        self._snapshot = None
        if self.closing:
            return
        exchange = self.ctx.exchange
        for kind, code, variant in snapshots:
            frame = exchange.snapshot(kind, code, self.simple, variant)
            if frame is not None:
                self.send_data(frame)
        self.ctx.hub.set_routes(self, routes)
        self.ctx.notify()

    def _start_bench(self, routes: Routes) -> None:
        ctx = self.ctx
        assert ctx.pool is not None
        assert ctx.bench is not None
        if self._bench is not None:
            self._bench.cancel()
        # Bench connections show their routes in stats but get no live events: only the pool.
        self.routes = routes
        chunks = ctx.pool.chunks(routes, self.simple, self.as_list)
        if self.transport is None:
            return

        def sent(n: int) -> None:
            self.frames_sent += n
            ctx.counters.frames_sent += n

        async def run() -> int:
            count = await stream(transport, chunks, bench, ctx.faults, sent)
            if not transport.is_closing():
                ctx.counters.bench_streams_done += 1
                ctx.notify()
            return count

        transport, bench = self.transport, ctx.bench
        self._bench = self._loop.create_task(run(), name=f"rxmarket-sim-ws{self.id}-bench")


def _reject(status: int, header: str | None, text: str) -> web.Response:
    headers = {"Remaining-Req": header} if header else {}
    return web.Response(status=status, text=text, headers=headers)


async def websocket_handler(ctx: Context, request: web.Request) -> web.StreamResponse:
    """Serve one WebSocket client at Upbit's path, from upgrade to close.

    Before the upgrade the faults and the connect limit may turn the client away with an HTTP error
    (503 refuse, 5xx server_error, 429 rate limit, 418 block), as a gateway would.
    """
    faults, counters = ctx.faults, ctx.counters
    loop = asyncio.get_running_loop()
    if faults.refusing:
        counters.connections_rejected += 1
        ctx.notify()
        return _reject(503, None, "Service Unavailable")
    status = faults.server_error_status
    if status is not None:
        counters.connections_rejected += 1
        ctx.notify()
        return _reject(status, None, "Internal Server Error")
    if faults.rate_limited:
        counters.connections_rejected += 1
        ctx.notify()
        return _reject(429, remaining_req("websocket", 300, 0), "Too Many Requests")
    decision = ctx.limiter.check(request.remote or "?", "websocket", loop.time())
    if decision.status != 200:
        counters.connections_rejected += 1
        ctx.notify()
        return _reject(decision.status, decision.header, "Too Many Requests")
    ws = web.WebSocketResponse(autoping=False, compress=ctx.options.compression, timeout=CLOSE_TIMEOUT)
    if not ws.can_prepare(request).ok:
        return _reject(400, None, "Bad Request: expected a WebSocket upgrade")
    ws.headers["Remaining-Req"] = decision.header
    await ws.prepare(request)
    conn = Connection(ctx, ws, request)
    ctx.hub.add(conn)
    counters.connections_total += 1
    conn.start()
    ctx.notify()
    try:
        async for msg in ws:
            await conn.on_message(msg)
            if conn.closing and ws.closed:
                break
    except (ConnectionError, RuntimeError):
        pass
    finally:
        conn.closing = True
        ctx.hub.remove(conn)
        await conn.stop()
        ctx.notify()
    return ws

"""WebSocket transport: a small client interface and one logical connection that never stays down.

The transport moves frames and reports what happens to the link; it knows no exchange and no Rx. Two
pieces:

* :class:`WsClient` / :class:`WsConn`, the seam to a WebSocket library: ``connect`` gives a connection
  with ``send``, ``recv``, ``ping`` and ``close``, and every library error comes out as our
  :class:`~rxmarket.errors.TransportError`. Two implementations pass the same tests:
  :class:`~rxmarket.transport.AiohttpWsClient` (default) and :class:`~rxmarket.transport.WebsocketsWsClient`.
* :class:`ReconnectingWebSocket`, the one logical connection an owner (the Upbit source) talks to. It
  connects, sends the owner's subscription frame, hands every received frame to ``on_frame``, and, when
  the link drops or goes idle, reconnects with backoff and sends the subscription again. It gives up only
  after ``max_failures`` failures within ``window`` seconds. Status goes to ``on_event``.

Lifecycle and events (``on_event`` receives :class:`WsEvent`; ``kind`` in order of a typical life)::

    connecting(attempt=1) -> live -> ... dropped(error) | idle(silent_for)
        -> backoff(delay, attempt=2) -> connecting(2) -> reconnected(downtime) -> ...
        -> gave_up(error) -> closed(error)          (or: close() -> closed)

Hot path: each frame costs one ``await recv()``, a clock read, a counter and the synchronous
``on_frame(data)`` call, with no task or queue per frame. Idle detection, keep-alive messages and
re-subscriptions run in one helper task per live link, woken only when there is something to do.

Time: failure windows, healthy spells, downtime and message pacing read ``clock`` (default: the loop's
clock); backoff and pacing waits go through ``sleep`` (default :func:`asyncio.sleep`), so a test can run
the reconnect sequence on a fake clock. Idle timeouts and keep-alives use the loop's own timers.

Pacing: messages are paced per *link* (the server counts them per connection, so each new link starts
with an empty window); connection attempts are paced by an optional limiter shared across links and
connections (the server counts those per IP).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, NoReturn, Protocol

from rxmarket.errors import ConfigError, GaveUp, TransportError
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.policy.ratelimit import Limit, SlidingWindowLimiter
from rxmarket.transport._ws_aiohttp import AiohttpWsClient

__all__ = [
    "UPBIT_MESSAGE_LIMITS",
    "ReconnectingWebSocket",
    "WsClient",
    "WsConn",
    "WsData",
    "WsEvent",
    "WsEventKind",
    "WsStats",
]

WsData = bytes | str
"""A WebSocket frame's payload: ``bytes`` for binary frames, ``str`` for text frames."""

UPBIT_MESSAGE_LIMITS: Final[tuple[Limit, ...]] = ((5, 1.0), (100, 60.0))
"""Messages a client may send per connection: 5 per second and 100 per minute (Upbit rate-limit docs)."""


class WsConn(Protocol):
    """One open WebSocket connection."""

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed."""
        ...

    async def send(self, data: WsData) -> None:
        """Send one frame (text for ``str``, binary for ``bytes``); ``TransportError`` if it cannot."""
        ...

    async def recv(self) -> WsData:
        """The next data frame; ``TransportError`` once the connection is closed or dropped."""
        ...

    async def ping(self) -> None:
        """Send a protocol ping; ``TransportError`` if the connection is closed."""
        ...

    async def close(self) -> None:
        """Close (code 1000), waiting a bounded time for the peer; never raises for a broken link."""
        ...


class WsClient(Protocol):
    """Something that opens WebSocket connections (see :class:`~rxmarket.transport.AiohttpWsClient`)."""

    async def connect(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        ping_interval: float | None = 20.0,
        compress: bool = True,
        open_timeout: float | None = 10.0,
        close_timeout: float = 2.0,
    ) -> WsConn:
        """Open a connection; ``TransportError`` when refused, reset or timed out."""
        ...

    async def close(self) -> None:
        """Release what the client holds (e.g. an HTTP session)."""
        ...


WsEventKind = Literal["connecting", "live", "reconnected", "dropped", "idle", "backoff", "gave_up", "closed"]


@dataclass(frozen=True, slots=True)
class WsEvent:
    """Something that happened to a :class:`ReconnectingWebSocket`'s link.

    Attributes:
        kind: ``connecting`` (attempt ``attempt`` starts), ``live`` (first link up, subscription sent),
            ``reconnected`` (link up again after ``downtime`` s), ``dropped`` (the link failed: ``error``),
            ``idle`` (no frame for ``silent_for`` s: the link is replaced), ``backoff`` (attempt
            ``attempt`` waits ``delay`` s; ``error`` is what failed), ``gave_up`` (``error`` is the
            :class:`~rxmarket.errors.GaveUp`), ``closed`` (terminal; ``error`` set if it ended in one).
        attempt: the connection attempt this event is about, counted since the last healthy link.
        delay: seconds before the next attempt (``backoff``).
        downtime: seconds from the drop to the new link (``reconnected``).
        silent_for: seconds without a frame (``idle``).
        error: the failure (``dropped``, ``backoff``, ``gave_up``, ``closed``).
    """

    kind: WsEventKind
    attempt: int = 0
    delay: float | None = None
    downtime: float | None = None
    silent_for: float | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class WsStats:
    """Counters of one :class:`ReconnectingWebSocket` since it started.

    Attributes:
        frames: frames received and handed to ``on_frame``.
        messages_sent: frames sent (subscriptions, keep-alives, :meth:`ReconnectingWebSocket.send`).
        connects: links established (first one included).
        reconnects: links established after a drop.
        failures: failed attempts and dropped links.
        idle_timeouts: links replaced because nothing arrived for ``idle_timeout`` seconds.
        callback_errors: exceptions raised by ``on_frame`` / ``on_event`` (reported to the loop's
            exception handler; the stream goes on).
    """

    frames: int
    messages_sent: int
    connects: int
    reconnects: int
    failures: int
    idle_timeouts: int
    callback_errors: int


def _check_positive(
    name: str, value: float | None, *, allow_none: bool = True, allow_zero: bool = False
) -> None:
    if value is None:
        if not allow_none:
            raise ConfigError(f"{name} is required")
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, got {value!r}")


class ReconnectingWebSocket:
    """One logical WebSocket connection that reconnects, resubscribes, paces and watches itself.

    Args:
        url: the ``ws://`` or ``wss://`` URL.
        subscription_frame: called after every (re)connect and on :meth:`resubscribe`; returns the one
            frame that subscribes everything the owner wants now, or ``None`` when nothing is subscribed.
        on_frame: called with each received frame, synchronously, on the loop. It should not raise; if it
            does, the error goes to the loop's exception handler and the stream goes on.
        on_event: called with each :class:`WsEvent`, synchronously, on the loop.
        client: the WebSocket library seam (default: an :class:`~rxmarket.transport.AiohttpWsClient`
            owned and closed by this object). Share one client among several connections.
        headers: extra headers for the upgrade request.
        compress: offer permessage-deflate.
        ping_interval: seconds between protocol pings (``None``: none); a missing pong drops the link.
        idle_timeout: a link that delivers no frame at all for this long (while something is subscribed)
            is closed and replaced; ``None`` turns the check off.
        keepalive: a message to send every ``keepalive_interval`` seconds (Upbit: the text ``"PING"``,
            answered with ``{"status":"UP"}``), or ``None``.
        keepalive_interval: seconds between keep-alive messages.
        backoff: delays between attempts (default: immediate first retry, then 0.5 s doubling to 30 s,
            ±20 % jitter).
        healthy_after: a link that stayed up this long resets the backoff sequence and the failure count.
        max_failures: failures (refused attempts and dropped links) within ``window`` seconds that make
            the connection give up.
        window: the failure-counting window in seconds.
        message_limits: ``(count, period)`` limits on messages sent on each link. Every new link starts
            with an empty window: the server counts messages per connection, and a reconnect is a new one.
        connect_limiter: a limiter shared by several connections to pace connection attempts (Upbit:
            5 connects per second per IP), or ``None``. Unlike the message window, it persists across
            reconnects: the server counts connects per IP.
        open_timeout: seconds allowed for one connection attempt.
        close_timeout: seconds a close waits for the peer's close frame before dropping the socket.
        sleep: awaited for backoff and pacing waits (inject a fake to run sequences without waiting).
        clock: the time source for failure windows, healthy spells, downtime and pacing (default: the
            running loop's ``time``).
        name: a label for ``repr`` and error messages.

    Raises:
        ConfigError: on an invalid argument.
    """

    __slots__ = (
        "_backoff",
        "_callback_errors",
        "_clock",
        "_close_timeout",
        "_closing",
        "_compress",
        "_conn",
        "_connect_limiter",
        "_connects",
        "_done",
        "_error",
        "_failures",
        "_fatal",
        "_frames",
        "_headers",
        "_healthy_after",
        "_idle_for",
        "_idle_timeout",
        "_idle_timeouts",
        "_keepalive",
        "_keepalive_interval",
        "_last_rx",
        "_link_error",
        "_loop",
        "_max_failures",
        "_msg_limiter",
        "_on_event",
        "_on_frame",
        "_open_timeout",
        "_owns_client",
        "_ping_interval",
        "_reconnects",
        "_resub_pending",
        "_sent",
        "_sleep",
        "_subscribed",
        "_subscription_frame",
        "_task",
        "_waiters",
        "_wake",
        "_window",
        "client",
        "name",
        "url",
    )

    def __init__(
        self,
        url: str,
        *,
        subscription_frame: Callable[[], WsData | None],
        on_frame: Callable[[WsData], None],
        on_event: Callable[[WsEvent], None] | None = None,
        client: WsClient | None = None,
        headers: Mapping[str, str] | None = None,
        compress: bool = True,
        ping_interval: float | None = 20.0,
        idle_timeout: float | None = 60.0,
        keepalive: WsData | None = None,
        keepalive_interval: float = 30.0,
        backoff: BackoffPolicy | None = None,
        healthy_after: float = 30.0,
        max_failures: int = 10,
        window: float = 300.0,
        message_limits: Iterable[Limit] = UPBIT_MESSAGE_LIMITS,
        connect_limiter: SlidingWindowLimiter | None = None,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"url must start with ws:// or wss://, got {url!r}")
        _check_positive("ping_interval", ping_interval)
        _check_positive("idle_timeout", idle_timeout)
        _check_positive("keepalive_interval", keepalive_interval, allow_none=False)
        _check_positive("healthy_after", healthy_after, allow_none=False, allow_zero=True)
        _check_positive("window", window, allow_none=False)
        _check_positive("open_timeout", open_timeout, allow_none=False)
        _check_positive("close_timeout", close_timeout, allow_none=False)
        if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1:
            raise ConfigError(f"max_failures must be an integer >= 1, got {max_failures!r}")
        if keepalive is not None and not isinstance(keepalive, bytes | str):
            raise ConfigError(f"keepalive must be bytes, str or None, got {type(keepalive).__name__}")
        self.url = url
        self.name = name or url
        self._subscription_frame = subscription_frame
        self._on_frame = on_frame
        self._on_event = on_event
        if client is None:
            client = AiohttpWsClient()
            self._owns_client = True
        else:
            self._owns_client = False
        self.client: WsClient = client
        self._headers = dict(headers) if headers else None
        self._compress = compress
        self._ping_interval = ping_interval
        self._idle_timeout = idle_timeout
        self._keepalive = keepalive
        self._keepalive_interval = keepalive_interval
        self._backoff = backoff or BackoffPolicy(
            initial=0.5, multiplier=2.0, max_delay=30.0, jitter=0.2, immediate_first=True
        )
        self._healthy_after = healthy_after
        self._max_failures = max_failures
        self._window = window
        self._msg_limiter = SlidingWindowLimiter(message_limits)
        self._connect_limiter = connect_limiter
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._sleep = sleep
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: WsConn | None = None
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._waiters: list[asyncio.Future[None]] = []
        self._closing = False
        self._error: BaseException | None = None
        self._fatal: BaseException | None = None
        self._link_error: TransportError | None = None
        self._idle_for: float | None = None
        self._resub_pending = False
        self._subscribed = False
        self._last_rx = 0.0
        self._frames = 0
        self._sent = 0
        self._connects = 0
        self._reconnects = 0
        self._failures = 0
        self._idle_timeouts = 0
        self._callback_errors = 0

    # -- public surface -------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in a task on the running loop (returns at once). Idempotent.

        Raises:
            ConfigError: after :meth:`close`, or when no event loop is running.
        """
        if self._closing:
            raise ConfigError(f"{self!r} is closed; make a new one")
        if self._task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigError("ReconnectingWebSocket.start() needs a running event loop") from None
        self._loop = loop
        if self._clock is None:
            self._clock = loop.time
        self._task = loop.create_task(self._run(), name=f"rxmarket-ws {self.name}")

    @property
    def live(self) -> bool:
        """True while a link is up and its subscription has been sent."""
        return self._conn is not None

    @property
    def closed(self) -> bool:
        """True once the connection has ended for good (closed, gave up or failed)."""
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        """The terminal error (e.g. :class:`~rxmarket.errors.GaveUp`), once there is one."""
        return self._error

    def stats(self) -> WsStats:
        """A snapshot of the counters."""
        return WsStats(
            frames=self._frames,
            messages_sent=self._sent,
            connects=self._connects,
            reconnects=self._reconnects,
            failures=self._failures,
            idle_timeouts=self._idle_timeouts,
            callback_errors=self._callback_errors,
        )

    def resubscribe(self) -> None:
        """Send the current :attr:`subscription_frame` again on the live link (returns at once).

        Call it when the owner's set of subscriptions changes. Calls coalesce: however many arrive while
        the message limiter makes the link wait, one frame, built when it can be sent, goes out. With no
        live link, nothing is sent now: the next link sends the frame current at that time.
        """
        self._resub_pending = True
        if self._conn is not None:
            self._wake.set()

    async def send(self, data: WsData) -> None:
        """Send one message on the live link, paced by the message limits.

        Raises:
            TransportError: when no link is live or the send fails (the link is then replaced).
        """
        conn = self._conn
        if conn is None:
            raise TransportError(f"{self.name}: no live WebSocket link to send on")
        await self._send_paced(conn, data)

    async def wait_live(self) -> None:
        """Wait until a link is live.

        Raises:
            GaveUp: or another terminal error, if the connection ended before a link came up.
            TransportError: if it was closed before a link came up.
        """
        while self._conn is None:
            if self._done.is_set():
                raise self._error or TransportError(f"{self.name} was closed before a link came up")
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def wait_closed(self) -> None:
        """Wait until the connection has ended for good.

        Raises:
            GaveUp: or another terminal error, if it ended in one (not after a plain :meth:`close`).
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Close the link (the server sees a close frame), stop every task and wait for them. Idempotent."""
        self._closing = True
        task = self._task
        if task is None:
            if not self._done.is_set():
                self._finish()
                await self._release_client()
            return
        if task is asyncio.current_task():
            raise ConfigError("close() cannot be awaited from inside the connection's own task")
        if not task.done() and not self._done.is_set():  # once done, the task only releases the client
            task.cancel()
        await asyncio.wait({task})
        # A task cancelled before its first step never ran its own cleanup: make sure it is done.
        self._finish()
        await self._release_client()

    async def __aenter__(self) -> ReconnectingWebSocket:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "live" if self.live else "connecting" if self._task else "new"
        return f"<ReconnectingWebSocket {self.name} {state}>"

    # -- the reconnect loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._clock is not None
        clock = self._clock
        delays = self._backoff.delays()
        recent: deque[float] = deque()  # failure times within the window
        attempt = 0
        down_since: float | None = None  # when the last link dropped; None until a link has been up
        try:
            while True:
                attempt += 1
                self._emit(WsEvent("connecting", attempt=attempt))
                error: BaseException
                try:
                    conn = await self._open()
                except TransportError as exc:
                    error = exc
                else:
                    up_at = clock()
                    self._connects += 1
                    if down_since is None:
                        self._emit(WsEvent("live", attempt=attempt))
                    else:
                        self._reconnects += 1
                        self._emit(WsEvent("reconnected", attempt=attempt, downtime=up_at - down_since))
                    error = await self._serve(conn)
                    down_since = clock()
                    if down_since - up_at >= self._healthy_after:
                        # A link that held for a while proves the far end works: start over.
                        delays = self._backoff.delays()
                        recent.clear()
                        attempt = 0
                self._failures += 1
                now = clock()
                recent.append(now)
                while recent[0] <= now - self._window:
                    recent.popleft()
                if len(recent) >= self._max_failures:
                    raise GaveUp(len(recent), self._window, error)
                delay = next(delays)
                self._emit(WsEvent("backoff", attempt=attempt + 1, delay=delay, error=error))
                await self._sleep(delay)
        except Exception as exc:  # GaveUp, a bad URL, or an owner callback that failed: terminal
            self._error = exc
            if isinstance(exc, GaveUp):
                self._emit(WsEvent("gave_up", attempt=attempt, error=exc))
        finally:
            self._finish()
            await self._release_client()

    async def _open(self) -> WsConn:
        """Connect and send the subscription; the link is live when this returns."""
        assert self._clock is not None
        assert self._loop is not None
        if self._connect_limiter is not None:
            wait = self._connect_limiter.acquire(self._clock())
            if wait > 0:
                await self._sleep(wait)
        conn = await self.client.connect(
            self.url,
            headers=self._headers,
            ping_interval=self._ping_interval,
            compress=self._compress,
            open_timeout=self._open_timeout,
            close_timeout=self._close_timeout,
        )
        # A new link is a new connection for the server, whose message count starts at zero: keeping the
        # old window would make the resubscription after many quick reconnects wait for nothing.
        self._msg_limiter.reset()
        try:
            self._last_rx = self._loop.time()
            self._resub_pending = False  # the frame built now covers every change so far
            frame = self._subscription_frame()
            self._subscribed = frame is not None
            if frame is not None:
                await self._send_paced(conn, frame)
        except BaseException:
            await self._close_quietly(conn)
            raise
        return conn

    async def _serve(self, conn: WsConn) -> TransportError:
        """Pump frames until the link ends; return why it ended (raise if it ended in a fatal error)."""
        assert self._loop is not None
        self._begin_link(conn)
        helper = self._loop.create_task(self._tend(conn), name=f"rxmarket-ws-tend {self.name}")
        try:
            await self._pump(conn)
        except TransportError as exc:
            error = exc
        finally:
            self._conn = None
            helper.cancel()
            await asyncio.wait({helper})
            await self._close_quietly(conn)
        if self._fatal is not None:
            raise self._fatal
        if self._idle_for is not None:
            self._emit(WsEvent("idle", silent_for=self._idle_for))
            return TransportError(f"{self.name}: no frame for {self._idle_for:.3g}s; link replaced")
        error = self._link_error or error
        self._emit(WsEvent("dropped", error=error))
        return error

    def _begin_link(self, conn: WsConn) -> None:
        self._link_error = None
        self._idle_for = None
        self._conn = conn
        self._notify()

    async def _pump(self, conn: WsConn) -> NoReturn:
        # The hot loop: keep it to a receive, a clock read, a counter and the callback.
        assert self._loop is not None
        recv = conn.recv
        on_frame = self._on_frame
        now = self._loop.time
        while True:
            data = await recv()
            self._last_rx = now()
            self._frames += 1
            try:
                on_frame(data)
            except Exception as exc:
                self._callback_failed("on_frame", exc)

    async def _tend(self, conn: WsConn) -> None:
        """The per-link helper: re-subscriptions, keep-alives and the idle check."""
        try:
            await self._tend_loop(conn)
        except asyncio.CancelledError:
            raise
        except TransportError as exc:  # a failed send: the link is broken
            self._link_error = exc
            await self._close_quietly(conn)
        except Exception as exc:  # subscription_frame() failed: the owner is broken, stop for good
            self._fatal = exc
            await self._close_quietly(conn)

    async def _tend_loop(self, conn: WsConn) -> None:
        assert self._loop is not None
        loop = self._loop
        idle_timeout = self._idle_timeout
        keepalive = self._keepalive
        next_keepalive = loop.time() + self._keepalive_interval if keepalive is not None else math.inf
        while True:
            if self._resub_pending:
                self._resub_pending = False
                frame = self._subscription_frame()
                self._subscribed = frame is not None
                if frame is not None:
                    await self._send_paced(conn, frame)
                continue
            now = loop.time()
            deadline = math.inf
            if idle_timeout is not None and self._subscribed:
                silent = now - self._last_rx
                if silent >= idle_timeout:
                    self._idle_for = silent
                    self._idle_timeouts += 1
                    await conn.close()  # makes the pump's recv() fail, which ends the link
                    return
                deadline = self._last_rx + idle_timeout
            if keepalive is not None:
                if now >= next_keepalive:
                    await self._send_paced(conn, keepalive)
                    next_keepalive = loop.time() + self._keepalive_interval
                    continue
                deadline = min(deadline, next_keepalive)
            self._wake.clear()
            try:
                async with asyncio.timeout_at(deadline if deadline != math.inf else None):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _send_paced(self, conn: WsConn, data: WsData) -> None:
        assert self._clock is not None
        wait = self._msg_limiter.acquire(self._clock())
        if wait > 0:
            await self._sleep(wait)
        await conn.send(data)
        self._sent += 1

    async def _close_quietly(self, conn: WsConn) -> None:
        try:
            await conn.close()
        except Exception as exc:  # closing a link that already failed has nothing more to report
            del exc

    # -- plumbing -------------------------------------------------------------------------------

    def _finish(self) -> None:
        if self._done.is_set():
            return
        self._conn = None
        self._done.set()
        self._notify()
        self._emit(WsEvent("closed", error=self._error))

    async def _release_client(self) -> None:
        if self._owns_client:
            self._owns_client = False
            await self.client.close()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _emit(self, event: WsEvent) -> None:
        handler = self._on_event
        if handler is None:
            return
        try:
            handler(event)
        except Exception as exc:
            self._callback_failed("on_event", exc)

    def _callback_failed(self, which: str, exc: Exception) -> None:
        # The owner's bug must not end the stream, and must not vanish: the loop's exception handler
        # is asyncio's place for errors of callbacks (it logs them by default).
        self._callback_errors += 1
        loop = self._loop or asyncio.get_running_loop()
        loop.call_exception_handler(
            {"message": f"{self!r}: {which} raised {exc!r}; the connection goes on", "exception": exc}
        )

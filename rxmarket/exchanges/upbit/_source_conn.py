"""One WebSocket connection of the Upbit source: the frame hot path and the merged subscription frame.

A :class:`Connection` owns one :class:`~rxmarket.transport.ReconnectingWebSocket` and the streams placed
on it. The transport calls :meth:`Connection.on_frame` for every frame, synchronously on the loop::

    frame -> decode_ws -> routes[type(item)][item.symbol] -> Stream.push -> each subscriber's on_next

That is the whole per-frame path: one decode (the model is the only allocation), two dict lookups, direct
calls. Everything else (bad frames, keep-alives, candles) leaves the path through a callback.

Subscription changes are coalesced: :meth:`Connection.mark_dirty` schedules one flush at the end of the
current loop tick, so a burst of subscribe/dispose calls becomes one request carrying the whole set (Upbit
replaces a connection's subscription set with each request, protocol.md 4.1). The first flush starts the
link; later ones ask the transport to re-send, which it paces under Upbit's message limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from rxmarket.errors import TransportError
from rxmarket.exchanges.upbit._source_config import SourceConfig
from rxmarket.exchanges.upbit._source_registry import Stream
from rxmarket.exchanges.upbit.protocol import Frame, Subscription, build_subscribe
from rxmarket.policy.ratelimit import SlidingWindowLimiter
from rxmarket.transport.ws import ReconnectingWebSocket, WsClient, WsEvent

__all__ = ["KEEPALIVE_MESSAGE", "Connection", "handshake_status"]

KEEPALIVE_MESSAGE = "PING"
"""Upbit answers a text ``PING`` with ``{"status":"UP"}`` every 10 s (protocol.md 4.4)."""

Routes = dict[type, dict[str, Stream]]


class Connection:
    """A WebSocket connection, the streams it carries, and what it counts on its own.

    Args:
        conn_id: the connection's number (see :class:`~._source_shard.ShardPlan`).
        loop: the event loop everything runs on.
        config: the source's configuration.
        client: the WebSocket library seam, shared by the source's connections.
        connect_limiter: paces connection attempts of all the source's connections.
        sleep: the transport's sleep (the source stretches it over bans).
        routes: item class -> market -> stream, shared by the source's connections.
        decode: frame -> message (``decode_ws`` or a configured variant).
        on_other: called with a message that is not a routed item (keep-alive, candle ...).
        on_bad_frame: called with a decode failure or an error frame.
        on_event: called with each transport event.

    Attributes:
        streams: ``(channel, symbol)`` -> stream, for the streams on this connection.
        unrouted: items for a market no stream follows any more.
        resubscribes: subscription re-sends asked for after the first request.
        closing: set once the source stopped caring about this connection.
    """

    __slots__ = (
        "_loop",
        "_on_bad_frame",
        "_on_event",
        "_on_other",
        "_protocol",
        "_retry",
        "closing",
        "decode",
        "dirty",
        "id",
        "resubscribes",
        "routes",
        "started",
        "streams",
        "unrouted",
        "ws",
    )

    def __init__(
        self,
        conn_id: int,
        *,
        loop: asyncio.AbstractEventLoop,
        config: SourceConfig,
        client: WsClient,
        connect_limiter: SlidingWindowLimiter,
        sleep: Callable[[float], Awaitable[None]],
        routes: Routes,
        decode: Callable[[Frame], Any],
        on_other: Callable[[Connection, Any], None],
        on_bad_frame: Callable[[Connection, Exception], None],
        on_event: Callable[[Connection, WsEvent], None],
    ) -> None:
        self.id = conn_id
        self._loop = loop
        self._protocol = config.protocol
        self.routes = routes
        self.decode = decode
        self._on_other = on_other
        self._on_bad_frame = on_bad_frame
        self._on_event = on_event
        self.streams: dict[tuple[str, str], Stream] = {}
        self.dirty = False
        self.started = False
        self.closing = False
        self.unrouted = 0
        self.resubscribes = 0
        self._retry: asyncio.TimerHandle | None = None  # a re-send planned after "too many requests"
        self.ws = ReconnectingWebSocket(
            config.ws_url,
            subscription_frame=self.subscription_frame,
            on_frame=self.on_frame,
            on_event=self._event,
            client=client,
            compress=config.compress,
            ping_interval=config.ping_interval,
            idle_timeout=config.idle_timeout,
            keepalive=KEEPALIVE_MESSAGE,
            keepalive_interval=config.keepalive_interval,
            backoff=config.backoff,
            healthy_after=config.healthy_after,
            max_failures=config.max_failures,
            window=config.failure_window,
            message_limits=config.message_limits,
            connect_limiter=connect_limiter,
            open_timeout=config.open_timeout,
            sleep=sleep,
            name=f"upbit#{conn_id}",
        )

    def on_frame(self, data: bytes | str) -> None:
        """The hot path: decode one frame and hand the item to its stream."""
        try:
            msg = self.decode(data)
        except Exception as exc:  # every decode failure is counted and reported, never fatal
            self._on_bad_frame(self, exc)
            return
        route = self.routes.get(msg.__class__)
        if route is None:
            self._on_other(self, msg)
            return
        stream = route.get(msg.symbol)
        if stream is None:
            self.unrouted += 1
            return
        stream.push(msg)

    def subscription_frame(self) -> bytes | None:
        """One frame subscribing every stream of this connection (``None`` when it carries none)."""
        if not self.streams:
            return None
        groups: dict[tuple[str, int | None], list[str]] = {}
        for stream in self.streams.values():
            groups.setdefault((stream.channel, stream.wire_depth), []).append(stream.symbol)
        subs = [Subscription(ch, tuple(codes), depth=depth) for (ch, depth), codes in groups.items()]
        return build_subscribe(subs, format="DEFAULT", config=self._protocol)

    def mark_dirty(self) -> None:
        """The set of streams changed: send the merged frame once, at the end of this loop tick."""
        if self.dirty or self.closing:
            return
        self.dirty = True
        self._loop.call_soon(self._flush)

    def resend_later(self, delay: float) -> None:
        """The server refused a request ("too many requests"): send the subscription again after ``delay``."""
        if self._retry is not None or self.closing:
            return
        self._retry = self._loop.call_later(delay, self._resend)

    def abandon(self) -> None:
        """Stop reacting to anything: the source is closing this connection or it gave up."""
        self.closing = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _flush(self) -> None:
        self.dirty = False
        if self.closing:
            return
        if not self.started:
            self.started = True
            self.ws.start()
            return
        self.resubscribes += 1
        self.ws.resubscribe()

    def _resend(self) -> None:
        self._retry = None
        if not self.closing and self.started:
            self.resubscribes += 1
            self.ws.resubscribe()

    def _event(self, event: WsEvent) -> None:
        if not self.closing:
            self._on_event(self, event)


def handshake_status(error: BaseException | None) -> int | None:
    """The HTTP status of a refused WebSocket upgrade (429, 418, 5xx ...), or ``None`` for any other failure.

    The transport sets :attr:`~rxmarket.errors.TransportError.status` at its seam, whichever WebSocket
    library made the connection.
    """
    return error.status if isinstance(error, TransportError) else None

"""The Upbit source's configuration and its counters, as frozen records."""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit.endpoints import REST_URL, WS_URL
from rxmarket.exchanges.upbit.protocol import DEFAULT_CONFIG, UpbitProtocolConfig
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.policy.ratelimit import check_limit
from rxmarket.transport.ws import UPBIT_MESSAGE_LIMITS

__all__ = ["DEFAULT_STALENESS", "SourceConfig", "SourceStats"]

DEFAULT_STALENESS: dict[str, float | None] = {
    "ticker": 120.0,
    "trade": 120.0,
    "orderbook": 300.0,
    "candle": 300.0,
}
"""Seconds of silence after which a stream is reported stale, per channel (``None``: never).

Upbit sends ticker and trade frames only when a trade happens, candle frames only when a trade changes the
candle, and a book only when an order changes it; a quiet market is silent on every channel, and that is
not a fault. The defaults suit liquid markets and only *report* (``Status(kind="stale")``): nothing is
reconnected for a silent stream. A silent *connection* is the transport's job (``idle_timeout``).
"""


class SourceConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How an :class:`~rxmarket.exchanges.upbit.source.UpbitSource` connects, shares and recovers.

    Attributes:
        ws_url: the WebSocket endpoint (a simulator's ``ws_url`` in tests).
        rest_url: the REST base, for gap fills, polls and history.
        transport: the WebSocket library: ``"aiohttp"`` (default, the faster one in
            ``docs/benchmarks.md``) or ``"websockets"``.
        max_connections: WebSocket connections at most (Upbit: 5).
        codes_per_connection: markets packed on one connection before another is opened.
        grace: seconds an upstream subscription outlives its last subscriber.
        compress: offer permessage-deflate (less bandwidth, some CPU).
        ping_interval: seconds between protocol pings (a missing pong drops the link).
        keepalive_interval: seconds between text ``PING`` messages; Upbit answers with ``{"status":"UP"}``
            every 10 s, which keeps a quiet subscription from looking idle.
        idle_timeout: a connection that receives nothing (not even ``UP``) for this long is replaced.
        staleness: per channel (``ticker``, ``trade``, ``orderbook``, ``candle``), seconds of silence
            before a stream is reported stale (``None``: never); see :data:`DEFAULT_STALENESS`.
        stale_check_interval: seconds between staleness checks (default: a quarter of the smallest limit,
            within 0.05-5 s).
        backoff: delays between reconnect attempts.
        max_failures: failures within ``failure_window`` seconds after which a connection gives up and its
            streams end with ``GaveUp``.
        failure_window: see ``max_failures``.
        healthy_after: a link that stayed up this long resets the backoff and the failure count.
        open_timeout: seconds allowed for one connection attempt.
        connects_per_second: new connections per second (Upbit: 5 per IP).
        message_limits: ``(count, seconds)`` limits on messages each connection sends (subscriptions and
            keep-alives; Upbit: 5 per second and 100 per minute). They hold across reconnects of one
            connection, which is the cautious reading of Upbit's docs (older ones counted per IP).
        gap_fill: after a reconnect, fetch missed trades over REST.
        gap_fill_max_pages: REST pages (of ``gap_fill_page_size`` trades) a fill may fetch.
        gap_fill_page_size: trades per page (Upbit: at most 500).
        gap_fill_retries: retries of a failed REST call during a fill (429 waits ``retry_after`` first).
        gap_fill_hold: live trades held while a fill runs; one more ends the fill with what it has.
        dedupe_window: recent ``sequential_id`` values remembered per trade stream.
        protocol: the protocol's knobs for what Upbit never documented; among them ``ban_duration``, how long
            to stay away after a WebSocket upgrade answered 418 (the answer states no length), and
            ``default_retry_after``, the wait after a 429 upgrade or a "too many requests" error frame.
    """

    ws_url: str = WS_URL
    rest_url: str = REST_URL
    transport: Literal["aiohttp", "websockets"] = "aiohttp"
    max_connections: int = 5
    codes_per_connection: int = 100
    grace: float = 2.0
    compress: bool = True
    ping_interval: float | None = 20.0
    keepalive_interval: float = 30.0
    idle_timeout: float | None = 30.0
    staleness: dict[str, float | None] = msgspec.field(default_factory=lambda: dict(DEFAULT_STALENESS))
    stale_check_interval: float | None = None
    backoff: BackoffPolicy = msgspec.field(
        default_factory=lambda: BackoffPolicy(
            initial=0.5, multiplier=2.0, max_delay=30.0, jitter=0.2, immediate_first=True
        )
    )
    max_failures: int = 10
    failure_window: float = 300.0
    healthy_after: float = 30.0
    open_timeout: float = 10.0
    connects_per_second: int = 5
    message_limits: tuple[tuple[int, float], ...] = UPBIT_MESSAGE_LIMITS
    gap_fill: bool = True
    gap_fill_max_pages: int = 5
    gap_fill_page_size: int = 500
    gap_fill_retries: int = 3
    gap_fill_hold: int = 10_000
    dedupe_window: int = 64
    protocol: UpbitProtocolConfig = DEFAULT_CONFIG

    def __post_init__(self) -> None:
        if self.transport not in ("aiohttp", "websockets"):
            raise ConfigError(f"transport must be 'aiohttp' or 'websockets', got {self.transport!r}")
        if not _is_int(self.max_connections) or not 1 <= self.max_connections <= 5:
            raise ConfigError(
                "max_connections must be 1-5 (Upbit allows 5 connections per IP), "
                f"got {self.max_connections!r}"
            )
        for name in ("codes_per_connection", "max_failures", "connects_per_second", "gap_fill_max_pages",
                     "gap_fill_hold", "dedupe_window"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not _is_int(self.gap_fill_retries) or self.gap_fill_retries < 0:
            raise ConfigError(f"gap_fill_retries must be an integer >= 0, got {self.gap_fill_retries!r}")
        if not _is_int(self.gap_fill_page_size) or not 1 <= self.gap_fill_page_size <= 500:
            raise ConfigError(f"gap_fill_page_size must be 1-500, got {self.gap_fill_page_size!r}")
        for name in ("grace", "healthy_after"):
            _seconds(name, getattr(self, name), zero=True)
        for name in ("keepalive_interval", "failure_window", "open_timeout"):
            _seconds(name, getattr(self, name))
        for name in ("ping_interval", "idle_timeout", "stale_check_interval"):
            value = getattr(self, name)
            if value is not None:
                _seconds(name, value)
        for channel, limit in self.staleness.items():
            if channel not in DEFAULT_STALENESS:
                known = ", ".join(DEFAULT_STALENESS)
                raise ConfigError(f"staleness is set per channel ({known}), got {channel!r}")
            if limit is not None:
                _seconds(f"staleness[{channel!r}]", limit)
        if not self.message_limits:
            raise ConfigError("message_limits needs at least one (count, seconds) limit")
        for message_limit in self.message_limits:
            check_limit(message_limit)
        if not isinstance(self.backoff, BackoffPolicy):
            raise ConfigError(f"backoff must be a BackoffPolicy, got {type(self.backoff).__name__}")
        if not isinstance(self.ws_url, str) or not self.ws_url.startswith(("ws://", "wss://")):
            raise ConfigError(f"ws_url must start with ws:// or wss://, got {self.ws_url!r}")
        if not isinstance(self.rest_url, str) or not self.rest_url.startswith(("http://", "https://")):
            raise ConfigError(f"rest_url must start with http:// or https://, got {self.rest_url!r}")

    def staleness_limit(self, channel: str) -> float | None:
        """The staleness limit of a channel (``candle.1m`` -> the ``candle`` limit)."""
        family = "candle" if channel.startswith("candle.") else channel
        return self.staleness.get(family, DEFAULT_STALENESS.get(family))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(name: str, value: object, *, zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):  # type: ignore[operator]  # checked numeric above
        raise ConfigError(f"{name} must be a number of seconds {'>= 0' if zero else '> 0'}, got {value!r}")


class SourceStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one source since it started (a snapshot: call ``stats()`` again for fresh numbers).

    Attributes:
        frames: WebSocket frames received (every kind, good or bad).
        messages: market-data items delivered to streams (each item once, whatever the subscriber count).
        tickers, orderbooks, trades, candles: ``messages`` per kind.
        keepalives: ``{"status":"UP"}`` frames.
        unrouted: items for a market nobody subscribes to any more (in flight during an unsubscribe).
        duplicates: trades dropped because their ``sequential_id`` was already delivered.
        quarantined: frames that did not decode (counted, reported, skipped).
        error_frames: error frames from the exchange.
        rate_limited: "too many requests" and ban answers: WebSocket error frames, 429 and 418 upgrades,
            429s of REST polls (those inside gap fills and history are retried, not counted here).
        callback_errors: exceptions raised by subscribers' own callbacks.
        connections: connections open now.
        streams: (channel, market) streams subscribed upstream now (including those in their grace).
        subscribers: subscriptions now.
        connects: links established (first ones and reconnects).
        reconnects: links re-established after a drop.
        drops: links lost or attempts failed.
        idle_timeouts: links replaced because nothing arrived.
        resubscribes: subscription frames sent on live links after the set of streams changed.
        messages_sent: frames sent (subscriptions, keep-alives).
        gap_fills: gap fills finished.
        gap_trades: trades recovered by gap fills.
        gap_fill_failures: fills that ended incomplete (REST failed or the page limit was reached).
        stale: stale episodes reported.
        polls: REST poll requests made.
        poll_errors: REST poll requests that failed.
        gave_up: connections that gave up.
    """

    frames: int = 0
    messages: int = 0
    tickers: int = 0
    orderbooks: int = 0
    trades: int = 0
    candles: int = 0
    keepalives: int = 0
    unrouted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    error_frames: int = 0
    rate_limited: int = 0
    callback_errors: int = 0
    connections: int = 0
    streams: int = 0
    subscribers: int = 0
    connects: int = 0
    reconnects: int = 0
    drops: int = 0
    idle_timeouts: int = 0
    resubscribes: int = 0
    messages_sent: int = 0
    gap_fills: int = 0
    gap_trades: int = 0
    gap_fill_failures: int = 0
    stale: int = 0
    polls: int = 0
    poll_errors: int = 0
    gave_up: int = 0

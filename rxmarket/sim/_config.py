"""Configuration records of the simulator: limits, behaviour knobs and bench mode.

Upbit's real numbers are in ``upbit-protocol.md`` section 3; the defaults here are *generous* so that our
own integration tests and the demo never trip them by accident, and :meth:`SimLimits.upbit` gives the real
ones. Whatever the protocol notes mark *unconfirmed* (429/418 bodies, ban lengths, ``Retry-After``, the
idle timeout) is a field here rather than a constant, so a test can pick either reading.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

import msgspec

__all__ = ["BenchConfig", "SimConfigError", "SimLimits", "SimOptions", "check_loopback"]


class SimConfigError(ValueError):
    """A simulator option is out of range (raised at construction, never while serving)."""


class SimLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Rate limits the simulator enforces, per client IP (REST, WS connects) or per connection (WS messages).

    Attributes:
        rest_per_sec: requests per second per REST group (Upbit: 10 for each quotation group).
        rest_min_header: the fixed legacy ``min=`` number in ``Remaining-Req`` (600 on quotation in 2026).
        origin_per_window: requests per ``origin_window`` for requests carrying an ``Origin`` header, in
            the separate ``origin`` group (Upbit: 1 per 10 s); ``None`` treats them like any other.
        origin_window: the window of the ``origin`` group, seconds.
        ban_after: this many 429 answers within ``ban_window`` seconds earn a 418 block.
        ban_window: seconds over which 429s are counted towards a block.
        ban_durations: block lengths in seconds, one per successive block; the last repeats. Upbit says
            repeated blocks grow longer, without numbers.
        ws_connect_per_sec: WebSocket upgrades per second per IP (Upbit: 5); over it the upgrade gets 429.
        ws_messages_per_sec: client messages per second per connection (Upbit: 5).
        ws_messages_per_min: client messages per minute per connection (Upbit: 100).
        ws_limit_error: ``error.name`` of the frame sent for a message over the WS limit (unconfirmed).
        limit_body: body of 429/418 answers: ``"json"`` (``{"error": {...}}``) or ``"text"`` (a plain
            ``Too many API requests.`` line); both readings exist in clients (unconfirmed).
        retry_after: add a ``Retry-After`` header to 429/418 (never observed on Upbit).
    """

    rest_per_sec: int = 100
    rest_min_header: int = 600
    origin_per_window: int | None = None
    origin_window: float = 10.0
    ban_after: int = 20
    ban_window: float = 60.0
    ban_durations: tuple[float, ...] = (30.0, 60.0, 300.0, 3600.0)
    ws_connect_per_sec: int = 50
    ws_messages_per_sec: int = 50
    ws_messages_per_min: int = 1000
    ws_limit_error: str = "TOO_MANY_REQUESTS"
    limit_body: Literal["json", "text"] = "json"
    retry_after: bool = False

    def __post_init__(self) -> None:
        """Reject limits that would make the simulator refuse everything or never block."""
        for name in ("rest_per_sec", "ws_connect_per_sec", "ws_messages_per_sec", "ws_messages_per_min"):
            if getattr(self, name) < 1:
                raise SimConfigError(f"SimLimits.{name} must be >= 1")
        if self.ban_after < 1 or self.ban_window <= 0:
            raise SimConfigError("SimLimits.ban_after must be >= 1 and ban_window > 0")
        if not self.ban_durations or min(self.ban_durations) <= 0:
            raise SimConfigError("SimLimits.ban_durations must be non-empty and positive")
        if self.origin_per_window is not None and (self.origin_per_window < 1 or self.origin_window <= 0):
            raise SimConfigError("SimLimits.origin_per_window must be >= 1 and origin_window > 0")

    @classmethod
    def upbit(cls) -> SimLimits:
        """The limits Upbit documents for unauthenticated quotation use (2026)."""
        return cls(
            rest_per_sec=10,
            origin_per_window=1,
            ws_connect_per_sec=5,
            ws_messages_per_sec=5,
            ws_messages_per_min=100,
        )


class SimOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Behaviour knobs: timeouts, history sizes, pacing. Tests shrink the timeouts.

    Attributes:
        idle_timeout: seconds without a client message or a data frame before the server drops the socket
            (docs: 120 s; observed ~60 s). ``None`` never drops.
        idle_close: how the idle drop looks: ``"abort"`` (TCP close without a close frame, code 1006, as
            observed) or ``"close"`` (a 1000 close frame).
        ping_resets_idle: whether an RFC 6455 ping counts as activity (unconfirmed on Upbit).
        status_interval: seconds between ``{"status":"UP"}`` frames once a client sent text ``PING``.
        error_close_delay: seconds between an error frame and the 1000 close (observed 0.15-0.8 s).
        snapshot_delay: seconds before the SNAPSHOT frames of a new subscription (observed 0.17-0.63 s).
        candle_interval: minimum seconds between two candle frames of one (market, unit); Upbit: 1 s.
        trade_history: trades kept per market for ``/trades/ticks`` paging.
        trades_by_day: ``/trades/ticks`` addresses trades by UTC day, as Upbit does: without ``days_ago``
            every page (the first and the ``cursor`` ones) holds only trades of the newest trade's day, so
            paging stops at that day's start; ``days_ago=N`` (1-7) gives the day N days before the newest
            trade's day (not the clock's), with ``to`` and ``cursor`` inside it; the prefill is kept to one
            day. ``False`` (the default, for now) keeps the older simplification: ``cursor`` pages run
            straight through midnight and ``days_ago`` counts from the clock's day. Some tests on the real
            clock page through the prefilled trades without ``days_ago`` and would fail when started in
            the first minute after a UTC midnight with ``True``.
        prefill_trades: trades generated per market before start, so history is never empty.
        minute_history_days: days of generated 1-minute candles before start (older minutes: ``[]``).
        daily_history_days: days of generated daily candles before start (weeks/months/years build on
            these).
        gap_probability: chance that a generated minute had no trade (so candle series have gaps).
        compression: offer permessage-deflate when the client asks for it (Upbit does).
        max_queue: frames queued for one slow connection before the server drops it.
        camel_case_flags: also accept ``isOnlySnapshot``/``isOnlyRealtime`` (unconfirmed on Upbit).
        control: serve the ``/_sim`` control endpoint.
    """

    idle_timeout: float | None = 120.0
    idle_close: Literal["abort", "close"] = "abort"
    ping_resets_idle: bool = True
    status_interval: float = 10.0
    error_close_delay: float = 0.2
    snapshot_delay: float = 0.0
    candle_interval: float = 1.0
    trade_history: int = 5000
    trades_by_day: bool = False
    prefill_trades: int = 20
    minute_history_days: int = 3
    daily_history_days: int = 800
    gap_probability: float = 0.05
    compression: bool = True
    max_queue: int = 100_000
    camel_case_flags: bool = True
    control: bool = True

    def __post_init__(self) -> None:
        """Reject values that cannot work."""
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise SimConfigError("SimOptions.idle_timeout must be > 0 or None")
        if self.status_interval <= 0:
            raise SimConfigError("SimOptions.status_interval must be > 0")
        if min(self.error_close_delay, self.snapshot_delay, self.candle_interval) < 0:
            raise SimConfigError("SimOptions delays must be >= 0")
        if self.trade_history < 1 or self.prefill_trades < 1 or self.prefill_trades > self.trade_history:
            raise SimConfigError("SimOptions needs 1 <= prefill_trades <= trade_history")
        if self.minute_history_days < 0 or self.daily_history_days < 0:
            raise SimConfigError("SimOptions history days must be >= 0")
        if not 0.0 <= self.gap_probability < 1.0:
            raise SimConfigError("SimOptions.gap_probability must be in [0, 1)")
        if self.max_queue < 1:
            raise SimConfigError("SimOptions.max_queue must be >= 1")


class BenchConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Bench mode: every subscribed connection gets pre-encoded frames as fast as its socket takes them.

    The frames are made once (``pool`` market events: a trade, its ticker and its book) and cycled, so the
    server spends almost nothing per frame and a client benchmark measures the client. Cycling repeats
    ``sequential_id`` values every ``pool`` trades.

    Attributes:
        frames: frames sent per connection after its subscription, then the stream stops (the socket
            stays open); ``None`` streams until the client leaves (or ``seconds`` pass).
        seconds: stop each connection's stream after this long; ``None`` for no time limit.
        pool: market events pre-generated (each gives up to three frames).
        chunk_bytes: bytes handed to the transport per write.
        high_water: write-buffer bytes above which the writer waits for the socket to drain.
    """

    frames: int | None = 1_000_000
    seconds: float | None = None
    pool: int = 5_000
    chunk_bytes: int = 256 * 1024
    high_water: int = 1024 * 1024

    def __post_init__(self) -> None:
        """Reject sizes that cannot work."""
        if self.frames is not None and self.frames < 1:
            raise SimConfigError("BenchConfig.frames must be >= 1 or None")
        if self.seconds is not None and not self.seconds > 0:
            raise SimConfigError("BenchConfig.seconds must be > 0 or None")
        if self.pool < 1 or self.chunk_bytes < 1024 or self.high_water < self.chunk_bytes:
            raise SimConfigError("BenchConfig: pool >= 1, chunk_bytes >= 1024, high_water >= chunk_bytes")


def check_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback address, else raise.

    The simulator is a test fixture with no authentication and switchable faults: it must never be
    reachable from another machine.

    Args:
        host: an IP literal or ``localhost``.

    Returns:
        ``host`` unchanged.

    Raises:
        SimConfigError: ``host`` is not a loopback address.
    """
    if host == "localhost":
        return host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SimConfigError(f"the simulator listens on loopback only, not {host!r}")
    return host

"""Upbit's request limits: sliding one-second windows per IP and group, 429 past them, 418 after abuse.

Pure bookkeeping with time passed in (``now`` in seconds, any monotonic clock), so the rules can be tested
without a server. ``upbit-protocol.md`` section 3: each quotation group allows ``rest_per_sec`` requests per
second per IP; ``Remaining-Req: group=<g>; min=<n>; sec=<left>`` reports what is left; requests over the
limit get 429 and do not count; continuing gets a 418 block whose length grows with each block.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Literal

import msgspec

from rxmarket.sim._config import SimLimits

__all__ = ["Decision", "MessageLimiter", "RestLimiter", "Window", "remaining_req"]

#: ``min=`` of the WebSocket upgrade reply and of the origin group, as observed in 2026.
WS_MIN_HEADER: Final = 300
ORIGIN_MIN_HEADER: Final = 6


def remaining_req(group: str, minute: int, sec: int) -> str:
    """The ``Remaining-Req`` header value."""
    return f"group={group}; min={minute}; sec={sec}"


class Window:
    """At most ``limit`` events in any ``span`` seconds (a sliding window of event times).

    Args:
        limit: events allowed per window.
        span: window length, seconds.
    """

    __slots__ = ("_times", "limit", "span")

    def __init__(self, limit: int, span: float = 1.0) -> None:
        self.limit = limit
        self.span = span
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        times = self._times
        edge = now - self.span
        while times and times[0] <= edge:
            times.popleft()

    def remaining(self, now: float) -> int:
        """Events still allowed in the window ending at ``now``."""
        self._expire(now)
        return max(0, self.limit - len(self._times))

    def hit(self, now: float) -> bool:
        """Record one event if allowed; ``False`` (and nothing recorded) when the window is full."""
        self._expire(now)
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


class Decision(msgspec.Struct, frozen=True):
    """What to answer a REST request (or a WebSocket upgrade) with.

    Attributes:
        status: 200 (go ahead), 429 (over the limit) or 418 (blocked).
        header: the ``Remaining-Req`` value.
        retry_after: seconds until the request could succeed (the block's rest for 418, else up to 1 s).
        ban_seconds: length of the block for 418.
    """

    status: Literal[200, 418, 429]
    header: str
    retry_after: float = 0.0
    ban_seconds: float = 0.0


class RestLimiter:
    """Per-IP, per-group windows, strike counting and growing blocks.

    Args:
        limits: the numbers to enforce.
    """

    def __init__(self, limits: SimLimits) -> None:
        self.limits = limits
        self._windows: dict[tuple[str, str], Window] = {}
        self._strikes: dict[str, deque[float]] = {}
        self._banned_until: dict[str, float] = {}
        self._ban_length: dict[str, float] = {}
        self._bans: dict[str, int] = {}
        self._forced_until = 0.0
        self._forced_length = 0.0

    def force_ban(self, now: float, seconds: float) -> None:
        """Block every IP for ``seconds`` (the ``ban`` fault)."""
        self._forced_until = now + seconds
        self._forced_length = seconds

    def banned(self, ip: str, now: float) -> float:
        """Seconds left of the block on ``ip`` (0 when not blocked)."""
        until = max(self._banned_until.get(ip, 0.0), self._forced_until)
        return max(0.0, until - now)

    def ban_length(self, ip: str) -> float:
        """Length of the block in force on ``ip``, seconds."""
        if self._forced_until > 0 and self._forced_until >= self._banned_until.get(ip, 0.0):
            return self._forced_length
        return self._ban_length.get(ip, 0.0)

    def check(self, ip: str, group: str, now: float, *, origin: bool = False) -> Decision:
        """Count one request of ``group`` from ``ip`` and say how to answer it.

        Args:
            ip: client address.
            group: Upbit header group name (``market``, ``ticker``, ``orderbook``, ``crix-trades``,
                ``candles``, or ``websocket`` for upgrades).
            now: monotonic seconds.
            origin: the request carried an ``Origin`` header (its own, stricter group when configured).

        Returns:
            The decision with its ``Remaining-Req`` header.
        """
        limits = self.limits
        minute = limits.rest_min_header
        limit, span = limits.rest_per_sec, 1.0
        if group == "websocket":
            limit, minute = limits.ws_connect_per_sec, WS_MIN_HEADER
        if origin and limits.origin_per_window is not None:
            group, limit, span = "origin", limits.origin_per_window, limits.origin_window
            minute = ORIGIN_MIN_HEADER
        left = self.banned(ip, now)
        if left > 0:
            return Decision(418, remaining_req(group, minute, 0), left, self.ban_length(ip))
        window = self._windows.get((ip, group))
        if window is None:
            window = self._windows[(ip, group)] = Window(limit, span)
        if window.hit(now):
            return Decision(200, remaining_req(group, minute, window.remaining(now)))
        strikes = self._strikes.setdefault(ip, deque())
        strikes.append(now)
        while strikes and strikes[0] <= now - limits.ban_window:
            strikes.popleft()
        header = remaining_req(group, minute, 0)
        if len(strikes) >= limits.ban_after:
            strikes.clear()
            count = self._bans.get(ip, 0)
            length = limits.ban_durations[min(count, len(limits.ban_durations) - 1)]
            self._bans[ip] = count + 1
            self._banned_until[ip] = now + length
            self._ban_length[ip] = length
            return Decision(418, header, length, length)
        return Decision(429, header, span)


class MessageLimiter:
    """WebSocket client messages per connection: per second and per minute windows."""

    __slots__ = ("_minute", "_second")

    def __init__(self, limits: SimLimits) -> None:
        self._second = Window(limits.ws_messages_per_sec, 1.0)
        self._minute = Window(limits.ws_messages_per_min, 60.0)

    def hit(self, now: float) -> bool:
        """Count one message; ``False`` when either window is full (the message is then refused)."""
        if self._second.remaining(now) == 0 or self._minute.remaining(now) == 0:
            return False
        self._second.hit(now)
        self._minute.hit(now)
        return True

"""Rate limiting as pure bookkeeping: the caller passes the time and does the waiting.

Two shapes, both built on the same sliding window:

* :class:`SlidingWindowLimiter` paces one sender under one or more ``(count, period)`` limits, e.g. Upbit's
  "5 messages per second and 100 per minute" for each WebSocket connection;
* :class:`RateLimiter` paces requests per *group* (Upbit's REST limits are per group: ``ticker``,
  ``candles``, ...), follows what the server says is left (:meth:`RateLimiter.observe`) and backs off when
  the server pushes back (:meth:`RateLimiter.penalise`).

``acquire(now)`` **books** a send slot and returns how long to wait for it; the caller sleeps that long and
sends without asking again. Booking, rather than "ask again after sleeping", lets concurrent callers queue
up in order (no thundering herd) and lets a test drive the limiter with a fake sleep that returns at once::

    wait = limiter.acquire("ticker", loop.time())
    if wait > 0:
        await asyncio.sleep(wait)
    await send()

Invariant: for every limit ``(count, period)``, any half-open interval ``(t - period, t]`` holds at most
``count`` booked slots.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Mapping

from rxmarket.errors import ConfigError

__all__ = ["DEFAULT_MARGIN", "Limit", "RateLimiter", "SlidingWindowLimiter", "check_limit"]

Limit = tuple[int, float]
"""``(count, period)``: at most ``count`` sends within any ``period`` seconds."""

DEFAULT_MARGIN = 0.05
"""Seconds :class:`RateLimiter` adds to each window: room for requests that take longer to arrive."""


def check_limit(limit: Limit) -> Limit:
    """Return ``limit`` as ``(int, float)`` or raise :class:`ConfigError` if it is not a valid limit."""
    try:
        count, period = limit
    except (TypeError, ValueError):
        raise ConfigError(f"a limit is a (count, period) pair, got {limit!r}") from None
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"a limit's count must be an integer >= 1, got {count!r}")
    if not isinstance(period, int | float) or isinstance(period, bool) or not period > 0:
        raise ConfigError(f"a limit's period must be > 0 seconds, got {period!r}")
    return count, float(period)


class _Window:
    """One ``(count, period)`` limit: the last ``count`` booked times, sorted ascending.

    ``margin`` seconds are added to the spacing of slots (``count`` slots per ``period + margin``), for a
    party that counts by arrival time rather than by our send time.
    """

    __slots__ = ("count", "margin", "period", "times")

    def __init__(self, limit: Limit, margin: float = 0.0) -> None:
        self.count, self.period = check_limit(limit)
        self.margin = margin
        self.times: list[float] = []

    def earliest(self, t: float) -> float:
        """The earliest time >= ``t`` at which one more slot fits."""
        times = self.times
        if len(times) < self.count:
            return t
        # times[0] is the count-th most recent booking: the next one must come a full period after it.
        return max(t, times[0] + self.period + self.margin)

    def book(self, t: float) -> None:
        """Record a slot at ``t`` (kept sorted; only the last ``count`` matter)."""
        times = self.times
        if not times or t >= times[-1]:
            times.append(t)
        else:
            bisect.insort(times, t)
        if len(times) > self.count:
            del times[0]

    def used(self, now: float) -> int:
        """Slots booked within ``(now - period, now]``."""
        times = self.times
        return bisect.bisect_right(times, now) - bisect.bisect_right(times, now - self.period)


class SlidingWindowLimiter:
    """Books send slots under one or more ``(count, period)`` limits at once.

    Args:
        limits: e.g. ``[(5, 1.0), (100, 60.0)]``: at most 5 sends in any second and 100 in any minute.

    Raises:
        ConfigError: on an empty list or a malformed limit.
    """

    __slots__ = ("_last", "_windows")

    def __init__(self, limits: Iterable[Limit]) -> None:
        self._windows = [_Window(limit) for limit in limits]
        if not self._windows:
            raise ConfigError("a limiter needs at least one (count, period) limit")
        self._last = float("-inf")

    @property
    def limits(self) -> list[Limit]:
        """The configured limits."""
        return [(w.count, w.period) for w in self._windows]

    def delay(self, now: float) -> float:
        """How long a send at ``now`` would have to wait, without booking it."""
        return self._slot(now) - now

    def acquire(self, now: float) -> float:
        """Book the earliest free slot at or after ``now``; return the wait in seconds (0 if free now).

        Slots are handed out in call order, so a later caller never overtakes an earlier one.
        """
        t = self._slot(now)
        for window in self._windows:
            window.book(t)
        self._last = t
        return t - now

    def reset(self) -> None:
        """Forget every booked slot: the counting party starts afresh (e.g. a new WebSocket connection)."""
        for window in self._windows:
            window.times.clear()
        self._last = float("-inf")

    def _slot(self, now: float) -> float:
        t = max(now, self._last)
        for window in self._windows:
            t = window.earliest(t)
        return t


class _Group:
    __slots__ = ("answers", "blocked_until", "last", "window")

    def __init__(self, limit: Limit, margin: float) -> None:
        self.window = _Window(limit, margin)
        self.blocked_until = float("-inf")
        self.last = float("-inf")
        # (sent, answered) of the last requests the server counted: each arrived between the two times.
        self.answers: deque[tuple[float, float]] = deque(maxlen=self.window.count)


class RateLimiter:
    """Per-group request pacing that also follows the server's own count and its push-backs.

    Args:
        default: the limit of any group not named in ``limits`` (Upbit: 10 requests/s per group).
        limits: per-group overrides, e.g. ``{"origin": (1, 10.0)}``.
        margin: seconds added to each window when pacing: ``count`` requests per ``period + margin``. The
            server counts a request when it *arrives*, we when we *send* it; requests do not all take the
            same time to get there (a new connection's handshake), so slots exactly one period apart can
            land in one server window and be refused. ``0`` paces at exactly the limit.

    Raises:
        ConfigError: on a malformed limit or a negative margin.
    """

    __slots__ = ("_default", "_global_block", "_groups", "_limits", "margin")

    def __init__(
        self,
        default: Limit = (10, 1.0),
        limits: Mapping[str, Limit] | None = None,
        *,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        self._default = check_limit(default)
        self._limits = {name: check_limit(limit) for name, limit in (limits or {}).items()}
        if isinstance(margin, bool) or not isinstance(margin, int | float) or not margin >= 0:
            raise ConfigError(f"margin must be >= 0 seconds, got {margin!r}")
        self.margin = float(margin)
        self._groups: dict[str, _Group] = {}
        self._global_block = float("-inf")

    def _group(self, group: str) -> _Group:
        state = self._groups.get(group)
        if state is None:
            state = self._groups[group] = _Group(self._limits.get(group, self._default), self.margin)
        return state

    def acquire(self, group: str, now: float) -> float:
        """Book the next request slot of ``group``; return the wait in seconds (0 if free now).

        The slot respects the group's window, any penalty (:meth:`penalise`) and call order.
        """
        state = self._group(group)
        t = max(now, state.last, state.blocked_until, self._global_block)
        t = state.window.earliest(t)
        state.window.book(t)
        state.last = t
        return t - now

    def blocked_for(self, group: str, now: float) -> float:
        """Seconds until a hold on ``group`` (or on every group) ends; 0 when none is running.

        Holds come from :meth:`penalise` and from a full server window seen by :meth:`observe`; a caller
        that slept on a slot booked earlier checks this before sending.
        """
        state = self._groups.get(group)
        until = max(self._global_block, state.blocked_until if state is not None else float("-inf"))
        return max(0.0, until - now)

    def observe(self, group: str, remaining: int, now: float, *, sent: float | None = None) -> None:
        """Follow the server's count: it says only ``remaining`` requests are left in its current window.

        When the server has counted more requests than we booked (other processes on the same IP, or a
        window that does not line up with ours), the missing ones are booked at ``now`` so that the next
        slots move out accordingly. A server that allows more than our limit never loosens it.

        ``remaining == 0`` says the server's window was full when the request arrived. Its window counts
        arrivals, which our send times only bound from below, so the group is then held back until a full
        ``period`` (plus ``margin``) after the earliest moment the oldest request in that window can have
        arrived: the answer time of the oldest of our counted requests surely in it (sent within the last
        ``period``), or ``now`` when none is known. Slots already booked wait for that too (see
        :meth:`blocked_for`).

        Args:
            group: the request's group.
            remaining: what the server says is left (Upbit: ``sec=`` of ``Remaining-Req``).
            now: the time the answer arrived.
            sent: when the request was sent, if the server counted it (not for a refused request, e.g.
                a 429: those do not count); it lets a later full window hold back for less.
        """
        state = self._group(group)
        window = state.window
        left = max(remaining, 0)
        missing = (window.count - left) - window.used(now)
        for _ in range(min(missing, window.count)):
            window.book(now)
        if sent is not None:
            state.answers.append((sent, now))
        if left == 0:
            # Every request in the server's window arrived no later than its answer came back, so the
            # oldest one arrived no later than the earliest answer among them. A request sent after
            # now - period arrived inside the window (or after it, which makes its answer later still).
            oldest = now
            for sent_at, answered in state.answers:
                if sent_at > now - window.period and answered < oldest:
                    oldest = answered
            state.blocked_until = max(state.blocked_until, oldest + window.period + self.margin)

    def penalise(self, group: str | None, retry_after: float, now: float) -> None:
        """Hold back ``group`` (or every group, when ``None``) for ``retry_after`` seconds from ``now``.

        Used when the server answers "too many requests" (retry after N s) or blocks the client.
        """
        until = now + max(retry_after, 0.0)
        if group is None:
            self._global_block = max(self._global_block, until)
        else:
            state = self._group(group)
            state.blocked_until = max(state.blocked_until, until)

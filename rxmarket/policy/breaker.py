"""The circuit breaker as a pure state machine: outcomes and time go in, states come out.

``ops.circuit_break`` asks a :class:`Breaker` whether the primary source may be subscribed
(:meth:`Breaker.acquire`) and tells it how each subscription went (:meth:`Breaker.record`); the breaker
never reads a clock, so every transition can be pinned by value in tests.

States and transitions (the knobs follow resilience4j's ``CircuitBreakerConfig``)::

                 failures >= failure_threshold  (consecutive)
                 or failure rate >= failure_rate  (sliding window, once minimum_calls are in it)
                 or a Banned error  (forced open until the ban ends)
      CLOSED ─────────────────────────────────────────────────────────> OPEN
        ^                                                              │   ^
        │ a trial succeeded                  now >= retry_at            │   │ a trial failed
        │                                 (reset_timeout after opening) v   │
        └────────────────────────────────────────────────────────── HALF_OPEN

* CLOSED: every acquire is granted. A success resets the consecutive-failure count and enters the sliding
  window as a success; a failure adds to both.
* OPEN: nothing is granted until ``retry_at``; outcomes still arriving from subscriptions made before the
  breaker opened are ignored (they say nothing about the state after the failure that opened it).
* HALF_OPEN: up to ``half_open_trials`` acquires are granted at once (trial subscriptions); the first
  trial success closes the breaker and clears the window; a trial failure re-opens it for another
  ``reset_timeout``. A trial that ends without an outcome (disposed, or an error that does not count) gives
  its permit back with :meth:`Breaker.release`.

Which errors count as failures is the caller's choice; :func:`counts_as_failure` is the default.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import Literal, NamedTuple

from rxmarket.errors import Banned, ConfigError, ExchangeRejected, ValidationError

__all__ = ["Breaker", "BreakerState", "Transition", "counts_as_failure"]


class BreakerState(enum.StrEnum):
    """The three states of a breaker; the values are what status streams show."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Transition(NamedTuple):
    """A change of state.

    Attributes:
        state: the new state.
        at: when it happened (the caller's clock, seconds). An OPEN -> HALF_OPEN transition is stamped
            with ``retry_at``, the moment it became due, even when it is noticed later.
        reason: why, in words (``"3 consecutive failures"``, ``"banned"``, ``"trial succeeded"`` ...).
        retry_at: for OPEN, when the breaker lets a trial through; else ``None``.
    """

    state: BreakerState
    at: float
    reason: str
    retry_at: float | None = None


def counts_as_failure(exc: BaseException) -> bool:
    """The default "which errors count": all but caller faults.

    ``ConfigError`` (a bad argument), ``ExchangeRejected`` (including ``NotFound``: the request itself is
    wrong) and ``ValidationError`` (a deliberate rejection) say nothing about the health of the
    dependency, so they pass through without touching the breaker. ``Banned`` always counts, and
    always opens the breaker for the ban's length, whatever this predicate says.
    """
    return not isinstance(exc, ConfigError | ExchangeRejected | ValidationError)


Listener = Callable[[Transition], None]


class Breaker:
    """A circuit breaker's state and counters; time is always an argument.

    Args:
        failure_threshold: open after this many consecutive failures (``None``: no count rule).
        failure_rate: open when the failure share in the sliding window reaches this fraction in
            ``(0, 1]`` (``None``: no rate rule). Both rules may be active; either one opens.
        window_type: ``"count"``: the window holds the last ``window_size`` outcomes; ``"time"``: the
            outcomes of the last ``window_size`` seconds.
        window_size: the sliding window's length (outcomes or seconds).
        minimum_calls: the rate rule waits until the window holds this many outcomes.
        reset_timeout: seconds the breaker stays OPEN before it lets a trial through.
        half_open_trials: trial subscriptions allowed at once while HALF_OPEN.
        on_transition: called with every :class:`Transition`, after the state has changed.

    Raises:
        ConfigError: on knobs that make no sense (no rule at all, a rate outside ``(0, 1]`` ...).
    """

    __slots__ = (
        "_consecutive",
        "_retry_at",
        "_since",
        "_state",
        "_trials",
        "_window",
        "failure_rate",
        "failure_threshold",
        "half_open_trials",
        "minimum_calls",
        "on_transition",
        "reset_timeout",
        "window_size",
        "window_type",
    )

    def __init__(
        self,
        *,
        failure_threshold: int | None = 5,
        failure_rate: float | None = None,
        window_type: Literal["count", "time"] = "count",
        window_size: float = 20,
        minimum_calls: int = 10,
        reset_timeout: float = 30.0,
        half_open_trials: int = 1,
        on_transition: Listener | None = None,
    ) -> None:
        if failure_threshold is None and failure_rate is None:
            raise ConfigError("a breaker needs failure_threshold or failure_rate (or both); both are None")
        if failure_threshold is not None and failure_threshold < 1:
            raise ConfigError(f"failure_threshold must be >= 1 or None, got {failure_threshold!r}")
        if failure_rate is not None and not 0 < failure_rate <= 1:
            raise ConfigError(f"failure_rate is a fraction in (0, 1], got {failure_rate!r}")
        if window_type not in ("count", "time"):
            raise ConfigError(f"window_type must be 'count' or 'time', got {window_type!r}")
        if not window_size > 0:
            raise ConfigError(f"window_size must be > 0, got {window_size!r}")
        if minimum_calls < 1:
            raise ConfigError(f"minimum_calls must be >= 1, got {minimum_calls!r}")
        if reset_timeout < 0:
            raise ConfigError(f"reset_timeout must be >= 0 seconds, got {reset_timeout!r}")
        if half_open_trials < 1:
            raise ConfigError(f"half_open_trials must be >= 1, got {half_open_trials!r}")
        self.failure_threshold = failure_threshold
        self.failure_rate = failure_rate
        self.window_type = window_type
        self.window_size = window_size
        self.minimum_calls = minimum_calls
        self.reset_timeout = reset_timeout
        self.half_open_trials = half_open_trials
        self.on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._since = 0.0
        self._retry_at = 0.0
        self._consecutive = 0
        self._trials = 0
        # (time, ok) pairs; the time is only read by the time-based window.
        self._window: deque[tuple[float, bool]] = deque()

    # ---- queries -------------------------------------------------------------------------------------

    def state(self, now: float) -> BreakerState:
        """The state at time ``now`` (an OPEN breaker whose time is up becomes HALF_OPEN here)."""
        if self._state is BreakerState.OPEN and now >= self._retry_at:
            self._move(BreakerState.HALF_OPEN, self._retry_at, "open time elapsed")
        return self._state

    @property
    def current(self) -> BreakerState:
        """The state as of the last call (no time passed in, so an overdue OPEN still reads OPEN)."""
        return self._state

    @property
    def since(self) -> float:
        """When the current state began (the caller's clock)."""
        return self._since

    @property
    def retry_at(self) -> float:
        """When an OPEN breaker lets a trial through (meaningless while CLOSED)."""
        return self._retry_at

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success, counted while CLOSED."""
        return self._consecutive

    def failure_share(self, now: float) -> float | None:
        """The failure share in the sliding window, or ``None`` below ``minimum_calls`` outcomes."""
        self._expire(now)
        if len(self._window) < self.minimum_calls:
            return None
        return sum(1 for _, ok in self._window if not ok) / len(self._window)

    # ---- commands ------------------------------------------------------------------------------------

    def acquire(self, now: float) -> bool:
        """May a subscription to the primary start at ``now``?

        Returns:
            ``True`` while CLOSED; while HALF_OPEN, ``True`` for up to ``half_open_trials`` trials at once
            (the caller then owes a :meth:`record` or a :meth:`release`); ``False`` otherwise.
        """
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._trials < self.half_open_trials:
            self._trials += 1
            return True
        return False

    def release(self) -> None:
        """A trial ended without an outcome: give its permit back."""
        if self._state is BreakerState.HALF_OPEN and self._trials > 0:
            self._trials -= 1

    def record(self, ok: bool, now: float) -> BreakerState:
        """Record one outcome of a subscription to the primary.

        Args:
            ok: ``True`` for a success (an item, or a clean completion), ``False`` for a counted failure.
            now: when it happened.

        Returns:
            The state after the outcome.
        """
        state = self.state(now)
        if state is BreakerState.OPEN:
            return state  # a late outcome of a subscription made before the breaker opened
        if state is BreakerState.HALF_OPEN:
            self._trials = max(self._trials - 1, 0)
            if ok:
                self._reset_counts()
                self._move(BreakerState.CLOSED, now, "trial succeeded")
            else:
                self._open(now, now + self.reset_timeout, "trial failed")
            return self._state
        if ok:
            self._consecutive = 0
        else:
            self._consecutive += 1
        self._window.append((now, ok))
        if self.window_type == "count":
            while len(self._window) > self.window_size:
                self._window.popleft()
        if not ok:
            reason = self._trip_reason(now)
            if reason is not None:
                self._open(now, now + self.reset_timeout, reason)
        return self._state

    def force_open(self, until: float, now: float, reason: str = "forced open") -> None:
        """Open at ``now`` until ``until`` whatever the counters say (e.g. the exchange banned us).

        An already OPEN breaker is only ever extended, never shortened.
        """
        if self._state is BreakerState.OPEN and self._retry_at >= until:
            return
        self._open(now, max(until, now), reason)

    def ban(self, exc: Banned, now: float) -> None:
        """Open for the length of the ban in ``exc``.

        ``exc.until`` is read on the caller's clock; the open spell never exceeds ``exc.duration`` from
        ``now``, so a clock that is not the wall clock (a test's virtual time) still gets the ban's length.
        """
        self.force_open(min(exc.until, now + exc.duration), now, f"banned for {exc.duration:g}s")

    # ---- internals -----------------------------------------------------------------------------------

    def _trip_reason(self, now: float) -> str | None:
        if self.failure_threshold is not None and self._consecutive >= self.failure_threshold:
            return f"{self._consecutive} consecutive failures"
        if self.failure_rate is not None:
            share = self.failure_share(now)
            if share is not None and share >= self.failure_rate:
                return f"failure rate {share:.0%} over {len(self._window)} calls"
        return None

    def _expire(self, now: float) -> None:
        if self.window_type == "time":
            horizon = now - self.window_size
            window = self._window
            while window and window[0][0] <= horizon:
                window.popleft()

    def _reset_counts(self) -> None:
        self._consecutive = 0
        self._trials = 0
        self._window.clear()

    def _open(self, now: float, retry_at: float, reason: str) -> None:
        self._reset_counts()
        self._retry_at = retry_at
        self._move(BreakerState.OPEN, now, reason, retry_at)

    def _move(self, state: BreakerState, at: float, reason: str, retry_at: float | None = None) -> None:
        self._state = state
        self._since = at
        if self.on_transition is not None:
            self.on_transition(Transition(state, at, reason, retry_at))

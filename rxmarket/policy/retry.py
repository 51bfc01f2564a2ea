"""Retry decisions as pure code: which errors to retry, how long to wait, when to give up.

``ops.retry_with_backoff`` is a thin Rx shell around :class:`RetryPlanner`: on each error it asks
``planner.on_error(exc, now)`` and either schedules a resubscription after ``Retry.delay`` seconds or gives
up; on the first item after a failure it calls ``planner.on_item()``, which restores the whole budget. The
planner never reads a clock: ``now`` is always an argument, so every decision can be tested by value.

The pieces:

* :func:`is_retryable` -- the default ``retry_if``: faults of the exchange or the link are retried, faults
  of the caller and terminal verdicts are not (table below);
* :func:`retry_floor` -- the least delay an error itself asks for (``RateLimited.retry_after``,
  ``CircuitOpen.retry_at``);
* :func:`classify` -- the two together: ``None`` (give up) or the floor in seconds;
* :class:`RetryBudget` -- "at most ``max_attempts`` retries", optionally "... within ``window`` seconds";
* :class:`RetryPlanner` -- budget + backoff delays (:mod:`rxmarket.policy.backoff`) + classification.

Default ``retry_if`` (:func:`is_retryable`):

=================================================  =========  ===========================================
error                                              retried?   why
=================================================  =========  ===========================================
``TransportError``, ``ServerError``, ``StaleFeed``  yes        the link or the server may recover
``RateLimited``                                    yes        after at least ``retry_after`` seconds
``ProtocolError``                                  yes        a garbled frame; a fresh connection may help
``CircuitOpen``                                    yes        not before ``retry_at``
``OSError`` / ``TimeoutError`` (not translated)    yes        network faults from below the seam
``GaveUp``                                         no         a lower layer already gave up
``Banned``                                         no         retrying during a ban lengthens the ban
``ExchangeRejected`` / ``NotFound``                no         the request is wrong; it will fail again
``ConfigError``, ``ValidationError``               no         caller faults / deliberate rejections
``BufferOverflow``                                 no         the consumer is too slow, not the source
anything else (``TypeError``, ``KeyError``, ...)   no         a bug should surface, not loop
=================================================  =========  ===========================================
"""

from __future__ import annotations

import random as _random
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple

from rxmarket.errors import (
    Banned,
    CircuitOpen,
    ConfigError,
    ExchangeRejected,
    GaveUp,
    ProtocolError,
    RateLimited,
    ServerError,
    StaleFeed,
    TransportError,
)
from rxmarket.policy.backoff import BackoffPolicy

__all__ = [
    "GiveUp",
    "Retry",
    "RetryBudget",
    "RetryEvent",
    "RetryPlanner",
    "classify",
    "is_retryable",
    "retry_floor",
]

RetryIf = Callable[[Exception], bool]

# Checked in this order: the "no" classes first, because GaveUp is a TransportError and NotFound an
# ExchangeRejected, and a subclass verdict must win over its base class.
_NEVER: tuple[type[BaseException], ...] = (GaveUp, Banned, ExchangeRejected, ConfigError)
_RETRYABLE: tuple[type[BaseException], ...] = (
    TransportError,
    ServerError,
    StaleFeed,
    RateLimited,
    ProtocolError,
    CircuitOpen,
    OSError,  # ConnectionError and TimeoutError are OSErrors (asyncio.TimeoutError too, since 3.11)
)


def is_retryable(exc: BaseException) -> bool:
    """The default ``retry_if``: ``True`` for faults a later attempt may not meet again.

    See the module docstring for the full table. ``Banned`` is never retried here: a breaker
    (``ops.circuit_break``) is the place that waits out a ban.

    Args:
        exc: the error the source ended with.

    Returns:
        Whether a resubscription may succeed.
    """
    if isinstance(exc, _NEVER):
        return False
    return isinstance(exc, _RETRYABLE)


def retry_floor(exc: BaseException, now: float) -> float:
    """The least delay, in seconds, that the error itself asks for before the next attempt.

    Args:
        exc: the error.
        now: the current time on the clock that ``CircuitOpen.retry_at`` is expressed in.

    Returns:
        ``RateLimited.retry_after``; ``CircuitOpen.retry_at - now``; else ``0.0``. Never negative.
    """
    if isinstance(exc, RateLimited):
        return max(exc.retry_after, 0.0)
    if isinstance(exc, CircuitOpen):
        return max(exc.retry_at - now, 0.0)
    return 0.0


def classify(exc: Exception, now: float = 0.0, retry_if: RetryIf = is_retryable) -> float | None:
    """Decide about one error: give up (``None``) or retry after at least the returned seconds.

    Args:
        exc: the error the source ended with.
        now: the current time (only ``CircuitOpen`` needs it).
        retry_if: the predicate that says whether to retry at all.

    Returns:
        ``None`` to give up, else the floor for the next delay (see :func:`retry_floor`).

    Raises:
        Exception: whatever ``retry_if`` raises; a broken predicate must not be mistaken for a verdict.
    """
    if not retry_if(exc):
        return None
    return retry_floor(exc, now)


class Retry(NamedTuple):
    """Resubscribe: this is retry number ``attempt`` (1-based), after ``delay`` seconds."""

    attempt: int
    delay: float


class GiveUp(NamedTuple):
    """Stop retrying and end with the last error; ``reason`` says why, for logs and status."""

    reason: str


class RetryEvent(NamedTuple):
    """One scheduled retry, as reported to ``on_retry`` callbacks and status streams.

    Attributes:
        attempt: the retry's number since the budget was last restored (1-based).
        delay: seconds until the resubscription.
        error: the error that caused it.
        at: when it was decided (scheduler time, seconds).
    """

    attempt: int
    delay: float
    error: Exception
    at: float


class RetryBudget:
    """How many retries are left: ``max_attempts`` in total, or ``max_attempts`` within ``window`` seconds.

    Without a window every retry since the last :meth:`reset` counts. With a window only retries made in
    the last ``window`` seconds count, so a source that fails now and then is retried for ever while one
    that fails in a burst is given up on.

    Args:
        max_attempts: retries allowed; ``None`` for no limit.
        window: seconds over which retries are counted; ``None`` for "since the last reset".

    Raises:
        ConfigError: on a negative ``max_attempts`` or a window that is not positive.
    """

    __slots__ = ("_times", "max_attempts", "window")

    def __init__(self, max_attempts: int | None = None, window: float | None = None) -> None:
        if max_attempts is not None and max_attempts < 0:
            raise ConfigError(f"max_attempts must be >= 0 or None, got {max_attempts!r}")
        if window is not None and not window > 0:
            raise ConfigError(f"window must be > 0 seconds or None, got {window!r}")
        if window is not None and max_attempts is None:
            raise ConfigError("window needs max_attempts: 'N retries within a window' needs an N")
        self.max_attempts = max_attempts
        self.window = window
        self._times: deque[float] = deque()

    @property
    def used(self) -> int:
        """Retries counted now (within the window, if there is one, as of the last :meth:`spend`)."""
        return len(self._times)

    def spend(self, now: float) -> bool:
        """Take one retry from the budget at time ``now``.

        Returns:
            ``True`` if the retry is allowed (and counted), ``False`` if the budget is exhausted.
        """
        times = self._times
        if self.window is not None:
            horizon = now - self.window
            while times and times[0] <= horizon:
                times.popleft()
        if self.max_attempts is not None and len(times) >= self.max_attempts:
            return False
        if self.max_attempts is not None:  # an unlimited budget need not remember anything
            times.append(now)
        return True

    def reset(self) -> None:
        """Restore the whole budget (the source delivered again)."""
        self._times.clear()


class RetryPlanner:
    """Every decision of one retrying subscription: classify, charge the budget, pick the delay.

    Args:
        backoff: the delay sequence's shape; a fresh sequence starts after every :meth:`on_item`.
        budget: how many retries are allowed.
        retry_if: which errors to retry (default :func:`is_retryable`).
        rng: the jitter's random source; default a ``random.Random(backoff.seed)``.
    """

    __slots__ = ("_attempt", "_delays", "_rng", "backoff", "budget", "retry_if")

    def __init__(
        self,
        backoff: BackoffPolicy,
        budget: RetryBudget,
        retry_if: RetryIf = is_retryable,
        rng: _random.Random | None = None,
    ) -> None:
        self.backoff = backoff
        self.budget = budget
        self.retry_if = retry_if
        # One generator for the planner's lifetime, so that restarting the delay sequence after a healthy
        # spell does not replay the same jitter draws.
        self._rng = rng if rng is not None else _random.Random(backoff.seed)
        self._delays: Iterator[float] | None = None
        self._attempt = 0

    @property
    def failing(self) -> bool:
        """``True`` between an error and the next item: the budget is partly spent."""
        return self._attempt > 0

    def on_error(self, exc: Exception, now: float) -> Retry | GiveUp:
        """Decide what to do about ``exc``, which ended the current subscription at time ``now``.

        Raises:
            Exception: whatever ``retry_if`` raises.
        """
        floor = classify(exc, now, self.retry_if)
        if floor is None:
            return GiveUp(f"{type(exc).__name__} is not retried")
        if not self.budget.spend(now):
            within = f" within {self.budget.window:g}s" if self.budget.window is not None else ""
            return GiveUp(f"{self.budget.max_attempts} retries{within} used up")
        if self._delays is None:
            self._delays = self.backoff.delays(self._rng)
        self._attempt += 1
        # The server's "wait at least" wins over the cap: retrying earlier would only be refused again.
        return Retry(self._attempt, max(next(self._delays), floor))

    def on_item(self) -> None:
        """The source delivered: restore the budget and restart the delay sequence."""
        self.budget.reset()
        self._delays = None
        self._attempt = 0

"""``retry_with_backoff``: resubscribe after an error, waiting longer each time.

RxPY's ``retry`` resubscribes at once; this one waits ``initial``, ``initial * multiplier``, ... (capped at
``max_delay``, spread by a seeded ``jitter``), honours ``RateLimited.retry_after`` as a floor, stops after
``max_attempts`` retries (optionally "within ``window`` seconds") and restores its budget as soon as the
source delivers again. The decisions live in :mod:`rxmarket.policy.retry`; this module only subscribes,
schedules and forwards.

Marble diagram (``initial=5, multiplier=2, max_attempts=3``; ``^`` subscribe, ``x`` error; the source
fails 20 s after each subscription; pinned by ``tests/unit/operators/test_retry.py``)::

    time    200      220  225      245      255      275          295      315
    source  ^--------x    ^--------x        ^--------x            ^--------x
                     <-5->         <--10--->         <----20----->
    output  ---------------------------------------------------------------x   the last error

An item between errors restores the budget: with a source ``-a-x`` the delay stays at ``initial`` for ever.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import Any, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable, SingleAssignmentDisposable

from rxmarket._scheduler import default_scheduler
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.policy.retry import GiveUp, RetryBudget, RetryEvent, RetryPlanner, is_retryable

__all__ = ["retry_with_backoff"]

_T = TypeVar("_T")


def retry_with_backoff(
    *,
    initial: float = 0.5,
    max_delay: float = 30.0,
    multiplier: float = 2.0,
    jitter: float = 0.0,
    max_attempts: int | None = 5,
    retry_if: Callable[[Exception], bool] | None = None,
    scheduler: abc.SchedulerBase | None = None,
    window: float | None = None,
    immediate_first: bool = False,
    seed: int | None = None,
    rng: _random.Random | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Resubscribe to the source after an error, with exponential backoff and jitter.

    Retry ``n`` (1-based since the source last delivered) waits ``min(initial * multiplier**(n-1),
    max_delay)``, spread by ``±jitter`` of itself, and never less than what the error asks for
    (``RateLimited.retry_after``, ``CircuitOpen.retry_at``), even above ``max_delay``. The first item after
    an error restores the whole budget and restarts the delays at ``initial``. When an error is not
    retryable, or the budget is used up, the output ends with that last error, unchanged.

    Args:
        initial: the delay before the first retry, seconds (``0`` after it if ``immediate_first``).
        max_delay: the cap on the backoff delay (not on a floor the error asks for).
        multiplier: growth between consecutive delays (``>= 1``).
        jitter: relative spread in ``[0, 1]``; draws come from ``rng``, or ``random.Random(seed)`` made
            afresh for every subscription, so a seeded sequence is the same on every run.
        max_attempts: retries allowed (``None``: no limit); the first subscription is not a retry.
        retry_if: which errors to retry. The default,
            :func:`rxmarket.policy.retry.is_retryable`, retries network, server, rate-limit, stale-feed,
            protocol and circuit-open errors and never ``Banned``, ``NotFound`` / ``ExchangeRejected``,
            ``ConfigError``, ``ValidationError``, ``GaveUp`` or programming errors. If ``retry_if`` raises,
            the output ends with *that* error.
        scheduler: times the delays; default the subscribe-time scheduler, else the running loop's.
        window: count only the retries of the last ``window`` seconds against ``max_attempts``
            ("N failures within a window").
        immediate_first: retry once at once before backing off (a blip is often over at once).
        seed: seeds the jitter (ignored when ``rng`` is given).
        rng: a random source for the jitter, shared by every subscription.
        on_retry: called with a :class:`~rxmarket.policy.retry.RetryEvent` for every scheduled retry, e.g.
            to count retries or publish them on a status stream. If it raises, the output ends with that
            error.

    Returns:
        An operator for ``Observable.pipe``.

    Raises:
        ConfigError: at once, on knobs that make no sense (negative delays, ``jitter`` outside ``[0, 1]``,
            a ``window`` without ``max_attempts`` ...).
    """
    backoff = BackoffPolicy(
        initial=initial,
        multiplier=multiplier,
        max_delay=max_delay,
        jitter=jitter,
        immediate_first=immediate_first,
        seed=seed,
    )
    RetryBudget(max_attempts, window)  # check the budget's knobs now, not at the first subscription
    predicate = retry_if if retry_if is not None else is_retryable

    def _retry(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = default_scheduler(scheduler if scheduler is not None else scheduler_)
            planner = RetryPlanner(backoff, RetryBudget(max_attempts, window), predicate, rng)
            subscription = SerialDisposable()
            timer = SerialDisposable()
            disposed = False

            def on_next_after_error(value: _T) -> None:
                if planner.failing:
                    planner.on_item()
                observer.on_next(value)

            def on_error(exc: Exception) -> None:
                now = sched.to_seconds(sched.now)
                try:
                    decision = planner.on_error(exc, now)
                    if isinstance(decision, GiveUp):
                        observer.on_error(exc)
                        return
                    if on_retry is not None:
                        on_retry(RetryEvent(decision.attempt, decision.delay, exc, now))
                except Exception as err:  # a user function (retry_if, on_retry) failed: report, not swallow
                    observer.on_error(err)
                    return
                timer.disposable = sched.schedule_relative(decision.delay, resubscribe)

            def resubscribe(_: abc.SchedulerBase, __: Any = None) -> None:
                if not disposed:
                    subscribe_source(on_next_after_error)

            def subscribe_source(on_next: Callable[[_T], None]) -> None:
                inner = SingleAssignmentDisposable()
                subscription.disposable = inner
                inner.disposable = source.subscribe(
                    on_next, on_error, observer.on_completed, scheduler=scheduler_
                )

            def dispose() -> None:
                nonlocal disposed
                disposed = True

            # The first subscription forwards items straight through: nothing to restore until an error.
            subscribe_source(observer.on_next)
            return CompositeDisposable(Disposable(dispose), timer, subscription)

        return Observable(subscribe)

    return _retry

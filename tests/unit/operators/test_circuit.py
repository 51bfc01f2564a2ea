"""ops.circuit_break: each transition and each subscribe/dispose of primary and fallback, in virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import reactivex
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.coldobservable import ColdObservable
from reactivex.testing.subscription import Subscription

from rxmarket import ops
from rxmarket.errors import Banned, CircuitOpen, ConfigError, NotFound, ServerError
from rxmarket.operators._circuit import CircuitBreaker
from rxmarket.policy.breaker import BreakerState, Transition

on_next, on_error, on_completed = ReactiveTest.on_next, ReactiveTest.on_error, ReactiveTest.on_completed
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
ERR = ServerError(503)


def in_turn(*sources: ColdObservable[Any]) -> reactivex.Observable[Any]:
    """An observable whose n-th subscription goes to the n-th source (a primary that changes over time)."""
    it: Iterator[ColdObservable[Any]] = iter(sources)
    return reactivex.defer(lambda _: next(it))


def states_of(op: Any) -> list[Transition]:
    log: list[Transition] = []
    op.states.subscribe(log.append)
    return log


def subscribe_at(scheduler: TestScheduler, when: float, observable: reactivex.Observable[Any]) -> Any:
    """Subscribe a recording observer at `when`; return the observer."""
    observer = scheduler.create_observer()

    def action(*_: Any) -> None:
        observer.subscription = observable.subscribe(observer, scheduler=scheduler)

    scheduler.schedule_absolute(when, action)
    return observer


def test_closed_is_a_pass_through() -> None:
    """While CLOSED the primary's items and completion reach the output; no transition happens."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(5, "a"), on_next(10, "b"), on_completed(15))
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50)
    log = states_of(op)
    results = scheduler.start(lambda: xs.pipe(op))
    assert results.messages == [on_next(205, "a"), on_next(210, "b"), on_completed(215)]
    assert xs.subscriptions == [Subscription(200, 215)]
    assert log == []


def test_opening_without_fallback_errors_with_circuit_open() -> None:
    """The failure that opens the breaker ends the output with CircuitOpen(retry_at), caused by the error."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(5, "a"), on_error(10, ERR))
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50)
    log = states_of(op)
    results = scheduler.start(lambda: xs.pipe(op))
    error = results.messages[1].value.exception
    assert results.messages[0] == on_next(205, "a")
    assert results.messages[1].time == 210
    assert isinstance(error, CircuitOpen)
    assert (error.retry_at, error.__cause__) == (260.0, ERR)
    assert xs.subscriptions == [Subscription(200, 210)]
    assert log == [Transition(OPEN, 210.0, "1 consecutive failures", 260.0)]


def test_open_fails_fast_then_half_open_lets_a_trial_through() -> None:
    """While OPEN a subscription errors at once without touching the primary; after retry_at it is a trial."""
    scheduler = TestScheduler()
    fail = scheduler.create_cold_observable(on_error(10, ERR))
    trial = scheduler.create_cold_observable(on_next(3, "ok"))
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50)
    log = states_of(op)
    observable = in_turn(fail, trial).pipe(op)
    first = subscribe_at(scheduler, 200, observable)
    second = subscribe_at(scheduler, 230, observable)
    third = subscribe_at(scheduler, 270, observable)
    scheduler.start()
    assert first.messages[0].time == 210
    assert len(second.messages) == 1
    assert second.messages[0].time == 230
    assert second.messages[0].value.exception.retry_at == 260.0
    assert third.messages == [on_next(273, "ok")]
    assert fail.subscriptions == [Subscription(200, 210)]
    assert trial.subscriptions == [Subscription(270)]
    assert log == [
        Transition(OPEN, 210.0, "1 consecutive failures", 260.0),
        Transition(HALF_OPEN, 260.0, "open time elapsed"),
        Transition(CLOSED, 273.0, "trial succeeded"),
    ]


def test_fallback_takes_over_and_primary_returns_after_trial() -> None:
    """Open: switch to the fallback at once; at retry_at trial the primary; its first item closes the
    breaker, disposes the fallback and is itself delivered."""
    scheduler = TestScheduler()
    primary1 = scheduler.create_cold_observable(on_next(5, "p1"), on_error(10, ERR))
    primary2 = scheduler.create_cold_observable(on_next(3, "p2"), on_next(8, "p3"))
    fallback = scheduler.create_cold_observable(
        on_next(5, "f1"), on_next(25, "f2"), on_next(45, "f3"), on_next(65, "f4")
    )
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50, fallback=fallback)
    log = states_of(op)
    results = scheduler.start(lambda: in_turn(primary1, primary2).pipe(op))
    assert results.messages == [
        on_next(205, "p1"),
        on_next(215, "f1"),
        on_next(235, "f2"),
        on_next(255, "f3"),
        on_next(263, "p2"),
        on_next(268, "p3"),
    ]
    assert primary1.subscriptions == [Subscription(200, 210)]
    assert fallback.subscriptions == [Subscription(210, 263)]
    assert primary2.subscriptions == [Subscription(260, 1000)]
    assert log == [
        Transition(OPEN, 210.0, "1 consecutive failures", 260.0),
        Transition(HALF_OPEN, 260.0, "open time elapsed"),
        Transition(CLOSED, 263.0, "trial succeeded"),
    ]


def test_failed_trial_reopens_and_fallback_keeps_running() -> None:
    """A trial error re-opens the breaker for another reset_timeout; the fallback is never interrupted."""
    scheduler = TestScheduler()
    primary1 = scheduler.create_cold_observable(on_error(10, ERR))
    primary2 = scheduler.create_cold_observable(on_error(2, ERR))
    primary3 = scheduler.create_cold_observable(on_next(3, "p"))
    fallback = scheduler.create_cold_observable(on_next(5, "f"))
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50, fallback=fallback)
    log = states_of(op)
    results = scheduler.start(lambda: in_turn(primary1, primary2, primary3).pipe(op))
    assert results.messages == [on_next(215, "f"), on_next(315, "p")]
    assert primary2.subscriptions == [Subscription(260, 262)]
    assert primary3.subscriptions == [Subscription(312, 1000)]
    assert fallback.subscriptions == [Subscription(210, 315)]
    assert [(t.state, t.at, t.retry_at) for t in log] == [
        (OPEN, 210.0, 260.0),
        (HALF_OPEN, 260.0, None),
        (OPEN, 262.0, 312.0),
        (HALF_OPEN, 312.0, None),
        (CLOSED, 315.0, None),
    ]


def test_below_threshold_errors_pass_through_to_retry() -> None:
    """With retry downstream, errors below the threshold are retried; the third opens the breaker and
    retry waits until retry_at (CircuitOpen's floor) for the trial."""
    scheduler = TestScheduler()
    errors = [scheduler.create_cold_observable(on_error(5, ERR)) for _ in range(3)]
    ok = scheduler.create_cold_observable(on_next(1, "x"))
    op = ops.circuit_break(failure_threshold=3, reset_timeout=100)
    log = states_of(op)
    retry = ops.retry_with_backoff(initial=10, multiplier=1, max_delay=10, max_attempts=None)
    results = scheduler.start(lambda: in_turn(*errors, ok).pipe(op, retry))
    assert [e.subscriptions for e in errors] == [
        [Subscription(200, 205)],
        [Subscription(215, 220)],
        [Subscription(230, 235)],
    ]
    assert ok.subscriptions == [Subscription(335, 1000)]
    assert results.messages == [on_next(336, "x")]
    assert [(t.state, t.at) for t in log] == [(OPEN, 235.0), (HALF_OPEN, 335.0), (CLOSED, 336.0)]


def test_item_resets_consecutive_failures() -> None:
    """An item between errors restarts the count: two failures in a row are needed after it."""
    scheduler = TestScheduler()
    a = scheduler.create_cold_observable(on_error(5, ERR))
    b = scheduler.create_cold_observable(on_next(2, "b"), on_error(5, ERR))
    c = scheduler.create_cold_observable(on_error(5, ERR))
    op = ops.circuit_break(failure_threshold=2, reset_timeout=100)
    log = states_of(op)
    retry = ops.retry_with_backoff(initial=10, multiplier=1, max_delay=10, max_attempts=1)
    scheduler.start(lambda: in_turn(a, b, c).pipe(op, retry))
    assert [x.subscriptions for x in (a, b, c)] == [
        [Subscription(200, 205)],
        [Subscription(215, 220)],
        [Subscription(230, 235)],
    ]
    assert log[0] == Transition(OPEN, 235.0, "2 consecutive failures", 335.0)


def test_failure_rate_rule_opens() -> None:
    """failure_rate=0.5 over 2 calls: one item then one error is a 50 % failure rate."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(2, "a"), on_error(5, ERR))
    op = ops.circuit_break(failure_rate=0.5, window_size=2, minimum_calls=2, reset_timeout=10)
    log = states_of(op)
    scheduler.start(lambda: xs.pipe(op))
    assert xs.subscriptions == [Subscription(200, 205)]
    assert log == [Transition(OPEN, 205.0, "failure rate 50% over 2 calls", 215.0)]


def test_banned_forces_open_until_the_ban_ends() -> None:
    """Banned opens the breaker at once until `until`, whatever the threshold; the trial comes then."""
    scheduler = TestScheduler()
    banned = Banned(until=500.0, duration=300.0)
    primary1 = scheduler.create_cold_observable(on_error(10, banned))
    primary2 = scheduler.create_cold_observable(on_next(1, "p"))
    fallback = scheduler.create_cold_observable(on_next(1, "f"))
    op = ops.circuit_break(failure_threshold=5, reset_timeout=10, fallback=fallback)
    log = states_of(op)
    results = scheduler.start(lambda: in_turn(primary1, primary2).pipe(op))
    assert log[0] == Transition(OPEN, 210.0, "banned for 300s", 500.0)
    assert primary1.subscriptions == [Subscription(200, 210)]
    assert primary2.subscriptions == [Subscription(500, 1000)]
    assert fallback.subscriptions == [Subscription(210, 501)]
    assert results.messages == [on_next(211, "f"), on_next(501, "p")]


def test_uncounted_errors_pass_through_untouched() -> None:
    """A caller fault (NotFound) ends the output as is; the breaker stays CLOSED; no fallback."""
    scheduler = TestScheduler()
    error = NotFound(404, "Code not found", 404)
    xs = scheduler.create_cold_observable(on_error(10, error))
    fallback = scheduler.create_cold_observable(on_next(1, "f"))
    op = ops.circuit_break(failure_threshold=1, fallback=fallback)
    log = states_of(op)
    results = scheduler.start(lambda: xs.pipe(op))
    assert results.messages == [on_error(210, error)]
    assert (fallback.subscriptions, log, op.breaker.state) == ([], [], CLOSED)


def test_failure_if_that_raises_is_reported() -> None:
    """An error inside failure_if ends the output with that error."""
    scheduler = TestScheduler()
    bug = LookupError("predicate bug")

    def broken(exc: Exception) -> bool:
        raise bug

    xs = scheduler.create_cold_observable(on_error(10, ERR))
    results = scheduler.start(lambda: xs.pipe(ops.circuit_break(failure_if=broken)))
    assert results.messages == [on_error(210, bug)]
    assert xs.subscriptions == [Subscription(200, 210)]


def test_fallback_error_ends_the_output() -> None:
    """An error of the fallback ends the output; the primary is not tried again later."""
    scheduler = TestScheduler()
    fb_error = ServerError(500, "REST down too")
    primary = scheduler.create_cold_observable(on_error(10, ERR))
    fallback = scheduler.create_cold_observable(on_error(5, fb_error))
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50, fallback=fallback)
    results = scheduler.start(lambda: primary.pipe(op))
    assert results.messages == [on_error(215, fb_error)]
    assert primary.subscriptions == [Subscription(200, 210)]
    assert fallback.subscriptions == [Subscription(210, 215)]


def test_completed_fallback_leaves_output_waiting_for_primary() -> None:
    """A fallback that completes does not end the output; the primary takes over after the trial."""
    scheduler = TestScheduler()
    primary1 = scheduler.create_cold_observable(on_error(10, ERR))
    primary2 = scheduler.create_cold_observable(on_next(1, "p"))
    fallback = scheduler.create_cold_observable(on_next(1, "last known"), on_completed(2))
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50, fallback=fallback)
    results = scheduler.start(lambda: in_turn(primary1, primary2).pipe(op))
    assert results.messages == [on_next(211, "last known"), on_next(261, "p")]
    assert fallback.subscriptions == [Subscription(210, 212)]
    assert primary2.subscriptions == [Subscription(260, 1000)]


def test_dispose_while_open_disposes_fallback_and_cancels_trial() -> None:
    """Disposing during the open spell disposes the fallback then; no trial subscription follows."""
    scheduler = TestScheduler()
    primary = scheduler.create_cold_observable(on_error(10, ERR))
    fallback = scheduler.create_cold_observable(on_next(5, "f"))
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50, fallback=fallback)
    scheduler.start(lambda: primary.pipe(op), disposed=240)
    assert fallback.subscriptions == [Subscription(210, 240)]
    assert primary.subscriptions == [Subscription(200, 210)]
    assert op.breaker._waiters == []  # the disposed subscription no longer listens to the breaker


def test_subscribers_share_the_breaker() -> None:
    """A second subscriber arriving while OPEN starts on the fallback; when the first one's trial closes
    the breaker, the second switches to the primary on its first item."""
    scheduler = TestScheduler()
    fail = scheduler.create_cold_observable(on_error(10, ERR))
    ok_a = scheduler.create_cold_observable(on_next(3, "pa"))
    ok_b = scheduler.create_cold_observable(on_next(3, "pb"))
    fallback = scheduler.create_cold_observable(on_next(1, "f"))
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50, fallback=fallback)
    observable = in_turn(fail, ok_a, ok_b).pipe(op)
    a = subscribe_at(scheduler, 200, observable)
    b = subscribe_at(scheduler, 230, observable)
    scheduler.start()
    assert fallback.subscriptions == [Subscription(210, 263), Subscription(230, 266)]
    assert ok_a.subscriptions == [Subscription(260)]
    assert ok_b.subscriptions == [Subscription(263)]
    assert a.messages == [on_next(211, "f"), on_next(263, "pa")]
    assert b.messages == [on_next(231, "f"), on_next(266, "pb")]


def test_disposed_trial_gives_its_permit_to_a_waiting_subscriber() -> None:
    """A trial disposed before any outcome releases its permit; a subscriber waiting on the fallback
    takes the trial at that tick."""
    scheduler = TestScheduler()
    fail = scheduler.create_cold_observable(on_error(10, ERR))
    silent = scheduler.create_cold_observable()
    ok = scheduler.create_cold_observable(on_next(1, "p"))
    fallback = scheduler.create_cold_observable()
    op = ops.circuit_break(failure_threshold=1, reset_timeout=50, fallback=fallback)
    observable = in_turn(fail, silent, ok).pipe(op)
    a = subscribe_at(scheduler, 200, observable)
    b = subscribe_at(scheduler, 230, observable)
    scheduler.schedule_absolute(270, lambda *_: a.subscription.dispose())
    scheduler.start()
    assert silent.subscriptions == [Subscription(260, 270)]
    assert ok.subscriptions == [Subscription(270)]
    assert b.messages == [on_next(271, "p")]


def test_breaker_can_be_shared_between_operators() -> None:
    """Two operators given one CircuitBreaker trip together."""
    scheduler = TestScheduler()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=50)
    failing = scheduler.create_cold_observable(on_error(10, ERR))
    other = scheduler.create_cold_observable(on_next(1, "never subscribed"))
    first = subscribe_at(scheduler, 200, failing.pipe(ops.circuit_break(breaker=breaker)))
    second = subscribe_at(scheduler, 220, other.pipe(ops.circuit_break(breaker=breaker)))
    scheduler.start()
    assert isinstance(first.messages[0].value.exception, CircuitOpen)
    assert isinstance(second.messages[0].value.exception, CircuitOpen)
    assert failing.subscriptions == [Subscription(200, 210)]
    assert other.subscriptions == []


def test_breaker_with_knobs_is_a_config_error() -> None:
    """Knobs given together with breaker= are refused (they would be silently ignored)."""
    with pytest.raises(ConfigError, match="failure_threshold"):
        ops.circuit_break(breaker=CircuitBreaker(), failure_threshold=3)


def test_bad_knobs_fail_at_build_time() -> None:
    """Nonsense knobs raise ConfigError when the operator is made."""
    with pytest.raises(ConfigError, match="reset_timeout"):
        ops.circuit_break(reset_timeout=-1)


async def test_fallback_and_recovery_on_the_asyncio_loop() -> None:
    """Without a scheduler the open spell is timed by the running loop; the output recovers."""
    calls = 0

    def primary(_: Any) -> reactivex.Observable[str]:
        nonlocal calls
        calls += 1
        return reactivex.throw(ERR) if calls == 1 else reactivex.of("p")

    done = asyncio.get_running_loop().create_future()
    items: list[str] = []
    op = ops.circuit_break(failure_threshold=1, reset_timeout=0.001, fallback=reactivex.of("f"))
    reactivex.defer(primary).pipe(op).subscribe(
        items.append, done.set_exception, lambda: done.set_result(None)
    )
    await asyncio.wait_for(done, timeout=5)
    assert (items, calls) == (["f", "p"], 2)

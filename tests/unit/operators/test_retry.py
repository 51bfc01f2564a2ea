"""ops.retry_with_backoff: marble tests in virtual time pinning every resubscription's tick."""

from __future__ import annotations

import asyncio
import random
from itertools import accumulate, islice
from typing import Any

import pytest
import reactivex
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.subscription import Subscription

from rxmarket import ops
from rxmarket.errors import Banned, ConfigError, NotFound, RateLimited, ServerError
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.policy.retry import RetryEvent

on_next, on_error, on_completed = ReactiveTest.on_next, ReactiveTest.on_error, ReactiveTest.on_completed

ERR = ServerError(503)


def test_delays_grow_until_budget_is_spent() -> None:
    """Retries wait 5, 10, 20 ticks after each error; after max_attempts the last error comes out."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(20, ERR))
    results = scheduler.start(
        lambda: xs.pipe(ops.retry_with_backoff(initial=5, multiplier=2, max_attempts=3))
    )
    assert xs.subscriptions == [
        Subscription(200, 220),
        Subscription(225, 245),
        Subscription(255, 275),
        Subscription(295, 315),
    ]
    assert results.messages == [on_error(315, ERR)]


def test_delay_is_capped_at_max_delay() -> None:
    """The delay stops growing at max_delay: 5, 15, 20, 20."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(10, ERR))
    scheduler.start(
        lambda: xs.pipe(ops.retry_with_backoff(initial=5, multiplier=3, max_delay=20, max_attempts=4))
    )
    starts = [s.subscribe for s in xs.subscriptions]
    assert starts == [200, 215, 240, 270, 300]


def test_items_pass_through_and_restore_budget() -> None:
    """Every item reaches the output; an item after an error restores the budget (delay back to 5)."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(10, "a"), on_error(20, ERR))
    results = scheduler.start(
        lambda: xs.pipe(ops.retry_with_backoff(initial=5, multiplier=2, max_attempts=1)), disposed=300
    )
    assert [s.subscribe for s in xs.subscriptions] == [200, 225, 250, 275]
    assert results.messages == [on_next(210, "a"), on_next(235, "a"), on_next(260, "a"), on_next(285, "a")]


def test_seeded_jitter_pins_exact_ticks() -> None:
    """With jitter and a seed, the resubscription ticks are exact and the same on every run."""

    def run() -> list[float]:
        scheduler = TestScheduler()
        xs = scheduler.create_cold_observable(on_error(1, ERR))
        op = ops.retry_with_backoff(
            initial=10, multiplier=2, max_delay=1000, jitter=0.5, seed=7, max_attempts=3
        )
        scheduler.start(lambda: xs.pipe(op))
        return [s.subscribe for s in xs.subscriptions]

    starts = run()
    # Each retry starts 1 tick (the error) + its jittered delay after the previous start.
    delays = islice(
        BackoffPolicy(initial=10, multiplier=2, max_delay=1000, jitter=0.5).delays(random.Random(7)), 3
    )
    assert starts == pytest.approx([200.0] + [200.0 + t for t in accumulate(d + 1 for d in delays)])
    assert starts == pytest.approx([200.0, 209.238328, 223.255311, 270.29269], abs=1e-6)
    assert run() == starts


def test_shared_rng_draws_continue_across_subscriptions() -> None:
    """rng= is used as given: a second subscription continues the caller's random sequence."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(1, ERR))
    op = ops.retry_with_backoff(initial=10, max_delay=100, jitter=0.5, max_attempts=1, rng=random.Random(3))
    first, second = scheduler.create_observer(), scheduler.create_observer()
    scheduler.schedule_absolute(200, lambda *_: xs.pipe(op).subscribe(first, scheduler=scheduler))
    scheduler.schedule_absolute(300, lambda *_: xs.pipe(op).subscribe(second, scheduler=scheduler))
    scheduler.start()
    draws = random.Random(3)
    expected = [10 * (1 + draws.uniform(-0.5, 0.5)) for _ in range(2)]
    starts = [s.subscribe for s in xs.subscriptions]
    assert starts == pytest.approx([200, 201 + expected[0], 300, 301 + expected[1]])


def test_rate_limited_sets_a_floor_above_max_delay() -> None:
    """RateLimited(retry_after=50) delays the next attempt by 50 even though max_delay is 20."""
    scheduler = TestScheduler()
    limited = RateLimited(50.0)
    xs = scheduler.create_cold_observable(on_error(10, limited))
    scheduler.start(
        lambda: xs.pipe(ops.retry_with_backoff(initial=5, max_delay=20, max_attempts=2)), disposed=400
    )
    assert [s.subscribe for s in xs.subscriptions] == [200, 260, 320]


@pytest.mark.parametrize(
    "error", [Banned(until=1e12, duration=60), NotFound(404, "Code not found", 404), ConfigError("bad")]
)
def test_unretryable_errors_end_output_at_once(error: Exception) -> None:
    """Bans, unknown markets and caller faults are not retried by default."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(10, error))
    results = scheduler.start(lambda: xs.pipe(ops.retry_with_backoff(initial=5)))
    assert results.messages == [on_error(210, error)]
    assert xs.subscriptions == [Subscription(200, 210)]


def test_retry_if_chooses_what_is_retried() -> None:
    """A custom retry_if overrides the default table."""
    scheduler = TestScheduler()
    error = KeyError("usually a bug")
    xs = scheduler.create_cold_observable(on_error(10, error))
    results = scheduler.start(
        lambda: xs.pipe(ops.retry_with_backoff(initial=5, max_attempts=1, retry_if=lambda e: True))
    )
    assert [s.subscribe for s in xs.subscriptions] == [200, 215]
    assert results.messages == [on_error(225, error)]


def test_retry_if_that_raises_is_reported() -> None:
    """An error inside retry_if ends the output with that error, not the source's."""
    scheduler = TestScheduler()
    bug = LookupError("predicate bug")

    def broken(exc: Exception) -> bool:
        raise bug

    xs = scheduler.create_cold_observable(on_error(10, ERR))
    results = scheduler.start(lambda: xs.pipe(ops.retry_with_backoff(retry_if=broken)))
    assert results.messages == [on_error(210, bug)]


def test_on_retry_reports_each_scheduled_retry() -> None:
    """on_retry gets (attempt, delay, error, at) for every retry, and nothing at give-up."""
    scheduler = TestScheduler()
    events: list[RetryEvent] = []
    xs = scheduler.create_cold_observable(on_error(10, ERR))
    scheduler.start(
        lambda: xs.pipe(
            ops.retry_with_backoff(initial=5, multiplier=2, max_attempts=2, on_retry=events.append)
        )
    )
    assert events == [RetryEvent(1, 5.0, ERR, 210.0), RetryEvent(2, 10.0, ERR, 225.0)]


def test_on_retry_that_raises_is_reported() -> None:
    """An error inside on_retry ends the output with that error and no resubscription happens."""
    scheduler = TestScheduler()
    bug = RuntimeError("callback bug")

    def broken(event: RetryEvent) -> None:
        raise bug

    xs = scheduler.create_cold_observable(on_error(10, ERR))
    results = scheduler.start(lambda: xs.pipe(ops.retry_with_backoff(on_retry=broken)))
    assert results.messages == [on_error(210, bug)]
    assert len(xs.subscriptions) == 1


def test_window_budget_gives_up_on_a_burst() -> None:
    """max_attempts=2 within 30 s: the third error within the window gives up."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(1, ERR))
    results = scheduler.start(
        lambda: xs.pipe(
            ops.retry_with_backoff(initial=10, multiplier=1, max_delay=10, max_attempts=2, window=30)
        )
    )
    assert [s.subscribe for s in xs.subscriptions] == [200, 211, 222]
    assert results.messages == [on_error(223, ERR)]


def test_window_budget_keeps_retrying_sparse_failures() -> None:
    """With errors 21 ticks apart, at most 2 fall in any 30 s window: retrying goes on."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(1, ERR))
    results = scheduler.start(
        lambda: xs.pipe(
            ops.retry_with_backoff(initial=20, multiplier=1, max_delay=20, max_attempts=2, window=30)
        ),
        disposed=400,
    )
    assert [s.subscribe for s in xs.subscriptions] == [200, 221, 242, 263, 284, 305, 326, 347, 368, 389]
    assert results.messages == []


def test_without_window_the_same_failures_give_up() -> None:
    """The same sparse failures without a window use up max_attempts=2."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(1, ERR))
    results = scheduler.start(
        lambda: xs.pipe(ops.retry_with_backoff(initial=20, multiplier=1, max_delay=20, max_attempts=2))
    )
    assert results.messages == [on_error(243, ERR)]


def test_immediate_first_retry() -> None:
    """immediate_first resubscribes at once after the first error, then backs off."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(10, ERR))
    scheduler.start(lambda: xs.pipe(ops.retry_with_backoff(initial=5, immediate_first=True, max_attempts=2)))
    assert [s.subscribe for s in xs.subscriptions] == [200, 210, 225]


def test_completion_passes_through_without_retry() -> None:
    """A completed source completes the output; nothing is resubscribed."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(5, 1), on_completed(10))
    results = scheduler.start(lambda: xs.pipe(ops.retry_with_backoff(initial=5)))
    assert results.messages == [on_next(205, 1), on_completed(210)]
    assert xs.subscriptions == [Subscription(200, 210)]


def test_dispose_during_delay_cancels_resubscription() -> None:
    """Disposing while a retry is pending leaves the source alone afterwards."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(10, ERR))
    scheduler.start(lambda: xs.pipe(ops.retry_with_backoff(initial=50, max_delay=50)), disposed=230)
    assert xs.subscriptions == [Subscription(200, 210)]


def test_dispose_while_subscribed_disposes_source() -> None:
    """Disposing the output disposes the current source subscription at that tick."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(10, ERR))
    scheduler.start(lambda: xs.pipe(ops.retry_with_backoff(initial=5)), disposed=220)
    assert xs.subscriptions == [Subscription(200, 210), Subscription(215, 220)]


def test_explicit_scheduler_times_the_delays() -> None:
    """A scheduler passed as an argument is used for the delays."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(10, ERR))
    op = ops.retry_with_backoff(initial=7, max_attempts=1, scheduler=scheduler)
    results = scheduler.create_observer()
    scheduler.schedule_absolute(200, lambda *_: xs.pipe(op).subscribe(results))
    scheduler.start()
    assert [s.subscribe for s in xs.subscriptions] == [200, 217]


def test_budget_is_per_subscription() -> None:
    """Two subscriptions of one operator each get their own budget and delay sequence."""
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_error(10, ERR))
    observable = xs.pipe(ops.retry_with_backoff(initial=5, multiplier=2, max_attempts=1))
    first, second = scheduler.create_observer(), scheduler.create_observer()
    scheduler.schedule_absolute(200, lambda *_: observable.subscribe(first, scheduler=scheduler))
    scheduler.schedule_absolute(300, lambda *_: observable.subscribe(second, scheduler=scheduler))
    scheduler.start()
    assert [s.subscribe for s in xs.subscriptions] == [200, 215, 300, 315]
    assert first.messages == [on_error(225, ERR)]
    assert second.messages == [on_error(325, ERR)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -1},
        {"multiplier": 0.5},
        {"jitter": 2},
        {"max_attempts": -1},
        {"window": 10, "max_attempts": None},
    ],
)
def test_bad_knobs_fail_at_build_time(kwargs: dict[str, Any]) -> None:
    """Nonsense knobs raise ConfigError when the operator is made, not when it is subscribed."""
    with pytest.raises(ConfigError):
        ops.retry_with_backoff(**kwargs)


async def test_runs_on_the_asyncio_loop_by_default() -> None:
    """Without a scheduler the delays run on the running loop; the third subscription succeeds."""
    attempts = 0

    def factory(_: Any) -> reactivex.Observable[str]:
        nonlocal attempts
        attempts += 1
        return reactivex.throw(ERR) if attempts < 3 else reactivex.of("ok")

    done = asyncio.get_running_loop().create_future()
    items: list[str] = []
    reactivex.defer(factory).pipe(ops.retry_with_backoff(initial=0.001, max_attempts=5)).subscribe(
        items.append, done.set_exception, lambda: done.set_result(None)
    )
    await asyncio.wait_for(done, timeout=5)
    assert (items, attempts) == (["ok"], 3)

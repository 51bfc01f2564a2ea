"""rxmarket.policy.breaker: every transition of the pure state machine, pinned by value."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxmarket.errors import Banned, ConfigError, NotFound, RateLimited, ServerError, ValidationError
from rxmarket.policy.breaker import Breaker, BreakerState, Transition, counts_as_failure

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def recording(**kwargs: object) -> tuple[Breaker, list[Transition]]:
    log: list[Transition] = []
    breaker = Breaker(on_transition=log.append, **kwargs)  # type: ignore[arg-type]  # knobs vary per test
    return breaker, log


def test_opens_after_consecutive_failures() -> None:
    """failure_threshold consecutive failures open the breaker, stamped with the failure's time."""
    b, log = recording(failure_threshold=3, reset_timeout=30.0)
    assert [b.record(False, t) for t in (1.0, 2.0, 3.0)] == [CLOSED, CLOSED, OPEN]
    assert log == [Transition(OPEN, 3.0, "3 consecutive failures", 33.0)]
    assert b.retry_at == 33.0


def test_success_resets_consecutive_count() -> None:
    """A success between failures starts the count again."""
    b, log = recording(failure_threshold=2)
    b.record(False, 1.0)
    b.record(True, 2.0)
    assert b.record(False, 3.0) is CLOSED
    assert b.consecutive_failures == 1
    assert log == []


def test_open_refuses_until_retry_at_then_half_open() -> None:
    """OPEN refuses; at retry_at it becomes HALF_OPEN, stamped with retry_at even if noticed later."""
    b, log = recording(failure_threshold=1, reset_timeout=10.0)
    b.record(False, 5.0)
    assert b.acquire(14.9) is False
    assert b.state(20.0) is HALF_OPEN
    assert log[-1] == Transition(HALF_OPEN, 15.0, "open time elapsed")


def test_half_open_grants_limited_trials() -> None:
    """HALF_OPEN grants half_open_trials permits at once; a released permit can be granted again."""
    b, _ = recording(failure_threshold=1, reset_timeout=10.0, half_open_trials=2)
    b.record(False, 0.0)
    assert [b.acquire(10.0), b.acquire(10.0), b.acquire(10.0)] == [True, True, False]
    b.release()
    assert b.acquire(11.0) is True


def test_trial_success_closes_and_clears_counts() -> None:
    """A trial success closes the breaker; the window and counters start empty."""
    b, log = recording(failure_threshold=2, reset_timeout=10.0)
    b.record(False, 0.0)
    b.record(False, 1.0)
    assert b.acquire(11.0) is True
    assert b.record(True, 12.0) is CLOSED
    assert log[-1] == Transition(CLOSED, 12.0, "trial succeeded")
    assert b.consecutive_failures == 0
    assert b.record(False, 13.0) is CLOSED  # one failure again is below the threshold of 2


def test_trial_failure_reopens_for_another_reset_timeout() -> None:
    """A trial failure re-opens the breaker with retry_at = now + reset_timeout."""
    b, log = recording(failure_threshold=1, reset_timeout=10.0)
    b.record(False, 0.0)
    b.acquire(10.0)
    assert b.record(False, 12.0) is OPEN
    assert log[-1] == Transition(OPEN, 12.0, "trial failed", 22.0)


def test_outcomes_while_open_are_ignored() -> None:
    """A late outcome of a subscription made before opening does not move an OPEN breaker."""
    b, log = recording(failure_threshold=1, reset_timeout=10.0)
    b.record(False, 0.0)
    assert b.record(True, 1.0) is OPEN
    assert b.record(False, 2.0) is OPEN
    assert len(log) == 1
    assert b.retry_at == 10.0


def test_failure_rate_over_count_window() -> None:
    """The rate rule waits for minimum_calls outcomes, then opens at the configured share."""
    b, log = recording(failure_threshold=None, failure_rate=0.5, window_size=4, minimum_calls=4)
    for t, ok in enumerate([True, False, True]):
        b.record(ok, float(t))
    assert b.failure_share(3.0) is None  # 3 < minimum_calls
    assert b.record(False, 3.0) is OPEN  # 2 of 4
    assert log[-1].reason == "failure rate 50% over 4 calls"


def test_count_window_keeps_only_last_outcomes() -> None:
    """A count window of N forgets outcomes older than the last N."""
    b, _ = recording(failure_threshold=None, failure_rate=0.75, window_size=4, minimum_calls=4)
    for t, ok in enumerate([False, False, True, True, True]):
        b.record(ok, float(t))
    assert b.failure_share(5.0) == 0.25  # the first failure fell out


def test_time_window_forgets_old_outcomes() -> None:
    """A time window only counts the outcomes of the last window_size seconds."""
    b, _ = recording(
        failure_threshold=None, failure_rate=0.5, window_type="time", window_size=10, minimum_calls=2
    )
    b.record(False, 0.0)
    b.record(True, 5.0)
    b.record(True, 10.5)  # the failure at 0 has left the window
    assert b.failure_share(10.5) == 0.0
    assert b.current is CLOSED


def test_either_rule_opens() -> None:
    """With both rules on, the count rule opens before the rate rule has enough calls."""
    b, log = recording(failure_threshold=2, failure_rate=0.9, minimum_calls=10)
    b.record(False, 0.0)
    assert b.record(False, 1.0) is OPEN
    assert log[-1].reason == "2 consecutive failures"


def test_ban_opens_until_its_end() -> None:
    """A Banned error opens the breaker until its `until`, on the caller's clock."""
    b, log = recording(failure_threshold=5, reset_timeout=10.0)
    b.ban(Banned(until=130.0, duration=60.0), now=100.0)
    assert log == [Transition(OPEN, 100.0, "banned for 60s", 130.0)]
    assert b.acquire(129.0) is False
    assert b.acquire(130.0) is True


def test_ban_never_exceeds_its_duration_on_a_foreign_clock() -> None:
    """An epoch `until` read on a virtual clock still opens for the ban's duration only."""
    b, _ = recording()
    b.ban(Banned(until=1.7e9, duration=60.0), now=200.0)
    assert b.retry_at == 260.0


def test_force_open_only_extends() -> None:
    """Forcing open an OPEN breaker to an earlier time changes nothing."""
    b, log = recording(failure_threshold=1, reset_timeout=100.0)
    b.record(False, 0.0)
    b.force_open(50.0, now=1.0)
    assert b.retry_at == 100.0
    b.force_open(150.0, now=2.0)
    assert (b.retry_at, len(log)) == (150.0, 2)


def test_release_outside_half_open_is_harmless() -> None:
    """release() only gives back HALF_OPEN permits."""
    b, _ = recording(failure_threshold=1, reset_timeout=1.0)
    b.release()
    b.record(False, 0.0)
    assert b.acquire(1.0) is True
    b.release()
    b.release()
    assert [b.acquire(1.0), b.acquire(1.0)] == [True, False]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": None}, "needs failure_threshold or failure_rate"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"window_type": "sliding"}, "window_type"),
        ({"window_size": 0}, "window_size"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"reset_timeout": -1}, "reset_timeout"),
        ({"half_open_trials": 0}, "half_open_trials"),
    ],
)
def test_rejects_nonsense(kwargs: dict[str, object], message: str) -> None:
    """Knobs that make no sense raise ConfigError naming the knob."""
    with pytest.raises(ConfigError, match=message):
        Breaker(**kwargs)  # type: ignore[arg-type]  # deliberately wrong values


def test_default_counted_errors() -> None:
    """Caller faults do not count; exchange and link faults do."""
    assert counts_as_failure(ServerError(502)) is True
    assert counts_as_failure(RateLimited(1.0)) is True
    assert counts_as_failure(OSError()) is True
    assert counts_as_failure(NotFound(404, "Code not found", 404)) is False
    assert counts_as_failure(ConfigError("x")) is False
    assert counts_as_failure(ValidationError("x")) is False


_ops = st.lists(
    st.tuples(
        st.sampled_from(["ok", "fail", "acquire", "release", "ban"]),
        st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
    ),
    max_size=60,
)


@given(ops=_ops, threshold=st.integers(1, 4), trials=st.integers(1, 3))
def test_invariants_hold_for_any_sequence(ops: list[tuple[str, float]], threshold: int, trials: int) -> None:
    """For any sequence of outcomes, acquires, releases and bans over advancing time: OPEN never grants
    before retry_at, HALF_OPEN never grants more than half_open_trials at once, and transitions only
    follow the documented arrows."""
    b, log = recording(failure_threshold=threshold, reset_timeout=3.0, half_open_trials=trials)
    now, granted = 0.0, 0
    for op, step in ops:
        now += step
        before = b.current
        if op == "acquire":
            opened_until = b.retry_at if before is OPEN else None
            ok = b.acquire(now)
            if opened_until is not None and now < opened_until:
                assert ok is False
            if ok and b.current is HALF_OPEN:
                granted += 1
                assert granted <= trials
        elif op == "release":
            b.release()
            granted = max(granted - 1, 0)
        elif op == "ban":
            b.ban(Banned(until=now + 2.0, duration=2.0), now)
        else:
            b.record(op == "ok", now)
        if b.current is not HALF_OPEN:
            granted = 0
    allowed = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (OPEN, OPEN), (HALF_OPEN, CLOSED), (HALF_OPEN, OPEN)}
    states = [CLOSED] + [t.state for t in log]
    assert all(pair in allowed for pair in pairwise(states))
    assert all(t.retry_at is not None and t.retry_at >= t.at for t in log if t.state is OPEN)

"""Rate limiting as pure bookkeeping: slots booked with the time passed in, waits returned exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxmarket.errors import ConfigError
from rxmarket.policy.ratelimit import RateLimiter, SlidingWindowLimiter

# -- SlidingWindowLimiter -------------------------------------------------------------------------


def test_sliding_window_first_count_slots_are_free_then_wait_a_period() -> None:
    """Upbit's message limits: 5 at once, the next 5 one second later, then two seconds later."""
    limiter = SlidingWindowLimiter([(5, 1.0), (100, 60.0)])
    waits = [limiter.acquire(0.0) for _ in range(12)]
    assert waits == [0.0] * 5 + [1.0] * 5 + [2.0] * 2


def test_sliding_window_the_tighter_of_two_limits_wins() -> None:
    """With 2/s and 3 per 10 s, the fourth slot waits for the 10 s window, not the 1 s one."""
    limiter = SlidingWindowLimiter([(2, 1.0), (3, 10.0)])
    assert [limiter.acquire(0.0) for _ in range(4)] == [0.0, 0.0, 1.0, 10.0]


def test_sliding_window_slots_free_up_as_time_passes() -> None:
    """Once a period has passed since a slot, a new one is free at once."""
    limiter = SlidingWindowLimiter([(2, 1.0)])
    limiter.acquire(0.0)
    limiter.acquire(0.5)
    assert limiter.acquire(1.0) == 0.0  # the slot at 0.0 left the window (1.0 - 1.0, 1.0]
    assert limiter.acquire(1.0) == pytest.approx(0.5)  # waits for the slot at 0.5 to leave


def test_sliding_window_delay_does_not_book() -> None:
    """delay() answers how long a send would wait without taking the slot."""
    limiter = SlidingWindowLimiter([(1, 1.0)])
    assert limiter.delay(0.0) == 0.0
    assert limiter.delay(0.0) == 0.0
    assert limiter.acquire(0.0) == 0.0
    assert limiter.delay(0.25) == pytest.approx(0.75)


def test_sliding_window_later_callers_never_overtake() -> None:
    """A caller arriving after a queued one gets a slot no earlier than it."""
    limiter = SlidingWindowLimiter([(1, 1.0)])
    limiter.acquire(0.0)
    first = 0.1 + limiter.acquire(0.1)
    second = 0.2 + limiter.acquire(0.2)
    assert first == pytest.approx(1.0)
    assert second == pytest.approx(2.0)


@given(
    limits=st.lists(
        st.tuples(st.integers(1, 5), st.sampled_from([0.5, 1.0, 3.0])), min_size=1, max_size=3
    ),
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0]), min_size=1, max_size=60),
)
def test_sliding_window_never_exceeds_any_limit(limits: list[tuple[int, float]], gaps: list[float]) -> None:
    """Whatever the call pattern, no window (t - period, t] holds more than count booked slots."""
    limiter = SlidingWindowLimiter(limits)
    now = 0.0
    slots: list[float] = []
    for gap in gaps:
        now += gap
        wait = limiter.acquire(now)
        assert wait >= 0.0
        slots.append(now + wait)
    assert slots == sorted(slots)
    for count, period in limits:
        for i in range(len(slots) - count):
            assert slots[i + count] - slots[i] >= period - 1e-9


@pytest.mark.parametrize(
    "bad", [[], [(0, 1.0)], [(1, 0.0)], [(1, -1.0)], [(True, 1.0)], [(1.5, 1.0)], [(1,)]]
)
def test_sliding_window_rejects_malformed_limits(bad: list[tuple[int, float]]) -> None:
    """A limit that cannot be honoured is a ConfigError at construction."""
    with pytest.raises(ConfigError):
        SlidingWindowLimiter(bad)


# -- RateLimiter (per group) ----------------------------------------------------------------------


def test_groups_are_paced_independently() -> None:
    """Each group has its own window: a busy "ticker" group does not slow "candles"."""
    limiter = RateLimiter(default=(2, 1.0))
    assert [limiter.acquire("ticker", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.acquire("candles", 0.0) == 0.0


def test_group_override_applies_to_that_group_only() -> None:
    """A per-group limit (Upbit's "origin": 1 per 10 s) replaces the default for that group."""
    limiter = RateLimiter(default=(10, 1.0), limits={"origin": (1, 10.0)})
    assert [limiter.acquire("origin", 0.0) for _ in range(2)] == [0.0, 10.0]
    assert [limiter.acquire("ticker", 0.0) for _ in range(2)] == [0.0, 0.0]


def test_observe_zero_remaining_fills_the_window() -> None:
    """The server says nothing is left: the next request waits until our oldest one leaves the window."""
    limiter = RateLimiter(default=(10, 1.0))
    assert limiter.acquire("ticker", 0.0) == 0.0
    limiter.observe("ticker", 0, 0.2)  # 9 foreign requests booked at 0.2
    assert limiter.acquire("ticker", 0.2) == pytest.approx(0.8)  # our request at 0.0 leaves at 1.0
    assert limiter.acquire("ticker", 0.2) == pytest.approx(1.0)  # then the foreign ones at 0.2 leave


def test_observe_counts_requests_we_did_not_make() -> None:
    """Server says 7 left of 10 after our 1 request: 2 foreign requests are booked at that moment."""
    limiter = RateLimiter(default=(10, 1.0))
    limiter.acquire("ticker", 0.0)
    limiter.observe("ticker", 7, 0.0)
    waits = [limiter.acquire("ticker", 0.0) for _ in range(8)]
    assert waits == [0.0] * 7 + [1.0]


def test_observe_never_loosens_our_own_limit() -> None:
    """A server that reports more room than our limit does not let us exceed the limit."""
    limiter = RateLimiter(default=(2, 1.0))
    limiter.observe("ticker", 50, 0.0)
    assert [limiter.acquire("ticker", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]


def test_penalise_holds_the_group_back() -> None:
    """After a 429 with retry_after=3, the group's next request waits until then; others do not."""
    limiter = RateLimiter()
    limiter.penalise("ticker", 3.0, 10.0)
    assert limiter.blocked_for("ticker", 11.0) == pytest.approx(2.0)
    assert limiter.acquire("ticker", 11.0) == pytest.approx(2.0)
    assert limiter.acquire("candles", 11.0) == 0.0


def test_penalise_all_groups() -> None:
    """A ban (group None) holds back every group, including ones not seen before."""
    limiter = RateLimiter()
    limiter.penalise(None, 60.0, 0.0)
    assert limiter.acquire("ticker", 0.0) == 60.0
    assert limiter.acquire("never-seen", 30.0) == 30.0
    assert limiter.blocked_for("orderbook", 60.0) == 0.0


def test_penalty_never_shortens_an_earlier_longer_one() -> None:
    """A shorter retry_after arriving later does not cut a running penalty short."""
    limiter = RateLimiter()
    limiter.penalise("ticker", 10.0, 0.0)
    limiter.penalise("ticker", 1.0, 1.0)
    assert limiter.blocked_for("ticker", 1.0) == 9.0


def test_rate_limiter_rejects_malformed_limits() -> None:
    """Bad default or per-group limits are ConfigErrors at construction."""
    with pytest.raises(ConfigError):
        RateLimiter(default=(0, 1.0))
    with pytest.raises(ConfigError):
        RateLimiter(limits={"x": (1, 0.0)})

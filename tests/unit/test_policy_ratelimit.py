"""Rate limiting as pure bookkeeping: slots booked with the time passed in, waits returned exactly."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxmarket.errors import ConfigError
from rxmarket.policy.ratelimit import DEFAULT_MARGIN, RateLimiter, SlidingWindowLimiter

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
    # ``now + wait`` rebuilds the booked slot up to float rounding (0.30000000000000004 + 2.8 is
    # 3.0999999999999996 while the slot is 3.1), hence the 1e-9 on both checks.
    assert all(later >= earlier - 1e-9 for earlier, later in itertools.pairwise(slots))
    for count, period in limits:
        for i in range(len(slots) - count):
            assert slots[i + count] - slots[i] >= period - 1e-9


def test_sliding_window_reset_forgets_every_slot() -> None:
    """After reset(), the full count is free again at once (a new connection starts a new count)."""
    limiter = SlidingWindowLimiter([(2, 1.0), (3, 60.0)])
    assert [limiter.acquire(0.0) for _ in range(4)] == [0.0, 0.0, 1.0, 60.0]
    limiter.reset()
    assert [limiter.acquire(0.0) for _ in range(3)] == [0.0, 0.0, 1.0]


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
    limiter = RateLimiter(default=(2, 1.0), margin=0.0)
    assert [limiter.acquire("ticker", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.acquire("candles", 0.0) == 0.0


def test_group_override_applies_to_that_group_only() -> None:
    """A per-group limit (Upbit's "origin": 1 per 10 s) replaces the default for that group."""
    limiter = RateLimiter(default=(10, 1.0), limits={"origin": (1, 10.0)}, margin=0.0)
    assert [limiter.acquire("origin", 0.0) for _ in range(2)] == [0.0, 10.0]
    assert [limiter.acquire("ticker", 0.0) for _ in range(2)] == [0.0, 0.0]


def test_the_margin_widens_every_window_by_default() -> None:
    """By default each window is 50 ms longer than the limit's period: 2 per 1.05 s, not 2 per 1 s."""
    limiter = RateLimiter(default=(2, 1.0))
    assert limiter.margin == DEFAULT_MARGIN == 0.05
    waits = [limiter.acquire("ticker", 0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 1.05, 1.05, 2.1])


@pytest.mark.parametrize("bad", [-0.01, float("nan"), True, "0.05"])
def test_a_bad_margin_is_a_config_error(bad: object) -> None:
    """A negative, NaN or non-numeric margin fails at construction, naming the option."""
    with pytest.raises(ConfigError, match="margin"):
        RateLimiter(margin=bad)  # type: ignore[arg-type]


@given(
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.1, 0.3, 1.0]), min_size=1, max_size=60),
    delays=st.lists(st.floats(0.0, 0.049), min_size=60, max_size=60),
    count=st.integers(1, 5),
)
def test_arrival_jitter_below_the_margin_never_fills_a_server_window(
    gaps: list[float], delays: list[float], count: int
) -> None:
    """A server counting arrivals in a sliding 1 s window never sees count + 1 in one window when each
    request takes 0 to 49 ms to arrive (less than the 50 ms margin), whatever the call pattern."""
    limiter = RateLimiter(default=(count, 1.0))
    now = 0.0
    arrivals: list[float] = []
    for gap, delay in zip(gaps, delays, strict=False):
        now += gap
        arrivals.append(now + limiter.acquire("ticker", now) + delay)
    arrivals.sort()
    for i in range(len(arrivals) - count):
        assert arrivals[i + count] - arrivals[i] > 1.0


def test_observe_zero_remaining_holds_the_group_a_period_from_the_answer() -> None:
    """The server says nothing is left and we know no send times: the request that got the answer
    arrived by now at the latest, so nothing goes out before now + period + margin."""
    limiter = RateLimiter(default=(10, 1.0))
    assert limiter.acquire("ticker", 0.0) == 0.0
    limiter.observe("ticker", 0, 0.2)
    assert limiter.blocked_for("ticker", 0.2) == pytest.approx(1.05)
    assert limiter.acquire("ticker", 0.2) == pytest.approx(1.05)


def test_observe_zero_remaining_holds_from_the_oldest_counted_answer() -> None:
    """Sequential requests sent at 0.0, 0.1, 0.2, answered 50 ms later, the third with nothing left: the
    first one arrived by 0.05, so the group opens at 0.05 + 1 s + margin (not a period after 0.25)."""
    limiter = RateLimiter(default=(3, 1.0))
    for sent, left in ((0.0, 2), (0.1, 1), (0.2, 0)):
        assert limiter.acquire("ticker", sent) == 0.0
        limiter.observe("ticker", left, sent + 0.05, sent=sent)
    assert limiter.acquire("ticker", 0.25) == pytest.approx(1.10 - 0.25)


def test_observe_zero_remaining_ignores_answers_sent_over_a_period_ago() -> None:
    """An answer to a request sent more than a period ago may be out of the server's window: it cannot
    tell when the window's oldest request arrived, so the hold counts from now."""
    limiter = RateLimiter(default=(3, 1.0))
    limiter.acquire("ticker", 0.0)
    limiter.observe("ticker", 2, 0.05, sent=0.0)
    limiter.acquire("ticker", 2.0)
    limiter.observe("ticker", 0, 2.05, sent=2.0)
    assert limiter.blocked_for("ticker", 2.05) == pytest.approx(1.05)


def test_observe_with_room_left_holds_nothing() -> None:
    """Answers that leave room hold nothing back: only our own window paces."""
    limiter = RateLimiter(default=(3, 1.0))
    limiter.acquire("ticker", 0.0)
    limiter.observe("ticker", 2, 0.05, sent=0.0)
    assert limiter.blocked_for("ticker", 0.05) == 0.0
    assert limiter.acquire("ticker", 0.05) == 0.0


def test_observe_counts_requests_we_did_not_make() -> None:
    """Server says 7 left of 10 after our 1 request: 2 foreign requests are booked at that moment."""
    limiter = RateLimiter(default=(10, 1.0), margin=0.0)
    limiter.acquire("ticker", 0.0)
    limiter.observe("ticker", 7, 0.0)
    waits = [limiter.acquire("ticker", 0.0) for _ in range(8)]
    assert waits == [0.0] * 7 + [1.0]


def test_observe_never_loosens_our_own_limit() -> None:
    """A server that reports more room than our limit does not let us exceed the limit."""
    limiter = RateLimiter(default=(2, 1.0), margin=0.0)
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

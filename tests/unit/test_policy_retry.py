"""rxmarket.policy.retry: classification, the retry budget and the planner, by value (time is an argument)."""

from __future__ import annotations

import random
from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxmarket.errors import (
    Banned,
    BufferOverflow,
    CircuitOpen,
    ConfigError,
    ExchangeRejected,
    GaveUp,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    StaleFeed,
    TransportError,
    ValidationError,
)
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.policy.retry import (
    GiveUp,
    Retry,
    RetryBudget,
    RetryPlanner,
    classify,
    is_retryable,
    retry_floor,
)


@pytest.mark.parametrize(
    "exc",
    [
        TransportError("reset"),
        ServerError(503),
        StaleFeed("KRW-BTC", 12.0, 10.0),
        RateLimited(1.5),
        ProtocolError("bad frame", b"{"),
        CircuitOpen(100.0),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
def test_link_and_server_faults_are_retried(exc: Exception) -> None:
    """Faults a later attempt may not meet again are retryable by default."""
    assert is_retryable(exc) is True


@pytest.mark.parametrize(
    "exc",
    [
        GaveUp(3, 10.0, None),
        Banned(until=1e9, duration=60),
        NotFound(404, "Code not found", 404),
        ExchangeRejected("INVALID_PARAM", "bad", 400),
        ConfigError("bad argument"),
        ValidationError("crossed book"),
        BufferOverflow(10),
        KeyError("bug"),
        TypeError("bug"),
    ],
)
def test_caller_faults_bans_and_bugs_are_not_retried(exc: Exception) -> None:
    """Bans, rejected requests, caller faults, terminal verdicts and bugs are not retried by default."""
    assert is_retryable(exc) is False


def test_floor_of_rate_limited_is_retry_after() -> None:
    """RateLimited asks for at least its retry_after."""
    assert retry_floor(RateLimited(7.5), now=100.0) == 7.5


def test_floor_of_circuit_open_is_time_until_retry_at() -> None:
    """CircuitOpen asks to wait until retry_at, never a negative time."""
    assert retry_floor(CircuitOpen(130.0), now=100.0) == 30.0
    assert retry_floor(CircuitOpen(90.0), now=100.0) == 0.0


def test_floor_of_other_errors_is_zero() -> None:
    """Errors that say nothing about timing ask for no floor."""
    assert retry_floor(ServerError(500), now=5.0) == 0.0


def test_classify_gives_up_when_predicate_says_no() -> None:
    """classify returns None (give up) when retry_if rejects, else the floor."""
    assert classify(RateLimited(3.0), 0.0, retry_if=lambda e: False) is None
    assert classify(RateLimited(3.0), 0.0) == 3.0


def test_classify_propagates_predicate_errors() -> None:
    """A retry_if that raises is not mistaken for a verdict."""

    def broken(exc: Exception) -> bool:
        raise LookupError("predicate bug")

    with pytest.raises(LookupError, match="predicate bug"):
        classify(ServerError(500), 0.0, retry_if=broken)


def test_budget_without_window_counts_every_retry_since_reset() -> None:
    """max_attempts retries are allowed, the next one is refused, reset restores them."""
    budget = RetryBudget(max_attempts=2)
    assert [budget.spend(t) for t in (0.0, 1000.0, 2000.0)] == [True, True, False]
    budget.reset()
    assert budget.spend(3000.0) is True
    assert budget.used == 1


def test_budget_with_window_forgets_old_retries() -> None:
    """With a window, only retries of the last `window` seconds count."""
    budget = RetryBudget(max_attempts=2, window=10.0)
    assert budget.spend(0.0) is True
    assert budget.spend(5.0) is True
    assert budget.spend(9.0) is False  # 0 and 5 are both within (−1, 9]
    assert budget.spend(10.0) is True  # 0 left the window at exactly 10
    assert budget.used == 2


def test_unlimited_budget_never_refuses() -> None:
    """max_attempts=None allows any number of retries."""
    budget = RetryBudget(None)
    assert all(budget.spend(float(t)) for t in range(1000))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": 3, "window": 0}, "window"),
        ({"max_attempts": None, "window": 5.0}, "needs max_attempts"),
    ],
)
def test_budget_rejects_nonsense(kwargs: dict[str, object], message: str) -> None:
    """Knobs that make no sense raise ConfigError naming the knob."""
    with pytest.raises(ConfigError, match=message):
        RetryBudget(**kwargs)  # type: ignore[arg-type]  # deliberately wrong values


def planner(max_attempts: int | None = None) -> RetryPlanner:
    """Delays 1, 2, 4, 8, 8, ... without jitter."""
    return RetryPlanner(BackoffPolicy(initial=1.0, multiplier=2.0, max_delay=8.0), RetryBudget(max_attempts))


def delay_of(decision: Retry | GiveUp) -> float:
    assert isinstance(decision, Retry)
    return decision.delay


def test_planner_delays_grow_and_cap() -> None:
    """Retries wait initial, initial*multiplier, ... capped at max_delay; attempts count from 1."""
    p = planner()
    decisions = [p.on_error(ServerError(500), float(t)) for t in range(6)]
    assert decisions == [
        Retry(1, 1.0),
        Retry(2, 2.0),
        Retry(3, 4.0),
        Retry(4, 8.0),
        Retry(5, 8.0),
        Retry(6, 8.0),
    ]


def test_planner_rate_limit_floor_beats_cap() -> None:
    """RateLimited.retry_after is a floor even above max_delay."""
    p = planner()
    assert p.on_error(RateLimited(20.0), 0.0) == Retry(1, 20.0)
    assert p.on_error(ServerError(500), 1.0) == Retry(2, 2.0)


def test_planner_item_restarts_sequence_and_budget() -> None:
    """on_item restores the budget and the delays start again at initial."""
    p = planner(max_attempts=2)
    p.on_error(ServerError(500), 0.0)
    p.on_error(ServerError(500), 1.0)
    assert p.failing is True
    p.on_item()
    assert p.failing is False
    assert p.on_error(ServerError(500), 2.0) == Retry(1, 1.0)


def test_planner_gives_up_when_budget_used() -> None:
    """After max_attempts retries the next error is a GiveUp saying why."""
    p = planner(max_attempts=1)
    assert p.on_error(ServerError(500), 0.0) == Retry(1, 1.0)
    decision = p.on_error(ServerError(500), 1.0)
    assert isinstance(decision, GiveUp)
    assert decision.reason == "1 retries used up"


def test_planner_gives_up_on_unretryable_without_spending() -> None:
    """A non-retryable error gives up at once and names its class."""
    p = planner(max_attempts=1)
    assert p.on_error(Banned(until=10.0, duration=5.0), 0.0) == GiveUp("Banned is not retried")
    assert p.budget.used == 0


def test_planner_jitter_is_reproducible_with_seed() -> None:
    """Two planners with the same seed draw the same jittered delays; they follow BackoffPolicy's."""
    backoff = BackoffPolicy(initial=1.0, multiplier=2.0, max_delay=100.0, jitter=0.5, seed=42)
    first = RetryPlanner(backoff, RetryBudget(None))
    second = RetryPlanner(backoff, RetryBudget(None))
    a = [delay_of(first.on_error(ServerError(500), 0.0)) for _ in range(5)]
    b = [delay_of(second.on_error(ServerError(500), 0.0)) for _ in range(5)]
    assert a == b
    assert a == list(islice(backoff.delays(random.Random(42)), 5))
    assert a != [1.0, 2.0, 4.0, 8.0, 16.0]


@given(
    steps=st.lists(st.floats(min_value=0.0, max_value=4.0, allow_nan=False), max_size=80),
    max_attempts=st.integers(0, 5),
    window=st.floats(min_value=0.5, max_value=20.0, allow_nan=False),
)
def test_window_budget_never_allows_more_than_n_per_window(
    steps: list[float], max_attempts: int, window: float
) -> None:
    """Whatever the failure times, no window of `window` seconds holds more than max_attempts granted
    retries, and a refusal only happens when the window is full."""
    budget = RetryBudget(max_attempts, window)
    now, granted = 0.0, []
    for step in steps:
        now += step
        recent = [t for t in granted if t > now - window]
        allowed = budget.spend(now)
        assert allowed == (len(recent) < max_attempts)
        if allowed:
            granted.append(now)
    for t in granted:
        assert sum(1 for u in granted if t - window < u <= t) <= max_attempts

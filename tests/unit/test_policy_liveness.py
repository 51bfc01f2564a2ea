"""Per-stream staleness: each silence reported once per episode, recovery reported on the next move."""

from __future__ import annotations

import pytest

from rxmarket.errors import ConfigError
from rxmarket.policy.liveness import StalenessTracker


def test_a_key_is_stale_once_silent_for_the_limit() -> None:
    """Silent for less than the limit: fine; for exactly the limit: stale, with how long."""
    tracker: StalenessTracker[str] = StalenessTracker(10.0)
    tracker.touch("KRW-BTC", 100.0)
    assert tracker.stale(109.9) == []
    assert tracker.stale(110.0) == [("KRW-BTC", 10.0)]


def test_each_episode_is_reported_once() -> None:
    """A key that stays silent is not reported again on later checks."""
    tracker: StalenessTracker[str] = StalenessTracker(5.0)
    tracker.touch("a", 0.0)
    assert tracker.stale(6.0) == [("a", 6.0)]
    assert tracker.stale(7.0) == []
    assert tracker.stale(100.0) == []
    assert tracker.is_stale("a")


def test_touch_reports_recovery_then_a_new_episode_can_start() -> None:
    """The first move after a stale episode returns True; a later silence is a new episode."""
    tracker: StalenessTracker[str] = StalenessTracker(5.0)
    tracker.touch("a", 0.0)
    assert tracker.touch("a", 1.0) is False  # not stale: a plain move
    tracker.stale(10.0)
    assert tracker.touch("a", 11.0) is True  # recovered
    assert tracker.touch("a", 12.0) is False
    assert not tracker.is_stale("a")
    assert tracker.stale(16.9) == []
    assert tracker.stale(17.0) == [("a", 5.0)]


def test_keys_are_tracked_independently() -> None:
    """One silent key does not make a busy one stale, and vice versa."""
    tracker: StalenessTracker[tuple[str, str]] = StalenessTracker(2.0)
    tracker.touch(("trade", "KRW-BTC"), 0.0)
    tracker.touch(("trade", "KRW-ETH"), 0.0)
    tracker.touch(("trade", "KRW-ETH"), 1.5)
    assert tracker.stale(2.5) == [(("trade", "KRW-BTC"), 2.5)]
    assert tracker.stale(3.5) == [(("trade", "KRW-ETH"), 2.0)]


def test_forget_stops_tracking() -> None:
    """A forgotten key (unsubscribed) is never reported, and forgetting an unknown key is harmless."""
    tracker: StalenessTracker[str] = StalenessTracker(1.0)
    tracker.touch("a", 0.0)
    tracker.forget("a")
    tracker.forget("never-seen")
    assert tracker.stale(10.0) == []
    assert "a" not in tracker
    assert len(tracker) == 0


def test_next_deadline_is_the_earliest_pending_staleness() -> None:
    """The next time worth checking: the oldest non-stale key's last move plus the limit."""
    tracker: StalenessTracker[str] = StalenessTracker(10.0)
    assert tracker.next_deadline() is None
    tracker.touch("a", 3.0)
    tracker.touch("b", 1.0)
    assert tracker.next_deadline() == 11.0
    tracker.stale(11.0)  # "b" goes stale and stops counting
    assert tracker.next_deadline() == 13.0
    assert tracker.last_seen("b") == 1.0
    assert tracker.last_seen("zzz") is None


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), True, "5"])
def test_limit_must_be_positive(bad: object) -> None:
    """A limit that is not a positive number is a ConfigError."""
    with pytest.raises(ConfigError):
        StalenessTracker(bad)  # type: ignore[arg-type]

"""Pure parts of the source: market placement on connections, and the trade log of the gap fill."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit._source_gapfill import TradeLog, missed_trades
from rxmarket.exchanges.upbit._source_shard import ShardPlan
from rxmarket.models import Trade


def trade(sid: int, ts: int, source: str = "websocket") -> Trade:
    return Trade(
        symbol="KRW-BTC", price=1.0, volume=1.0, ask_bid="ASK", timestamp=ts, sequential_id=sid, source=source
    )


# -- ShardPlan --------------------------------------------------------------------------------------------


def test_markets_are_packed_on_the_first_connection_with_room() -> None:
    """Two markets per connection: A, B on #0; C opens #1; more streams of A stay on #0."""
    plan = ShardPlan(max_connections=5, codes_per_connection=2)
    assert plan.place("KRW-A") == (0, True)
    assert plan.place("KRW-B") == (0, False)
    assert plan.place("KRW-C") == (1, True)
    assert plan.place("KRW-A") == (0, False)
    assert plan.connections() == {0: 2, 1: 1}


def test_when_every_connection_is_full_the_least_loaded_takes_more() -> None:
    """With max 2 connections of 1 market each, a third market joins the lighter connection."""
    plan = ShardPlan(max_connections=2, codes_per_connection=1)
    plan.place("KRW-A")
    plan.place("KRW-B")
    assert plan.place("KRW-C") == (0, False)
    assert plan.place("KRW-D") == (1, False)
    assert len(plan.connections()) == 2


def test_a_connection_is_emptied_when_its_last_stream_leaves_and_ids_are_not_reused() -> None:
    """release() reports an emptied connection; a later market opens a fresh id."""
    plan = ShardPlan(max_connections=5, codes_per_connection=10)
    plan.place("KRW-A")
    plan.place("KRW-A")
    assert plan.release("KRW-A") == (0, False)
    assert plan.release("KRW-A") == (0, True)
    assert plan.connections() == {}
    assert plan.place("KRW-B") == (1, True)


def test_forget_connection_returns_its_markets() -> None:
    """A connection that gave up takes its markets with it."""
    plan = ShardPlan(max_connections=5, codes_per_connection=2)
    for code in ("KRW-A", "KRW-B", "KRW-C"):
        plan.place(code)
    assert sorted(plan.forget_connection(0)) == ["KRW-A", "KRW-B"]
    assert plan.connection_of("KRW-A") is None
    assert plan.connection_of("KRW-C") == 1


@given(st.lists(st.sampled_from([f"KRW-M{i}" for i in range(30)]), max_size=200))
def test_never_more_connections_than_allowed(codes: list[str]) -> None:
    """However markets arrive, at most max_connections are open and each market has exactly one."""
    plan = ShardPlan(max_connections=3, codes_per_connection=4)
    for code in codes:
        plan.place(code)
        assert len(plan.connections()) <= 3
    assert sum(plan.connections().values()) == len(set(codes))


def test_plan_rejects_nonsense_sizes() -> None:
    """Zero connections or zero markets per connection cannot work."""
    with pytest.raises(ConfigError):
        ShardPlan(max_connections=0, codes_per_connection=1)
    with pytest.raises(ConfigError):
        ShardPlan(max_connections=1, codes_per_connection=0)


# -- TradeLog ---------------------------------------------------------------------------------------------


def test_missed_trades_are_the_unknown_ones_since_the_drop_oldest_first() -> None:
    """REST newest first -> missed oldest first; older than the drop or already known: left out."""
    rest = [trade(50, 105), trade(40, 104), trade(30, 100), trade(20, 100), trade(10, 99)]
    assert [t.sequential_id for t in missed_trades(rest, since=100, known={20})] == [30, 40, 50]


def test_a_fill_delivers_missed_trades_then_held_live_ones_without_duplicates() -> None:
    """Held live trades that REST also returned are delivered once, in REST's place."""
    log = TradeLog(window=16)
    assert log.admit(trade(1, 100))
    assert log.begin_fill() == 100
    assert not log.admit(trade(4, 103))  # held
    assert not log.admit(trade(5, 104))
    rest = [trade(4, 103, "rest"), trade(3, 102, "rest"), trade(2, 101, "rest"), trade(1, 100, "rest")]
    out = log.finish_fill(rest)
    assert [(t.sequential_id, t.source) for t in out] == [
        (2, "rest"), (3, "rest"), (4, "rest"), (5, "websocket"),
    ]
    assert not log.holding
    assert log.duplicates == 1


def test_a_failed_fill_still_delivers_what_was_held() -> None:
    """No REST answer: the held live trades come out, in arrival order."""
    log = TradeLog()
    log.admit(trade(1, 100))
    log.begin_fill()
    log.admit(trade(7, 107))
    log.admit(trade(8, 108))
    assert [t.sequential_id for t in log.finish_fill([])] == [7, 8]


def test_a_stream_that_saw_no_trade_has_nothing_to_fill() -> None:
    """begin_fill() without any trade delivered returns None and does not hold."""
    log = TradeLog()
    assert log.begin_fill() is None
    assert log.admit(trade(1, 1))


def test_the_dedupe_window_is_bounded() -> None:
    """Only the last `window` ids are remembered: an id older than that passes again."""
    log = TradeLog(window=3)
    for sid in (1, 2, 3, 4):
        assert log.admit(trade(sid, sid))
    assert log.admit(trade(1, 1))  # forgotten
    assert not log.admit(trade(4, 4))
    assert len(log.ids) == 3


def test_the_hold_reports_overflow_at_its_limit() -> None:
    """hold_limit live trades held: overflowing becomes true."""
    log = TradeLog(hold_limit=2)
    log.admit(trade(1, 1))
    log.begin_fill()
    log.admit(trade(2, 2))
    assert not log.overflowing
    log.admit(trade(3, 3))
    assert log.overflowing


@given(
    st.lists(st.integers(min_value=1, max_value=60), unique=True, min_size=1, max_size=60),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
)
def test_delivered_ids_are_unique_and_complete(ids: list[int], drop_at: int, back_at: int) -> None:
    """Live before a drop + REST fill + held live after it: every trade exactly once, in exchange order."""
    trades = [trade(sid, 1000 + i) for i, sid in enumerate(ids)]
    drop = min(drop_at, len(trades) - 1)
    back = min(max(back_at, drop + 1), len(trades))
    log = TradeLog(window=64)
    out = [t for t in trades[: drop + 1] if log.admit(t)]
    log.begin_fill()
    for t in trades[back:]:
        log.admit(t)  # live again (held); the ones between drop and back were missed
    rest = list(reversed(trades))  # REST sees everything so far, newest first
    out += log.finish_fill(rest)
    assert [t.sequential_id for t in out] == ids

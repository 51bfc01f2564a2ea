"""The shared-stream registry: ref-counting, the grace period, book depth views (virtual time, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex.testing import TestScheduler

from rxmarket.exchanges.upbit._source_gapfill import TradeLog
from rxmarket.exchanges.upbit._source_registry import (
    OrderbookStream,
    Registry,
    Stream,
    TradeStream,
    truncate,
)
from rxmarket.models import Orderbook, Trade


class Obs:
    def __init__(self, fail: bool = False) -> None:
        self.items: list[Any] = []
        self.errors: list[Exception] = []
        self.completed = False
        self.fail = fail

    def on_next(self, item: Any) -> None:
        if self.fail:
            raise RuntimeError("subscriber bug")
        self.items.append(item)

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def on_completed(self) -> None:
        self.completed = True


class Harness:
    """A registry whose upstream actions are recorded as (time, action, key)."""

    def __init__(self, grace: float = 5.0) -> None:
        self.scheduler = TestScheduler()
        self.log: list[tuple[float, str, tuple[str, str]]] = []
        self.reported: list[BaseException] = []
        self.registry = Registry(
            make=self.make,
            on_start=lambda s: self.log.append((self.scheduler.clock, "start", s.key)),
            on_stop=lambda s: self.log.append((self.scheduler.clock, "stop", s.key)),
            on_wire_change=lambda s: self.log.append((self.scheduler.clock, "change", s.key)),
            grace=grace,
            scheduler=self.scheduler,
        )

    def make(self, channel: str, symbol: str) -> Stream:
        if channel == "orderbook":
            return OrderbookStream(channel, symbol, self.reported.append)
        if channel == "trade":
            return TradeStream(channel, symbol, self.reported.append, TradeLog(8))
        return Stream(channel, symbol, self.reported.append)

    def at(self, time: float, action: Any) -> None:
        self.scheduler.schedule_absolute(time, lambda *_: action())


def book(levels: int) -> Orderbook:
    return Orderbook.from_levels(
        symbol="KRW-BTC",
        timestamp=1,
        asks=[(100.0 + i, 1.0 + i) for i in range(levels)],
        bids=[(99.0 - i, 2.0 + i) for i in range(levels)],
    )


def trade(sid: int, ts: int = 1000) -> Trade:
    return Trade(symbol="KRW-BTC", price=1.0, volume=1.0, ask_bid="BID", timestamp=ts, sequential_id=sid)


def test_subscribers_of_one_key_share_one_upstream_subscription() -> None:
    """Three subscribers of (ticker, KRW-BTC): one start, and every item reaches all three."""
    h = Harness()
    observers = [Obs(), Obs(), Obs()]
    subs = [h.registry.attach("ticker", "KRW-BTC", o) for o in observers]
    subs[0].stream.push("x")
    assert [entry[1:] for entry in h.log] == [("start", ("ticker", "KRW-BTC"))]
    assert [o.items for o in observers] == [["x"], ["x"], ["x"]]
    assert subs[0].stream is subs[2].stream


def test_last_dispose_stops_upstream_after_the_grace_period() -> None:
    """The stream stays subscribed for `grace` seconds after the last dispose, then stops."""
    h = Harness(grace=5.0)
    sub: list[Any] = []
    h.at(10.0, lambda: sub.append(h.registry.attach("trade", "KRW-BTC", Obs())))
    h.at(20.0, lambda: h.registry.detach(sub[0]))
    h.scheduler.start()
    assert h.log == [(10.0, "start", ("trade", "KRW-BTC")), (25.0, "stop", ("trade", "KRW-BTC"))]
    assert h.registry.streams == {}


def test_resubscribing_within_the_grace_keeps_the_upstream_subscription() -> None:
    """Subscriber churn inside the grace period causes no stop and no second start."""
    h = Harness(grace=5.0)
    subs: list[Any] = []
    h.at(10.0, lambda: subs.append(h.registry.attach("ticker", "KRW-ETH", Obs())))
    h.at(12.0, lambda: h.registry.detach(subs[0]))
    h.at(16.0, lambda: subs.append(h.registry.attach("ticker", "KRW-ETH", Obs())))
    h.at(30.0, lambda: h.registry.detach(subs[1]))
    h.scheduler.start()
    assert h.log == [(10.0, "start", ("ticker", "KRW-ETH")), (35.0, "stop", ("ticker", "KRW-ETH"))]


def test_zero_grace_stops_at_once_and_a_second_dispose_is_harmless() -> None:
    """With grace 0 the last dispose stops the stream immediately; disposing twice changes nothing."""
    h = Harness(grace=0.0)
    sub = h.registry.attach("ticker", "KRW-BTC", Obs())
    h.registry.detach(sub)
    h.registry.detach(sub)
    assert [entry[1] for entry in h.log] == ["start", "stop"]


def test_a_failing_subscriber_does_not_starve_the_others() -> None:
    """A subscriber whose on_next raises is reported; the next subscriber still gets the item."""
    h = Harness()
    bad, good = Obs(fail=True), Obs()
    sub = h.registry.attach("ticker", "KRW-BTC", bad)
    h.registry.attach("ticker", "KRW-BTC", good)
    sub.stream.push("x")
    assert good.items == ["x"]
    assert [str(e) for e in h.reported] == ["subscriber bug"]


def test_book_is_subscribed_at_the_largest_depth_and_shallow_subscribers_get_copies() -> None:
    """Depths 5 and 15: upstream at 15; the depth-5 subscriber gets 5 rows with totals recomputed."""
    h = Harness()
    shallow, deep = Obs(), Obs()
    sub = h.registry.attach("orderbook", "KRW-BTC", shallow, depth=5)
    assert sub.stream.wire_depth == 5
    h.registry.attach("orderbook", "KRW-BTC", deep, depth=15)
    assert sub.stream.wire_depth == 15
    assert [entry[1] for entry in h.log] == ["start", "change"]
    full = book(15)
    sub.stream.push(full)
    assert deep.items == [full]
    (cut,) = shallow.items
    assert len(cut.units) == 5
    assert cut.total_ask_size == pytest.approx(sum(1.0 + i for i in range(5)))
    assert cut.total_bid_size == pytest.approx(sum(2.0 + i for i in range(5)))


def test_full_depth_subscriber_means_no_depth_suffix_and_leaving_shrinks_it() -> None:
    """Depth 30 is Upbit's default (no suffix, wire_depth None); when it leaves, the depth drops back."""
    h = Harness()
    sub5 = h.registry.attach("orderbook", "KRW-BTC", Obs(), depth=5)
    sub30 = h.registry.attach("orderbook", "KRW-BTC", Obs(), depth=30)
    assert sub5.stream.wire_depth is None
    h.registry.detach(sub30)
    assert sub5.stream.wire_depth == 5
    assert [entry[1] for entry in h.log] == ["start", "change", "change"]


def test_truncate_keeps_a_book_that_is_already_short() -> None:
    """A book with fewer rows than asked is delivered as it is (no copy)."""
    h = Harness()
    obs = Obs()
    h.registry.attach("orderbook", "KRW-BTC", Obs(), depth=30)
    sub = h.registry.attach("orderbook", "KRW-BTC", obs, depth=15)
    short = book(3)
    sub.stream.push(short)
    assert obs.items[0] is short
    assert truncate(book(10), 2).units == book(10).units[:2]


def test_trade_stream_drops_a_repeated_sequential_id() -> None:
    """The same trade twice (a resent SNAPSHOT) is delivered once and counted as a duplicate."""
    h = Harness()
    obs = Obs()
    sub = h.registry.attach("trade", "KRW-BTC", obs)
    for sid in (1, 2, 2, 3, 1):
        sub.stream.push(trade(sid))
    assert [t.sequential_id for t in obs.items] == [1, 2, 3]
    assert isinstance(sub.stream, TradeStream)
    assert sub.stream.log.duplicates == 2


def test_drop_ends_subscribers_with_the_error_and_stops_without_grace() -> None:
    """drop(stream, error): each subscriber gets on_error(error) and the stream stops at once."""
    h = Harness(grace=100.0)
    a, b = Obs(), Obs()
    sub = h.registry.attach("ticker", "KRW-BTC", a)
    h.registry.attach("ticker", "KRW-BTC", b)
    error = RuntimeError("gave up")
    h.registry.drop(sub.stream, error)
    assert a.errors == [error]
    assert b.errors == [error]
    assert [entry[1] for entry in h.log] == ["start", "stop"]


def test_close_completes_every_subscriber_and_cancels_grace_timers() -> None:
    """close(): on_completed for all; a stream in its grace period never reports a stop later."""
    h = Harness(grace=5.0)
    live, gone = Obs(), Obs()
    h.registry.attach("ticker", "KRW-BTC", live)
    sub = h.registry.attach("trade", "KRW-ETH", gone)
    h.registry.detach(sub)
    h.registry.close()
    h.scheduler.advance_by(10.0)
    assert live.completed
    assert not gone.completed  # it had already left
    assert [entry[1] for entry in h.log] == ["start", "start"]


def test_a_subscriber_resubscribing_from_on_error_gets_a_fresh_stream() -> None:
    """drop(): a subscriber that re-subscribes in its on_error (Rx retry) lands on a new, started stream."""
    h = Harness(grace=100.0)
    again = Obs()

    class Retrying(Obs):
        def on_error(self, error: Exception) -> None:
            super().on_error(error)
            h.registry.attach("ticker", "KRW-BTC", again)

    sub = h.registry.attach("ticker", "KRW-BTC", Retrying())
    h.registry.drop(sub.stream, RuntimeError("gave up"))
    fresh = h.registry.streams[("ticker", "KRW-BTC")]
    assert fresh is not sub.stream
    assert [s.observer for s in fresh.subscribers] == [again]
    assert [entry[1] for entry in h.log] == ["start", "stop", "start"]


def test_a_subscriber_disposing_another_from_its_on_error_is_not_a_callback_error() -> None:
    """drop(): one subscriber's on_error disposing a sibling (merge does) reports nothing and ends both."""
    h = Harness(grace=100.0)
    b = Obs()
    subs: list[Any] = []

    class Merging(Obs):
        def on_error(self, error: Exception) -> None:
            super().on_error(error)
            h.registry.detach(subs[1])

    a = Merging()
    subs.append(h.registry.attach("ticker", "KRW-BTC", a))
    subs.append(h.registry.attach("ticker", "KRW-BTC", b))
    error = RuntimeError("gave up")
    h.registry.drop(subs[0].stream, error)
    assert h.reported == []
    assert a.errors == [error]
    assert b.errors == [error]

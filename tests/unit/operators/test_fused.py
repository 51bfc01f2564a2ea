"""The fused default chain: merge_unify -> dedupe -> validate in one item handler, same results as unfused.

Unfused reference chains put ``rx_ops.map(identity)`` between the stages, which stops them fusing.
"""

from __future__ import annotations

from typing import Any

import pytest
import reactivex
from _models import ticker as consistent_ticker
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import Observable
from reactivex import operators as rx_ops
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.subscription import Subscription

from rxmarket import ops
from rxmarket.errors import ValidationError
from rxmarket.models import Candle, Orderbook, Ticker, Trade
from rxmarket.operators._fused import Fused

on_next, on_error, on_completed = ReactiveTest.on_next, ReactiveTest.on_error, ReactiveTest.on_completed


def identity(x: Any) -> Any:
    return x


def ticker(ts: int, price: float = 100.0, symbol: str = "KRW-BTC", volume: float = 1.0) -> Ticker:
    return consistent_ticker(ts, price, symbol, trade_timestamp=ts, acc_trade_volume=volume)


def trade(seq: int, ts: int, symbol: str = "KRW-BTC", side: str = "BID") -> Trade:
    return Trade(symbol=symbol, price=100.0, volume=0.5, ask_bid=side, timestamp=ts, sequential_id=seq)


def book(ts: int, crossed: bool = False, symbol: str = "KRW-BTC") -> Orderbook:
    bid = 101.5 if crossed else 99.5
    return Orderbook.from_levels(
        symbol=symbol, timestamp=ts, asks=[(100.5, 1.0), (101.0, 2.0)], bids=[(bid, 1.0), (99.0, 2.0)]
    )


def candle(start: int, ts: int, volume: float) -> Candle:
    return Candle(
        symbol="KRW-BTC",
        unit="1m",
        start=start,
        open=100.0,
        high=101.0,
        low=99.0,
        close=100.5,
        volume=volume,
        value=volume * 100.5,
        timestamp=ts,
    )


# -------------------------------------------------------------------------------------------- when


def test_default_chain_fuses_on_two_sources_and_on_one() -> None:
    a, b = reactivex.never(), reactivex.never()
    assert isinstance(ops.merge_unify(a, b).pipe(ops.dedupe(), ops.validate()), Fused)
    assert isinstance(a.pipe(ops.merge_unify(), ops.dedupe(), ops.validate()), Fused)
    assert isinstance(ops.merge_unify(a, b).pipe(ops.dedupe()), Fused)
    assert isinstance(ops.merge_unify(a, b).pipe(ops.validate()), Fused)
    assert isinstance(ops.merge_unify(a, b, key=lambda x: x).pipe(ops.validate()), Fused)  # any merge_unify


@pytest.mark.parametrize(
    "stages",
    [
        [ops.dedupe(lambda x: x)],  # a caller's key: keyed differently from merge_unify
        [ops.dedupe(version=lambda x: x)],
        [ops.validate(), ops.dedupe()],  # dedupe after validate sees corrected items
        [rx_ops.map(identity), ops.dedupe()],
        [rx_ops.map(identity), ops.validate()],
    ],
)
def test_other_chains_do_not_fuse(stages: list[Any]) -> None:
    out = ops.merge_unify(reactivex.never()).pipe(*stages)
    if isinstance(out, Fused):  # the first stage may fuse; the last one must not have
        pytest.fail(f"{stages[-1]!r} fused")


def test_dedupe_does_not_fuse_after_a_merge_unify_with_a_callers_key() -> None:
    out = ops.merge_unify(reactivex.never(), key=lambda x: x).pipe(ops.dedupe())
    assert not isinstance(out, Fused)


# ------------------------------------------------------------------------------------ same results


def run_chain(channels: list[list[tuple[int, Any]]], build: Any) -> tuple[list[Any], list[Any]]:
    """Messages (in virtual time) of ``build(*sources)`` over cold channels of (tick, item)."""
    scheduler = TestScheduler()
    sources = [
        scheduler.create_cold_observable(
            *[on_next(tick, item) for tick, item in sorted(channel, key=lambda e: e[0])], on_completed(100)
        )
        for channel in channels
    ]
    observer = scheduler.start(lambda: build(*sources), created=0, subscribed=0, disposed=1_000)
    return observer.messages, [s.subscriptions for s in sources]


item_strategy = st.one_of(
    st.builds(
        lambda s, ts, v, p: ticker(ts, price=p, symbol=s, volume=v),
        st.sampled_from(["A", "B", "C"]),
        st.integers(1, 8),
        st.sampled_from([1.0, 2.0]),
        st.sampled_from([100.0, 101.0, -5.0]),  # -5: fails positive_prices
    ),
    st.builds(
        lambda seq, side: trade(seq, ts=seq * 3, side=side),
        st.integers(1, 6),
        st.sampled_from(["BID", "BID", "NOPE"]),  # NOPE: fails the side check
    ),
    st.builds(
        lambda ts, crossed, s: book(ts, crossed, symbol=s),
        st.integers(1, 8),
        st.booleans(),
        st.sampled_from(["A", "B"]),  # crossed: repairable
    ),
    st.builds(
        candle, st.sampled_from([60_000, 120_000]), st.integers(60_000, 60_003), st.sampled_from([1.0, 2.0])
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    channels=st.lists(
        st.lists(st.tuples(st.integers(1, 40), item_strategy), max_size=20), min_size=1, max_size=3
    ),
    max_keys=st.sampled_from([1, 2, 3, 100_000]),
    on_invalid=st.sampled_from(["drop", "correct", "error"]),
    with_dedupe=st.booleans(),
    ttl=st.sampled_from([None, 5.0]),
)
def test_property_fused_chain_equals_the_unfused_chain(
    channels: list[list[tuple[int, Any]]],
    max_keys: int,
    on_invalid: str,
    with_dedupe: bool,
    ttl: float | None,
) -> None:
    # Small key bounds on every stage: the stores evict, and each must still decide exactly as unfused.
    made: dict[bool, tuple[Any, Any, Any]] = {}

    def build(fuse: bool) -> Any:
        def chain(*sources: Observable[Any]) -> Observable[Any]:
            unify = ops.merge_unify(*sources, max_keys=max_keys)
            dedupe = ops.dedupe(max_keys=max_keys, ttl=ttl)
            check = ops.validate(on_invalid=on_invalid, max_keys=max_keys)  # type: ignore[arg-type]
            made[fuse] = (unify, dedupe, check)
            stages = [dedupe, check] if with_dedupe else [check]
            if not fuse:  # a pass-through map before each stage keeps them apart
                stages = [stage for s in stages for stage in (rx_ops.map(identity), s)]
            out = unify.pipe(*stages)
            assert isinstance(out, Fused) is fuse
            return out

        return chain

    got, got_subscriptions = run_chain(channels, build(True))
    want, want_subscriptions = run_chain(channels, build(False))
    assert got == want
    assert got_subscriptions == want_subscriptions
    (unify, dedupe, check), (unify_apart, dedupe_apart, check_apart) = made[True], made[False]
    assert unify.stats() == unify_apart.stats()
    assert dedupe.stats() == dedupe_apart.stats()
    assert check.quarantine.stats() == check_apart.quarantine.stats()
    assert check.quarantine.recent() == check_apart.quarantine.recent()


# ------------------------------------------------------------------------------------- behaviour


def test_marble_two_channels_complete_when_both_have() -> None:
    scheduler = TestScheduler()
    ws = scheduler.create_hot_observable(
        on_next(210, ticker(1)), on_next(230, ticker(2)), on_next(250, trade(7, 5)), on_completed(300)
    )
    rest = scheduler.create_hot_observable(
        on_next(220, ticker(1)), on_next(240, trade(7, 5)), on_next(260, ticker(3)), on_completed(400)
    )
    dedupe, check = ops.dedupe(), ops.validate()
    chain = ops.merge_unify(ws, rest).pipe(dedupe, check)
    assert isinstance(chain, Fused)
    observer = scheduler.start(lambda: chain)
    assert observer.messages == [
        on_next(210, ticker(1)),
        on_next(230, ticker(2)),
        on_next(240, trade(7, 5)),
        on_next(260, ticker(3)),
        on_completed(400),
    ]
    assert ws.subscriptions == [Subscription(200, 300)]
    assert rest.subscriptions == [Subscription(200, 400)]
    assert dedupe.stats().passed == 4
    assert check.quarantine.stats().passed == 4


def test_validate_error_mode_ends_the_fused_stream_and_unsubscribes_the_sources() -> None:
    scheduler = TestScheduler()
    ws = scheduler.create_hot_observable(
        on_next(210, ticker(1)), on_next(220, book(2, crossed=True)), on_next(230, ticker(3))
    )
    rest = scheduler.create_hot_observable(on_next(215, ticker(9)))
    check = ops.validate(on_invalid="error")
    observer = scheduler.start(lambda: ops.merge_unify(ws, rest).pipe(ops.dedupe(), check))
    assert [m.time for m in observer.messages] == [210, 215, 220]
    error = observer.messages[-1].value.exception
    assert isinstance(error, ValidationError)
    assert ws.subscriptions == [Subscription(200, 220)]
    assert rest.subscriptions == [Subscription(200, 220)]
    assert check.quarantine.stats().errors == 1


def test_dispose_releases_the_dedupe_store() -> None:
    scheduler = TestScheduler()
    ws = scheduler.create_hot_observable(on_next(210, trade(1, 1)), on_next(220, trade(2, 2)))
    dedupe = ops.dedupe()
    chain = ops.merge_unify(ws).pipe(dedupe, ops.validate())
    seen: list[int] = []
    subscription = chain.subscribe(lambda t: seen.append(t.sequential_id), scheduler=scheduler)
    scheduler.advance_to(230)
    assert seen == [1, 2]
    assert dedupe.stats().keys == 2
    subscription.dispose()
    assert dedupe.stats().keys == 0
    assert ws.subscriptions == [Subscription(0, 230)]


def test_fused_dedupe_ttl_reads_the_subscription_clock() -> None:
    """ttl=10 ticks (seconds). merge_unify(max_keys=1) forgets trade 1 when trade 2 comes, so the resend
    reaches dedupe, which still holds it (dropped); 17 s later dedupe has forgotten both (passed)."""
    scheduler = TestScheduler()
    ws = scheduler.create_hot_observable(
        on_next(201, trade(1, 1)),
        on_next(202, trade(2, 2)),
        on_next(203, trade(1, 1)),
        on_next(220, trade(2, 2)),
        on_next(221, trade(1, 1)),
    )
    dedupe = ops.dedupe(ttl=10.0)
    chain = ops.merge_unify(ws, max_keys=1).pipe(dedupe)
    assert isinstance(chain, Fused)
    observer = scheduler.start(lambda: chain)
    assert [(m.time, m.value.value.sequential_id) for m in observer.messages] == [
        (201, 1),
        (202, 2),
        (220, 2),
        (221, 1),
    ]
    assert dedupe.stats().dropped == 1
    assert dedupe.stats().expired == 2


def test_no_sources_completes_and_releases() -> None:
    dedupe = ops.dedupe()
    done: list[bool] = []
    ops.merge_unify().pipe(dedupe, ops.validate()).subscribe(on_completed=lambda: done.append(True))
    assert done == [True]
    assert dedupe.stats().keys == 0

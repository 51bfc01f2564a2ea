"""The async bridge: Observable -> bounded async iterator (every overflow policy), and back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler

from rxmarket.aio import OVERFLOW_POLICIES, from_async_iter, to_async_iter
from rxmarket.errors import BufferOverflow, ConfigError

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe


@dataclass(frozen=True)
class Book:
    """A stand-in for a model with a ``symbol``."""

    symbol: str
    seq: int


class Counting:
    """A source built with ``reactivex.create`` that counts subscriptions and disposals.

    The test pushes through ``observer`` (the latest subscriber).
    """

    def __init__(self) -> None:
        self.subscribed = 0
        self.disposed = 0
        self.observer: abc.ObserverBase[Any] | None = None
        self.observable: Observable[Any] = reactivex.create(self._subscribe)

    def _subscribe(self, observer: abc.ObserverBase[Any], _: abc.SchedulerBase | None = None) -> Disposable:
        self.subscribed += 1
        self.observer = observer

        def dispose() -> None:
            self.disposed += 1

        return Disposable(dispose)

    def push(self, *values: Any) -> None:
        assert self.observer is not None
        for value in values:
            self.observer.on_next(value)


async def drain(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"maxsize": 0}, "maxsize"),
        ({"maxsize": True}, "maxsize"),
        ({"maxsize": 1.5}, "maxsize"),
        ({"overflow": "block"}, "overflow"),
        ({"overflow": "error", "key": len}, "key"),
    ],
)
def test_bad_arguments_are_config_errors_at_the_call(kwargs: dict[str, Any], fragment: str) -> None:
    """maxsize < 1, an unknown policy or a key without "latest" fail at the call, naming the argument."""
    with pytest.raises(ConfigError, match=fragment):
        to_async_iter(reactivex.empty(), **kwargs)


def test_a_non_observable_is_a_config_error() -> None:
    """Passing something that is not an Observable fails at the call."""
    with pytest.raises(ConfigError, match="Observable"):
        to_async_iter([1, 2, 3])  # type: ignore[arg-type]


def test_every_documented_policy_is_accepted() -> None:
    """The four contract policies are exactly the accepted ones."""
    assert set(OVERFLOW_POLICIES) == {"error", "drop_oldest", "drop_newest", "latest"}
    for policy in OVERFLOW_POLICIES:
        assert to_async_iter(reactivex.empty(), overflow=policy).overflow == policy  # type: ignore[arg-type]


# -- delivery and lifetime ------------------------------------------------------------------------


async def test_items_arrive_in_order_and_completion_ends_the_loop() -> None:
    """Items pushed while the consumer waits arrive in order; on_completed ends `async for`."""
    subject: Subject[int] = Subject()
    it = to_async_iter(subject)
    aiter(it)  # subscribes now
    consumer = asyncio.ensure_future(drain(it))
    for i in range(5):
        subject.on_next(i)
        await asyncio.sleep(0)  # a yield (not a wait): the consumer takes each item as it comes
    subject.on_completed()
    assert await consumer == [0, 1, 2, 3, 4]
    assert (it.received, it.dropped, it.buffered) == (5, 0, 0)


async def test_subscription_starts_when_iteration_starts() -> None:
    """Building the iterator subscribes nothing; starting to iterate subscribes once."""
    source = Counting()
    it = to_async_iter(source.observable)
    assert source.subscribed == 0
    aiter(it)
    assert source.subscribed == 1
    aiter(it)
    assert source.subscribed == 1
    await it.aclose()


async def test_completion_delivers_buffered_items_first() -> None:
    """Items buffered before on_completed are all delivered, then the loop ends."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, "a"), on_next(220, "b"), on_completed(230))
    scheduler.advance_to(200)
    it = to_async_iter(xs)
    aiter(it)
    scheduler.advance_to(300)
    assert await drain(it) == ["a", "b"]
    assert xs.subscriptions == [subscribe(200, 230)]


async def test_source_error_is_raised_in_the_consumer_after_buffered_items() -> None:
    """on_error: the buffered items come first, then the consumer gets the source's exception."""
    scheduler = TestScheduler()
    boom = RuntimeError("feed exploded")
    xs = scheduler.create_hot_observable(on_next(210, 1), on_error(220, boom))
    scheduler.advance_to(200)
    it = to_async_iter(xs)
    aiter(it)
    scheduler.advance_to(300)
    assert await anext(it) == 1
    with pytest.raises(RuntimeError, match="feed exploded"):
        await anext(it)
    with pytest.raises(StopAsyncIteration):  # raised once; the iterator is finished
        await anext(it)


async def test_break_disposes_the_subscription() -> None:
    """Breaking out of `async for` disposes the upstream subscription at that moment."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, 1), on_next(220, 2), on_next(400, 3))
    scheduler.advance_to(200)
    got = []
    # start_with gives the loop a first item at once; the loop alone holds the iterator, as usual.
    async for item in to_async_iter(xs.pipe(ops.start_with(0))):
        got.append(item)
        if item == 0:
            scheduler.advance_to(250)  # 1 and 2 arrive
        else:
            break
    assert got == [0, 1]
    assert xs.subscriptions == [subscribe(200, 250)]
    scheduler.advance_to(500)
    assert xs.subscriptions == [subscribe(200, 250)]


async def test_aclose_disposes_and_ends_iteration() -> None:
    """aclose() disposes the subscription, drops the buffer, and iteration then ends."""
    source = Counting()
    it = to_async_iter(source.observable)
    aiter(it)
    source.push(1, 2, 3)
    assert await anext(it) == 1
    await it.aclose()
    assert source.disposed == 1
    assert it.buffered == 0
    with pytest.raises(StopAsyncIteration):
        await anext(it)
    await it.aclose()  # idempotent
    assert source.disposed == 1


async def test_async_with_disposes_on_exit() -> None:
    """Leaving an `async with` block disposes the subscription even without reaching the end."""
    source = Counting()
    async with to_async_iter(source.observable) as it:
        aiter(it)
        source.push("x")
        assert await anext(it) == "x"
    assert source.disposed == 1


async def test_cancelling_the_waiting_consumer_disposes() -> None:
    """A consumer task cancelled while it waits for an item disposes the subscription."""
    source = Counting()
    first = asyncio.Event()
    it = to_async_iter(source.observable)
    aiter(it)

    async def consume() -> None:
        async for _ in it:
            first.set()

    task = asyncio.ensure_future(consume())
    source.push("a")
    await first.wait()  # the consumer took "a" and waits for more
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()
    assert (source.subscribed, source.disposed) == (1, 1)


async def test_a_second_concurrent_consumer_is_refused() -> None:
    """Two tasks waiting on one iterator at once is a RuntimeError for the second (as for async
    generators); the first keeps its place."""
    subject: Subject[int] = Subject()
    it = to_async_iter(subject)
    aiter(it)
    first = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0)  # a yield: the first consumer starts waiting
    with pytest.raises(RuntimeError, match="one consumer"):
        await anext(it)
    subject.on_next(7)
    assert await first == 7


async def test_items_pushed_from_another_thread_arrive_in_order() -> None:
    """A source emitting on a foreign thread hands items to the loop, in order, without loss."""
    subject: Subject[int] = Subject()
    it = to_async_iter(subject, maxsize=10_000)
    aiter(it)

    def produce() -> None:
        for i in range(2000):
            subject.on_next(i)
        subject.on_completed()

    thread = threading.Thread(target=produce)
    thread.start()
    got = await drain(it)
    thread.join()
    assert got == list(range(2000))
    assert it.received == 2000


# -- overflow policies ----------------------------------------------------------------------------


async def test_error_policy_raises_buffer_overflow_and_disposes() -> None:
    """Under "error", the item that does not fit disposes the source; the consumer reads the buffer,
    then gets BufferOverflow."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(*(on_next(210 + i, i) for i in range(5)))
    scheduler.advance_to(200)
    it = to_async_iter(xs, maxsize=3, overflow="error")
    aiter(it)
    scheduler.advance_to(300)
    assert xs.subscriptions == [subscribe(200, 213)]  # disposed by the 4th item, at tick 213
    assert [await anext(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(BufferOverflow) as info:
        await anext(it)
    assert info.value.maxsize == 3
    assert (it.received, it.dropped, it.high_water) == (4, 1, 3)


async def test_drop_oldest_keeps_the_newest_items() -> None:
    """Under "drop_oldest", a full buffer loses its oldest item for each new one; drops are counted."""
    source = Counting()
    it = to_async_iter(source.observable, maxsize=3, overflow="drop_oldest")
    aiter(it)
    source.push(*range(10))
    source.observer.on_completed()  # type: ignore[union-attr]
    assert await drain(it) == [7, 8, 9]
    assert (it.received, it.dropped, it.high_water) == (10, 7, 3)


async def test_drop_newest_keeps_the_oldest_items() -> None:
    """Under "drop_newest", items arriving at a full buffer are dropped and counted."""
    source = Counting()
    it = to_async_iter(source.observable, maxsize=3, overflow="drop_newest")
    aiter(it)
    source.push(*range(10))
    source.observer.on_completed()  # type: ignore[union-attr]
    assert await drain(it) == [0, 1, 2]
    assert (it.received, it.dropped, it.high_water) == (10, 7, 3)


async def test_latest_keeps_the_newest_per_symbol_in_first_arrival_order() -> None:
    """Under "latest", a newer book replaces the waiting one of its symbol, which keeps its turn."""
    source = Counting()
    it = to_async_iter(source.observable, maxsize=10, overflow="latest")
    aiter(it)
    source.push(Book("A", 1), Book("B", 1), Book("A", 2), Book("C", 1), Book("A", 3))
    source.observer.on_completed()  # type: ignore[union-attr]
    assert await drain(it) == [Book("A", 3), Book("B", 1), Book("C", 1)]
    assert (it.received, it.dropped, it.high_water) == (5, 2, 3)


async def test_latest_bounds_the_number_of_waiting_keys() -> None:
    """Under "latest", maxsize bounds the keys waiting: a new key evicts the oldest waiting one."""
    source = Counting()
    it = to_async_iter(source.observable, maxsize=2, overflow="latest")
    aiter(it)
    source.push(Book("A", 1), Book("B", 1), Book("C", 1))
    source.observer.on_completed()  # type: ignore[union-attr]
    assert await drain(it) == [Book("B", 1), Book("C", 1)]
    assert (it.dropped, it.high_water) == (1, 2)


async def test_latest_without_symbol_keeps_one_item_for_the_stream() -> None:
    """Items without a ``symbol`` share one key: only the newest waits."""
    source = Counting()
    it = to_async_iter(source.observable, overflow="latest")
    aiter(it)
    source.push(1, 2, 3)
    source.observer.on_completed()  # type: ignore[union-attr]
    assert await drain(it) == [3]
    assert it.dropped == 2


async def test_latest_with_a_custom_key() -> None:
    """A caller-given key decides what replaces what."""
    source = Counting()
    it = to_async_iter(source.observable, overflow="latest", key=lambda n: n % 2)
    aiter(it)
    source.push(1, 2, 3, 4, 5)
    source.observer.on_completed()  # type: ignore[union-attr]
    assert await drain(it) == [5, 4]


async def test_a_failing_key_is_raised_in_the_consumer_and_disposes() -> None:
    """An exception from the key function ends the stream with that error, disposing the source."""
    source = Counting()

    def bad_key(item: Any) -> str:
        raise KeyError(f"no key for {item!r}")

    it = to_async_iter(source.observable, overflow="latest", key=bad_key)
    aiter(it)
    source.push("x")
    with pytest.raises(KeyError, match="no key"):
        await anext(it)
    assert source.disposed == 1


@settings(max_examples=60, deadline=None)
@given(
    policy=st.sampled_from(["drop_oldest", "drop_newest", "latest"]),
    maxsize=st.integers(1, 6),
    script=st.lists(st.one_of(st.integers(0, 9), st.just("pull")), max_size=80),
)
def test_buffer_is_bounded_and_every_item_is_accounted_for(
    policy: str, maxsize: int, script: list[int | str]
) -> None:
    """Any interleaving of pushes and pulls: the buffer never exceeds maxsize, and
    received == delivered + dropped + buffered; FIFO policies deliver a subsequence in order."""

    async def run() -> None:
        source = Counting()
        it = to_async_iter(source.observable, maxsize=maxsize, overflow=policy)  # type: ignore[arg-type]
        aiter(it)
        pushed: list[Book] = []
        delivered: list[Book] = []
        for n, step in enumerate(script):
            if step == "pull":
                if it.buffered:
                    delivered.append(await anext(it))
            else:
                book = Book(f"S{step}", n)
                pushed.append(book)
                source.push(book)
            assert it.buffered <= maxsize
        assert it.high_water <= maxsize
        assert it.received == len(pushed) == len(delivered) + it.dropped + it.buffered
        if policy != "latest":
            positions = [pushed.index(book) for book in delivered]
            assert positions == sorted(positions)
        await it.aclose()

    asyncio.run(run())


# -- from_async_iter ------------------------------------------------------------------------------


async def _numbers(n: int, closed: list[bool] | None = None) -> AsyncIterator[int]:
    try:
        for i in range(n):
            yield i
            await asyncio.sleep(0)
    finally:
        if closed is not None:
            closed.append(True)


class Collect:
    """An observer that records what it receives and signals the end."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.error: Exception | None = None
        self.completed = False
        self.ended = asyncio.Event()
        self.got_item = asyncio.Event()

    def on_next(self, value: Any) -> None:
        self.items.append(value)
        self.got_item.set()

    def on_error(self, error: Exception) -> None:
        self.error = error
        self.ended.set()

    def on_completed(self) -> None:
        self.completed = True
        self.ended.set()


async def test_from_async_iter_emits_items_then_completes() -> None:
    """Each item of the async iterable is emitted in order, then on_completed."""
    sink = Collect()
    from_async_iter(_numbers(4)).subscribe(sink)
    await sink.ended.wait()
    assert (sink.items, sink.completed, sink.error) == ([0, 1, 2, 3], True, None)


async def test_from_async_iter_forwards_exceptions_to_on_error() -> None:
    """An exception raised by the iterator reaches on_error after the items before it."""

    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ValueError("bad page")

    sink = Collect()
    from_async_iter(failing()).subscribe(sink)
    await sink.ended.wait()
    assert sink.items == [1]
    assert isinstance(sink.error, ValueError)


async def test_from_async_iter_forwards_a_failing_aiter_to_on_error() -> None:
    """An iterable whose ``__aiter__`` raises (say, it cannot open its resource) ends the subscription with
    on_error, rather than killing the task with nobody told."""

    class Unopenable:
        def __aiter__(self) -> AsyncIterator[int]:
            raise OSError("cannot open the recording")

    sink = Collect()
    before = asyncio.all_tasks()
    from_async_iter(Unopenable()).subscribe(sink)
    (task,) = asyncio.all_tasks() - before
    await asyncio.wait([task])
    assert isinstance(sink.error, OSError)
    assert (sink.items, sink.completed) == ([], False)


async def test_from_async_iter_dispose_cancels_the_task_and_closes_the_iterator() -> None:
    """Disposing cancels the iterating task; the async generator's cleanup runs; nothing more arrives."""
    closed: list[bool] = []
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[int]:
        try:
            yield 1
            await gate.wait()  # never set: only a cancellation gets past here
            yield 2
        finally:
            closed.append(True)

    sink = Collect()
    before = asyncio.all_tasks()
    subscription = from_async_iter(slow()).subscribe(sink)
    (task,) = asyncio.all_tasks() - before
    await sink.got_item.wait()
    subscription.dispose()
    await asyncio.wait([task])
    assert task.cancelled()
    assert closed == [True]
    assert sink.items == [1]
    assert not sink.completed
    assert sink.error is None


async def test_from_async_iter_emits_through_a_given_scheduler() -> None:
    """With a scheduler, items and the end are delivered when that scheduler runs them."""
    scheduler = TestScheduler()
    done = asyncio.Event()

    async def numbers() -> AsyncIterator[int]:
        yield 1
        yield 2
        done.set()

    sink = Collect()
    before = asyncio.all_tasks()
    from_async_iter(numbers(), scheduler=scheduler).subscribe(sink)
    (task,) = asyncio.all_tasks() - before
    await done.wait()
    await asyncio.wait([task])
    assert sink.items == []  # nothing delivered until the scheduler runs
    scheduler.advance_by(1)
    assert (sink.items, sink.completed) == ([1, 2], True)


def test_from_async_iter_without_a_loop_is_an_error_on_subscribe() -> None:
    """Subscribed outside a running loop: on_error with a ConfigError, no task."""
    errors: list[Exception] = []
    from_async_iter(_numbers(1)).subscribe(on_error=errors.append)
    assert len(errors) == 1
    assert isinstance(errors[0], ConfigError)


def test_from_async_iter_rejects_a_non_async_iterable() -> None:
    """A plain list is not an async iterable: ConfigError at the call."""
    with pytest.raises(ConfigError):
        from_async_iter([1, 2])  # type: ignore[arg-type]


async def test_round_trip_through_both_bridges() -> None:
    """async iterable -> Observable -> async iterator gives back the same items."""
    assert await drain(to_async_iter(from_async_iter(_numbers(50)))) == list(range(50))


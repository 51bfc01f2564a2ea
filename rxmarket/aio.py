"""Observable <-> async iterator, with a bounded buffer and an explicit overflow policy.

:func:`to_async_iter` lets ``async for`` consume an Observable. A source pushes as fast as the exchange
sends; a consumer pulls as fast as it can work; the buffer between them is bounded (``maxsize``) and what
happens when it is full is the caller's explicit choice (``overflow``):

=================  ===========================================================================
``"error"``        raise :class:`~rxmarket.errors.BufferOverflow` in the consumer (after the items
                   already buffered) and dispose the subscription: a slow consumer is a bug.
``"drop_oldest"``  make room by dropping the oldest buffered item: the consumer stays current.
``"drop_newest"``  drop the incoming item: the consumer sees an unbroken prefix.
``"latest"``       keep only the newest item per key (default key: ``item.symbol`` if the item has
                   one, else the whole stream is one key): right for orderbooks and tickers, where a
                   newer value replaces an older one. ``maxsize`` bounds the number of keys waiting.
=================  ===========================================================================

Every drop is counted (``.dropped``, next to ``.received``), so a lossy policy is never a silent one.

Lifetimes: the subscription starts when iteration starts and is disposed when the loop ``break``-s, when
``aclose()`` is awaited (or the ``async with`` block ends), when the consuming task is cancelled while it
waits for an item, when the source ends, and on overflow under ``"error"``. A ``break`` disposes through
the iterator's finaliser as soon as the loop drops it (at once in CPython); ``async with`` makes the end
explicit and is the way to go when the iterator is kept in a variable.

:func:`from_async_iter` goes the other way: each subscription iterates the async iterable in a task on the
running loop; disposing cancels the task.

Threads: sources normally emit on the loop thread, where an item goes straight into the buffer. An item
pushed from another thread is handed to the loop with ``loop.call_soon_threadsafe``, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Hashable
from functools import partial
from threading import get_ident
from types import TracebackType
from typing import Any, Final, Generic, Literal, TypeVar, cast, get_args

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxmarket.errors import BufferOverflow, ConfigError

__all__ = ["OVERFLOW_POLICIES", "BufferedAsyncIterator", "Overflow", "from_async_iter", "to_async_iter"]

T = TypeVar("T")

Overflow = Literal["error", "drop_oldest", "drop_newest", "latest"]
OVERFLOW_POLICIES: Final[tuple[str, ...]] = get_args(Overflow)

_WHOLE_STREAM: Final = object()  # the one key of a stream whose items have no ``symbol``


def _symbol_key(item: Any) -> Hashable:
    return getattr(item, "symbol", _WHOLE_STREAM)


def to_async_iter(
    observable: Observable[T],
    maxsize: int = 1024,
    overflow: Overflow = "error",
    key: Callable[[T], Hashable] | None = None,
) -> BufferedAsyncIterator[T]:
    """Consume ``observable`` with ``async for``, through a bounded buffer.

    Args:
        observable: the source; subscribed when iteration starts (one subscription per iterator).
        maxsize: the buffer's capacity in items (``>= 1``); under ``"latest"``, in keys.
        overflow: what to do when the buffer is full: ``"error"``, ``"drop_oldest"``, ``"drop_newest"``
            or ``"latest"`` (see the module docs).
        key: under ``"latest"``, the key whose newest item is kept (default: ``item.symbol`` when the
            item has that attribute, else one key for the whole stream).

    Returns:
        An async iterator (also an async context manager) with counters ``received``, ``dropped``,
        ``buffered`` and ``high_water`` (the most items ever buffered at once).

    Raises:
        ConfigError: at the call, on ``maxsize < 1``, an unknown ``overflow`` or a ``key`` given with a
            policy other than ``"latest"``.

    Example::

        async with rxmarket.to_async_iter(market.orderbook(["KRW-BTC"]), overflow="latest") as books:
            async for book in books:
                print(book.symbol, book.spread)
    """
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
        raise ConfigError(f"maxsize must be an integer >= 1, got {maxsize!r}")
    if overflow not in OVERFLOW_POLICIES:
        raise ConfigError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}; got {overflow!r}")
    if key is not None and overflow != "latest":
        raise ConfigError(f"key only applies to overflow='latest', not to overflow={overflow!r}")
    if not isinstance(observable, Observable):
        raise ConfigError(f"to_async_iter needs a reactivex Observable, got {type(observable).__name__}")
    return BufferedAsyncIterator(observable, maxsize, overflow, key)


class _Channel(Generic[T]):
    """The push side: the observer writes here, the iterator reads here.

    It holds no reference to the iterator, so that an iterator dropped by its loop (``break``) can be
    collected, and its finaliser dispose the subscription, even while the source still holds the observer.
    """

    __slots__ = (
        "buffer",
        "closed",
        "dropped",
        "error",
        "high_water",
        "key",
        "latest",
        "loop",
        "maxsize",
        "push",
        "queue",
        "received",
        "subscription",
        "thread",
        "waiter",
    )

    def __init__(self, maxsize: int, overflow: Overflow, key: Callable[[T], Hashable] | None) -> None:
        self.maxsize = maxsize
        self.key: Callable[[Any], Hashable] = key if key is not None else _symbol_key
        # Exactly one of the two is used: a FIFO queue, or (under "latest") one slot per key in arrival order.
        self.queue: deque[T] = deque()
        self.latest: OrderedDict[Hashable, T] = OrderedDict()
        self.buffer: deque[T] | OrderedDict[Hashable, T] = self.latest if overflow == "latest" else self.queue
        self.received = 0
        self.dropped = 0
        self.high_water = 0
        self.closed = False  # accepts nothing more: the source ended, overflowed or was disposed
        self.error: BaseException | None = None  # to raise once the buffer is drained
        self.waiter: asyncio.Future[None] | None = None  # exists only while the consumer waits
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = 0
        self.subscription: abc.DisposableBase | None = None
        self.push: Callable[[T], None] = {
            "error": self._push_or_fail,
            "drop_oldest": self._push_drop_oldest,
            "drop_newest": self._push_drop_newest,
            "latest": self._push_latest,
        }[overflow]

    # -- producer side (observer callbacks); each first makes sure it runs on the loop thread ------

    def _push_or_fail(self, item: T) -> None:
        if get_ident() != self.thread:
            self._hand_over(self._push_or_fail, item)
            return
        if self.closed:
            return
        self.received += 1
        queue = self.queue
        size = len(queue)
        if size >= self.maxsize:
            self.dropped += 1
            self.terminate(BufferOverflow(self.maxsize))
            return
        queue.append(item)
        # Inlined on purpose (here and below): this runs once per item.
        if size >= self.high_water:
            self.high_water = size + 1
        waiter = self.waiter
        if waiter is not None:
            self._wake()

    def _push_drop_oldest(self, item: T) -> None:
        if get_ident() != self.thread:
            self._hand_over(self._push_drop_oldest, item)
            return
        if self.closed:
            return
        self.received += 1
        queue = self.queue
        if len(queue) >= self.maxsize:
            queue.popleft()
            self.dropped += 1
        queue.append(item)
        size = len(queue)
        if size > self.high_water:
            self.high_water = size
        if self.waiter is not None:
            self._wake()

    def _push_drop_newest(self, item: T) -> None:
        if get_ident() != self.thread:
            self._hand_over(self._push_drop_newest, item)
            return
        if self.closed:
            return
        self.received += 1
        queue = self.queue
        size = len(queue)
        if size >= self.maxsize:
            self.dropped += 1
            return
        queue.append(item)
        if size >= self.high_water:
            self.high_water = size + 1
        if self.waiter is not None:
            self._wake()

    def _push_latest(self, item: T) -> None:
        if get_ident() != self.thread:
            self._hand_over(self._push_latest, item)
            return
        if self.closed:
            return
        self.received += 1
        latest = self.latest
        try:
            k = self.key(item)
            if k in latest:
                # A newer value replaces the waiting one in place: the key keeps its turn in the queue.
                self.dropped += 1
            elif len(latest) >= self.maxsize:
                latest.popitem(last=False)
                self.dropped += 1
            latest[k] = item
        except Exception as exc:  # a failing or unhashable key is the caller's error: surface it
            self.dropped += 1
            self.terminate(exc)
            return
        size = len(latest)
        if size > self.high_water:
            self.high_water = size
        if self.waiter is not None:
            self._wake()

    def fail(self, error: Exception) -> None:
        if get_ident() != self.thread:
            self._hand_over(self.fail, error)
            return
        if not self.closed:
            self.closed = True
            self.error = error
            self._wake()

    def complete(self, _: object = None) -> None:
        if get_ident() != self.thread:
            self._hand_over(self.complete, None)
            return
        if not self.closed:
            self.closed = True
            self._wake()

    def terminate(self, error: BaseException | None) -> None:
        """Stop accepting items, dispose the subscription and let the consumer see ``error`` (if any)."""
        self.closed = True
        if error is not None:
            self.error = error
        subscription = self.subscription
        if subscription is not None:  # else still inside subscribe(): the iterator disposes right after
            self.subscription = None
            subscription.dispose()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _hand_over(self, callback: Callable[[Any], None], value: Any) -> None:
        loop = self.loop
        if loop is None:  # not started: nothing can have subscribed yet
            return
        # A closed loop means the consumer is gone, and with it the need for the item.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, value)


class BufferedAsyncIterator(AsyncIterator[T]):
    """The async iterator returned by :func:`to_async_iter`; see there.

    Attributes:
        maxsize: the buffer's capacity.
        overflow: the overflow policy.
    """

    __slots__ = ("_chan", "_fifo", "_observable", "_started", "maxsize", "overflow")

    def __init__(
        self,
        observable: Observable[T],
        maxsize: int,
        overflow: Overflow,
        key: Callable[[T], Hashable] | None,
    ) -> None:
        self._observable = observable
        self.maxsize = maxsize
        self.overflow: Overflow = overflow
        chan: _Channel[T] = _Channel(maxsize, overflow, key)
        self._chan = chan
        self._fifo = overflow != "latest"
        self._started = False

    # -- counters -------------------------------------------------------------------------------

    @property
    def received(self) -> int:
        """Items the source pushed (delivered + dropped + still buffered)."""
        return self._chan.received

    @property
    def dropped(self) -> int:
        """Items lost to the overflow policy (under ``"error"``: the one that overflowed)."""
        return self._chan.dropped

    @property
    def buffered(self) -> int:
        """Items waiting in the buffer now."""
        return len(self._chan.buffer)

    @property
    def high_water(self) -> int:
        """The most items ever buffered at once (never above ``maxsize``)."""
        return self._chan.high_water

    @property
    def closed(self) -> bool:
        """True once the source ended, failed or was disposed (buffered items may still be read)."""
        return self._chan.closed

    # -- iteration ------------------------------------------------------------------------------

    def __aiter__(self) -> BufferedAsyncIterator[T]:
        if not self._started:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # aiter() outside a loop: subscribe at the first __anext__ instead
                return self
            self._start()
        return self

    async def __anext__(self) -> T:
        chan = self._chan
        while True:
            if chan.buffer:  # the fast path: no future, no task, one pop per item
                if self._fifo:
                    return chan.queue.popleft()
                return chan.latest.popitem(last=False)[1]
            if chan.closed:
                error = chan.error
                if error is not None:
                    chan.error = None  # raised once; the iterator is finished afterwards
                    raise error
                raise StopAsyncIteration
            if not self._started:
                self._start()
                continue
            if chan.waiter is not None:
                raise RuntimeError("another task is already waiting on this iterator: one consumer each")
            loop = cast(asyncio.AbstractEventLoop, chan.loop)
            waiter = chan.waiter = loop.create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                # The consumer was cancelled while waiting: it will not come back for more.
                chan.waiter = None
                self._dispose()
                raise

    def _start(self) -> None:
        chan = self._chan
        chan.loop = asyncio.get_running_loop()
        chan.thread = get_ident()
        self._started = True
        subscription = self._observable.subscribe(chan.push, chan.fail, chan.complete)
        if chan.closed:  # completed, failed or overflowed during subscribe()
            subscription.dispose()
        else:
            chan.subscription = subscription

    def _dispose(self) -> None:
        chan = self._chan
        if not chan.closed:
            chan.terminate(None)
        chan.buffer.clear()

    async def aclose(self) -> None:
        """Dispose the subscription and drop what is buffered; iteration then ends. Idempotent."""
        self._started = True  # a never-started iterator must not subscribe after being closed
        self._dispose()

    async def __aenter__(self) -> BufferedAsyncIterator[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Reached when a loop breaks out and drops the iterator. Dispose on the loop's thread: a
        # source's teardown may touch the loop, which is not thread-safe.
        chan = getattr(self, "_chan", None)
        if chan is None or chan.closed or chan.loop is None:
            return
        if get_ident() == chan.thread:
            chan.terminate(None)
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop has nothing left to tidy up
                chan.loop.call_soon_threadsafe(chan.terminate, None)

    def __repr__(self) -> str:
        return (
            f"<BufferedAsyncIterator overflow={self.overflow!r} maxsize={self.maxsize} "
            f"buffered={self.buffered} received={self.received} dropped={self.dropped}>"
        )


_running: set[asyncio.Future[Any]] = set()  # strong references: the loop only keeps weak ones to tasks


def from_async_iter(aiterable: AsyncIterable[T], scheduler: abc.SchedulerBase | None = None) -> Observable[T]:
    """An Observable that iterates ``aiterable`` once per subscription.

    Each subscription starts a task on the running event loop (subscribe from the loop's thread); the
    task pushes each item to the observer, then ``on_completed``; an exception from the iterator (or from
    the observer) goes to ``on_error``. Disposing cancels the task and closes the iterator.

    An async *generator* can be iterated only once: for an Observable that may be subscribed more than
    once, pass an object whose ``__aiter__`` returns a fresh iterator each time.

    Args:
        aiterable: what to iterate.
        scheduler: if given (here or at subscribe time), items and the end are emitted through it;
            by default they are emitted straight from the task, on the loop.

    Returns:
        A cold Observable.

    Raises:
        ConfigError: at the call, if ``aiterable`` is not an async iterable; ``on_error`` with
            ``ConfigError`` when subscribed without a running event loop.
    """
    if not hasattr(aiterable, "__aiter__"):
        raise ConfigError(f"from_async_iter needs an async iterable, got {type(aiterable).__name__}")

    def subscribe(observer: abc.ObserverBase[T], subscribe_scheduler: abc.SchedulerBase | None = None) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            observer.on_error(
                ConfigError("from_async_iter must be subscribed on the thread of a running asyncio loop")
            )
            return Disposable()
        emit_on = scheduler or subscribe_scheduler
        disposed = False

        def deliver(action: Callable[[], None]) -> None:
            if emit_on is None:
                action()
            else:

                def scheduled(_: abc.SchedulerBase, __: Any = None) -> None:
                    if not disposed:
                        action()

                emit_on.schedule(scheduled)

        async def pump() -> None:
            iterator: AsyncIterator[T] | None = None
            try:
                # Inside the try: an iterable that cannot even start must reach on_error, not the void.
                iterator = aiterable.__aiter__()
                while True:
                    try:
                        item = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    if disposed:
                        return
                    deliver(partial(observer.on_next, item))
                if not disposed:
                    deliver(observer.on_completed)
            except Exception as exc:  # from the iterator or the observer: the subscriber must hear of it
                if not disposed:
                    deliver(partial(observer.on_error, exc))
            finally:
                close = getattr(iterator, "aclose", None)  # None too when __aiter__ failed
                if close is not None:
                    await close()

        task = loop.create_task(pump())
        _running.add(task)
        task.add_done_callback(_running.discard)

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            if task.done():
                return
            if get_ident() == loop_thread:
                task.cancel()
            else:
                loop.call_soon_threadsafe(task.cancel)

        loop_thread = get_ident()
        return Disposable(dispose)

    return reactivex.create(subscribe)

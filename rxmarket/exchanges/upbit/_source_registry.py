"""Hot, shared, ref-counted streams: one upstream subscription per (channel, market), many subscribers.

A :class:`Stream` is the fan-out point of one upstream subscription: the source routes each decoded item
to it and it calls every subscriber's ``on_next`` directly (no Subject, no queue, no task: this is the hot
path). :class:`Registry` owns the streams and their lifetimes::

    subscribe #1 --> attach: new Stream -> on_start (the owner subscribes upstream)
    subscribe #2 --> attach: same Stream, one more target
    dispose #2   --> detach
    dispose #1   --> detach: no subscriber left -> grace timer (``grace`` s)
                       subscribe #3 within the grace: timer cancelled, same Stream goes on
                       timer fires: on_stop (the owner unsubscribes upstream)

The grace period turns subscriber churn (a UI re-subscribing as pages change, a retry operator
re-subscribing after an error) into nothing at all upstream, instead of a subscribe/unsubscribe storm
against a limit of 5 messages per second per connection.

Orderbook depth: Upbit's frames carry the bare code, so one connection can stream each market at only
one depth. A market's book is therefore subscribed at the **largest depth any subscriber asked for** (no
depth means Upbit's full 30 levels), and a subscriber that asked for fewer levels receives a truncated
copy (its totals recomputed over the levels it gets, as Upbit computes them). When the largest wanted
depth changes, the owner is told (``on_wire_change``) and re-sends the connection's subscription.

Errors raised by a subscriber's own callbacks never reach the other subscribers nor end the stream: they
go to ``report`` (the source counts them and hands them to the event loop's exception handler).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from reactivex import abc

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit._source_gapfill import TradeLog
from rxmarket.models import Orderbook, Trade

__all__ = ["FULL_DEPTH", "OrderbookStream", "Registry", "Stream", "Subscriber", "TradeStream", "truncate"]

FULL_DEPTH = 30
"""Upbit's deepest book, what an orderbook subscription without a ``.n`` suffix gets."""

Report = Callable[[BaseException], None]


class Subscriber:
    """One subscription to a :class:`Stream`: its observer and, for books, the depth it asked for."""

    __slots__ = ("active", "depth", "observer", "stream")

    def __init__(self, observer: abc.ObserverBase[Any], depth: int, stream: Stream) -> None:
        self.observer = observer
        self.depth = depth
        self.stream = stream
        self.active = True


class Stream:
    """The subscribers of one (channel, market) and the fan-out to them.

    Attributes:
        channel: Upbit's channel (``"ticker"``, ``"trade"``, ``"orderbook"``, ``"candle.1m"`` ...).
        symbol: the market code.
        count: items delivered since the stream started (one per item, whatever the subscriber count).
        seen: ``count`` at the last staleness check (kept by the source).
        conn: the id of the connection carrying the stream (kept by the source).
        timer: the pending grace timer, if any.
    """

    __slots__ = ("channel", "conn", "count", "report", "seen", "subscribers", "symbol", "targets", "timer")

    def __init__(self, channel: str, symbol: str, report: Report) -> None:
        self.channel = channel
        self.symbol = symbol
        self.report = report
        self.subscribers: list[Subscriber] = []
        self.targets: tuple[Callable[[Any], None], ...] = ()
        self.count = 0
        self.seen = 0
        self.conn = -1
        self.timer: abc.DisposableBase | None = None

    @property
    def key(self) -> tuple[str, str]:
        """``(channel, symbol)``."""
        return self.channel, self.symbol

    @property
    def wire_depth(self) -> int | None:
        """The depth to subscribe upstream (books only; ``None`` for other channels)."""
        return None

    def push(self, item: Any) -> None:
        """Deliver ``item`` to every subscriber (the hot path)."""
        self.count += 1
        for target in self.targets:
            try:
                target(item)
            except Exception as exc:  # a subscriber's bug: reported, the others still get the item
                self.report(exc)

    def add(self, sub: Subscriber) -> bool:
        """Add a subscriber; return whether the upstream subscription must change (book depth)."""
        self.subscribers.append(sub)
        return self._rebuild()

    def remove(self, sub: Subscriber) -> bool:
        """Remove a subscriber; return whether the upstream subscription must change (book depth)."""
        sub.active = False
        self.subscribers.remove(sub)
        return self._rebuild()

    def end(self, error: Exception | None) -> None:
        """End every subscription: ``on_error(error)``, or ``on_completed()`` when ``error`` is ``None``."""
        subs, self.subscribers = self.subscribers, []
        self.targets = ()
        # All inactive before any handler runs: a handler that disposes a sibling (merge, stream_many)
        # must find it already detached, not look for it in the emptied list.
        for sub in subs:
            sub.active = False
        for sub in subs:
            try:
                if error is None:
                    sub.observer.on_completed()
                else:
                    sub.observer.on_error(error)
            except Exception as exc:  # the subscriber's own handler failed
                self.report(exc)

    def _rebuild(self) -> bool:
        self.targets = tuple(s.observer.on_next for s in self.subscribers)
        return False


class OrderbookStream(Stream):
    """A book stream: subscribed at the largest wanted depth; shallower subscribers get a truncated copy."""

    __slots__ = ("_wire", "views")

    def __init__(self, channel: str, symbol: str, report: Report) -> None:
        super().__init__(channel, symbol, report)
        self._wire = 0
        self.views: tuple[tuple[int, tuple[Callable[[Any], None], ...]], ...] = ()

    @property
    def wire_depth(self) -> int | None:
        """The largest depth wanted, ``None`` meaning Upbit's full book (30 levels)."""
        return None if self._wire >= FULL_DEPTH else self._wire

    def push(self, item: Any) -> None:
        """Deliver the book as received to the deepest subscribers, truncated copies to the others."""
        self.count += 1
        for target in self.targets:
            try:
                target(item)
            except Exception as exc:  # see Stream.push
                self.report(exc)
        if self.views:
            size = len(item.units)
            for depth, targets in self.views:
                view = item if size <= depth else truncate(item, depth)
                for target in targets:
                    try:
                        target(view)
                    except Exception as exc:  # see Stream.push
                        self.report(exc)

    def _rebuild(self) -> bool:
        subs = self.subscribers
        if not subs:
            # Keep the last depth while nobody listens (grace): nothing upstream needs to change.
            self.targets = ()
            self.views = ()
            return False
        wire = max(s.depth for s in subs)
        self.targets = tuple(s.observer.on_next for s in subs if s.depth >= wire)
        by_depth: dict[int, list[Callable[[Any], None]]] = {}
        for s in subs:
            if s.depth < wire:
                by_depth.setdefault(s.depth, []).append(s.observer.on_next)
        self.views = tuple((d, tuple(t)) for d, t in sorted(by_depth.items()))
        changed = wire != self._wire
        self._wire = wire
        return changed


class TradeStream(Stream):
    """A trade stream with dedupe by ``sequential_id`` and a hold while a gap is being filled."""

    __slots__ = ("log", "on_overflow")

    def __init__(
        self,
        channel: str,
        symbol: str,
        report: Report,
        log: TradeLog,
        on_overflow: Callable[[TradeStream], None] | None = None,
    ) -> None:
        super().__init__(channel, symbol, report)
        self.log = log
        self.on_overflow = on_overflow

    def push(self, item: Any) -> None:
        """Deliver a live trade unless it is a duplicate or held for a gap fill."""
        log = self.log
        if log.admit(item):
            Stream.push(self, item)
        elif log.holding and log.overflowing and self.on_overflow is not None:
            self.on_overflow(self)

    def deliver(self, trades: list[Trade]) -> None:
        """Deliver trades the log already accepted (the result of a gap fill), in order."""
        for trade in trades:
            Stream.push(self, trade)


def truncate(book: Orderbook, depth: int) -> Orderbook:
    """The ``depth`` best rows of ``book``, totals recomputed over them (as Upbit does for ``CODE.n``)."""
    units = book.units[:depth]
    return msgspec.structs.replace(
        book,
        units=units,
        total_ask_size=sum(u.ask_size for u in units),
        total_bid_size=sum(u.bid_size for u in units),
    )


class Registry:
    """The streams of one source, keyed by (channel, market), with ref-counting and a grace period.

    Args:
        make: builds a new stream for ``(channel, symbol)``.
        on_start: called when a stream gets its first subscriber (subscribe upstream).
        on_stop: called when a stream is gone: its grace period ran out, or :meth:`drop` ended it.
        on_wire_change: called when a stream's upstream subscription must change (book depth).
        grace: seconds a stream without subscribers stays subscribed upstream (0: stop at once).
        scheduler: runs the grace timers (an ``AsyncIOScheduler`` in the source, a ``TestScheduler`` in
            tests).

    Raises:
        ConfigError: a negative grace.
    """

    __slots__ = ("_grace", "_make", "_on_start", "_on_stop", "_on_wire_change", "_scheduler", "streams")

    def __init__(
        self,
        *,
        make: Callable[[str, str], Stream],
        on_start: Callable[[Stream], None],
        on_stop: Callable[[Stream], None],
        on_wire_change: Callable[[Stream], None],
        grace: float,
        scheduler: abc.SchedulerBase,
    ) -> None:
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
            raise ConfigError(f"grace must be >= 0 seconds, got {grace!r}")
        self._make = make
        self._on_start = on_start
        self._on_stop = on_stop
        self._on_wire_change = on_wire_change
        self._grace = float(grace)
        self._scheduler = scheduler
        self.streams: dict[tuple[str, str], Stream] = {}

    def attach(
        self, channel: str, symbol: str, observer: abc.ObserverBase[Any], depth: int = FULL_DEPTH
    ) -> Subscriber:
        """Subscribe ``observer`` to ``(channel, symbol)``, starting the stream if it is new.

        Args:
            channel: the channel.
            symbol: the market code.
            observer: receives the items.
            depth: books only: the levels wanted (1-30).

        Returns:
            The subscription, for :meth:`detach`.
        """
        key = (channel, symbol)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = self._make(channel, symbol)
            sub = Subscriber(observer, depth, stream)
            stream.add(sub)
            self._on_start(stream)
            return sub
        timer, stream.timer = stream.timer, None
        if timer is not None:
            timer.dispose()
        sub = Subscriber(observer, depth, stream)
        if stream.add(sub):
            self._on_wire_change(stream)
        return sub

    def detach(self, sub: Subscriber) -> None:
        """End one subscription; the last one starts the grace period. A second call does nothing."""
        if not sub.active:
            return
        stream = sub.stream
        changed = stream.remove(sub)
        if stream.subscribers:
            if changed:
                self._on_wire_change(stream)
            return
        if self._grace <= 0:
            self._stop(stream)
            return

        def expire(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
            stream.timer = None
            if not stream.subscribers:
                self._stop(stream)

        stream.timer = self._scheduler.schedule_relative(self._grace, expire)

    def drop(self, stream: Stream, error: Exception | None) -> None:
        """End ``stream`` now, without grace: its subscribers get ``on_error(error)`` (or completion)."""
        if self.streams.get(stream.key) is not stream:
            return
        # Forget it before telling the subscribers: one that re-subscribes from its on_error (Rx ``retry``)
        # must start a new stream, not join this dead one and wait forever.
        self._stop(stream)
        stream.end(error)

    def close(self) -> None:
        """Complete every stream and forget them all (the owner closes connections itself)."""
        for stream in list(self.streams.values()):
            timer, stream.timer = stream.timer, None
            if timer is not None:
                timer.dispose()
            stream.end(None)
        self.streams.clear()

    def _stop(self, stream: Stream) -> None:
        timer, stream.timer = stream.timer, None
        if timer is not None:
            timer.dispose()
        if self.streams.get(stream.key) is stream:
            del self.streams[stream.key]
            self._on_stop(stream)

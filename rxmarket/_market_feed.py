"""The shared chains behind :class:`rxmarket.market.MarketData`: one running pipeline per (kind, markets,
channel, depth), ref-counted; the health the facade reads off the source's status; counters of stopped
chains; the counted async iterator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, TypeVar

import msgspec
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxmarket.aio import BufferedAsyncIterator, Overflow
from rxmarket.models import Status, Ticker
from rxmarket.pipelines import (
    Pipeline,
    PipelineStats,
)

__all__ = ["CountedIterator", "Feed", "FeedOwner", "Health", "Retired", "as_cached"]

T = TypeVar("T")


class FeedOwner(Protocol):
    """What a :class:`Feed` needs of the market that owns it (``MarketData``)."""

    _replayed: int

    def _build(self, feed: Feed) -> Pipeline[Any]: ...

    def _feed_started(self, feed: Feed) -> None: ...

    def _feed_stopped(self, feed: Feed) -> None: ...

    def _callback_failed(self, exc: BaseException) -> None: ...

def as_cached(item: Any) -> Any:
    return item if item.source == "cache" else msgspec.structs.replace(item, source="cache")


# -- the shared chains -------------------------------------------------------------------------------------


class Feed:
    """One assembled pipeline shared by every subscriber of the same (kind, markets, channel, depth).

    The first subscriber builds and subscribes the pipeline; the last one's dispose disposes it (the source
    below keeps its own grace period). Items fan out to the subscribers' ``on_next`` directly; one
    subscriber's failing callback is reported and never reaches the others. For state streams (tickers,
    books) the latest item per market is kept and replayed, tagged ``source="cache"``, to a subscriber that
    joins a running feed.
    """

    __slots__ = ("_replay", "_targets", "channel", "codes", "key", "kind", "latest", "market", "observers",
                 "pipeline", "subscription", "tickers")

    def __init__(
        self,
        market: FeedOwner,
        key: tuple[Any, ...],
        kind: str,
        codes: tuple[str, ...],
        channel: str,
        *,
        replay: bool,
        tickers: dict[str, tuple[float, Ticker]] | None,
    ) -> None:
        self.market = market
        self.key = key
        self.kind = kind
        self.codes = codes
        self.channel = channel
        self._replay = replay
        self.tickers = tickers  # the market's latest ticker per market (for get_ticker), or None
        self.latest: dict[str, Any] = {}
        self.observers: list[abc.ObserverBase[Any]] = []
        self._targets: tuple[Callable[[Any], None], ...] = ()
        self.pipeline: Pipeline[Any] | None = None
        self.subscription: abc.DisposableBase | None = None

    def attach(self, observer: abc.ObserverBase[Any]) -> abc.DisposableBase:
        market = self.market
        if self._replay and self.latest:
            for item in list(self.latest.values()):
                market._replayed += 1
                observer.on_next(as_cached(item))
        self.observers.append(observer)
        self._targets = tuple(o.on_next for o in self.observers)
        if self.pipeline is None:
            try:
                pipeline = market._build(self)
            except BaseException:
                self.observers.remove(observer)
                self._targets = tuple(o.on_next for o in self.observers)
                market._feed_stopped(self)
                raise
            self.pipeline = pipeline
            market._feed_started(self)
            subscription = pipeline.subscribe(self._item_handler(), self.on_error, self.on_completed)
            if self.pipeline is not pipeline:  # it ended during subscribe (e.g. the source is closed)
                subscription.dispose()
            else:
                self.subscription = subscription
        return Disposable(partial(self.detach, observer))

    def detach(self, observer: abc.ObserverBase[Any]) -> None:
        if observer not in self.observers:
            return
        self.observers.remove(observer)
        self._targets = tuple(o.on_next for o in self.observers)
        if not self.observers:
            self.stop()

    def _item_handler(self) -> Callable[[Any], None]:
        """The per-item path, specialised once per feed (this runs for every item of every market)."""
        failed = self.market._callback_failed
        latest, tickers = self.latest, self.tickers
        clock = time.monotonic

        def fan_out(item: Any) -> None:
            for target in self._targets:
                try:
                    target(item)
                except Exception as exc:  # a subscriber's bug: reported; the others still get the item
                    failed(exc)

        if not self._replay:
            return fan_out

        if tickers is None:

            def keep_latest(item: Any) -> None:
                latest[item.symbol] = item
                for target in self._targets:
                    try:
                        target(item)
                    except Exception as exc:  # see fan_out
                        failed(exc)

            return keep_latest

        def keep_ticker(item: Any) -> None:
            symbol = item.symbol
            latest[symbol] = item
            if item.source != "cache":  # a replayed value is not news: its arrival time is not now
                tickers[symbol] = (clock(), item)
            for target in self._targets:
                try:
                    target(item)
                except Exception as exc:  # see fan_out
                    failed(exc)

        return keep_ticker

    def on_error(self, error: Exception) -> None:
        observers, self.observers, self._targets = self.observers, [], ()
        self.stop()
        for observer in observers:
            try:
                observer.on_error(error)
            except Exception as exc:  # the subscriber's own error handler failed
                self.market._callback_failed(exc)

    def on_completed(self) -> None:
        observers, self.observers, self._targets = self.observers, [], ()
        self.stop()
        for observer in observers:
            try:
                observer.on_completed()
            except Exception as exc:  # the subscriber's own handler failed
                self.market._callback_failed(exc)

    def stop(self) -> None:
        """Dispose the pipeline's subscription and leave the registry (idempotent)."""
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            subscription.dispose()
        self.market._feed_stopped(self)
        self.pipeline = None
        self.latest.clear()


class Health:
    """Which WebSocket connections are live and which streams are stale, as the source's status tells."""

    __slots__ = ("live", "stale")

    def __init__(self) -> None:
        self.live: set[int] = set()
        self.stale: set[tuple[str | None, str]] = set()

    def __call__(self, event: Status) -> None:
        kind, conn = event.kind, event.connection
        if event.symbol is not None:
            if kind == "stale":
                self.stale.add((event.channel, event.symbol))
            elif kind == "live":
                self.stale.discard((event.channel, event.symbol))
            return
        if conn is None:
            return
        if kind in ("live", "reconnected"):
            self.live.add(conn)
        elif kind in ("connecting", "backoff", "stale", "gave_up", "circuit"):
            self.live.discard(conn)


class Retired:
    """Counters of feeds that stopped (their pipelines are gone; their counts stay in ``stats()``)."""

    __slots__ = ("cache_errors", "cache_hits", "cache_writes", "duplicates", "opens", "retries")

    def __init__(self) -> None:
        self.duplicates = self.opens = self.retries = 0
        self.cache_hits = self.cache_writes = self.cache_errors = 0

    def add(self, stats: PipelineStats) -> None:
        self.duplicates += stats.duplicates
        self.opens += stats.circuit_opens
        self.retries += stats.retries
        self.cache_hits += stats.cache_hits
        self.cache_writes += stats.cache_writes
        self.cache_errors += stats.cache_errors


class CountedIterator(BufferedAsyncIterator[T]):
    """The iterator of ``stream_ticker`` / ``stream_orderbook``: hands its drop count to the market when it
    is collected, so ``stats().drops`` keeps the drops of iterators that are gone."""

    __slots__ = ("__weakref__", "_retire")

    def __init__(
        self, observable: Observable[T], maxsize: int, overflow: Overflow, retire: Callable[[int], None]
    ) -> None:
        super().__init__(observable, maxsize, overflow, None)
        self._retire: Callable[[int], None] | None = retire

    def __del__(self) -> None:
        retire = getattr(self, "_retire", None)
        if retire is not None:
            self._retire = None
            retire(self.dropped)
        super().__del__()

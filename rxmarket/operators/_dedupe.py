"""``ops.dedupe``: drop repeats, remembering only a bounded number of keys for a bounded time.

Marble (trades keyed by ``sequential_id``; ``c1``/``c2`` two versions of one open candle)::

    source:  --t1--t2--t1--c1--c2--c1--|
    dedupe:  --t1--t2------c1--c2------|     t1 resent: dropped; c2 newer: passed; c1 older: dropped

Unlike ``reactivex.operators.distinct``, which keeps every key forever, the memory here is bounded by
``max_keys`` (least recently seen forgotten first) and/or ``ttl`` (keys not seen for that long are
forgotten), and an item whose key is held passes again when its *version* is newer (an open candle that
Upbit resends as it changes). Keys and versions per model: :mod:`rxmarket.policy.keys`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Final, TypeVar

import msgspec
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from rxmarket._scheduler import default_scheduler
from rxmarket.errors import ConfigError
from rxmarket.operators._fused import fuse_dedupe
from rxmarket.policy.keys import (
    NATURAL_PAIRS,
    NEW,
    NEWER,
    SAME,
    KeyStore,
    check_bounds,
    natural_key,
    no_natural_error,
)

__all__ = ["Dedupe", "DedupeStats", "dedupe"]

_T = TypeVar("_T")
_MISSING: Final = object()


class DedupeStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one ``dedupe`` operator at one moment (totals over all its subscriptions).

    Attributes:
        passed: items emitted (new keys and newer versions).
        dropped: repeats and older versions not emitted.
        evicted: keys forgotten because more than ``max_keys`` were held.
        expired: keys forgotten because they were not seen for ``ttl`` seconds.
        keys: keys held now by the live subscriptions.
    """

    passed: int
    dropped: int
    evicted: int
    expired: int
    keys: int


class Dedupe:
    """The operator returned by :func:`dedupe`: call it on an Observable (or use it in ``pipe``)."""

    def __init__(
        self,
        key: Callable[[Any], Hashable] | None,
        version: Callable[[Any], Any] | None,
        max_keys: int | None,
        ttl: float | None,
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        for name, fn in (("key", key), ("version", version)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name} must be a function of one item, got {fn!r}")
        check_bounds(max_keys, ttl)
        self._key = key
        self._version = version
        self._max_keys = max_keys
        self._ttl = ttl
        self._scheduler = scheduler
        self._passed = 0
        self._dropped = 0
        self._evicted = 0  # of stores whose subscription ended
        self._expired = 0
        self._live: set[KeyStore] = set()

    def stats(self) -> DedupeStats:
        """A frozen snapshot of the counters."""
        live = self._live
        return DedupeStats(
            passed=self._passed,
            dropped=self._dropped,
            evicted=self._evicted + sum(s.evicted for s in live),
            expired=self._expired + sum(s.expired for s in live),
            keys=sum(len(s) for s in live),
        )

    @property
    def natural(self) -> bool:
        """Whether items are keyed and versioned naturally (no ``key``/``version`` given)."""
        return self._key is None and self._version is None

    def __call__(self, source: Observable[_T]) -> Observable[_T]:
        """Deduplicate ``source``: each subscription has its own key store.

        Right after a ``merge_unify`` with natural keys, a natural ``dedupe`` runs in the same item handler
        (see :mod:`rxmarket.operators._fused`): it reuses the key and version ``merge_unify`` computed, and
        keeps its own key store, counters and verdicts.
        """
        fused = fuse_dedupe(source, self)
        if fused is not None:
            return fused
        key_fn, version_fn = self._key, self._version
        natural_for = NATURAL_PAIRS.get

        def subscribe(
            observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            offer, release = self.keyed(observer.on_next, observer.on_error, scheduler)

            def on_next(item: _T) -> None:
                try:
                    if key_fn is None and version_fn is None:
                        entry = natural_for(type(item))
                        if entry is None:
                            raise no_natural_error(item, "key")
                        get_key, get_version = entry
                        key = get_key(item)
                        version = None if get_version is None else get_version(item)
                    else:
                        key = natural_key(item) if key_fn is None else key_fn(item)
                        # A caller's key without a version: any repeat of a held key is a repeat.
                        version = None if version_fn is None else version_fn(item)
                except Exception as exc:  # a caller's key/version function failed, or an unknown type
                    observer.on_error(exc)
                    return
                offer(item, key, version)

            subscription = source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )
            return CompositeDisposable(subscription, Disposable(release))

        return Observable(subscribe)

    def keyed(
        self,
        emit: Callable[[Any], None],
        fail: Callable[[Exception], None],
        scheduler: abc.SchedulerBase | None,
    ) -> tuple[Callable[[Any, Hashable, Any], None], Callable[[], None]]:
        """The per-subscription core: ``offer(item, key, version)`` and the ``release`` of its key store.

        ``offer`` emits the item (``emit``) if its key is new or its version newer, else counts it dropped;
        a version that does not compare with the one held goes to ``fail``.
        """
        store = KeyStore(self._max_keys, self._ttl)
        store_offer = store.offer
        # Without ttl, KeyStore.offer is inlined below: a method call is a sizeable part of the cost.
        table, limit, trim = store.table, store.limit, store.trim
        held, seen_again = table.get, table.move_to_end
        clock = default_scheduler(self._scheduler or scheduler) if self._ttl is not None else None
        self._live.add(store)

        def offer(item: Any, key: Hashable, version: Any) -> None:
            try:
                if clock is not None:
                    verdict = store_offer(key, version, clock.now.timestamp())
                else:
                    old = held(key, _MISSING)  # = store_offer(key, version): only NEW and NEWER matter here
                    if old is _MISSING:
                        table[key] = version
                        if len(table) > limit:
                            trim()
                        verdict = NEW
                    else:
                        seen_again(key)
                        if version is not None and version > old:
                            table[key] = version
                            verdict = NEWER
                        else:
                            verdict = SAME
            except Exception as exc:  # versions that do not compare (a caller's version function)
                fail(exc)
                return
            if verdict <= NEWER:
                self._passed += 1
                emit(item)
            else:
                self._dropped += 1

        def release() -> None:
            self._live.discard(store)
            self._evicted += store.evicted
            self._expired += store.expired
            store.clear()

        return offer, release


def dedupe(
    key: Callable[[Any], Hashable] | None = None,
    *,
    version: Callable[[Any], Any] | None = None,
    max_keys: int | None = 100_000,
    ttl: float | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Dedupe:
    """Drop repeats: pass an item if its key is not held, or if its version is newer than the held one.

    With no arguments each model is keyed naturally (:mod:`rxmarket.policy.keys`): a trade by
    ``(symbol, sequential_id)`` (a resent trade is dropped), a candle by ``(symbol, unit, start)`` (a newer
    version of an open candle passes, an identical or older resend is dropped), a ticker by ``symbol`` and
    a book by ``(level, symbol)`` (only a newer version passes: ``timestamp``, for tickers then the last
    trade's time and the day's volume). Keys of different models never collide.

    Examples:
        >>> trades.pipe(ops.dedupe())                                # by (symbol, sequential_id)
        >>> source.pipe(ops.dedupe(lambda m: m["id"], ttl=60.0))     # any type, 60 s window
        >>> op = ops.dedupe(); ...; op.stats().dropped

    Args:
        key: the key of an item (default: its model's natural key). A caller's ``key`` without a
            ``version`` makes every repeat of a held key a repeat.
        version: the version of an item, larger = newer (default: the model's natural version when
            ``key`` is also default, else none).
        max_keys: the most keys held per subscription; the least recently seen is forgotten first.
        ttl: seconds a key is remembered after it was last seen (a repeat refreshes it). ``None``: no
            time limit. At least one of ``max_keys`` and ``ttl`` must be set.
        scheduler: the clock for ``ttl`` (default: the subscription's scheduler, else the running loop's).

    Returns:
        An operator ``Observable[T] -> Observable[T]`` with a ``stats()`` method.

    Raises:
        ConfigError: both bounds ``None``, ``max_keys < 1``, ``ttl <= 0``, or a non-callable key/version.
            An item of a type with no natural key (and no ``key``) ends the stream with ``ConfigError``;
            an exception from ``key``/``version`` ends it with that exception.
    """
    return Dedupe(key, version, max_keys, ttl, scheduler)

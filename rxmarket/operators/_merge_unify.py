"""``ops.merge_unify``: one stream out of several channels of the same model; the newest item per key wins.

Marble (tickers of one market; ``R`` = REST poll, ``W`` = WebSocket; the digit is the exchange timestamp)::

    rest:        ----R1----------R3--------R5--|
    websocket:   -------W2--W3------W4--W5-----------|
    merge_unify: ----R1-W2--W3------W4--W5---------|   R3 repeats W3 (dropped), R5 repeats W5

Per key (:mod:`rxmarket.policy.keys`: a ticker's symbol, a book's ``(level, symbol)``, a trade's
``(symbol, sequential_id)``, a candle's ``(symbol, unit, start)``; keys of different models never collide)
an item is emitted only if its version (exchange ``timestamp``, then what orders updates of one
millisecond where the model has it) is newer than the last one emitted, so the output
is monotonic per key. Items are never changed: ``source`` still says which channel each one came from.

Optionally (``tolerance=``) the channels are checked against each other: when two channels' latest items
for one key are close in exchange time but their prices differ by more than the tolerance, a
:class:`Divergence` is published on ``.divergences`` and counted. Nothing is averaged: the newest item wins,
the disagreement is reported.

``merge_unify`` works both ways:

* ``ops.merge_unify(rest, ws)`` is an Observable (a *creation* function, like ``reactivex.merge``);
* ``ws.pipe(ops.merge_unify(rest))`` merges ``ws`` with ``rest`` (the piped source comes first), and
  ``src.pipe(ops.merge_unify())`` filters one stream down to its newest item per key.

Both are the same object: a :class:`MergeUnify` is an Observable of its sources that, called on another
Observable, returns a new :class:`MergeUnify` over that one and its own sources, sharing its counters.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final, Generic, Never, TypeVar, overload

import msgspec
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable
from reactivex.subject import Subject

from rxmarket.errors import ConfigError
from rxmarket.policy.keys import (
    NATURAL_KEYS,
    NATURAL_PAIRS,
    NATURAL_VERSIONS,
    NEW,
    NEWER,
    OLDER,
    SAME,
    KeyStore,
    check_bounds,
    event_time,
    no_natural_error,
    reference_price,
)

__all__ = ["Divergence", "MergeUnify", "UnifyStats", "merge_unify"]

_T = TypeVar("_T")
_S = TypeVar("_S")
_MISSING: Final = object()


class Divergence(msgspec.Struct, frozen=True, kw_only=True):
    """Two channels disagree about one key's price, as published on ``MergeUnify.divergences``.

    Attributes:
        key: the key both items are about.
        item: the item that just arrived.
        other: the latest item of the other channel for the same key.
        difference: ``|price(item) - price(other)| / |price(other)|``.
        item_source: the index of ``item``'s channel among the merged Observables (0 = first).
        other_source: the index of ``other``'s channel.
    """

    key: Any
    item: Any
    other: Any
    difference: float
    item_source: int
    other_source: int


class UnifyStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one ``merge_unify`` at one moment (totals over all its subscriptions).

    Attributes:
        passed: items emitted (newer than the last one emitted for their key).
        duplicates: items dropped because an equal version was already emitted (typically the same
            update arriving over the second channel).
        stale: items dropped because a newer version was already emitted.
        divergences: price disagreements reported (only with ``tolerance``).
        evicted: keys forgotten because more than ``max_keys`` were held.
        keys: keys held now by the live subscriptions.
    """

    passed: int
    duplicates: int
    stale: int
    divergences: int
    evicted: int
    keys: int


class _Settings(msgspec.Struct, frozen=True):
    key: Callable[[Any], Hashable] | None
    version: Callable[[Any], Any] | None
    tolerance: float | None
    max_skew_ms: float
    max_keys: int
    price: Callable[[Any], float | None]


class _Reports:
    """Counters and the divergence stream, shared by a MergeUnify and the ones derived from it by ``pipe``."""

    __slots__ = ("divergences", "duplicates", "evicted", "live", "passed", "stale", "subject")

    def __init__(self) -> None:
        self.passed = 0
        self.duplicates = 0
        self.stale = 0
        self.divergences = 0
        self.evicted = 0  # of stores whose subscription ended
        self.live: set[KeyStore] = set()
        self.subject: Subject[Divergence] = Subject()


class MergeUnify(Observable[_T], Generic[_T]):
    """The merged, newest-per-key stream of some Observables; also an operator that adds one more.

    Made by :func:`merge_unify`; see the module docstring.
    """

    def __init__(self, sources: tuple[Observable[Any], ...], settings: _Settings, reports: _Reports) -> None:
        super().__init__()
        self._sources = sources
        self._settings = settings
        self._reports = reports

    @property
    def divergences(self) -> Observable[Divergence]:
        """Price disagreements between channels (hot; only reported when ``tolerance`` is set)."""
        return self._reports.subject

    def stats(self) -> UnifyStats:
        """A frozen snapshot of the counters."""
        r = self._reports
        return UnifyStats(
            passed=r.passed,
            duplicates=r.duplicates,
            stale=r.stale,
            divergences=r.divergences,
            evicted=r.evicted + sum(s.evicted for s in r.live),
            keys=sum(len(s) for s in r.live),
        )

    # Typed for the two uses: ``merge_unify()`` (no sources yet) takes any stream; ``merge_unify(b)`` takes
    # a stream of b's type (one model per merge; merge unlike streams with ``merge_unify(a, b)``).
    @overload
    def __call__(self: MergeUnify[Never], source: Observable[_S]) -> MergeUnify[_S]: ...

    @overload
    def __call__(self, source: Observable[_T]) -> MergeUnify[_T]: ...

    def __call__(self, source: Observable[Any]) -> MergeUnify[Any]:
        """Merge ``source`` (first) with this operator's sources: ``source.pipe(ops.merge_unify(other))``."""
        return MergeUnify((source, *self._sources), self._settings, self._reports)

    def _subscribe_core(
        self, observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return self.subscribe_stages(observer, scheduler)

    @property
    def natural(self) -> bool:
        """Whether items are keyed and versioned naturally (no ``key``/``version`` given)."""
        return self._settings.key is None and self._settings.version is None

    def subscribe_stages(
        self,
        observer: abc.ObserverBase[Any],
        scheduler: abc.SchedulerBase | None,
        emit: Callable[[Any], None] | None = None,
        keyed: Callable[[Any, Hashable, Any], None] | None = None,
        release_stages: Callable[[], None] | None = None,
    ) -> abc.DisposableBase:
        """Subscribe the sources; each item that passes goes to ``keyed(item, key, version)`` if given,
        else to ``emit(item)`` (default ``observer.on_next``). Errors and completion go to ``observer``.

        This is how later operators run in the same item handler (:mod:`rxmarket.operators._fused`);
        ``release_stages`` is called after the sources are disposed.
        """
        sources = self._sources
        if not sources:
            observer.on_completed()
            return Disposable(release_stages) if release_stages is not None else Disposable()
        pass_on = emit if emit is not None else observer.on_next
        reports = self._reports
        store = KeyStore(self._settings.max_keys, None)
        reports.live.add(store)
        # Per key, the latest item seen on each channel (only kept when channels are cross-checked).
        latest: OrderedDict[Hashable, list[Any]] | None = (
            OrderedDict() if self._settings.tolerance is not None else None
        )

        def release() -> None:
            reports.live.discard(store)
            reports.evicted += store.evicted
            store.clear()
            if release_stages is not None:
                release_stages()

        group = CompositeDisposable()
        if len(sources) == 1:
            # One source needs no lock: Rx already delivers its items one at a time.
            group.add(
                sources[0].subscribe(
                    self._on_next_for(0, observer, pass_on, keyed, store, latest, None),
                    observer.on_error,
                    observer.on_completed,
                    scheduler=scheduler,
                )
            )
            group.add(Disposable(release))  # last: the sources stop before their key table is dropped
            return group

        # Items of different sources may arrive on different threads; reentrant, because a subscriber may
        # make another source emit from inside on_next.
        lock = threading.RLock()
        remaining = [len(sources)]

        def on_error(error: Exception) -> None:
            with lock:
                observer.on_error(error)

        def on_completed() -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    observer.on_completed()

        for index, source in enumerate(sources):
            inner = SingleAssignmentDisposable()
            group.add(inner)
            inner.disposable = source.subscribe(
                self._on_next_for(index, observer, pass_on, keyed, store, latest, lock),
                on_error,
                on_completed,
                scheduler=scheduler,
            )
        group.add(Disposable(release))
        return group

    def _on_next_for(
        self,
        index: int,
        observer: abc.ObserverBase[Any],
        emit: Callable[[Any], None],
        keyed: Callable[[Any, Hashable, Any], None] | None,
        store: KeyStore,
        latest: OrderedDict[Hashable, list[Any]] | None,
        lock: threading.RLock | None,
    ) -> Callable[[Any], None]:
        """The item handler of the source at ``index`` (all share ``store``: one key space)."""
        settings, reports = self._settings, self._reports
        key_fn, version_fn = settings.key, settings.version
        natural = key_fn is None and version_fn is None
        natural_for = NATURAL_PAIRS.get
        # KeyStore.offer, inlined below: a method call is a sizeable part of the cost per item.
        table, limit, trim = store.table, store.limit, store.trim
        held, seen_again = table.get, table.move_to_end
        compare = self._comparer(index, latest) if latest is not None else None
        # Several sources: one item at a time. Bound acquire/release in try/finally cost half a with block.
        acquire, release = (lock.acquire, lock.release) if lock is not None else (None, None)

        def on_next(item: Any) -> None:
            if acquire is not None:
                acquire()
            try:
                found: list[Divergence] | None = None
                try:
                    if natural:
                        entry = natural_for(type(item))
                        if entry is None:
                            raise no_natural_error(item, "key")
                        get_key, get_version = entry
                        key = get_key(item)
                        version = None if get_version is None else get_version(item)
                    else:
                        key = _natural(item, "key") if key_fn is None else key_fn(item)
                        version = _natural(item, "version") if version_fn is None else version_fn(item)
                    old = held(key, _MISSING)  # = store.offer(key, version): NEW/NEWER pass, SAME/OLDER not
                    if old is _MISSING:
                        table[key] = version
                        if len(table) > limit:
                            trim()
                        verdict = NEW
                    else:
                        seen_again(key)
                        if version is None:
                            verdict = SAME
                        elif version > old:
                            table[key] = version
                            verdict = NEWER
                        else:
                            verdict = SAME if version == old else OLDER
                    if compare is not None:
                        found = compare(key, item)
                except Exception as exc:  # a caller's key/version/price function failed, or an unknown type
                    observer.on_error(exc)
                    return
                if found:
                    for divergence in found:
                        reports.divergences += 1
                        reports.subject.on_next(divergence)
                if verdict <= NEWER:
                    reports.passed += 1
                    if keyed is None:
                        emit(item)
                    else:
                        keyed(item, key, version)
                elif verdict == SAME:
                    reports.duplicates += 1
                else:
                    reports.stale += 1
            finally:
                if release is not None:
                    release()

        return on_next

    def _comparer(
        self, index: int, latest: OrderedDict[Hashable, list[Any]]
    ) -> Callable[[Hashable, Any], list[Divergence] | None]:
        """Compare an item of channel ``index`` with the other channels' latest items for its key.

        ``latest`` is shared by the channels of one subscription and bounded like the key store (LRU).
        """
        settings = self._settings
        tolerance = settings.tolerance if settings.tolerance is not None else 0.0
        skew, price_of, max_keys = settings.max_skew_ms, settings.price, settings.max_keys
        n = len(self._sources)

        def compare(key: Hashable, item: Any) -> list[Divergence] | None:
            slots = latest.get(key)
            if slots is None:
                slots = latest[key] = [None] * n
                if len(latest) > max_keys:
                    latest.popitem(last=False)
            else:
                latest.move_to_end(key)
            slots[index] = item
            price = price_of(item)
            if price is None:
                return None
            time = event_time(item)
            found: list[Divergence] | None = None
            for other_index, other in enumerate(slots):
                if other is None or other_index == index:
                    continue
                other_price = price_of(other)
                if not other_price:
                    continue
                other_time = event_time(other)
                if time is not None and other_time is not None and abs(time - other_time) > skew:
                    continue
                difference = abs(price - other_price) / abs(other_price)
                if difference > tolerance:
                    found = found or []
                    found.append(
                        Divergence(
                            key=key, item=item, other=other, difference=difference,
                            item_source=index, other_source=other_index,
                        )
                    )
            return found

        return compare


def _natural(item: object, what: str) -> Any:
    table = NATURAL_KEYS if what == "key" else NATURAL_VERSIONS
    fn = table.get(type(item))
    if fn is None:
        raise no_natural_error(item, what)
    return fn(item)


def merge_unify(
    *sources: Observable[_T],
    key: Callable[[Any], Hashable] | None = None,
    version: Callable[[Any], Any] | None = None,
    tolerance: float | None = None,
    max_skew: float = 1.0,
    price: Callable[[Any], float | None] | None = None,
    max_keys: int = 100_000,
) -> MergeUnify[_T]:
    """Merge channels of one model; per key emit an item only if it is newer than the last one emitted.

    Examples:
        >>> tickers = ops.merge_unify(rest_tickers, ws_tickers)          # an Observable
        >>> tickers = ws_tickers.pipe(ops.merge_unify(rest_tickers))     # the same, in a pipe
        >>> unify = ops.merge_unify(rest, ws, tolerance=0.001)           # report > 0.1 % disagreements
        >>> unify.divergences.subscribe(print); unify.stats().duplicates

    Args:
        *sources: the channels to merge (none: use the result as an operator on one stream).
        key: the key of an item (default: its model's natural key, :mod:`rxmarket.policy.keys`).
        version: the version of an item, larger = newer (default: its model's natural version:
            ``timestamp``, then ``sequential_id`` for trades, volume for candles).
        tolerance: report a :class:`Divergence` when two channels' prices for one key differ by more than
            this fraction (``0.001`` = 0.1 %); ``None`` (default): no cross-check.
        max_skew: only compare items at most this many seconds apart in exchange time (a REST poll
            from a while ago may rightly disagree with the live price).
        price: the price to compare (default: ticker/trade price, candle close, book mid).
        max_keys: the most keys remembered per subscription (least recently seen forgotten first: a
            forgotten key's next item passes as new).

    Returns:
        A :class:`MergeUnify`: an Observable of the merged items, callable as an operator, with
        ``.divergences`` and ``.stats()``. It completes when every source has completed and fails as soon as
        one fails.

    Raises:
        ConfigError: a negative ``tolerance`` or ``max_skew``, ``max_keys < 1``, a non-callable function.
            An item of a type with no natural key (and no ``key``) ends the stream with ``ConfigError``; an
            exception from ``key``/``version``/``price`` ends it with that exception.
    """
    for name, fn in (("key", key), ("version", version), ("price", price)):
        if fn is not None and not callable(fn):
            raise ConfigError(f"{name} must be a function of one item, got {fn!r}")
    if tolerance is not None and not tolerance >= 0:
        raise ConfigError(f"tolerance must be >= 0 (a fraction such as 0.001) or None, got {tolerance!r}")
    if not max_skew >= 0:
        raise ConfigError(f"max_skew must be >= 0 seconds, got {max_skew!r}")
    check_bounds(max_keys, None)
    settings = _Settings(
        key=key,
        version=version,
        tolerance=tolerance,
        max_skew_ms=max_skew * 1000.0,
        max_keys=max_keys,
        price=price if price is not None else reference_price,
    )
    return MergeUnify(tuple(sources), settings, _Reports())

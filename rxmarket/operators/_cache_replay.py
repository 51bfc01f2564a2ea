"""``cache_replay``: write a stream through to a disk cache; replay its fresh values to new subscribers.

A new subscriber first gets every value the cache holds that is younger than ``ttl`` (tagged
``source="cache"``, oldest first), then the live items, each of which is written to the cache under its
key (replacing the previous value: the cache holds the newest value per key). So a dashboard that starts
or restarts shows the last known prices at once, before the first live message arrives.

Writes are coalesced by default: the newest value per key is held for up to ``flush_interval`` seconds
(1 s) and the held values are written in one transaction, because one SQLite write per message costs tens
of microseconds on the event loop; ``flush_interval=None`` writes every item as it passes.

Storage, and why it cannot execute code: each value is stored as ``bytes``: the MessagePack encoding
(msgspec) of ``(written, item)``, with the item's model told by its ``type`` tag. Entries are read back
through :class:`BytesOnlyDisk`, a ``diskcache.Disk`` that refuses every stored form except raw bytes, so a
tampered or foreign cache directory can make a read fail but can never make it unpickle. A cache given as a
plain ``diskcache.Cache`` is re-opened on the same directory with that disk (or pass one from
:func:`open_cache`).

Clock: freshness is judged on the scheduler's clock. With the default scheduler (the running asyncio loop)
that is the wall clock, seconds since the epoch, so entries written by an earlier run of the program are
judged correctly; under a ``TestScheduler`` it is virtual time. An entry is fresh when
``abs(now - written) <= ttl``.

Failure: a cache that cannot be opened, read or written (a corrupt database, garbage in an entry, a full
disk, a read-only directory) never breaks the stream: the problem is reported with a
:class:`CacheDegraded` warning and counted in ``stats().errors``; a bad entry is skipped (and deleted), and
a subscription whose writes fail goes on as a plain pass-through.

Marble diagram (``ttl=60``; the cache holds ``A`` written at t=150 and ``B`` written at t=50)::

    cache:     A(150) B(50)
    source:    -------a------b------|         (subscribed at 200)
    output:    A'-----a------b------|         A' = A with source="cache"; B is stale (200 - 50 > 60)
    cache after:  a (stamped with its arrival time), then b in its place if key(b) == key(a)
"""

from __future__ import annotations

import os
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import diskcache
import msgspec
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable, SingleAssignmentDisposable
from reactivex.scheduler import VirtualTimeScheduler
from reactivex.scheduler.scheduler import Scheduler

from rxmarket._scheduler import default_scheduler
from rxmarket.errors import ConfigError
from rxmarket.models import Candle, Model, Orderbook, Ticker, Trade

__all__ = [
    "DEFAULT_NAMESPACE",
    "BytesOnlyDisk",
    "CacheDegraded",
    "CacheReplay",
    "CacheStats",
    "cache_replay",
    "cached",
    "default_key",
    "open_cache",
    "warm",
]

_T = TypeVar("_T")

DEFAULT_NAMESPACE = "rxmarket:"

KeyFn = Callable[[Any], str]


class CacheDegraded(RuntimeWarning):
    """The cache could not be opened, read or written; the stream went on without it (or without an entry)."""


class UnsafeEntry(Exception):
    """An entry stored in a form other than raw bytes (e.g. a pickle): refused, never loaded."""


_FOREIGN_KEY = object()  # stands for a key diskcache pickled: not ours, and never unpickled


class BytesOnlyDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache ships no type hints
    """A ``diskcache.Disk`` that stores and loads raw ``bytes`` only and never unpickles anything.

    Keys other than ``str``/``bytes``/numbers (which diskcache would pickle) read back as an opaque marker;
    values stored as pickles or text raise :class:`UnsafeEntry` instead of being loaded.
    """

    def get(self, key: Any, raw: bool) -> Any:
        """A key from the database; a pickled key becomes an opaque marker, never an object."""
        if not raw:
            return _FOREIGN_KEY
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        """Store ``bytes`` only (anything else would be pickled)."""
        if type(value) is not bytes or read:
            raise TypeError(f"BytesOnlyDisk stores bytes only, got {type(value).__name__}")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        """Load a raw or binary-file value; refuse pickles and text."""
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY) or read:
            raise UnsafeEntry(f"refusing a cache entry stored in mode {mode} (only raw bytes are read)")
        return super().fetch(mode, filename, value, read)


def open_cache(directory: str | os.PathLike[str], **settings: Any) -> diskcache.Cache:
    """Open (or create) a ``diskcache.Cache`` at ``directory`` that reads and writes bytes only.

    Args:
        directory: the cache directory.
        **settings: diskcache settings (``size_limit=...``, ``sqlite_...`` pragmas ...).

    Returns:
        A cache using :class:`BytesOnlyDisk`; close it when done.
    """
    return diskcache.Cache(os.fspath(directory), disk=BytesOnlyDisk, **settings)


# A plain Cache given by the caller is re-opened once on its directory with our disk; the copy lives as
# long as the caller's cache object.
_reopened: weakref.WeakKeyDictionary[diskcache.Cache, diskcache.Cache] = weakref.WeakKeyDictionary()


def _safe(cache: diskcache.Cache) -> diskcache.Cache:
    if isinstance(cache.disk, BytesOnlyDisk):
        return cache
    safe = _reopened.get(cache)
    if safe is None:
        safe = _reopened[cache] = open_cache(cache.directory)
    return safe


class _Entry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    written: float
    item: Ticker | Orderbook | Trade | Candle


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Entry).decode


def default_key(item: Model) -> str:
    """``"ticker:KRW-BTC"``, ``"orderbook:KRW-BTC"``, ``"trade:KRW-BTC"``, ``"candle:KRW-BTC:1m"``.

    The newest item per key is kept: the last ticker, book and trade of each market, and the latest
    candle of each (market, unit).
    """
    if isinstance(item, Candle):
        return f"candle:{item.symbol}:{item.unit}"
    return f"{item.__struct_config__.tag}:{item.symbol}"


class CacheStats(NamedTuple):
    """Counters of one :class:`CacheReplay` (all subscriptions together).

    Attributes:
        hits: fresh values served (replayed to a subscriber, or returned by ``lookup``).
        misses: values looked for and not served: a requested key that was absent, stale or unreadable, a
            stale or unreadable entry met while replaying, or a replay of an empty namespace.
        writes: values written to the cache.
        coalesced: values that were replaced in memory by a newer one for the same key before being
            written (``flush_interval``).
        errors: cache problems survived (each also raised a :class:`CacheDegraded` warning).
    """

    hits: int
    misses: int
    writes: int
    coalesced: int
    errors: int


def _degraded(what: str, exc: BaseException) -> None:
    warnings.warn(
        f"cache {what} failed, going on without it: {type(exc).__name__}: {exc}", CacheDegraded, stacklevel=3
    )


def _wall_clock_or(sched: abc.SchedulerBase) -> Callable[[], float]:
    """A fast ``now()`` in seconds on the scheduler's clock.

    reactivex's real-time schedulers all report the wall clock (``Scheduler.now``); reading ``time.time``
    directly skips building a datetime per message. Virtual-time schedulers keep their own clock.
    """
    if type(sched).now is Scheduler.now:
        return time.time
    if isinstance(sched, VirtualTimeScheduler):
        # TestScheduler keeps seconds as a number (HistoricalScheduler a datetime): read it directly.
        return lambda: sched.to_seconds(sched.clock)
    return lambda: sched.to_seconds(sched.now)


class _Counters:
    __slots__ = ("coalesced", "errors", "hits", "misses", "writes")

    def __init__(self) -> None:
        self.hits = self.misses = self.writes = self.coalesced = self.errors = 0


def _is_fresh(entry: _Entry, ttl: float, now: float) -> bool:
    # abs(): an entry a little in the future was written on a slightly faster clock (another process)
    # and is as fresh as its distance says; one far in the future belongs to another clock altogether.
    return abs(now - entry.written) <= ttl


def _as_cached(item: Any) -> Any:
    return item if item.source == "cache" else msgspec.structs.replace(item, source="cache")


def _read(db: diskcache.Cache, full_key: str, counters: _Counters) -> _Entry | None:
    """One entry, or ``None`` when absent or unreadable (then warned about, counted and deleted)."""
    try:
        data = db.get(full_key, retry=True)
        if data is None:
            return None
        if not isinstance(data, bytes):
            raise UnsafeEntry(f"entry holds a {type(data).__name__}, not bytes")
        return _decode(data)
    except (UnsafeEntry, msgspec.DecodeError) as exc:
        counters.errors += 1
        _degraded(f"entry {full_key!r}", exc)
        try:
            db.delete(full_key, retry=True)
        except Exception as err:  # a read-only cache: keep skipping the entry
            _degraded(f"delete of bad entry {full_key!r}", err)
        return None


def _fresh(
    db: diskcache.Cache,
    namespace: str,
    keys: Iterable[str] | None,
    ttl: float,
    now: float,
    counters: _Counters,
) -> list[Any]:
    """The fresh items under ``namespace`` (only ``keys`` if given), oldest first, tagged ``cache``."""
    if keys is None:
        wanted = []
        for stored in db.iterkeys():
            if type(stored) is str:
                if stored.startswith(namespace):
                    wanted.append(stored)
                elif stored > namespace:
                    break  # keys come sorted: past the namespace, nothing more of ours
    else:
        wanted = [namespace + key for key in keys]
    found: list[tuple[float, str, Any]] = []
    for full_key in wanted:
        entry = _read(db, full_key, counters)
        if entry is not None and _is_fresh(entry, ttl, now):
            found.append((entry.written, full_key, entry.item))
        else:
            counters.misses += 1
    if not wanted:
        counters.misses += 1  # an empty namespace: the replay as a whole missed
    found.sort(key=lambda row: (row[0], row[1]))
    counters.hits += len(found)
    return [_as_cached(item) for _, _, item in found]


def _lookup(db: diskcache.Cache, full_key: str, ttl: float, now: float, counters: _Counters) -> Any:
    """The fresh item at ``full_key`` tagged ``cache`` (a hit), or ``None`` (a miss)."""
    entry = _read(db, full_key, counters)
    if entry is None or not _is_fresh(entry, ttl, now):
        counters.misses += 1
        return None
    counters.hits += 1
    return _as_cached(entry.item)


def _write_many(db: diskcache.Cache, rows: Iterable[tuple[str, float, Any]]) -> int:
    """Write ``(full_key, written, item)`` rows in one transaction; return how many."""
    count = 0
    with db.transact(retry=True):
        for full_key, written, item in rows:
            db.set(full_key, _encode(_Entry(written, item)), retry=True)
            count += 1
    return count


def cached(
    cache: diskcache.Cache,
    key: str,
    ttl: float,
    *,
    now: float | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> Any:
    """The fresh cached value for ``key``, tagged ``source="cache"``, or ``None``; never raises for the cache.

    A read helper for cache-first lookups (``get_ticker``): no counters, no writes (except dropping an
    unreadable entry).

    Args:
        cache: a ``diskcache.Cache`` (best from :func:`open_cache`; a plain one is re-opened safely once).
        key: the key as ``key(item)`` made it, without the namespace (e.g. ``"ticker:KRW-BTC"``).
        ttl: the greatest age, seconds, of a value to return.
        now: the current time on the clock the value was written with (default: the wall clock).
        namespace: the prefix the writer used.

    Returns:
        The model, or ``None`` if absent, stale or unreadable (then a :class:`CacheDegraded` warning).
    """
    try:
        return _lookup(_safe(cache), namespace + key, ttl, time.time() if now is None else now, _Counters())
    except Exception as exc:
        _degraded("read", exc)
        return None


def warm(
    cache: diskcache.Cache,
    items: Iterable[Any],
    *,
    key: KeyFn = default_key,
    now: float | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> int:
    """Preload ``cache`` with ``items`` (e.g. one REST snapshot of every ticker), written at ``now``.

    Args:
        cache: a ``diskcache.Cache``.
        items: models to store; later items replace earlier ones with the same key.
        key: the key function the readers use.
        now: the write time to record (default: the wall clock).
        namespace: the prefix the readers use.

    Returns:
        How many items were written (0 if the cache could not be written: see the warning).

    Raises:
        Exception: whatever ``key`` raises (a broken key function is not a cache problem).
    """
    rows = _rows(items, key, namespace, now)
    try:
        return _write_many(_safe(cache), rows)
    except Exception as exc:
        _degraded("warm-up", exc)
        return 0


def _rows(
    items: Iterable[Any], key: KeyFn, namespace: str, now: float | None
) -> list[tuple[str, float, Any]]:
    """``(full_key, written, item)`` rows for :func:`_write_many`, keys checked (a broken key fn raises)."""
    at = time.time() if now is None else now
    rows = []
    for item in items:
        name = key(item)
        if type(name) is not str:
            raise ConfigError(f"cache key function must return a str, got {type(name).__name__}: {name!r}")
        rows.append((namespace + name, at, item))
    return rows


class CacheReplay:
    """What :func:`cache_replay` returns: an operator for ``pipe`` with counters and cache helpers.

    The same object can be applied to several sources; the counters add up over all of them.
    """

    def __init__(
        self,
        cache: diskcache.Cache | str | os.PathLike[str],
        *,
        key: KeyFn,
        ttl: float,
        namespace: str,
        keys: Iterable[str] | None,
        flush_interval: float | None,
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        if not ttl >= 0:
            raise ConfigError(f"ttl must be >= 0 seconds, got {ttl!r}")
        if flush_interval is not None and not flush_interval > 0:
            raise ConfigError(f"flush_interval must be > 0 seconds or None, got {flush_interval!r}")
        if isinstance(cache, str | os.PathLike):
            self._path: Path | None = Path(cache)
            self._given: diskcache.Cache | None = None
        elif isinstance(cache, diskcache.Cache):
            self._path, self._given = None, cache
        else:
            raise ConfigError(
                f"cache must be a diskcache.Cache or a directory path, got {type(cache).__name__}"
            )
        self.key = key
        self.ttl = ttl
        self.namespace = namespace
        self.keys = None if keys is None else tuple(keys)
        self.flush_interval = flush_interval
        self.scheduler = scheduler
        self._owned: diskcache.Cache | None = None
        self._counters = _Counters()

    # ---- helpers for callers -------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """The counters now (a frozen copy)."""
        c = self._counters
        return CacheStats(c.hits, c.misses, c.writes, c.coalesced, c.errors)

    def lookup(self, key: str, *, now: float | None = None) -> Any:
        """The fresh value for ``key`` (see :func:`cached`), counted as a hit or a miss."""
        db = self._open()
        if db is None:
            self._counters.misses += 1
            return None
        try:
            return _lookup(
                db, self.namespace + key, self.ttl, time.time() if now is None else now, self._counters
            )
        except Exception as exc:
            self._problem("read", exc)
            self._counters.misses += 1
            return None

    def warm(self, items: Iterable[Any], *, now: float | None = None) -> int:
        """Preload the cache with ``items`` written at ``now`` (default: the wall clock); see :func:`warm`."""
        rows = _rows(items, self.key, self.namespace, now)
        db = self._open()
        if db is None:
            return 0
        try:
            written = _write_many(db, rows)
        except Exception as exc:
            self._problem("warm-up", exc)
            return 0
        self._counters.writes += written
        return written

    def invalidate(self, key: str | None = None) -> None:
        """Forget ``key``'s value, or every value in the namespace when ``key`` is ``None``."""
        db = self._open()
        if db is None:
            return
        try:
            if key is not None:
                db.delete(self.namespace + key, retry=True)
                return
            doomed = [k for k in db.iterkeys() if type(k) is str and k.startswith(self.namespace)]
            for stored in doomed:
                db.delete(stored, retry=True)
        except Exception as exc:
            self._problem("invalidate", exc)

    def close(self) -> None:
        """Close the cache if this operator opened it from a path (a cache passed in stays open)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    # ---- internals -----------------------------------------------------------------------------------

    def _problem(self, what: str, exc: BaseException) -> None:
        self._counters.errors += 1
        _degraded(what, exc)

    def _open(self) -> diskcache.Cache | None:
        """The bytes-only cache, opening it on first use; ``None`` (warned, counted) if it cannot be."""
        try:
            if self._given is not None:
                return _safe(self._given)
            if self._owned is None:
                self._owned = open_cache(cast(Path, self._path))
            return self._owned
        except Exception as exc:
            self._problem("open", exc)
            return None

    def __call__(self, source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = default_scheduler(self.scheduler if self.scheduler is not None else scheduler_)
            now = _wall_clock_or(sched)
            counters = self._counters
            db = self._open()
            if db is not None:
                try:
                    replay = _fresh(db, self.namespace, self.keys, self.ttl, now(), counters)
                except Exception as exc:  # the database itself is unreadable
                    self._problem("read", exc)
                    replay = []
                for item in replay:
                    observer.on_next(item)
            writer = _Writer(self, db, sched, now)
            upstream = SingleAssignmentDisposable()
            key, namespace, forward = self.key, self.namespace, observer.on_next

            def on_next(item: _T) -> None:
                try:
                    full_key = namespace + key(item)
                except Exception as exc:  # a user function failed: report it, do not swallow it
                    on_key_error(exc)
                    return
                forward(item)
                writer.put(full_key, item)

            def on_key_error(exc: Exception) -> None:
                upstream.dispose()
                writer.flush()
                writer.db = None  # items a synchronous source still pushes are not written
                observer.on_error(exc)

            def on_error(exc: Exception) -> None:
                writer.flush()
                observer.on_error(exc)

            def on_completed() -> None:
                writer.flush()
                observer.on_completed()

            upstream.disposable = source.subscribe(on_next, on_error, on_completed, scheduler=scheduler_)
            return CompositeDisposable(upstream, Disposable(writer.flush), writer.timer)

        return Observable(subscribe)


class _Writer:
    """Writes one subscription's items: at once, or coalesced to the newest per key every interval."""

    __slots__ = ("counters", "db", "interval", "now", "op", "pending", "sched", "timer")

    def __init__(
        self, op: CacheReplay, db: diskcache.Cache | None, sched: abc.SchedulerBase, now: Callable[[], float]
    ) -> None:
        self.op = op
        self.db = db  # None: degraded to a pass-through
        self.sched = sched
        self.now = now
        self.interval = op.flush_interval
        self.counters = op._counters
        self.pending: dict[str, tuple[str, float, Any]] = {}
        self.timer = SerialDisposable()

    def put(self, full_key: str, item: Any) -> None:
        db = self.db
        if db is None:
            return
        if self.interval is None:
            try:
                db.set(full_key, _encode(_Entry(self.now(), item)), retry=True)
            except Exception as exc:  # full disk, read-only directory, corrupt database
                self._degrade(exc)
                return
            self.counters.writes += 1
            return
        if full_key in self.pending:
            self.counters.coalesced += 1
        elif not self.pending:
            self.timer.disposable = self.sched.schedule_relative(self.interval, self._on_timer)
        self.pending[full_key] = (full_key, self.now(), item)

    def _on_timer(self, _: abc.SchedulerBase, __: Any = None) -> None:
        self.flush()

    def flush(self) -> None:
        """Write whatever is held back (no-op when writing at once)."""
        if not self.pending:
            return
        rows, self.pending = list(self.pending.values()), {}
        if self.db is None:
            return
        try:
            self.counters.writes += _write_many(self.db, rows)
        except Exception as exc:
            self._degrade(exc)

    def _degrade(self, exc: BaseException) -> None:
        self.db = None
        self.pending.clear()
        self.op._problem("write", exc)


def cache_replay(
    cache: diskcache.Cache | str | os.PathLike[str],
    key: KeyFn = default_key,
    ttl: float = 60.0,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    keys: Iterable[str] | None = None,
    flush_interval: float | None = 1.0,
    scheduler: abc.SchedulerBase | None = None,
) -> CacheReplay:
    """Write items through to a disk cache and replay the fresh ones to each new subscriber first.

    See the module docstring for storage, clock and failure behaviour, and a marble diagram.

    Args:
        cache: a ``diskcache.Cache`` (best from :func:`open_cache`), or a directory path to open one at
            (then ``close()`` the returned operator when done).
        key: the cache key of an item (default :func:`default_key`); one value is kept per key. If it
            raises, the output ends with that error (a ``TypeError`` if it returns a non-``str``).
        ttl: the greatest age, seconds, of a value that is replayed.
        namespace: prefix of every key this operator writes; a subscriber is replayed the fresh values of
            the whole namespace, so give each kind of stream its own (``"rxmarket:ticker-krw:"``).
        keys: replay only these keys (without the namespace) instead of the whole namespace.
        flush_interval: seconds during which the newest value per key is held in memory before the held
            values are written together in one transaction (default 1 s; held values are also written at
            completion, error and dispose). ``None`` writes every item at once: one SQLite transaction
            per message, about 40x the cost (see ``docs/benchmarks.md``).
        scheduler: the clock for freshness and the flush timer; default the subscribe-time scheduler,
            else the running loop's.

    Returns:
        An operator for ``pipe`` with ``stats()``, ``lookup()``, ``warm()``, ``invalidate()``, ``close()``.

    Raises:
        ConfigError: at once, on a negative ``ttl``, a bad ``flush_interval`` or a ``cache`` of another type.
    """
    return CacheReplay(
        cache,
        key=key,
        ttl=ttl,
        namespace=namespace,
        keys=keys,
        flush_interval=flush_interval,
        scheduler=scheduler,
    )

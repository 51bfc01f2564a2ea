"""Natural keys and versions of the models, and a bounded key store: pure code, time passed in.

``ops.merge_unify`` and ``ops.dedupe`` ask two questions of every item: *which thing is this about* (its
key) and *how new is it* (its version). The answers per model:

==============  ==============================  =====================================================
model           natural key                     version (larger = newer)
==============  ==============================  =====================================================
``Ticker``      ``symbol``                      ``(timestamp, trade_timestamp, acc_trade_volume)``
``Orderbook``   ``(level, symbol)``             ``timestamp`` (Upbit sends whole books, no sequence)
``Trade``       ``(symbol, sequential_id)``     none needed (one id is one trade); ``(timestamp,
                                                sequential_id)`` under a caller's coarser key
``Candle``      ``(symbol, unit, start)``       ``(timestamp or -1, volume, value)``
==============  ==============================  =====================================================

Keys never collide across models, so one operator can serve a stream that mixes them: each model's keys
have their own shape (a string; a pair that starts with a ``float | None``; a pair that starts with a
string; a triple), so a ticker and a book of one market are two things, and so are a book at ``level``
``1.0`` and trade ``1`` (``(1.0, s) != (s, 1)``, where ``(s, 1.0) == (s, 1)`` would be one key). Books of
one market at two price groupings (``level``) are two books. Every key and version is built by
``operator.attrgetter`` (in C), except a candle's version. Every Upbit ticker carries ``trade_timestamp``
and ``acc_trade_volume``; tickers built by hand should carry both too (or neither), since ``None`` does not
order against a number.

Tickers and books are *states*: the newest one per market replaces the others. A ticker's ``timestamp`` is
only milliseconds and a busy market sends several tickers in one millisecond; every trade adds to the day's
``acc_trade_volume``, so it orders those, while a true repeat (one ticker over REST and the WebSocket) stays
equal. Books carry no such counter: two different books of one millisecond compare equal (see
``rxmarket.pipelines.book_version`` for an arrival-ordered alternative). Trades are *events*: each
``sequential_id`` is its own key (Upbit: "unique per trade, not an ordering key"), so a trade that two
channels both deliver is one trade, and trades that arrive out of order (a REST page is newest first) are
all kept. A candle is a state per ``(symbol, unit, start)``: Upbit resends an open candle as it changes; the
resend with the later last tick (``timestamp``) or, at an equal tick, the larger accumulated volume is the
newer one.

:class:`KeyStore` remembers the last version per key with bounded memory: at most ``max_keys`` keys
(least recently seen evicted first) and/or only keys seen within the last ``ttl`` seconds. It never reads a
clock: ``now`` is an argument.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from operator import attrgetter
from typing import Any, Final

from rxmarket.errors import ConfigError
from rxmarket.models import Candle, Orderbook, Ticker, Trade

__all__ = [
    "NATURAL_KEYS",
    "NATURAL_PAIRS",
    "NATURAL_VERSIONS",
    "NEW",
    "NEWER",
    "OLDER",
    "SAME",
    "KeyStore",
    "check_bounds",
    "event_time",
    "natural_key",
    "natural_version",
    "no_natural_error",
    "reference_price",
    "ticker_version",
]

KeyFn = Callable[[Any], Hashable]
VersionFn = Callable[[Any], Any]


def _candle_version(candle: Candle) -> tuple[int, float, float]:
    """A candle's version: last tick first; accumulated volume and value break ties (they only grow)."""
    ts = candle.timestamp
    return (-1 if ts is None else ts, candle.volume, candle.value)


# attrgetter builds keys and versions in C: no Python frame per item on the hot path.
NATURAL_KEYS: Final[Mapping[type, KeyFn]] = {
    Ticker: attrgetter("symbol"),
    Orderbook: attrgetter("level", "symbol"),  # level first: a trade's key is (symbol, int)
    Trade: attrgetter("symbol", "sequential_id"),
    Candle: attrgetter("symbol", "unit", "start"),
}
"""The natural key function of each model type."""

ticker_version: Final[Callable[[Ticker], tuple[int, int | None, float | None]]] = attrgetter(
    "timestamp", "trade_timestamp", "acc_trade_volume"
)
"""A ticker's version: frame time, then last trade time and the day's volume (it only grows)."""

NATURAL_VERSIONS: Final[Mapping[type, VersionFn]] = {
    Ticker: ticker_version,
    Orderbook: attrgetter("timestamp"),
    Trade: attrgetter("timestamp", "sequential_id"),
    Candle: _candle_version,
}
"""The natural version function of each model type (larger compares newer)."""


NATURAL_PAIRS: Final[Mapping[type, tuple[KeyFn, VersionFn | None]]] = {
    model: (key, None if model is Trade else NATURAL_VERSIONS[model]) for model, key in NATURAL_KEYS.items()
}
"""``(key function, version function)`` per model type, for the operators' hot path.

A trade has no version function: its natural key already names one trade, so any repeat of it is a repeat
(the same verdicts as comparing ``(timestamp, sequential_id)`` versions, one call cheaper).
"""


def no_natural_error(item: object, what: str) -> ConfigError:
    """The error for an item of a type with no natural ``what`` (``"key"`` or ``"version"``)."""
    return ConfigError(
        f"no natural {what} for {type(item).__name__} items (known: Ticker, Orderbook, Trade, Candle); "
        f"pass {what}=... to the operator"
    )


def natural_key(item: object) -> Hashable:
    """The natural key of a model (see the module table).

    Raises:
        ConfigError: ``item`` is not a Ticker, Orderbook, Trade or Candle.
    """
    fn = NATURAL_KEYS.get(type(item))
    if fn is None:
        raise no_natural_error(item, "key")
    return fn(item)


def natural_version(item: object) -> Any:
    """The natural version of a model (see the module table); a larger version is newer.

    Raises:
        ConfigError: ``item`` is not a Ticker, Orderbook, Trade or Candle.
    """
    fn = NATURAL_VERSIONS.get(type(item))
    if fn is None:
        raise no_natural_error(item, "version")
    return fn(item)


def _candle_time(candle: Candle) -> int:
    return candle.start if candle.timestamp is None else candle.timestamp


def _book_mid(book: Orderbook) -> float | None:
    units = book.units
    if units and units[0].ask_price > 0.0 and units[0].bid_price > 0.0:  # the usual case, no level objects
        return (units[0].ask_price + units[0].bid_price) / 2
    return book.mid


_EVENT_TIMES: Final[Mapping[type, Callable[[Any], int]]] = {
    Ticker: attrgetter("timestamp"),
    Orderbook: attrgetter("timestamp"),
    Trade: attrgetter("timestamp"),
    Candle: _candle_time,
}
_PRICES: Final[Mapping[type, Callable[[Any], float | None]]] = {
    Ticker: attrgetter("price"),
    Trade: attrgetter("price"),
    Candle: attrgetter("close"),
    Orderbook: _book_mid,
}


def event_time(item: object) -> int | None:
    """The exchange time of a model in ms: ``timestamp`` (a candle without one: its ``start``).

    Returns ``None`` for anything that is not one of the four models.
    """
    fn = _EVENT_TIMES.get(type(item))
    return None if fn is None else fn(item)


def reference_price(item: object) -> float | None:
    """The price two channels should agree on: last price, trade price, candle close or book mid.

    Returns ``None`` when there is none (a book with an empty side, or not a model).
    """
    fn = _PRICES.get(type(item))
    return None if fn is None else fn(item)


# What KeyStore.offer found. Plain ints: compared on the hot path.
NEW: Final = 0
"""The key was not held: it is now."""
NEWER: Final = 1
"""The key was held with an older version: the new version replaced it."""
SAME: Final = 2
"""The key was held with an equal version (or the store keeps no versions): a repeat."""
OLDER: Final = 3
"""The key was held with a newer version: a stale resend."""

_MISSING: Final = object()


class KeyStore:
    """The last version per key, bounded by count (LRU) and/or age (TTL); time is an argument.

    A key is forgotten when more than ``max_keys`` keys are held (the least recently *seen* goes first) or
    when it has not been seen for ``ttl`` seconds. Seeing a key again, even as a repeat, refreshes it, so
    a resend that keeps coming back within the window keeps being recognised.

    Args:
        max_keys: the most keys held at once, or ``None`` for no count bound.
        ttl: seconds a key is remembered after it was last seen, or ``None`` for no time bound.

    Raises:
        ConfigError: both bounds are ``None`` (memory would grow without bound), ``max_keys < 1`` or
            ``ttl <= 0``.
    """

    __slots__ = ("_limit", "_seen", "_versions", "evicted", "expired", "max_keys", "ttl")

    def __init__(self, max_keys: int | None = 100_000, ttl: float | None = None) -> None:
        check_bounds(max_keys, ttl)
        self.max_keys = max_keys
        self._limit = sys.maxsize if max_keys is None else max_keys  # one int compare on the hot path
        self.ttl = ttl
        self.evicted = 0
        """Keys forgotten because more than ``max_keys`` were held."""
        self.expired = 0
        """Keys forgotten because they were not seen for ``ttl`` seconds."""
        # OrderedDict order is "least recently seen first": move_to_end on every sighting makes both the
        # LRU victim and the oldest sighting the first entry, so eviction and expiry pop from the front.
        self._versions: OrderedDict[Hashable, Any] = OrderedDict()
        self._seen: dict[Hashable, float] = {}

    def __len__(self) -> int:
        return len(self._versions)

    def __contains__(self, key: object) -> bool:
        return key in self._versions

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The version held for ``key`` (without refreshing it), or ``default``."""
        return self._versions.get(key, default)

    @property
    def table(self) -> OrderedDict[Hashable, Any]:
        """The key -> version table, least recently seen first.

        For per-item hot paths that inline :meth:`offer` when ``ttl`` is ``None`` (a method call is a
        sizeable part of an operator's cost): on every sighting ``move_to_end(key)``; on a new or newer
        version ``table[key] = version``; after adding a key, :meth:`trim`.
        """
        return self._versions

    @property
    def limit(self) -> int:
        """``max_keys``, or ``sys.maxsize`` when there is no count bound."""
        return self._limit

    def trim(self) -> None:
        """Forget the least recently seen keys until at most ``max_keys`` are held."""
        versions = self._versions
        while len(versions) > self._limit:
            gone, _ = versions.popitem(last=False)
            self._seen.pop(gone, None)
            self.evicted += 1

    def clear(self) -> None:
        """Forget every key (counters are kept)."""
        self._versions.clear()
        self._seen.clear()

    def offer(self, key: Hashable, version: Any = None, now: float = 0.0) -> int:
        """Record a sighting of ``key`` at ``version`` and say how it compares with what was held.

        Args:
            key: the item's key.
            version: the item's version; ``None`` means "no versions": any repeat of a held key is SAME.
            now: the current time in seconds (only read when ``ttl`` is set).

        Returns:
            ``NEW`` or ``NEWER`` (the version is now held) or ``SAME`` or ``OLDER`` (held unchanged).

        Raises:
            TypeError: the version does not compare with the one held (a caller's version function
                returned values of different types).
        """
        # The verdicts are written as literals (NEW=0, NEWER=1, SAME=2, OLDER=3): this runs per item.
        versions = self._versions
        if self.ttl is not None:
            self._expire(now - self.ttl)
            self._seen[key] = now
        old = versions.get(key, _MISSING)
        if old is _MISSING:
            versions[key] = version
            if len(versions) > self._limit:
                self.trim()
            return 0
        versions.move_to_end(key)
        if version is None:
            return 2
        if version > old:
            versions[key] = version
            return 1
        return 2 if version == old else 3

    def _expire(self, limit: float) -> None:
        """Forget the keys last seen at or before ``limit`` (``now - ttl``); they are all at the front."""
        versions, seen = self._versions, self._seen
        while versions:
            first = next(iter(versions))
            if seen[first] > limit:
                return
            del versions[first]
            del seen[first]
            self.expired += 1


def check_bounds(max_keys: int | None, ttl: float | None) -> None:
    """Raise :class:`ConfigError` unless ``max_keys``/``ttl`` describe a bounded store."""
    if max_keys is None and ttl is None:
        raise ConfigError("max_keys=None and ttl=None would keep every key forever; set at least one bound")
    if max_keys is not None and (isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1):
        raise ConfigError(f"max_keys must be an int >= 1 or None, got {max_keys!r}")
    if ttl is not None and not ttl > 0:
        raise ConfigError(f"ttl must be > 0 seconds or None, got {ttl!r}")

"""Per-stream staleness as pure bookkeeping: the caller says when things move and asks what went quiet.

A connection can be healthy while one of its streams is silent (a market stopped trading, a subscription
was dropped by the exchange). :class:`StalenessTracker` watches each key, e.g. ``("trade", "KRW-BTC")``,
separately and reports each silence **once per episode**: a key is reported by
:meth:`~StalenessTracker.stale` when it has been silent for ``limit`` seconds, then not again until it has
moved (:meth:`~StalenessTracker.touch` returns ``True`` for that first move: the key *recovered*) and gone
silent again::

    tracker = StalenessTracker(limit=10.0)
    tracker.touch(("trade", "KRW-BTC"), now)        # on every item
    for key, silent_for in tracker.stale(now):      # on a timer, e.g. every second
        publish_stale(key, silent_for)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from rxmarket.errors import ConfigError

__all__ = ["StalenessTracker"]

K = TypeVar("K", bound=Hashable)


class StalenessTracker(Generic[K]):
    """Tracks when each key last moved and which keys are in a stale episode.

    Args:
        limit: seconds of silence after which a key is stale (> 0).

    Raises:
        ConfigError: when ``limit`` is not a positive number.
    """

    __slots__ = ("_last", "_stale", "limit")

    def __init__(self, limit: float) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
            raise ConfigError(f"staleness limit must be > 0 seconds, got {limit!r}")
        self.limit = float(limit)
        self._last: dict[K, float] = {}
        self._stale: set[K] = set()

    def touch(self, key: K, now: float) -> bool:
        """Record that ``key`` moved at ``now`` (starts tracking an unknown key).

        Returns:
            ``True`` when this ends a stale episode of ``key`` (it *recovered*), else ``False``.
        """
        self._last[key] = now
        # The common case (nothing stale) costs one truth test of an empty set.
        if self._stale and key in self._stale:
            self._stale.discard(key)
            return True
        return False

    def stale(self, now: float) -> list[tuple[K, float]]:
        """Keys that went stale since the last call, with how long each has been silent.

        A key is reported once per episode: it is not reported again until it has recovered.
        """
        limit = self.limit
        stale = self._stale
        found = [
            (key, now - last)
            for key, last in self._last.items()
            if now - last >= limit and key not in stale
        ]
        stale.update(key for key, _ in found)
        return found

    def is_stale(self, key: K) -> bool:
        """Whether ``key`` is in a reported stale episode."""
        return key in self._stale

    def last_seen(self, key: K) -> float | None:
        """When ``key`` last moved, or ``None`` if it is not tracked."""
        return self._last.get(key)

    def next_deadline(self) -> float | None:
        """The earliest time at which a key not yet stale would become stale (``None``: nothing to watch).

        A caller can sleep until then instead of polling.
        """
        stale = self._stale
        times = [last for key, last in self._last.items() if key not in stale]
        return min(times) + self.limit if times else None

    def forget(self, key: K) -> None:
        """Stop tracking ``key`` (e.g. on unsubscribe); unknown keys are ignored."""
        self._last.pop(key, None)
        self._stale.discard(key)

    def __contains__(self, key: object) -> bool:
        return key in self._last

    def __iter__(self) -> Iterator[K]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

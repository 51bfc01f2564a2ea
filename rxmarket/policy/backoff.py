"""Backoff delays as a pure generator: the caller owns the clock and the sleeping.

Used by the WebSocket reconnect loop and by ``ops.retry_with_backoff``. The shape follows the common
"exponential backoff with jitter" recipe: attempt 1 may be immediate (``first=0``), then ``initial``,
``initial * multiplier``, ... capped at ``max_delay``; jitter spreads each delay by ``±jitter`` of itself
using a caller-supplied ``random.Random`` so that tests can seed it.
"""

from __future__ import annotations

import random as _random
from collections.abc import Iterator

from rxmarket.errors import ConfigError

__all__ = ["BackoffPolicy", "backoff_delays", "check_backoff"]


def backoff_delays(
    *,
    initial: float = 0.5,
    multiplier: float = 2.0,
    max_delay: float = 30.0,
    jitter: float = 0.0,
    immediate_first: bool = False,
    rng: _random.Random | None = None,
) -> Iterator[float]:
    """Yield an endless sequence of delays in seconds.

    Args:
        initial: the first non-immediate delay.
        multiplier: growth factor between consecutive delays (>= 1).
        max_delay: the cap, applied before jitter.
        jitter: relative spread in [0, 1]: each delay becomes ``d * (1 + u)``, ``u`` uniform in
            ``[-jitter, +jitter]``, clamped to ``[0, max_delay]``.
        immediate_first: yield 0 first (reconnect at once after a drop that may be a blip).
        rng: the random source for jitter (default: a new unseeded ``random.Random``).

    Raises:
        ConfigError: on a negative delay, a multiplier below 1 or a jitter outside [0, 1].
    """
    check_backoff(initial=initial, multiplier=multiplier, max_delay=max_delay, jitter=jitter)
    rand = rng if rng is not None else _random.Random()
    if immediate_first:
        yield 0.0
    delay = initial
    while True:
        capped = min(delay, max_delay)
        if jitter:
            capped = min(max(capped * (1.0 + rand.uniform(-jitter, jitter)), 0.0), max_delay)
        yield capped
        delay = min(delay * multiplier, max_delay)


def check_backoff(*, initial: float, multiplier: float, max_delay: float, jitter: float) -> None:
    """Raise :class:`ConfigError` unless the backoff parameters make sense."""
    if initial < 0:
        raise ConfigError(f"initial delay must be >= 0 seconds, got {initial!r}")
    if max_delay < initial:
        raise ConfigError(f"max_delay ({max_delay!r}) must be >= initial ({initial!r})")
    if multiplier < 1:
        raise ConfigError(f"multiplier must be >= 1, got {multiplier!r}")
    if not 0 <= jitter <= 1:
        raise ConfigError(f"jitter must be within [0, 1], got {jitter!r}")


class BackoffPolicy:
    """A reusable backoff description; ``delays()`` starts a fresh sequence (e.g. after a healthy spell).

    Args:
        initial, multiplier, max_delay, jitter, immediate_first: as in :func:`backoff_delays`.
        seed: seeds the jitter's random source so that sequences are reproducible.
    """

    __slots__ = ("immediate_first", "initial", "jitter", "max_delay", "multiplier", "seed")

    def __init__(
        self,
        *,
        initial: float = 0.5,
        multiplier: float = 2.0,
        max_delay: float = 30.0,
        jitter: float = 0.0,
        immediate_first: bool = False,
        seed: int | None = None,
    ) -> None:
        check_backoff(initial=initial, multiplier=multiplier, max_delay=max_delay, jitter=jitter)
        self.initial = initial
        self.multiplier = multiplier
        self.max_delay = max_delay
        self.jitter = jitter
        self.immediate_first = immediate_first
        self.seed = seed

    def delays(self, rng: _random.Random | None = None) -> Iterator[float]:
        """A fresh delay sequence (jitter from ``rng``, else from a generator seeded with ``seed``)."""
        return backoff_delays(
            initial=self.initial,
            multiplier=self.multiplier,
            max_delay=self.max_delay,
            jitter=self.jitter,
            immediate_first=self.immediate_first,
            rng=rng if rng is not None else _random.Random(self.seed),
        )

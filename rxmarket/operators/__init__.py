"""Exchange-agnostic operators over rxmarket models, each usable in ``observable.pipe(...)``.

Also importable as ``rxmarket.ops``. One private module per operator; this file is the public surface:

* :func:`merge_unify` — REST + WebSocket into one stream; newest wins per key; ``source`` kept.
* :func:`dedupe` — drop repeats with bounded memory (LRU and/or time window).
* :func:`validate` — consistency checks; drop, error or correct; rejects to a :class:`Quarantine`.
* :func:`retry_with_backoff` — resubscribe on error with exponential, jittered, rate-limit-aware delays.
* :func:`circuit_break` — closed / open / half-open, failing fast or switching to a fallback.
* :func:`cache_replay` — diskcache write-through; fresh values replayed to new subscribers.
"""

from rxmarket.operators._cache_replay import (
    CacheDegraded,
    CacheReplay,
    CacheStats,
    cache_replay,
    cached,
    open_cache,
    warm,
)
from rxmarket.operators._circuit import CircuitBreaker, CircuitBreakOperator, circuit_break
from rxmarket.operators._dedupe import Dedupe, DedupeStats, dedupe
from rxmarket.operators._merge_unify import Divergence, MergeUnify, UnifyStats, merge_unify
from rxmarket.operators._retry import retry_with_backoff
from rxmarket.operators._validate import Quarantine, QuarantineStats, Rejected, Validate, validate
from rxmarket.policy.breaker import BreakerState, Transition
from rxmarket.policy.retry import RetryEvent

__all__ = [
    "BreakerState",
    "CacheDegraded",
    "CacheReplay",
    "CacheStats",
    "CircuitBreakOperator",
    "CircuitBreaker",
    "Dedupe",
    "DedupeStats",
    "Divergence",
    "MergeUnify",
    "Quarantine",
    "QuarantineStats",
    "Rejected",
    "RetryEvent",
    "Transition",
    "UnifyStats",
    "Validate",
    "cache_replay",
    "cached",
    "circuit_break",
    "dedupe",
    "merge_unify",
    "open_cache",
    "retry_with_backoff",
    "validate",
    "warm",
]

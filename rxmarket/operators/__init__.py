"""Exchange-agnostic operators over rxmarket models, each usable in ``observable.pipe(...)``.

Also importable as ``rxmarket.ops``. One private module per operator; this file is the public surface.
"""

from rxmarket.operators._cache_replay import cache_replay
from rxmarket.operators._circuit import circuit_break
from rxmarket.operators._dedupe import dedupe
from rxmarket.operators._merge_unify import merge_unify
from rxmarket.operators._retry import retry_with_backoff
from rxmarket.operators._validate import validate

__all__ = [
    "cache_replay",
    "circuit_break",
    "dedupe",
    "merge_unify",
    "retry_with_backoff",
    "validate",
]

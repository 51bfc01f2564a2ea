"""The default chain in one item handler: ``merge_unify`` -> ``dedupe`` -> ``validate`` without Rx hops.

Each operator in a reactivex pipe subscribes to the one before it, so every item passes through one
``AutoDetachObserver`` per stage and each keyed operator computes its key again. The default chain
``merge_unify(ws, rest).pipe(dedupe(), validate())`` pays that twice per item for nothing, since the three
operators are ours. So when ``dedupe()`` or ``validate()`` is applied to a ``merge_unify`` (directly, or to
one already fused), it returns a :class:`Fused` Observable instead of wrapping it, and one subscription runs
all the stages in ``merge_unify``'s item handler:

* ``merge_unify`` keys and versions the item and decides as always;
* a natural ``dedupe`` (no ``key``/``version``; only after a natural ``merge_unify``, whose key and version
  are then exactly its own) is given that key and version, and decides with its own key store;
* ``validate`` checks the item with its own state and quarantine, and emits it.

Nothing else changes: every operator keeps its own state, counters, verdicts and error reporting, so the
fused chain emits exactly what the unfused one does (a property test compares the two). Only this order
fuses; anything else (``validate()`` before ``dedupe()``, a ``dedupe(key=...)``, an operator in between)
falls back to the ordinary subscription.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from reactivex import Observable, abc

from rxmarket.operators._merge_unify import MergeUnify

if TYPE_CHECKING:
    from rxmarket.operators._dedupe import Dedupe
    from rxmarket.operators._validate import Validate

__all__ = ["Fused", "fuse_dedupe", "fuse_validate"]

_T = TypeVar("_T")


class Fused(Observable[_T]):
    """``merge_unify`` followed by a natural ``dedupe`` and/or ``validate``, run in one item handler."""

    def __init__(self, unify: MergeUnify[Any], deduper: Dedupe | None, validator: Validate | None) -> None:
        super().__init__()
        self.unify = unify
        self.deduper = deduper
        self.validator = validator

    def _subscribe_core(
        self, observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        # Built back to front: validate emits to the observer, dedupe to validate, merge_unify to dedupe.
        emit = observer.on_next if self.validator is None else self.validator.handler(observer, scheduler)
        if self.deduper is None:
            return self.unify.subscribe_stages(observer, scheduler, emit)
        keyed, release = self.deduper.keyed(emit, observer.on_error, scheduler)
        return self.unify.subscribe_stages(observer, scheduler, emit, keyed, release)


def fuse_dedupe(source: Observable[Any], deduper: Dedupe) -> Observable[Any] | None:
    """``deduper`` applied to ``source`` as one fused Observable, or ``None`` when they do not fuse."""
    if isinstance(source, MergeUnify) and source.natural and deduper.natural:
        return Fused(source, deduper, None)
    return None


def fuse_validate(source: Observable[Any], validator: Validate) -> Observable[Any] | None:
    """``validator`` applied to ``source`` as one fused Observable, or ``None`` when they do not fuse."""
    if isinstance(source, MergeUnify):
        return Fused(source, None, validator)
    if isinstance(source, Fused) and source.validator is None:
        return Fused(source.unify, source.deduper, validator)
    return None

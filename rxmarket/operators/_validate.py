"""``ops.validate``: let consistent items through; drop, fail on or repair the others, and say so.

Marble (``x`` fails a check, ``x'`` is its repaired copy)::

    source:     --a--x--b--y--|
    drop:       --a-----b-----|      quarantine: -----x-----y--   (action "dropped")
    correct:    --a--x'-b-----|      quarantine: -----x-----y--   (x "corrected", y "dropped": not repairable)
    error:      --a--#                quarantine: -----x           (action "error"; # is ValidationError)

The built-in checks and repairs are pure functions in :mod:`rxmarket.policy.checks`; this module adds the
checks that need state or a clock (a ticker's or book's timestamp never goes back per market, tickers and
books apart; items not older than ``max_age``), the user checks, and the :class:`Quarantine` that records
every rejected item with its reason and counts it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final, Literal, TypeVar, get_args

import msgspec
from reactivex import Observable, abc
from reactivex.subject import Subject

from rxmarket._scheduler import default_scheduler
from rxmarket.errors import ConfigError, ValidationError
from rxmarket.models import Orderbook, Ticker, Trade
from rxmarket.operators._fused import fuse_validate
from rxmarket.policy.checks import BUILTIN_CHECKS, REPAIRS, Failure, check_age
from rxmarket.policy.keys import NATURAL_KEYS, check_bounds

__all__ = ["Check", "OnInvalid", "Quarantine", "QuarantineStats", "Rejected", "Validate", "validate"]

_T = TypeVar("_T")

OnInvalid = Literal["drop", "error", "correct"]
Action = Literal["dropped", "corrected", "error"]

Check = Callable[[Any], str | bool | None]
"""A user check: ``None`` or ``True`` for a good item, ``False`` or a reason (``str``) for a bad one."""

_MODES: Final = frozenset(get_args(OnInvalid))
_TIMED: Final = (Ticker, Orderbook, Trade)  # candles are history by nature: max_age does not apply
# Whose timestamps must not go back, keyed naturally: a ticker by symbol, a book by (level, symbol). A ticker
# and a book of one market are two streams with their own clocks (one never holds the other back).
_ORDERED: Final[Mapping[type, Callable[[Any], Hashable]]] = {
    tp: NATURAL_KEYS[tp] for tp in (Ticker, Orderbook)
}


class Rejected(msgspec.Struct, frozen=True, kw_only=True):
    """One item that failed a check, as published on a :class:`Quarantine`.

    Attributes:
        item: the item as received.
        reason: what was wrong, with the values.
        check: the failed check's name (a built-in name such as ``"crossed"``, or a user check's
            ``__name__``).
        action: what ``validate`` did: ``"dropped"``, ``"corrected"`` (``corrected`` was emitted instead)
            or ``"error"`` (the stream ended with :class:`~rxmarket.errors.ValidationError`).
        corrected: the repaired copy that was emitted, for ``action == "corrected"``.
    """

    item: Any
    reason: str
    check: str
    action: Action
    corrected: Any = None


class QuarantineStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`Quarantine` at one moment (totals over every stream that reports to it).

    Attributes:
        passed: items that passed every check unchanged.
        dropped: items rejected and not emitted.
        corrected: items replaced by a repaired copy.
        errors: streams ended by a rejected item (``on_invalid="error"``) or by a failing user check.
        by_check: rejections (dropped, corrected or error) per check name.
    """

    passed: int
    dropped: int
    corrected: int
    errors: int
    by_check: dict[str, int]


class Quarantine(Observable[Rejected]):
    """Where ``validate`` puts what it rejects: a hot Observable of :class:`Rejected` plus counters.

    One quarantine can serve several ``validate`` operators (pass ``quarantine=q`` to each); every one
    adds to the same counters. Subscribers see rejects from the moment they subscribe; :meth:`recent`
    keeps the last few for those who look later.

    Args:
        keep: how many recent rejects :meth:`recent` remembers.
    """

    def __init__(self, keep: int = 100) -> None:
        super().__init__()
        self._subject: Subject[Rejected] = Subject()
        self._recent: deque[Rejected] = deque(maxlen=keep)
        self._by_check: dict[str, int] = {}
        self.passed = 0
        self.dropped = 0
        self.corrected = 0
        self.errors = 0

    def _subscribe_core(
        self, observer: abc.ObserverBase[Rejected], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return self._subject.subscribe(observer, scheduler=scheduler)

    def report(self, rejected: Rejected) -> None:
        """Count ``rejected`` and publish it (``validate`` calls this; so may other rejecting code)."""
        if rejected.action == "dropped":
            self.dropped += 1
        elif rejected.action == "corrected":
            self.corrected += 1
        else:
            self.errors += 1
        self._by_check[rejected.check] = self._by_check.get(rejected.check, 0) + 1
        self._recent.append(rejected)
        self._subject.on_next(rejected)

    def recent(self) -> list[Rejected]:
        """The last rejects, oldest first (at most ``keep``)."""
        return list(self._recent)

    def stats(self) -> QuarantineStats:
        """A frozen snapshot of the counters."""
        return QuarantineStats(
            passed=self.passed,
            dropped=self.dropped,
            corrected=self.corrected,
            errors=self.errors,
            by_check=dict(self._by_check),
        )

    def close(self) -> None:
        """Complete the quarantine stream (its owner is shutting down); counters stay readable."""
        self._subject.on_completed()


def _out_of_order(key: Hashable, timestamp: int, last: int) -> Failure:
    return Failure(
        "timestamp_order", f"timestamp {timestamp!r} is older than the last one for {key!r} ({last!r})"
    )


def _check_name(check: Check) -> str:
    return str(getattr(check, "__name__", None) or repr(check))


class Validate:
    """The operator returned by :func:`validate`: call it on an Observable (or use it in ``pipe``).

    Attributes:
        quarantine: where rejected items go (the one passed in, or a new one).
    """

    def __init__(
        self,
        checks: tuple[Check, ...],
        *,
        on_invalid: OnInvalid,
        builtins: bool,
        monotonic: bool,
        max_age: float | None,
        max_keys: int,
        quarantine: Quarantine | None,
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        if on_invalid not in _MODES:
            raise ConfigError(f"on_invalid must be one of {sorted(_MODES)}, got {on_invalid!r}")
        for check in checks:
            if not callable(check):
                raise ConfigError(f"a check must be a function of one item, got {check!r}")
        if max_age is not None and not max_age > 0:
            raise ConfigError(f"max_age must be > 0 seconds or None, got {max_age!r}")
        check_bounds(max_keys, None)
        self.quarantine = quarantine if quarantine is not None else Quarantine()
        self._checks = tuple((_check_name(c), c) for c in checks)
        self._on_invalid = on_invalid
        self._builtins = builtins
        self._monotonic = monotonic
        self._max_age_ms = None if max_age is None else max_age * 1000.0
        self._max_keys = max_keys
        self._scheduler = scheduler

    def __call__(self, source: Observable[_T]) -> Observable[_T]:
        """Validate ``source``: each subscription gets its own per-market timestamp state.

        Right after a ``merge_unify`` (and a natural ``dedupe``), the checks run in the same item handler
        (see :mod:`rxmarket.operators._fused`), with the same verdicts, quarantine and counters.
        """
        fused = fuse_validate(source, self)
        if fused is not None:
            return fused

        def subscribe(
            observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return source.subscribe(
                self.handler(observer, scheduler), observer.on_error, observer.on_completed,
                scheduler=scheduler,
            )

        return Observable(subscribe)

    def handler(
        self, observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None
    ) -> Callable[[Any], None]:
        """The item handler of one subscription: check an item, then pass it to ``observer`` or reject it."""
        builtin_for = (BUILTIN_CHECKS if self._builtins else {}).get
        more = self._more_checks(scheduler)
        # The last passed timestamp per ticker or book key (_ORDERED). Keys are few, so the bound is a
        # safety net: past max_keys the key first recorded is forgotten (no LRU bookkeeping per item).
        ordered = _ORDERED if self._monotonic else {}
        ordered_key = ordered.get
        # Each value is a one-item list (a cell) updated in place: one hash lookup per item, not two.
        last_seen: OrderedDict[Hashable, list[int]] = OrderedDict()
        max_keys = self._max_keys
        quarantine = self.quarantine

        def check(item: Any) -> Failure | None:
            """Every check in order; the first failure, or ``None``.

            The timestamp-order check runs last and records the item's timestamp when it passes, so
            only an item that passed everything moves its market's watermark.
            """
            tp = type(item)
            builtin = builtin_for(tp)
            failure = None if builtin is None else builtin(item)
            if failure is None and more is not None:
                failure = more(item, tp)
            key_of = ordered_key(tp)
            if failure is None and key_of is not None:
                key = key_of(item)
                timestamp = item.timestamp
                cell = last_seen.get(key)
                if cell is None:
                    last_seen[key] = [timestamp]
                    if len(last_seen) > max_keys:
                        last_seen.popitem(last=False)
                elif timestamp >= (last := cell[0]):
                    cell[0] = timestamp
                else:  # an older one is not recorded
                    failure = _out_of_order(key, timestamp, last)
            return failure

        reject = self._rejecter(observer, check)
        # Per model, its built-in check and its timestamp-order key in one lookup.
        plan_for = {tp: (builtin_for(tp), ordered_key(tp)) for tp in BUILTIN_CHECKS}.get
        no_plan: tuple[None, None] = (None, None)
        emit = observer.on_next

        def on_next(item: Any) -> None:
            # check(item), inlined for the usual item (a model with no user checks or max_age): a
            # Python call is a sizeable part of the cost per item. Same order, same watermark rule.
            tp = type(item)
            builtin, key_of = plan_for(tp, no_plan)
            try:
                failure = None if builtin is None else builtin(item)
                if failure is None:
                    if more is not None:
                        failure = more(item, tp)
                    if failure is None and key_of is not None:
                        key = key_of(item)
                        timestamp = item.timestamp
                        cell = last_seen.get(key)
                        if cell is None:
                            last_seen[key] = [timestamp]
                            if len(last_seen) > max_keys:
                                last_seen.popitem(last=False)
                        elif timestamp >= (last := cell[0]):
                            cell[0] = timestamp
                        else:
                            failure = _out_of_order(key, timestamp, last)
            except Exception as exc:  # a user check raised: report it, never swallow it
                quarantine.errors += 1
                observer.on_error(exc)
                return
            if failure is None:
                quarantine.passed += 1
                emit(item)
            else:
                reject(item, failure)

        return on_next

    def _more_checks(
        self, subscribe_scheduler: abc.SchedulerBase | None
    ) -> Callable[[Any, type], Failure | None] | None:
        """The user checks and the ``max_age`` check of one subscription, or ``None`` if there are none."""
        user_checks = self._checks
        max_age_ms = self._max_age_ms
        if not user_checks and max_age_ms is None:
            return None
        scheduler = (
            default_scheduler(self._scheduler or subscribe_scheduler) if max_age_ms is not None else None
        )

        def more(item: Any, tp: type) -> Failure | None:
            for name, user_check in user_checks:
                verdict = user_check(item)
                if verdict is None or verdict is True:
                    continue
                if verdict is False:
                    return Failure(name, f"{name} returned False")
                if isinstance(verdict, str):
                    return Failure(name, verdict)
                raise TypeError(f"check {name} returned {verdict!r}; expected None, True, False or a str")
            if scheduler is not None and max_age_ms is not None and tp in _TIMED:
                return check_age(item.timestamp, scheduler.now.timestamp() * 1000.0, max_age_ms)
            return None

        return more

    def _rejecter(
        self,
        observer: abc.ObserverBase[Any],
        check: Callable[[Any], Failure | None],
    ) -> Callable[[Any, Failure], None]:
        quarantine = self.quarantine
        mode = self._on_invalid

        def reject(item: Any, failure: Failure) -> None:
            if mode == "correct" and failure.repairable:
                repair = REPAIRS.get(type(item))
                if repair is not None:
                    try:
                        fixed = repair(item)
                        again = check(fixed)
                    except Exception as exc:  # a user check raised on the repaired copy
                        quarantine.errors += 1
                        observer.on_error(exc)
                        return
                    if again is None:
                        quarantine.report(
                            Rejected(
                                item=item, reason=failure.reason, check=failure.check, action="corrected",
                                corrected=fixed,
                            )
                        )
                        observer.on_next(fixed)
                        return
                    failure = Failure(again.check, f"{failure.reason}; after repair: {again.reason}")
            action: Action = "error" if mode == "error" else "dropped"
            quarantine.report(Rejected(item=item, reason=failure.reason, check=failure.check, action=action))
            if mode == "error":
                observer.on_error(ValidationError(f"{failure.check}: {failure.reason}", item))

        return reject


def validate(
    *checks: Check,
    on_invalid: OnInvalid = "drop",
    builtins: bool = True,
    monotonic: bool = True,
    max_age: float | None = None,
    max_keys: int = 100_000,
    quarantine: Quarantine | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Validate:
    """Check every item; pass the good ones, and drop, fail on, or repair the others.

    Runs, in order, the built-in check of the item's model (see :mod:`rxmarket.policy.checks`), the user
    ``checks``, the ``max_age`` check, then "timestamps never go backwards" per market for tickers and
    (apart) books. The first failure decides. Every rejected item is published on the quarantine with its
    reason and counted; items that pass are counted too.

    Examples:
        >>> check = ops.validate()                                  # built-ins, drop the bad
        >>> source.pipe(check).subscribe(print)
        >>> check.quarantine.subscribe(lambda r: log.warning("%s: %s", r.check, r.reason))
        >>> ops.validate(lambda t: t.volume < 1_000 or "whale trade", on_invalid="error")
        >>> ops.validate(on_invalid="correct")                       # re-sort books, fix change fields

    Args:
        *checks: user checks, plain functions of one item returning ``None``/``True`` (good), ``False``
            or a reason ``str`` (bad). A check that raises ends the stream with that error.
        on_invalid: ``"drop"`` (default), ``"error"`` (end the stream with ``ValidationError``) or
            ``"correct"`` (emit a repaired copy when the failure is repairable: unsorted or crossed book
            levels, inconsistent change fields; otherwise drop).
        builtins: run the built-in checks of the four models (default ``True``).
        monotonic: reject a ticker older than the last ticker passed for its market, a book older than
            the last book passed for its market and ``level`` (tickers and books are separate streams).
        max_age: reject tickers, books and trades whose exchange ``timestamp`` is more than this many
            seconds behind the scheduler's clock (``None``: no limit).
        max_keys: the most ticker and book streams whose last timestamp is remembered (the one first
            recorded is forgotten first).
        quarantine: where rejects go; by default a new :class:`Quarantine`, reachable as ``.quarantine``.
        scheduler: the clock for ``max_age`` (default: the subscription's scheduler, else the running
            loop's).

    Returns:
        An operator ``Observable[T] -> Observable[T]`` with a ``quarantine`` attribute.

    Raises:
        ConfigError: an unknown ``on_invalid``, a check that is not callable, ``max_age <= 0``.
    """
    return Validate(
        checks,
        on_invalid=on_invalid,
        builtins=builtins,
        monotonic=monotonic,
        max_age=max_age,
        max_keys=max_keys,
        quarantine=quarantine,
        scheduler=scheduler,
    )

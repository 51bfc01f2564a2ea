"""``replay(paths)``: a recording as an Observable, in real or virtual time, through the same operators.

Ordering: the records of one recording come out in the order they were recorded (that is the order the
live subscribers saw); several recordings are merged by timestamp with a heap, ties going to the
recording listed first. Pacing: with ``speed=N`` an item is due ``(t - t0) / N`` after the subscription,
``t0`` being the first item's timestamp; an item whose timestamp goes back (a late trade fetched to fill
a gap) is due at once after its predecessor, so the recorded order is kept. One action is scheduled at a
time, and it schedules the next one: every item due at the same instant (or already overdue) is emitted
in the same action, so a replay costs one scheduler call per distinct instant, not one per item.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import msgspec
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.scheduler import CurrentThreadScheduler, HistoricalScheduler, VirtualTimeScheduler

from rxmarket._scheduler import default_scheduler
from rxmarket.errors import ConfigError
from rxmarket.storage._format import KINDS, Item, Marker, event_ms
from rxmarket.storage._reader import ReadIssue, iter_records, recordings

__all__ = ["MODEL_KINDS", "Timeline", "historical_scheduler", "log_issue", "merged_items", "replay"]

log = logging.getLogger("rxmarket.storage")

Timeline = Literal["exchange", "received"]

MODEL_KINDS = frozenset({"ticker", "orderbook", "trade", "candle"})
ALL_KINDS = frozenset(KINDS.values())
_CHUNK = 1024  # items per action when emitting as fast as possible on a real scheduler
_MS = timedelta(milliseconds=1)


def log_issue(issue: ReadIssue) -> None:
    """The default ``on_issue`` of a replay: a warning on the ``rxmarket.storage`` logger."""
    log.warning("replay: %s in %s at offset %d (%d bytes): %s", issue.kind, issue.segment, issue.offset,
                issue.size, issue.reason)


def _to_ms(value: int | float | datetime | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(f"{name} must be timezone-aware (e.g. tzinfo=UTC), got naive {value!r}")
        return round(value.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    raise ConfigError(f"{name} must be ms since the epoch or an aware datetime, got {value!r}")


def _check_kinds(kinds: Iterable[str] | None) -> frozenset[str]:
    if kinds is None:
        return MODEL_KINDS
    chosen = frozenset([kinds] if isinstance(kinds, str) else kinds)
    unknown = chosen - ALL_KINDS
    if unknown:
        raise ConfigError(f"unknown kinds {sorted(unknown)}; choose from {sorted(ALL_KINDS)}")
    return chosen


def _items(
    path: Path,
    kinds: frozenset[str],
    symbols: frozenset[str] | None,
    start: int | None,
    end: int | None,
    by_receipt: bool,
    on_issue: Callable[[ReadIssue], None],
) -> Iterator[tuple[int, Item]]:
    """``(time ms, item)`` for each selected record of one recording, models re-tagged ``"replay"``."""
    replace = msgspec.structs.replace
    kind_of = KINDS.__getitem__
    event = event_ms
    everything = kinds == MODEL_KINDS and symbols is None and start is None and end is None
    for rec in iter_records(path, on_issue):
        item = rec.item
        cls = type(item)
        if everything:  # the common case, kept lean: the per-item cost is the replay's speed
            if cls is Marker:
                continue
            yield (rec.recv_ns // 1_000_000 if by_receipt else event(item)), replace(item, source="replay")
            continue
        if kind_of(cls) not in kinds:
            continue
        if symbols is not None:
            if isinstance(item, Marker):
                about = item.status.symbol if item.status is not None else None
                if about is not None and about not in symbols:
                    continue  # a marker about another market; markers about no market always pass
            elif item.symbol not in symbols:
                continue
        t = rec.recv_ns // 1_000_000 if by_receipt else event(item)
        if (start is not None and t < start) or (end is not None and t >= end):
            continue
        yield t, (item if cls is Marker else replace(item, source="replay"))


def merged_items(
    paths: list[Path],
    kinds: frozenset[str],
    symbols: frozenset[str] | None,
    start: int | None,
    end: int | None,
    by_receipt: bool,
    on_issue: Callable[[ReadIssue], None],
) -> Iterator[tuple[int, Item]]:
    """``(time ms, item)`` of several recordings, filtered, merged by time (one recording: its order)."""
    sources = [_items(p, kinds, symbols, start, end, by_receipt, on_issue) for p in paths]
    if len(sources) == 1:
        return sources[0]
    # heapq.merge is stable: on equal times the recording listed first goes first.
    return heapq.merge(*sources, key=itemgetter(0))


def replay(
    paths: str | Path | Iterable[str | Path],
    speed: float | None = None,
    scheduler: abc.SchedulerBase | None = None,
    *,
    symbols: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    start: int | datetime | None = None,
    end: int | datetime | None = None,
    timeline: Timeline = "exchange",
    on_issue: Callable[[ReadIssue], None] | None = None,
) -> Observable[Any]:
    """Replay recordings as an Observable of models (``source="replay"``), merged in time order.

    Every subscription reads the files anew. Damage in a file (a torn tail, a bad CRC) is skipped and
    reported to ``on_issue`` (default: a warning on the ``rxmarket.storage`` logger), never raised.

    Args:
        paths: one recording (a directory or a segment file) or several, merged by timestamp.
        speed: ``None`` to emit as fast as possible; ``N`` to pace the items at N times the recorded
            pace (``1.0`` = as recorded).
        scheduler: where items are emitted. With ``speed=N`` the default is the running loop's
            scheduler; give a ``HistoricalScheduler`` (see :func:`historical_scheduler`) to replay in
            virtual time. With ``speed=None`` the default emits synchronously on the subscribing thread
            (trampolined), and a given scheduler gets the items in chunks of 1024 per action.
        symbols: only these markets (markers about no market in particular always pass).
        kinds: which kinds to emit, from ``"ticker"``, ``"orderbook"``, ``"trade"``, ``"candle"`` and
            ``"marker"``; default: the four models, no markers.
        start: skip items before this time (ms since the epoch, or an aware datetime), inclusive.
        end: skip items from this time on, exclusive.
        timeline: ``"exchange"`` orders and paces by the exchange timestamp in each model (a candle's
            ``timestamp``, else its ``start``), ``"received"`` by the time the recorder received it.
        on_issue: called with each :class:`ReadIssue` met while reading.

    Returns:
        A cold Observable; it completes after the last item. Disposing it stops the reading at once.

    Raises:
        ConfigError: a path does not exist, or an argument is out of range.
    """
    found = recordings(paths)
    if speed is not None and (isinstance(speed, bool) or not speed > 0):
        raise ConfigError(f"speed must be None (as fast as possible) or > 0, got {speed!r}")
    if timeline not in ("exchange", "received"):
        raise ConfigError(f"timeline must be 'exchange' or 'received', got {timeline!r}")
    kind_set = _check_kinds(kinds)
    symbol_set = None if symbols is None else frozenset([symbols] if isinstance(symbols, str) else symbols)
    start_ms, end_ms = _to_ms(start, "start"), _to_ms(end, "end")
    report = on_issue or log_issue
    by_receipt = timeline == "received"

    def open_items() -> Iterator[tuple[int, Item]]:
        return merged_items(found, kind_set, symbol_set, start_ms, end_ms, by_receipt, report)

    if speed is None:
        return _as_fast_as_possible(open_items, scheduler)
    return _paced(open_items, speed, scheduler)


def _close(items: Iterator[tuple[int, Item]] | None) -> None:
    """Close a reading generator now (its open segment file with it) rather than at garbage collection."""
    close = getattr(items, "close", None)
    if close is not None:
        with contextlib.suppress(ValueError):  # running in another thread: it stops at `disposed`
            close()


def _as_fast_as_possible(
    open_items: Callable[[], Iterator[tuple[int, Item]]], scheduler: abc.SchedulerBase | None
) -> Observable[Any]:
    def subscribe(observer: abc.ObserverBase[Any], scheduler_: abc.SchedulerBase | None = None) -> Disposable:
        sched = scheduler or scheduler_ or CurrentThreadScheduler.singleton()
        chunked = not isinstance(sched, CurrentThreadScheduler)
        disposed = False
        items: Iterator[tuple[int, Item]] | None = None
        task: abc.DisposableBase | None = None

        def action(sch: abc.SchedulerBase, _state: Any = None) -> None:
            nonlocal items, task
            try:
                if items is None:
                    items = open_items()
                on_next = observer.on_next
                left = _CHUNK if chunked else -1
                for _t, item in items:
                    if disposed:
                        return
                    on_next(item)
                    left -= 1
                    if left == 0:
                        if not disposed:
                            task = sch.schedule(action)
                        return
                if not disposed:
                    observer.on_completed()
            except Exception as exc:  # reading failed (I/O) or an observer raised: end the stream
                _close(items)
                observer.on_error(exc)

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            if task is not None:
                task.dispose()
            _close(items)

        first_task = sched.schedule(action)
        if task is None:  # else the first action already ran and chained on
            task = first_task
        return Disposable(dispose)

    return Observable(subscribe)


def _paced(
    open_items: Callable[[], Iterator[tuple[int, Item]]], speed: float, scheduler: abc.SchedulerBase | None
) -> Observable[Any]:
    def subscribe(observer: abc.ObserverBase[Any], scheduler_: abc.SchedulerBase | None = None) -> Disposable:
        sched = scheduler or scheduler_ or default_scheduler()
        virtual = isinstance(sched, VirtualTimeScheduler)
        origin = sched.now  # the subscription instant: item i is due at origin + (t_i - t0) / speed
        scale = 1.0 / speed
        disposed = False
        items: Iterator[tuple[int, Item]] | None = None
        t0 = 0
        held: Item | None = None  # the next item, waiting for its action
        due_ms = 0.0  # its offset after origin, ms
        task: abc.DisposableBase | None = None

        def action(sch: abc.SchedulerBase, _state: Any = None) -> None:
            nonlocal items, t0, held, due_ms, task
            try:
                on_next = observer.on_next
                if items is None:
                    items = open_items()
                    first = next(items, None)
                    if first is None:
                        observer.on_completed()
                        return
                    t0, held = first
                # Everything due by now goes out in this action: the held item, then any that follow
                # at the same instant, or that are overdue because a real clock ran late. A virtual
                # clock runs an action exactly at its due time, so reading it back can be skipped.
                now_ms = due_ms if virtual else (sch.now - origin) / _MS
                on_next(held)
                for t, item in items:
                    if disposed:
                        return
                    offset = (t - t0) * scale
                    if offset > due_ms:
                        due_ms = offset
                        if offset > now_ms:
                            held = item
                            task = sch.schedule_absolute(origin + timedelta(milliseconds=offset), action)
                            return
                    on_next(item)
                held = None
                if not disposed:
                    observer.on_completed()
            except Exception as exc:  # reading failed (I/O) or an observer raised: end the stream
                _close(items)
                observer.on_error(exc)

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            if task is not None:
                task.dispose()
            _close(items)

        first_task = sched.schedule(action)
        if task is None:  # else the first action already ran (a synchronous scheduler) and chained on
            task = first_task
        return Disposable(dispose)

    return Observable(subscribe)


def historical_scheduler(
    paths: str | Path | Iterable[str | Path],
    *,
    symbols: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    start: int | datetime | None = None,
    timeline: Timeline = "exchange",
) -> HistoricalScheduler:
    """A virtual-time scheduler whose clock starts at the first item a replay with these filters emits.

    Subscribe ``replay(paths, speed=1.0, scheduler=s)`` at the clock's start (before ``s.start()``) and
    each item is emitted at the virtual instant it happened, so ``debounce``, ``buffer_with_time``,
    ``throttle``, staleness checks and backoffs given the same scheduler behave as they did live.

    Raises:
        ConfigError: a path does not exist, or nothing in the recordings matches the filters.
    """
    found = recordings(paths)
    kind_set = _check_kinds(kinds)
    symbol_set = None if symbols is None else frozenset([symbols] if isinstance(symbols, str) else symbols)
    items = merged_items(found, kind_set, symbol_set, _to_ms(start, "start"), None, timeline == "received",
                         log_issue)
    first = next(items, None)
    _close(items)  # only the first item was needed: close its segment file now
    if first is None:
        raise ConfigError(f"nothing to replay in {', '.join(map(str, found))} with these filters")
    return HistoricalScheduler(datetime.fromtimestamp(first[0] / 1000, tz=UTC))

"""The default chains behind ``MarketData``, as plain functions: compose the same parts by hand if you like.

``market.ticker(["KRW-BTC"])`` is, underneath, :func:`ticker_pipeline` over the source's WebSocket stream
and its REST poll::

    ws   = source.stream_many("ticker", codes)                  # hot, shared, reconnecting
    rest = source.poll("ticker", codes, interval=1.0)           # one batched request per interval
    down = link_down(source.status, codes, "ticker", source.connection_of)
    tickers = ticker_pipeline(ws, rest, down=down)              # an Observable[Ticker] with .stats()

What the auto chain does with each item, in order (``x`` = the WebSocket reported down)::

    ws  --t1--t2--x                       ^--t5--t6-->   fail_when(down): a drop becomes an error
    rest          ^--r3--r4--r5--!                      circuit_break: opens, REST until a trial
    out --t1--t2-----r3--r4--r5----t6-->                merge_unify: t5 repeats r5 (dropped)
                                                        validate: drop (or correct) bad items

1. :func:`fail_when`: the source never errors on a drop (it reconnects by itself), so the "WebSocket is
   down" signals (:func:`link_down`: a reconnect backing off, an idle link, a stale stream, a gave-up
   connection) are turned into a ``TransportError`` for the breaker to see.
2. ``ops.circuit_break(failure_threshold=1, fallback=rest)``: the first such error opens the breaker and
   switches to REST polling; every ``reset_timeout`` seconds a trial subscribes the WebSocket again while
   REST keeps going; the trial's first item closes the breaker and disposes the poll.
3. ``ops.merge_unify()``: per market, only an item newer than the last one emitted passes, so the overlap
   of the two channels at a switch is never seen twice and the output never goes back in time. (It is a
   dedupe by ``(symbol, timestamp)``; ``dedupe=True`` adds ``ops.dedupe()`` as well, which for these
   models drops nothing more.)
4. ``ops.validate(on_invalid=...)``: the built-in checks (prices, ranges, crossed books, change fields);
   rejects go to the quarantine and are counted.
5. ``ops.cache_replay(cache)`` when a cache is given: write-through (coalesced), and fresh values replayed
   to each new subscriber first.

``channel="websocket"`` drops steps 1-2 and instead retries after ``GaveUp`` (the only error a source
stream ends with) with ``ops.retry_with_backoff``; ``channel="rest"`` is the poll alone through 3-5.

Every function here returns a :class:`Pipeline`: an Observable (subscribe it, ``pipe`` it) that also keeps
its parts (``.breaker``, ``.unify``, ``.validator``, ``.cache``) and sums their counters in ``.stats()``.
Building a pipeline subscribes nothing; each subscription runs the whole chain once (share it, as
``MarketData`` does, to feed many subscribers from one chain).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, Generic, TypeVar

import msgspec
from reactivex import Observable, abc
from reactivex import operators as rx_ops
from reactivex.disposable import CompositeDisposable

from rxmarket.errors import ConfigError, GaveUp, TransportError
from rxmarket.models import Candle, Orderbook, Status, Ticker, Trade
from rxmarket.operators import circuit_break, dedupe, merge_unify, retry_with_backoff, validate
from rxmarket.operators._cache_replay import CacheReplay
from rxmarket.operators._circuit import CircuitBreakOperator
from rxmarket.operators._dedupe import Dedupe
from rxmarket.operators._merge_unify import MergeUnify
from rxmarket.operators._validate import OnInvalid, Quarantine, Validate
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.policy.breaker import BreakerState, Transition
from rxmarket.policy.keys import ticker_version
from rxmarket.policy.retry import RetryEvent, is_retryable

__all__ = [
    "DOWN_KINDS",
    "Pipeline",
    "PipelineStats",
    "book_version",
    "candle_pipeline",
    "fail_when",
    "feed_retryable",
    "link_down",
    "orderbook_pipeline",
    "ticker_pipeline",
    "ticker_version",
    "trade_pipeline",
    "unified_pipeline",
]

T = TypeVar("T")

_ON_INVALID = ("drop", "error", "correct")
_SYMBOL = attrgetter("symbol")

DOWN_KINDS = frozenset({"backoff", "gave_up", "stale", "circuit"})
"""Status kinds that, on a connection carrying one of a pipeline's markets, mean "the WebSocket is down"."""


class PipelineStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one pipeline (a snapshot; totals over all its subscriptions).

    Attributes:
        duplicates: repeats and out-of-date items dropped by ``merge_unify`` and ``dedupe``.
        rejected: items validation dropped or ended the stream on.
        corrected: items validation replaced by a repaired copy.
        circuit_opens: times the breaker opened (the WebSocket was given up for REST).
        circuit_state: the breaker's state now (``"closed"``, ``"open"``, ``"half_open"``; ``""`` without
            a breaker).
        retries: resubscriptions scheduled by ``retry_with_backoff``.
        cache_hits: fresh cached values replayed to new subscribers.
        cache_misses: cache lookups that found nothing fresh.
        cache_writes: values written to the cache.
        cache_errors: cache problems survived.
    """

    duplicates: int = 0
    rejected: int = 0
    corrected: int = 0
    circuit_opens: int = 0
    circuit_state: str = ""
    retries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_writes: int = 0
    cache_errors: int = 0


class Pipeline(Observable[T], Generic[T]):
    """An assembled chain: an Observable of its output that keeps its parts and their counters.

    Made by the ``*_pipeline`` functions of this module. Attributes that a chain does not use are
    ``None``.

    Attributes:
        name: a label for status events and reprs (e.g. ``"ticker KRW-BTC"``).
        breaker: the ``circuit_break`` operator (``.states``, ``.breaker.state``).
        unify: the ``merge_unify`` stage.
        deduper: the ``dedupe`` stage.
        validator: the ``validate`` stage (``.quarantine``).
        cache: the ``cache_replay`` stage.
    """

    def __init__(
        self,
        observable: Observable[T],
        *,
        name: str,
        breaker: CircuitBreakOperator | None = None,
        unify: MergeUnify[Any] | None = None,
        deduper: Dedupe | None = None,
        validator: Validate | None = None,
        cache: CacheReplay | None = None,
        counters: _Counters | None = None,
    ) -> None:
        super().__init__()
        self._observable = observable
        self.name = name
        self.breaker = breaker
        self.unify = unify
        self.deduper = deduper
        self.validator = validator
        self.cache = cache
        self._counters = counters if counters is not None else _Counters()

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        # The chain's own entry point, called with the observer ``subscribe`` already wrapped: going through
        # ``self._observable.subscribe`` would wrap it a second time, one more call per item for nothing.
        return self._observable._subscribe_core(observer, scheduler)

    @property
    def on_primary(self) -> bool:
        """Whether the primary channel (the WebSocket) feeds the output: no breaker, or a closed one."""
        return self.breaker is None or self.breaker.breaker.state is BreakerState.CLOSED

    def stats(self) -> PipelineStats:
        """A frozen snapshot of the pipeline's counters (validation counts are the quarantine's)."""
        counters = self._counters
        duplicates = 0
        if self.unify is not None:
            unified = self.unify.stats()
            duplicates += unified.duplicates + unified.stale
        if self.deduper is not None:
            duplicates += self.deduper.stats().dropped
        rejected = corrected = 0
        if self.validator is not None:
            q = self.validator.quarantine.stats()
            rejected, corrected = q.dropped + q.errors, q.corrected
        hits = misses = writes = errors = 0
        if self.cache is not None:
            c = self.cache.stats()
            hits, misses, writes, errors = c.hits, c.misses, c.writes, c.errors
        return PipelineStats(
            duplicates=duplicates,
            rejected=rejected,
            corrected=corrected,
            circuit_opens=counters.opens,
            circuit_state=self.breaker.breaker.state.value if self.breaker is not None else "",
            retries=counters.retries,
            cache_hits=hits,
            cache_misses=misses,
            cache_writes=writes,
            cache_errors=errors,
        )

    def __repr__(self) -> str:
        state = f" circuit={self.breaker.breaker.state.value}" if self.breaker is not None else ""
        return f"<Pipeline {self.name}{state}>"


class _Counters:
    __slots__ = ("opens", "retries")

    def __init__(self) -> None:
        self.opens = 0
        self.retries = 0


# -- building blocks --------------------------------------------------------------------------------------


def fail_when(
    signals: Observable[Any], error: Callable[[Any], Exception]
) -> Callable[[Observable[T]], Observable[T]]:
    """Mirror the source, but end with ``error(signal)`` as soon as ``signals`` emits.

    Turns an out-of-band "this feed is down" event into an error that ``ops.circuit_break`` can count. The
    signals are subscribed before the source, so a signal raised while the source subscribes is not missed.
    Their end (e.g. the source closing its status stream) is ignored.

    Marble::

        source   --a--b--c--d-->
        signals  ---------s----
        output   --a--b--#            # = error(s); the source and the signals are disposed

    Args:
        signals: any Observable; its first item ends the output.
        error: makes the error from that item (if it raises, the output ends with what it raised).

    Returns:
        An operator for ``pipe``.
    """

    def operator(source: Observable[T]) -> Observable[T]:
        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            group = CompositeDisposable()
            done = False

            def on_signal(signal: Any) -> None:
                nonlocal done
                if done:
                    return
                done = True
                try:
                    exc = error(signal)
                except Exception as err:  # the caller's factory failed: that is the error to report
                    exc = err
                group.dispose()
                observer.on_error(exc)

            group.add(signals.subscribe(on_signal, lambda _exc: None, scheduler=scheduler))
            if not done:
                # The healthy path forwards the observer's own callbacks: no extra Python frame per item.
                group.add(
                    source.subscribe(observer.on_next, observer.on_error, observer.on_completed,
                                     scheduler=scheduler)
                )
            return group

        return Observable(subscribe)

    return operator


def link_down(
    status: Observable[Status],
    symbols: Iterable[str],
    channel: str,
    connection_of: Callable[[str], int | None],
    *,
    stale: bool = True,
) -> Observable[Status]:
    """The status events that mean the WebSocket feed of ``symbols`` on ``channel`` is down.

    An event counts when it is one of :data:`DOWN_KINDS` about a connection that carries one of the
    markets now (a reconnect backing off, an idle link being replaced, a gave-up connection, a 418 on the
    upgrade), or, with ``stale``, a ``stale`` event about one of the markets on ``channel``. Events of REST
    polls (no ``connection``) and of other connections are ignored.

    Args:
        status: a source's status stream (e.g. ``UpbitSource.status``).
        symbols: the markets of the pipeline.
        channel: the WebSocket channel (``"ticker"``, ``"orderbook"`` ...).
        connection_of: the id of the connection carrying a market now, or ``None``.
        stale: also count a stream that went silent for longer than its staleness limit.

    Returns:
        The filtered events (hot, as ``status`` is).
    """
    wanted = frozenset(symbols)

    def is_down(event: Status) -> bool:
        kind = event.kind
        if kind not in DOWN_KINDS:
            return False
        if event.symbol is not None:
            return stale and kind == "stale" and event.channel == channel and event.symbol in wanted
        conn = event.connection
        if conn is None:
            return False
        return any(connection_of(symbol) == conn for symbol in wanted)

    return status.pipe(rx_ops.filter(is_down))


def feed_retryable(exc: BaseException) -> bool:
    """The ``retry_if`` of WebSocket-only chains: what ``is_retryable`` retries, plus ``GaveUp``.

    A source stream ends only with ``GaveUp`` (its connection failed too often); subscribing again starts a
    new connection, so for a long-lived feed it is worth retrying, with backoff.
    """
    return isinstance(exc, GaveUp) or is_retryable(exc)


def _link_error(event: Any) -> Exception:
    if isinstance(event, Status):
        what = f"{event.kind}" + (f": {event.detail}" if event.detail else "")
        where = f"connection {event.connection}" if event.connection is not None else (event.symbol or "feed")
        return TransportError(f"WebSocket feed down ({where}, {what})")
    return TransportError(f"WebSocket feed down: {event!r}")


def _check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in _ON_INVALID:
        raise ConfigError(f"on_invalid must be one of {', '.join(_ON_INVALID)}; got {on_invalid!r}")


# -- chains -----------------------------------------------------------------------------------------------


def unified_pipeline(
    primary: Observable[T] | None,
    fallback: Observable[T] | None = None,
    *,
    down: Observable[Any] | None = None,
    failure_threshold: int = 1,
    reset_timeout: float = 5.0,
    retry: BackoffPolicy | None = None,
    with_dedupe: bool = False,
    version: Callable[[Any], Any] | None = None,
    on_invalid: OnInvalid = "drop",
    quarantine: Quarantine | None = None,
    cache: CacheReplay | None = None,
    on_transition: Callable[[Transition], None] | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
    scheduler: abc.SchedulerBase | None = None,
    name: str = "pipeline",
) -> Pipeline[T]:
    """Assemble the default chain of a state stream (tickers, books) from up to two channels.

    ============================  ===============================================================
    given                         chain
    ============================  ===============================================================
    ``primary`` and ``fallback``  ``fail_when(down)`` -> ``circuit_break(fallback)`` -> unify ...
    ``primary`` only              ``retry_with_backoff`` (if ``retry``) -> unify ...
    ``fallback`` only             the fallback (a REST poll) -> unify ...
    ============================  ===============================================================

    "unify ..." is ``merge_unify()`` -> (``dedupe()``) -> ``validate(on_invalid)`` -> (``cache_replay``).

    Args:
        primary: the WebSocket stream (``None`` for a REST-only chain).
        fallback: the REST poll that feeds the output while the primary is down.
        down: signals that the primary is down (see :func:`link_down`); each one is one failure.
        failure_threshold: consecutive failures that open the breaker (1: switch at the first sign); a
            failure below it resubscribes the primary at once instead of ending the output.
        reset_timeout: seconds on the fallback before a trial of the primary.
        retry: backoff of the retries after a primary-only chain fails (``None``: no retry).
        with_dedupe: add ``ops.dedupe()`` after ``merge_unify`` (keyed and versioned alike).
        version: the version ``merge_unify`` compares per market (larger = newer); default the model's
            natural one (its ``timestamp``). :func:`ticker_pipeline` and :func:`orderbook_pipeline` pass
            versions that let two different updates of one millisecond both through.
        on_invalid: ``"drop"``, ``"error"`` or ``"correct"`` (see ``ops.validate``).
        quarantine: where validation rejects go (default: a new one, at ``.validator.quarantine``).
        cache: a ``cache_replay`` operator for write-through and replay (``None``: no cache).
        on_transition: called with every breaker transition (e.g. to publish it as a ``Status``).
        on_retry: called with every scheduled retry.
        scheduler: for the breaker and retry timers (default: the running loop's).
        name: a label for reprs.

    Returns:
        The :class:`Pipeline`.

    Raises:
        ConfigError: no channel at all, or knobs the operators refuse.
    """
    if primary is None and fallback is None:
        raise ConfigError("a pipeline needs a primary stream, a fallback, or both")
    _check_on_invalid(on_invalid)
    counters = _Counters()
    breaker: CircuitBreakOperator | None = None
    if primary is not None and fallback is not None:
        breaker = circuit_break(
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            fallback=fallback,
            scheduler=scheduler,
        )

        def count_transition(transition: Transition) -> None:
            if transition.state is BreakerState.OPEN:
                counters.opens += 1
            if on_transition is not None:
                on_transition(transition)

        breaker.states.subscribe(count_transition)
        if down is not None:
            primary = primary.pipe(fail_when(down, _link_error))
        feed = primary.pipe(breaker)
        if failure_threshold > 1:
            # Below the threshold the breaker passes a "down" error through (and stays CLOSED): that must
            # not end a long-lived feed, so subscribe the primary again at once; the next consecutive
            # failure counts towards opening. Only while CLOSED: a failing fallback is not retried in a loop.
            feed = feed.pipe(_resubscribe_below_threshold(breaker, scheduler))
    elif primary is not None:
        feed = primary
        if retry is not None:
            feed = primary.pipe(_retry(retry, counters, on_retry, scheduler))
    else:
        assert fallback is not None
        feed = fallback
    key = _SYMBOL if version is not None else None
    unify: MergeUnify[Any] = merge_unify(key=key, version=version)
    stages: list[Callable[[Observable[Any]], Observable[Any]]] = [unify]
    deduper = dedupe(key, version=version) if with_dedupe else None
    if deduper is not None:
        stages.append(deduper)
    # monotonic=False: merge_unify already lets no older item of a market through, so validate's own
    # "timestamps never go back" check could never fail here; skipping it saves its per-item lookups.
    validator = validate(on_invalid=on_invalid, monotonic=False, quarantine=quarantine, scheduler=scheduler)
    stages.append(validator)
    if cache is not None:
        stages.append(cache)
    out: Observable[T] = feed.pipe(*stages)
    return Pipeline(
        out, name=name, breaker=breaker, unify=unify, deduper=deduper, validator=validator, cache=cache,
        counters=counters,
    )


def _resubscribe_below_threshold(
    breaker: CircuitBreakOperator, scheduler: abc.SchedulerBase | None
) -> Callable[[Observable[Any]], Observable[Any]]:
    def below_threshold(exc: Exception) -> bool:
        return isinstance(exc, TransportError) and breaker.breaker.state is BreakerState.CLOSED

    return retry_with_backoff(
        initial=0.0, max_delay=0.0, multiplier=1.0, max_attempts=None, retry_if=below_threshold,
        scheduler=scheduler,
    )


def _retry(
    policy: BackoffPolicy,
    counters: _Counters,
    on_retry: Callable[[RetryEvent], None] | None,
    scheduler: abc.SchedulerBase | None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    def count_retry(event: RetryEvent) -> None:
        counters.retries += 1
        if on_retry is not None:
            on_retry(event)

    return retry_with_backoff(
        initial=policy.initial,
        max_delay=policy.max_delay,
        multiplier=policy.multiplier,
        jitter=policy.jitter,
        max_attempts=None,
        retry_if=feed_retryable,
        immediate_first=policy.immediate_first,
        on_retry=count_retry,
        scheduler=scheduler,
    )


def book_version() -> Callable[[Orderbook], tuple[int, int]]:
    """A fresh version function for books: ``(timestamp, arrival number)``.

    Upbit's books carry no sequence, and two different books may share a millisecond; ordering them by
    arrival lets every same-millisecond update through while an older book (time going backwards, e.g. a
    slow REST answer after a newer WebSocket book) is still dropped. The price: a book repeated with the same
    timestamp passes again, which for a whole-book snapshot changes nothing downstream.
    """
    arrivals = itertools.count()

    def version(book: Orderbook) -> tuple[int, int]:
        return (book.timestamp, next(arrivals))

    return version


def ticker_pipeline(
    ws: Observable[Ticker] | None,
    rest: Observable[Ticker] | None = None,
    **options: Any,
) -> Pipeline[Ticker]:
    """The default ticker chain: WebSocket first, REST while it is down; see :func:`unified_pipeline`.

    Tickers are unified by :func:`ticker_version` unless ``version=`` says otherwise.
    """
    options.setdefault("name", "ticker")
    options.setdefault("version", ticker_version)
    return unified_pipeline(ws, rest, **options)


def orderbook_pipeline(
    ws: Observable[Orderbook] | None,
    rest: Observable[Orderbook] | None = None,
    **options: Any,
) -> Pipeline[Orderbook]:
    """The default book chain (see :func:`unified_pipeline`).

    Books are whole snapshots (Upbit sends no deltas): per market the newest book wins, in timestamp
    order (:func:`book_version`). ``on_invalid="correct"`` re-sorts unsorted levels and drops the bids at
    or above the best ask of a crossed book; ``"drop"`` (the default) drops such a book.
    """
    options.setdefault("name", "orderbook")
    options.setdefault("version", book_version())
    return unified_pipeline(ws, rest, **options)


def trade_pipeline(
    ws: Observable[Trade],
    *,
    retry: BackoffPolicy | None = None,
    max_keys: int = 100_000,
    on_invalid: OnInvalid = "drop",
    quarantine: Quarantine | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
    scheduler: abc.SchedulerBase | None = None,
    name: str = "trade",
) -> Pipeline[Trade]:
    """The default trade chain: (retry after ``GaveUp``) -> ``dedupe`` -> ``validate``.

    Trades have one live channel: the source already fills the gaps of a reconnect from REST and drops
    repeats within its window; ``dedupe(max_keys=...)`` makes that hold across a re-subscription too, with
    bounded memory (the ``max_keys`` most recent ``(symbol, sequential_id)``).

    Args:
        ws: the WebSocket trade stream.
        retry: backoff of the retries after ``GaveUp`` (``None``: no retry).
        max_keys: trade ids remembered by ``dedupe``.
        on_invalid: see ``ops.validate``.
        quarantine: where rejects go.
        on_retry: called with every scheduled retry.
        scheduler: for retry timers.
        name: a label.

    Returns:
        The :class:`Pipeline`.
    """
    _check_on_invalid(on_invalid)
    counters = _Counters()
    feed = ws if retry is None else ws.pipe(_retry(retry, counters, on_retry, scheduler))
    deduper = dedupe(max_keys=max_keys)
    validator = validate(on_invalid=on_invalid, quarantine=quarantine, scheduler=scheduler)
    return Pipeline(
        feed.pipe(deduper, validator), name=name, deduper=deduper, validator=validator, counters=counters
    )


def candle_pipeline(
    history: Observable[Candle],
    *,
    on_invalid: OnInvalid = "drop",
    quarantine: Quarantine | None = None,
    name: str = "candles",
) -> Pipeline[Candle]:
    """REST candle history through ``validate`` (the history is already paged, deduplicated and in order)."""
    _check_on_invalid(on_invalid)
    validator = validate(on_invalid=on_invalid, quarantine=quarantine)
    return Pipeline(history.pipe(validator), name=name, validator=validator)

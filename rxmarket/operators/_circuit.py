"""``circuit_break``: stop hammering a failing source; fail fast or switch to a fallback until it recovers.

The decisions live in the pure :class:`rxmarket.policy.breaker.Breaker`; this module is the Rx shell. A
:class:`CircuitBreaker` holds one ``Breaker`` shared by every subscription of the operator (each
subscription is one "call" in resilience4j's terms), publishes its transitions on ``states``, and wakes
up subscriptions that wait on the fallback.

Per subscription:

* CLOSED (or HALF_OPEN with a trial permit): subscribe the primary. Its first item (or its completion)
  records one success; its error records one failure. An error that leaves the breaker CLOSED passes
  through to the output (retrying is ``retry_with_backoff``'s job: put it after this operator).
* The failure that opens the breaker, or a subscription made while OPEN: without a ``fallback`` the output
  errors with ``CircuitOpen(retry_at)`` (``__cause__`` = the primary's error); with a ``fallback`` the
  output switches to it and keeps going.
* At ``retry_at`` a waiting subscription subscribes the primary again as a trial while the fallback keeps
  running; the trial's first item closes the breaker: the fallback is disposed and that item and the rest
  of the primary flow to the output. A trial error re-opens the breaker for another ``reset_timeout``.
* Errors that do not count (``failure_if``; default: caller faults) pass through untouched. ``Banned``
  always counts and opens the breaker until the ban ends. Errors of the fallback end the output. A
  fallback that completes leaves the output waiting for the primary.

Marble diagram (``failure_threshold=1, reset_timeout=50``, with a fallback; ``^`` subscribe, ``x`` error,
``!`` dispose; pinned by ``tests/unit/operators/test_circuit.py``)::

    time      200  205  210  215       235       255  260 263  268
    primary   ^----p1---x                             ^---p2---p3-->   the trial starts at 210 + 50
    fallback            ^----f1--------f2--------f3-------!            disposed when p2 closes the breaker
    output    -----p1--------f1--------f2--------f3-------p2---p3-->
    states              open(retry_at=260)            half_open closed
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable, SingleAssignmentDisposable
from reactivex.subject import Subject

from rxmarket._scheduler import default_scheduler
from rxmarket.errors import Banned, CircuitOpen, ConfigError
from rxmarket.policy.breaker import Breaker, BreakerState, Transition, counts_as_failure

__all__ = ["CircuitBreakOperator", "CircuitBreaker", "circuit_break"]

_T = TypeVar("_T")

FailureIf = Callable[[Exception], bool]


class CircuitBreaker:
    """A breaker shared by subscriptions: the pure state machine plus a ``states`` stream.

    Pass one to several ``circuit_break(breaker=...)`` operators to make them trip together (e.g. every
    stream of one exchange behind one breaker).

    Args:
        failure_threshold: open after this many consecutive failures (``None``: rate rule only).
        reset_timeout: seconds to stay OPEN before a trial.
        failure_rate: open when this fraction of the sliding window failed (``None``: count rule only).
        window_type: ``"count"`` (last ``window_size`` outcomes) or ``"time"`` (last ``window_size`` s).
        window_size: the sliding window's length.
        minimum_calls: outcomes needed in the window before the rate rule applies.
        half_open_trials: trial subscriptions allowed at once while HALF_OPEN.
        failure_if: which primary errors count as failures (default:
            :func:`rxmarket.policy.breaker.counts_as_failure`). If it raises, the output ends with that error.

    Raises:
        ConfigError: on knobs that make no sense.
    """

    def __init__(
        self,
        *,
        failure_threshold: int | None = 5,
        reset_timeout: float = 30.0,
        failure_rate: float | None = None,
        window_type: Literal["count", "time"] = "count",
        window_size: float = 20,
        minimum_calls: int = 10,
        half_open_trials: int = 1,
        failure_if: FailureIf | None = None,
    ) -> None:
        self.policy = Breaker(
            failure_threshold=failure_threshold,
            failure_rate=failure_rate,
            window_type=window_type,
            window_size=window_size,
            minimum_calls=minimum_calls,
            reset_timeout=reset_timeout,
            half_open_trials=half_open_trials,
            on_transition=self._on_transition,
        )
        self.failure_if: FailureIf = failure_if if failure_if is not None else counts_as_failure
        self._subject: Subject[Transition] = Subject()
        self._waiters: list[Callable[[Transition], None]] = []
        # (event, public): public events are transitions; private ones only wake up waiting subscriptions.
        self._pending: deque[tuple[Transition, bool]] = deque()
        self._held = 0
        self._delivering = False

    @property
    def states(self) -> Observable[Transition]:
        """Every transition from now on: ``Transition(state, at, reason, retry_at)`` (hot; no replay)."""
        return self._subject

    @property
    def state(self) -> BreakerState:
        """The state as of the last event (an overdue OPEN turns HALF_OPEN when next asked with a time)."""
        return self.policy.current

    def __enter__(self) -> None:
        # A subscription acting on the breaker holds its events until it has finished the step, so that
        # other subscriptions (and itself) react to a consistent state, one event at a time, in order.
        self._held += 1

    def __exit__(self, *_: object) -> None:
        self._held -= 1
        self._deliver()

    def _on_transition(self, transition: Transition) -> None:
        self._pending.append((transition, True))
        self._deliver()

    def _permit_released(self, now: float) -> None:
        """A trial permit came back: wake up the subscriptions waiting for one."""
        self._pending.append((Transition(BreakerState.HALF_OPEN, now, "trial permit released"), False))
        self._deliver()

    def _deliver(self) -> None:
        if self._held or self._delivering:
            return  # the outermost step (or the delivery loop already running) will deliver
        self._delivering = True
        try:
            while self._pending:
                event, public = self._pending.popleft()
                for waiter in list(self._waiters):
                    waiter(event)
                if public:
                    self._subject.on_next(event)
        finally:
            self._delivering = False


class CircuitBreakOperator:
    """What :func:`circuit_break` returns: an operator for ``pipe`` that also exposes its breaker."""

    def __init__(
        self, breaker: CircuitBreaker, fallback: Observable[Any] | None, scheduler: abc.SchedulerBase | None
    ) -> None:
        self.breaker = breaker
        self.fallback = fallback
        self.scheduler = scheduler

    @property
    def states(self) -> Observable[Transition]:
        """The breaker's transitions (see :attr:`CircuitBreaker.states`)."""
        return self.breaker.states

    def __call__(self, source: Observable[_T]) -> Observable[_T]:
        breaker, fallback, scheduler = self.breaker, self.fallback, self.scheduler

        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = default_scheduler(scheduler if scheduler is not None else scheduler_)
            session = _Session(breaker, source, fallback, observer, sched, scheduler_)
            session.start()
            return session.disposable

        return Observable(subscribe)


_PRIMARY, _FALLBACK, _SWITCHING, _DONE = "primary", "fallback", "switching", "done"


class _Session:
    """One subscription's view of the breaker: which source feeds the output now, and what comes next.

    Modes: ``primary`` (the primary feeds the output), ``fallback`` (the fallback does; waiting for the
    breaker to let a trial through), ``switching`` (the fallback still feeds the output while the primary
    is subscribed and has not delivered yet), ``done``.

    Entry points (start, timers, the primary's first item / error / completion, dispose) run inside
    ``with self.breaker:`` so that the transitions they cause are delivered once the step is complete.
    """

    def __init__(
        self,
        breaker: CircuitBreaker,
        primary: Observable[Any],
        fallback: Observable[Any] | None,
        observer: abc.ObserverBase[Any],
        sched: abc.SchedulerBase,
        subscribe_scheduler: abc.SchedulerBase | None,
    ) -> None:
        self.breaker = breaker
        self.policy = breaker.policy
        self.primary = primary
        self.fallback = fallback
        self.observer = observer
        self.sched = sched
        self.subscribe_scheduler = subscribe_scheduler
        self.mode = _PRIMARY
        self.generation = 0  # tells callbacks of an abandoned primary subscription from the current one
        self.pending = False  # the current primary subscription has not recorded its success yet
        self.holds_permit = False  # the current primary subscription is a HALF_OPEN trial
        self.primary_sub = SerialDisposable()
        self.fallback_sub = SerialDisposable()
        self.fallback_running = False
        self.timer = SerialDisposable()
        self.disposable = CompositeDisposable(
            Disposable(self._dispose), self.primary_sub, self.fallback_sub, self.timer
        )

    def now(self) -> float:
        return self.sched.to_seconds(self.sched.now)

    # ---- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        with self.breaker:
            self.breaker._waiters.append(self._on_transition)
            if not self._try_primary(switching=False):
                self._fall_back(None)

    def _dispose(self) -> None:
        if self.mode != _DONE:
            with self.breaker:
                self.mode = _DONE
                self._release()
                self._unlisten()

    def _finish(self) -> None:
        self.mode = _DONE
        self._release()
        self._unlisten()
        self.timer.dispose()
        self.primary_sub.dispose()
        self.fallback_sub.dispose()

    def _fail(self, exc: Exception) -> None:
        self._finish()
        self.observer.on_error(exc)

    def _unlisten(self) -> None:
        waiters = self.breaker._waiters
        if self._on_transition in waiters:
            waiters.remove(self._on_transition)

    def _release(self) -> None:
        if self.holds_permit:
            self.holds_permit = False
            self.policy.release()
            self.breaker._permit_released(self.now())

    # ---- the primary ---------------------------------------------------------------------------------

    def _try_primary(self, switching: bool) -> bool:
        """Subscribe the primary if the breaker allows it now; ``False`` if it does not."""
        now = self.now()
        if not self.policy.acquire(now):
            return False
        self.holds_permit = self.policy.current is BreakerState.HALF_OPEN
        self.mode = _SWITCHING if switching else _PRIMARY
        self.timer.disposable = Disposable()
        self.generation += 1
        self.pending = True
        generation = self.generation
        forward = self.observer.on_next

        def on_next(value: Any) -> None:
            if generation == self.generation:
                if self.pending or self.mode != _PRIMARY:
                    self._primary_next(value)
                else:
                    forward(value)  # the hot path: a healthy primary, straight through

        def on_error(exc: Exception) -> None:
            if generation == self.generation:
                self._primary_error(exc)

        def on_completed() -> None:
            if generation == self.generation:
                self._primary_completed()

        inner = SingleAssignmentDisposable()
        self.primary_sub.disposable = inner
        inner.disposable = self.primary.subscribe(
            on_next, on_error, on_completed, scheduler=self.subscribe_scheduler
        )
        return True

    def _primary_next(self, value: Any) -> None:
        if self.pending:
            with self.breaker:
                self.pending = False
                self.holds_permit = False  # record() takes the trial's permit back
                state = self.policy.record(True, self.now())
                if self.mode == _SWITCHING:
                    if state is not BreakerState.CLOSED:
                        # Another trial failed meanwhile: this success came too late to count; keep waiting.
                        self.generation += 1
                        self.primary_sub.disposable = Disposable()
                        self._wait()
                        return
                    self.mode = _PRIMARY
                    self.fallback_running = False
                    self.fallback_sub.disposable = Disposable()
        if self.mode == _PRIMARY:
            self.observer.on_next(value)

    def _primary_error(self, exc: Exception) -> None:
        with self.breaker:
            self.pending = False
            self.generation += 1
            try:
                counted = isinstance(exc, Banned) or self.breaker.failure_if(exc)
            except Exception as err:  # a user function failed: report it, do not swallow it
                self._fail(err)
                return
            if not counted:
                self._fail(exc)  # a caller fault: no breaker can help, the caller must see it
                return
            now = self.now()
            self.holds_permit = False  # record() / ban() take the trial's permit back
            if isinstance(exc, Banned):
                self.policy.ban(exc, now)
                state = self.policy.state(now)
            else:
                state = self.policy.record(False, now)
            if state is not BreakerState.CLOSED:
                self._fall_back(exc)
            elif self.mode == _SWITCHING:
                # Another subscription closed the breaker and our own attempt failed below the threshold:
                # stay on the fallback and try again after a reset_timeout of our own.
                self._wait(now + self.policy.reset_timeout)
            else:
                self._fail(exc)  # below the threshold the error is the output's (retrying is not our job)

    def _primary_completed(self) -> None:
        with self.breaker:
            if self.pending:
                self.pending = False
                self.holds_permit = False
                self.policy.record(True, self.now())  # a clean end is a success
            self._finish()
        self.observer.on_completed()

    # ---- the fallback --------------------------------------------------------------------------------

    def _fall_back(self, cause: Exception | None) -> None:
        if self.fallback is None:
            error = CircuitOpen(self.policy.retry_at, "the primary source is failing")
            error.__cause__ = cause
            self._fail(error)
            return
        if not self.fallback_running:
            self.fallback_running = True
            self.mode = _FALLBACK
            inner = SingleAssignmentDisposable()
            self.fallback_sub.disposable = inner
            inner.disposable = self.fallback.subscribe(
                self._fallback_next, self._fallback_error, scheduler=self.subscribe_scheduler
            )
            if self.mode == _DONE:  # the fallback failed at once
                return
        self._wait()

    def _fallback_next(self, value: Any) -> None:
        if self.mode == _FALLBACK or self.mode == _SWITCHING:
            self.observer.on_next(value)

    def _fallback_error(self, exc: Exception) -> None:
        self.fallback_running = False
        if self.mode != _DONE:
            with self.breaker:
                self._fail(exc)

    def _wait(self, until: float | None = None) -> None:
        """Feed from the fallback until the breaker lets the primary through (at ``until`` at the latest)."""
        self.mode = _FALLBACK
        now = self.now()
        if until is None:
            if self.policy.state(now) is not BreakerState.OPEN:
                # HALF_OPEN with every trial permit taken: a transition or a released permit wakes us up.
                self.timer.disposable = Disposable()
                return
            until = self.policy.retry_at
        self.timer.disposable = self.sched.schedule_relative(max(until - now, 0.0), self._on_timer)

    def _on_timer(self, _: abc.SchedulerBase, __: Any = None) -> None:
        if self.mode == _FALLBACK:
            with self.breaker:
                if not self._try_primary(switching=True):
                    self._wait()

    def _on_transition(self, event: Transition) -> None:
        if self.mode != _FALLBACK:
            return  # a running primary is not interrupted; a switching one waits for its own outcome
        with self.breaker:
            if event.state is BreakerState.OPEN or not self._try_primary(switching=True):
                self._wait()


def circuit_break(
    *,
    failure_threshold: int | None = None,
    reset_timeout: float | None = None,
    fallback: Observable[Any] | None = None,
    scheduler: abc.SchedulerBase | None = None,
    failure_rate: float | None = None,
    window_type: Literal["count", "time"] | None = None,
    window_size: float | None = None,
    minimum_calls: int | None = None,
    half_open_trials: int | None = None,
    failure_if: FailureIf | None = None,
    breaker: CircuitBreaker | None = None,
) -> CircuitBreakOperator:
    """A circuit breaker around the source: closed / open / half-open, with an optional fallback.

    See the module docstring for the behaviour per state and a marble diagram. The breaker's state is
    shared by every subscription of the returned operator (and by every operator given the same
    ``breaker``); everything else (which source feeds which subscriber, timers) is per subscription.

    Args:
        failure_threshold: open after this many consecutive counted failures (default 5; ``None`` with a
            ``failure_rate`` for the rate rule alone).
        reset_timeout: seconds to stay OPEN before a trial subscription (default 30).
        fallback: what to feed the output while OPEN (e.g. REST polling while the WebSocket is down);
            without one the output errors with ``CircuitOpen(retry_at)``.
        scheduler: times the open spell; default the subscribe-time scheduler, else the running loop's.
            The breaker's clock is this scheduler's (``Banned.until`` is read on it).
        failure_rate: open when this fraction in ``(0, 1]`` of the sliding window failed.
        window_type: ``"count"`` (default) or ``"time"``.
        window_size: outcomes (count) or seconds (time) in the sliding window (default 20).
        minimum_calls: outcomes needed before the rate rule applies (default 10).
        half_open_trials: trial subscriptions allowed at once while HALF_OPEN (default 1).
        failure_if: which errors count (default :func:`~rxmarket.policy.breaker.counts_as_failure`).
        breaker: share an existing :class:`CircuitBreaker`; the breaker knobs above must then be left out.

    Returns:
        An operator for ``pipe``; its ``.states`` (and ``.breaker.states``) publish every transition.

    Raises:
        ConfigError: at once, on knobs that make no sense, or on knobs given together with ``breaker``.
    """
    knobs: dict[str, Any] = {
        "failure_threshold": failure_threshold,
        "reset_timeout": reset_timeout,
        "failure_rate": failure_rate,
        "window_type": window_type,
        "window_size": window_size,
        "minimum_calls": minimum_calls,
        "half_open_trials": half_open_trials,
        "failure_if": failure_if,
    }
    given = {name: value for name, value in knobs.items() if value is not None}
    if breaker is not None:
        if given:
            raise ConfigError(
                f"circuit_break(breaker=...) shares that breaker's settings; also given: {sorted(given)}"
            )
    else:
        if failure_rate is not None and failure_threshold is None:
            given["failure_threshold"] = None  # the rate rule alone
        breaker = CircuitBreaker(**given)
    return CircuitBreakOperator(breaker, fallback, scheduler)

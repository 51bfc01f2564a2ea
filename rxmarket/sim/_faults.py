"""Fault injection: switches the server consults on every frame and request, flipped at run time.

Three kinds of fault:

* **timed** (``silence``, ``refuse``, ``rate_limit``, ``server_error``, ``ban``, ``latency``): on for a
  number of seconds, then off by themselves (an event-loop timer ends them and wakes anyone waiting);
* **counted** (``corrupt``, ``duplicate``, ``reorder``, ``stale``, ``crossed_book``): apply to the next
  *n* data frames (or market events) the server sends, across all connections, then stop;
* **instant** (``disconnect``): done at once.

The same names are the control endpoint's (``POST /_sim/faults/<name>`` with the keyword arguments as a
JSON object), so another process can inject them. ``clear()`` (``DELETE /_sim/faults``) returns every switch
to its initial setting, so the snapshot after it equals a fresh simulator's.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, Final

import msgspec

from rxmarket.sim._config import SimConfigError

__all__ = ["FAULT_NAMES", "FaultState", "Faults"]

TIMED: Final = ("silence", "refuse", "rate_limit", "server_error", "ban", "latency")
COUNTED: Final = ("corrupt", "duplicate", "reorder", "stale", "crossed_book")
FAULT_NAMES: Final = frozenset((*TIMED, *COUNTED, "disconnect"))


class FaultState(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the faults in force.

    Attributes:
        active: names of the faults on now.
        remaining: for counted faults, how many frames/events they still apply to.
        seconds_left: for timed faults, seconds until they end (``None``: until cleared).
        refuse_hard: a hard ``refuse`` is on: the listening socket is closed rather than answering 503
            (``False`` whenever ``refuse`` is off).
        server_error_status: the status ``server_error`` answers with.
        latency: seconds added to every frame and REST answer.
        stale_age: seconds ``stale`` frames lag behind.
    """

    active: tuple[str, ...]
    remaining: dict[str, int]
    seconds_left: dict[str, float | None]
    refuse_hard: bool
    server_error_status: int
    latency: float
    stale_age: float


def _seconds(name: str, value: float) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise SimConfigError(f"{name}: seconds must be a positive number, got {value!r}")
    return float(value)


def _count(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SimConfigError(f"{name}: n must be a positive integer, got {value!r}")
    return value


class Faults:
    """The fault switches of one simulator (``sim.faults``).

    Args:
        on_change: called after any switch flips (the simulator wakes its ``wait_*`` callers).
        on_disconnect: drops every WebSocket; returns how many.
        on_hard_refuse: closes the listening socket for the given seconds (the simulator re-binds it once
            :attr:`refusing_hard` is false again).
        on_ban: blocks every client with 418 for the given seconds; ``0`` lifts the block (``clear()``).
    """

    def __init__(
        self,
        *,
        on_change: Callable[[], None],
        on_disconnect: Callable[[], int],
        on_hard_refuse: Callable[[float], None],
        on_ban: Callable[[float], None],
    ) -> None:
        self._on_change = on_change
        self._on_disconnect = on_disconnect
        self._on_hard_refuse = on_hard_refuse
        self._on_ban = on_ban
        self._until: dict[str, float | None] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._counts: dict[str, int] = dict.fromkeys(COUNTED, 0)
        self._refuse_hard = False
        self._status = 500
        self._latency = 0.0
        self._stale_age = 60.0
        self.disconnects = 0

    # -- switches (public) ---------------------------------------------------------------------------------

    def disconnect(self) -> int:
        """Drop every WebSocket abruptly (TCP close, no close frame: the client sees 1006).

        Returns:
            The number of sockets dropped.
        """
        self.disconnects += 1
        dropped = self._on_disconnect()
        self._on_change()
        return dropped

    def silence(self, seconds: float) -> None:
        """Keep sockets open but send nothing: no data, no ``UP``, no pong, for ``seconds``."""
        self._start("silence", _seconds("silence", seconds))

    def refuse(self, seconds: float, *, hard: bool = False) -> None:
        """Refuse new connections for ``seconds``.

        A new call replaces the refuse in force, hardness included: a soft ``refuse`` during a hard one
        reopens the listening socket and answers 503 from then on.

        When a hard refuse ends (its time is up, a soft ``refuse`` replaces it, or ``clear()``), the
        simulator binds the same port again. If that fails (say another process took the port meanwhile),
        the simulator stays down and says so: ``sim.stats.listening`` is ``False``,
        ``sim.stats.rebind_failures`` counts the failure, ``sim.stats.rebind_error`` holds the error, and
        the ``rxmarket.sim._server`` logger writes a WARNING. ``close()`` still works; the next hard refuse
        tries the bind again when it ends.

        Args:
            seconds: how long.
            hard: close the listening socket (connects fail with ECONNREFUSED) instead of answering every
                new WebSocket upgrade and REST request with HTTP 503. Open connections are kept.

        Raises:
            SimConfigError: ``seconds`` is not a positive number.
        """
        seconds = _seconds("refuse", seconds)
        self._refuse_hard = bool(hard)
        self._start("refuse", seconds)
        if hard:
            self._on_hard_refuse(seconds)

    def rate_limit(self, seconds: float) -> None:
        """Answer REST with 429 and WebSocket upgrades with 429, subscriptions with an error frame."""
        self._start("rate_limit", _seconds("rate_limit", seconds))

    def server_error(self, seconds: float, status: int = 500) -> None:
        """Answer REST with ``status`` (a 5xx) for ``seconds``; WebSocket upgrades get it too."""
        if not isinstance(status, int) or not 500 <= status <= 599:
            raise SimConfigError(f"server_error: status must be a 5xx code, got {status!r}")
        self._status = status
        self._start("server_error", _seconds("server_error", seconds))

    def ban(self, seconds: float) -> None:
        """Block every client with 418 for ``seconds`` (as after repeated 429s)."""
        seconds = _seconds("ban", seconds)
        self._on_ban(seconds)  # first: if the simulator cannot ban (not started), no switch is left on
        self._start("ban", seconds)

    def latency(self, seconds: float, duration: float | None = None) -> None:
        """Delay every data frame and REST answer by ``seconds`` (``0`` turns it off).

        Args:
            seconds: the added delay.
            duration: how long the fault lasts; ``None`` until cleared.
        """
        if seconds == 0:
            self._stop("latency")
            return
        self._latency = _seconds("latency", seconds)
        self._start("latency", None if duration is None else _seconds("latency duration", duration))

    def corrupt(self, n: int = 1) -> None:
        """Make the next ``n`` data frames malformed (truncated, not JSON, wrong types, unknown type)."""
        self._add("corrupt", _count("corrupt", n))

    def duplicate(self, n: int = 1) -> None:
        """Send each of the next ``n`` data frames twice."""
        self._add("duplicate", _count("duplicate", n))

    def reorder(self, n: int = 2) -> None:
        """Swap the next ``n`` data frames pairwise (each held back until the one after it is sent)."""
        self._add("reorder", _count("reorder", n))

    def stale(self, n: int = 1, age: float = 60.0) -> None:
        """Stamp the next ``n`` market events ``age`` seconds in the past (their timestamps lag)."""
        self._stale_age = _seconds("stale age", age)
        self._add("stale", _count("stale", n))

    def crossed_book(self, n: int = 1) -> None:
        """Make the next ``n`` orderbook events crossed (best bid above best ask)."""
        self._add("crossed_book", _count("crossed_book", n))

    def clear(self) -> None:
        """Turn every fault off and return every setting to its default.

        A hard ``refuse`` ends (the listening socket is bound again) and a ``ban`` is lifted at once.
        """
        banned = "ban" in self._until
        for name in list(self._until):
            self._stop(name, notify=False)
        for name in self._counts:
            self._counts[name] = 0
        # The settings too, not only the switches: a stale ``refuse_hard`` would make a later soft refuse
        # look hard in the snapshot, and the snapshot after clear() must equal a fresh simulator's.
        self._refuse_hard = False
        self._status = 500
        self._latency = 0.0
        self._stale_age = 60.0
        if banned:
            # The ban lives in the rate limiter too (it answers the 418s); the switch alone does not lift it.
            self._on_ban(0.0)
        self._on_change()

    def state(self) -> FaultState:
        """What is switched on now."""
        now = asyncio.get_running_loop().time() if self._timers else 0.0
        left = {
            name: (None if until is None else max(0.0, until - now)) for name, until in self._until.items()
        }
        return FaultState(
            active=tuple(sorted(self.active)),
            remaining={k: v for k, v in self._counts.items() if v},
            seconds_left=left,
            refuse_hard=self.refusing_hard,
            server_error_status=self._status,
            latency=self._latency if "latency" in self._until else 0.0,
            stale_age=self._stale_age,
        )

    @property
    def active(self) -> frozenset[str]:
        """Names of the faults on now."""
        return frozenset(self._until) | frozenset(k for k, v in self._counts.items() if v)

    def apply(self, name: str, args: dict[str, Any]) -> Any:
        """Call the fault ``name`` with keyword ``args`` (the control endpoint's entry point).

        Raises:
            SimConfigError: unknown fault or bad arguments.
        """
        if name not in FAULT_NAMES and name != "clear":
            raise SimConfigError(f"unknown fault {name!r}; known: {sorted(FAULT_NAMES)}")
        try:
            return getattr(self, name)(**args)
        except TypeError as exc:
            raise SimConfigError(f"{name}: {exc}") from exc

    # -- what the server asks ------------------------------------------------------------------------------

    @property
    def silenced(self) -> bool:
        """``silence`` is on."""
        return "silence" in self._until

    @property
    def refusing(self) -> bool:
        """``refuse`` is on (soft or hard)."""
        return "refuse" in self._until

    @property
    def refusing_hard(self) -> bool:
        """A hard ``refuse`` is on: the listening socket must stay closed."""
        return self._refuse_hard and "refuse" in self._until

    @property
    def rate_limited(self) -> bool:
        """``rate_limit`` is on."""
        return "rate_limit" in self._until

    @property
    def server_error_status(self) -> int | None:
        """The 5xx to answer with, while ``server_error`` is on."""
        return self._status if "server_error" in self._until else None

    @property
    def latency_seconds(self) -> float:
        """Seconds added to each frame and answer (0 when off)."""
        return self._latency if "latency" in self._until else 0.0

    @property
    def stale_age_ms(self) -> int:
        """How far ``stale`` pushes timestamps back, ms."""
        return int(self._stale_age * 1000)

    def take(self, name: str) -> bool:
        """Consume one application of the counted fault ``name``; ``False`` when it is not pending."""
        left = self._counts[name]
        if not left:
            return False
        self._counts[name] = left - 1
        if left == 1:
            self._on_change()
        return True

    def pending(self, name: str) -> bool:
        """Whether the counted fault ``name`` still has applications left (without consuming one)."""
        return self._counts[name] > 0

    def close(self) -> None:
        """Cancel every timer (the simulator is stopping)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._until.clear()
        self._refuse_hard = False

    # -- internals -----------------------------------------------------------------------------------------

    def _start(self, name: str, seconds: float | None) -> None:
        loop = asyncio.get_running_loop()
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        if seconds is None:
            self._until[name] = None
        else:
            self._until[name] = loop.time() + seconds
            self._timers[name] = loop.call_later(seconds, self._stop, name)
        self._on_change()

    def _stop(self, name: str, notify: bool = True) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()
        self._until.pop(name, None)
        if name == "refuse":
            self._refuse_hard = False  # hardness belongs to the refuse in force; none is now
        if notify:
            self._on_change()

    def _add(self, name: str, n: int) -> None:
        self._counts[name] += n
        self._on_change()

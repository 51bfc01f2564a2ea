"""The control endpoint: inject faults, step the market and read counters from another process.

=====================================  ==========================================================
``GET /_sim``                          URLs, markets, seed
``GET /_sim/stats``                    :class:`SimStats` as JSON
``GET /_sim/faults``                   :class:`FaultState` as JSON
``POST /_sim/faults/<name>``           call ``sim.faults.<name>(**body)``; body a JSON object
``DELETE /_sim/faults``                ``sim.faults.clear()``
``POST /_sim/step``                    ``sim.step(n, market)``; body ``{"n": 10, "market": "KRW-BTC"}``
=====================================  ==========================================================

The control endpoint is exempt from faults and rate limits (it is the test's hand, not a client).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from rxmarket.sim._config import SimConfigError
from rxmarket.sim._faults import Faults
from rxmarket.sim._wire import ENCODE

__all__ = ["ControlApi"]

_JSON = {"Content-Type": "application/json; charset=utf-8"}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=ENCODE(body), headers=_JSON)


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"error": {"name": status, "message": message}}, status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise SimConfigError(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SimConfigError("body must be a JSON object of keyword arguments")
    return body


class ControlApi:
    """Handlers of ``/_sim``.

    Args:
        faults: the simulator's fault switches.
        stats: returns the current stats snapshot.
        step: ``step(n, market)`` makes trades, returns how many.
        info: returns a JSON-able description of the simulator.
    """

    def __init__(
        self,
        *,
        faults: Faults,
        stats: Callable[[], Any],
        step: Callable[[int, str | None], int],
        info: Callable[[], dict[str, Any]],
    ) -> None:
        self._faults = faults
        self._stats = stats
        self._step = step
        self._info = info

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [
            web.get("/_sim", self._wrap(self.info)),
            web.get("/_sim/stats", self._wrap(self.stats)),
            web.get("/_sim/faults", self._wrap(self.fault_state)),
            web.post("/_sim/faults/{name}", self._wrap(self.inject)),
            web.delete("/_sim/faults", self._wrap(self.clear)),
            web.post("/_sim/step", self._wrap(self.step)),
        ]

    @staticmethod
    def _wrap(
        handler: Callable[[web.Request], Awaitable[web.Response]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except (SimConfigError, KeyError) as exc:
                return _error(str(exc))

        return wrapped

    async def info(self, _request: web.Request) -> web.Response:
        """Describe the simulator."""
        return _json(self._info())

    async def stats(self, _request: web.Request) -> web.Response:
        """The counters."""
        return _json(self._stats())

    async def fault_state(self, _request: web.Request) -> web.Response:
        """The faults in force."""
        return _json(self._faults.state())

    async def inject(self, request: web.Request) -> web.Response:
        """Switch one fault on (or ``clear``)."""
        result = self._faults.apply(request.match_info["name"], await _body(request))
        return _json({"ok": True, "result": result, "faults": self._faults.state()})

    async def clear(self, _request: web.Request) -> web.Response:
        """Switch every fault off."""
        self._faults.clear()
        return _json({"ok": True, "faults": self._faults.state()})

    async def step(self, request: web.Request) -> web.Response:
        """Make trades now."""
        body = await _body(request)
        n = body.get("n", 1)
        market = body.get("market")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1_000_000:
            raise SimConfigError("n must be an integer in 1..1000000")
        if market is not None and not isinstance(market, str):
            raise SimConfigError("market must be a code string")
        return _json({"ok": True, "trades": self._step(n, market)})

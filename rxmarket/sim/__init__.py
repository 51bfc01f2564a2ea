"""An Upbit-compatible quotation server with fault injection, for tests, benchmarks and the demo.

``UpbitSimulator`` speaks Upbit's REST and WebSocket quotation protocol on 127.0.0.1, closely enough that
an unmodified Upbit client works against it with only its URLs changed::

    from rxmarket.sim import UpbitSimulator

    async with UpbitSimulator(markets=50, seed=7, port=0) as sim:
        sim.rest_url, sim.ws_url      # http://127.0.0.1:PORT/v1, ws://127.0.0.1:PORT/websocket/v1
        sim.step(10)                  # ten trades now (the market also moves by itself at ``rate``)
        sim.faults.disconnect()       # drop every WebSocket abruptly
        sim.faults.silence(5)         # sockets stay open, nothing is sent
        sim.faults.refuse(5)          # new connections refused, REST answers 503
        sim.faults.rate_limit(5)      # REST 429, WebSocket upgrades 429, messages get error frames
        sim.faults.corrupt(3)         # the next three data frames are malformed

More faults: ``duplicate``, ``reorder``, ``stale``, ``crossed_book``, ``latency``, ``server_error``,
``ban``; the same names are served at ``POST /_sim/faults/<name>`` for other processes.

This package is an island: it imports nothing else from ``rxmarket`` (not the models, not the protocol
code), so it is an independent implementation of the wire format and a decoding bug cannot hide on both
sides.
"""

from rxmarket.sim._catalog import MarketInfo
from rxmarket.sim._config import BenchConfig, SimConfigError, SimLimits, SimOptions
from rxmarket.sim._faults import Faults, FaultState
from rxmarket.sim._server import WS_PATH, SimTrade, UpbitSimulator
from rxmarket.sim._stats import ConnectionInfo, SimStats

__all__ = [
    "WS_PATH",
    "BenchConfig",
    "ConnectionInfo",
    "FaultState",
    "Faults",
    "MarketInfo",
    "SimConfigError",
    "SimLimits",
    "SimOptions",
    "SimStats",
    "SimTrade",
    "UpbitSimulator",
]

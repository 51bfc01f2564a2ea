"""Helpers shared by the ``MarketData`` integration tests (no tests here).

They live in a ``test_market_*`` module rather than a conftest because this directory's conftest belongs to
the transport tests; the other market test modules import them as ``test_market_support`` (pytest puts
this directory on ``sys.path``). Every wait is on a condition, with a deadline that only a broken test
reaches; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import rxmarket
from rxmarket import MarketData
from rxmarket.exchanges.upbit.protocol import UpbitProtocolConfig
from rxmarket.exchanges.upbit.source import SourceConfig
from rxmarket.policy.backoff import BackoffPolicy
from rxmarket.sim import SimLimits, UpbitSimulator

DEADLINE = 10.0  # seconds; only a broken test waits this long

#: Generous limits on both sides, so that no test trips a rate limit it did not ask for.
SIM_LIMITS = SimLimits(rest_per_sec=1000, ws_connect_per_sec=1000, ws_messages_per_sec=1000,
                       ws_messages_per_min=100_000)


def make_sim(**kwargs: Any) -> UpbitSimulator:
    """A simulator on 127.0.0.1:0 with a quiet market (it moves on ``step()``) unless told otherwise."""
    kwargs.setdefault("markets", 5)
    kwargs.setdefault("rate", 0)
    kwargs.setdefault("limits", SIM_LIMITS)
    return UpbitSimulator(**kwargs)


def market_for(sim: UpbitSimulator, source: dict[str, Any] | None = None, **overrides: Any) -> MarketData:
    """A market on the simulator with test-sized timings: short backoff, no grace, quick polls and trials.

    ``keep_warm`` is off (tests of ``get_ticker`` turn it on when they are about it).
    """
    source_values: dict[str, Any] = {
        "message_limits": ((1000, 1.0),),
        "connects_per_second": 1000,
        "healthy_after": 0.0,
        "protocol": UpbitProtocolConfig(default_retry_after=0.05, ban_duration=0.2),
    }
    source_values.update(source or {})
    values: dict[str, Any] = {
        "rest_url": sim.rest_url,
        "ws_url": sim.ws_url,
        "grace": 0.0,
        "backoff": BackoffPolicy(initial=0.01, multiplier=2.0, max_delay=0.05, immediate_first=True),
        "max_failures": 1000,
        "open_timeout": 5.0,
        "rest_rate": 1000,
        "poll_interval": 0.05,
        "failover_retry": 0.3,
        "rest_retries": 0,
        "first_item_timeout": 5.0,
        "keep_warm": None,
        "source": SourceConfig(**source_values),
    }
    values.update(overrides)
    return rxmarket.upbit(**values)


@asynccontextmanager
async def running(
    sim_kwargs: dict[str, Any] | None = None, source: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[tuple[UpbitSimulator, MarketData]]:
    """A started simulator and a market on it; the market is closed first, then the simulator."""
    async with make_sim(**(sim_kwargs or {})) as sim, market_for(sim, source, **overrides) as market:
        yield sim, market

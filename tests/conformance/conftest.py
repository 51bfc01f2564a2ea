"""Fixtures of the simulator conformance suite (helpers live in ``_helpers``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from rxmarket.sim import UpbitSimulator

from ._helpers import fast_options


@pytest.fixture
async def sim() -> AsyncIterator[UpbitSimulator]:
    """A quiet simulator (the market moves only on ``step()``) with two BTC-/USDT- markets."""
    simulator = UpbitSimulator(markets=5, seed=7, rate=0, quote_markets=2, options=fast_options())
    async with simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session

"""``rxmarket.storage.backfill`` of trades against the simulator: days, same-millisecond trades, resumption.

The simulator's clock is a number the test moves by hand and its market makes trades only on ``step()``,
so the trades to fetch are known exactly (the ``step()`` return values) and never change between runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit import history
from rxmarket.models import Trade
from rxmarket.sim import SimLimits, SimOptions, SimTrade, UpbitSimulator
from rxmarket.storage import BackfillProgress, Marker, RecordingWriter, backfill, iter_records, replay, verify
from rxmarket.transport.http import HttpClient

DAY = 86_400_000
MIDNIGHT = 1_785_369_600.0  # 2026-07-30T00:00:00Z, seconds
DEADLINE = 30.0


class Clock:
    """The simulator's wall clock, in seconds, moved by the test."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Env(NamedTuple):
    sim: UpbitSimulator
    http: HttpClient
    clock: Clock


async def _env(start: float, limits: SimLimits | None = None) -> AsyncIterator[Env]:
    clock = Clock(start)
    options = SimOptions(trade_history=5000, prefill_trades=5)
    async with UpbitSimulator(markets=2, seed=7, rate=0, clock=clock, limits=limits, options=options) as sim:
        http = history.upbit_http_client(sim.rest_url)
        try:
            yield Env(sim, http, clock)
        finally:
            await http.close()


@pytest.fixture
async def roomy() -> AsyncIterator[Env]:
    """A hand-clocked simulator at 07:45 UTC, generous limits."""
    async for env in _env(MIDNIGHT + 7.75 * 3600):
        yield env


@pytest.fixture
async def tight() -> AsyncIterator[Env]:
    """A hand-clocked simulator at 07:45 UTC allowing 3 REST requests per second per group."""
    async for env in _env(MIDNIGHT + 7.75 * 3600, SimLimits(rest_per_sec=3)):
        yield env


@pytest.fixture
async def near_midnight() -> AsyncIterator[Env]:
    """A hand-clocked simulator 50 s before a UTC midnight."""
    async for env in _env(MIDNIGHT + DAY / 1000 - 50):
        yield env


def make_trades(env: Env, n: int, *, pause: float = 1.0, burst: int = 4) -> list[SimTrade]:
    """``n`` KRW-BTC trades: bursts of ``burst`` trades 1 ms apart (many share a millisecond), ``pause``
    seconds between bursts."""
    env.clock.t += 2.0  # clear of the trades the simulator prefilled before its start
    out: list[SimTrade] = []
    for i in range(n):
        env.clock.t += 0.001 if i % burst else pause
        out.extend(env.sim.step(1, "KRW-BTC"))
    return out


def stored(path: Path) -> list[Trade]:
    items: list[Any] = []
    replay(path, kinds=["trade"]).subscribe(items.append)
    return items


def ids(trades: list[Trade] | list[SimTrade]) -> list[int]:
    return [t.sequential_id for t in trades]


async def test_trades_of_the_range_are_stored_once_in_time_order(roomy: Env, tmp_path: Path) -> None:
    """Every trade made in [start, end) is stored once, ordered by (timestamp, sequential_id)."""
    made = make_trades(roomy, 400)
    start, end = made[0].timestamp, made[-1].timestamp + 1
    done = await backfill(roomy.http, "KRW-BTC", "trades", start, end, tmp_path, page_size=100)
    got = stored(tmp_path)
    assert ids(got) == ids(made)
    assert [(t.timestamp, t.price, t.volume, t.ask_bid) for t in got] == [
        (t.timestamp, t.price, t.volume, t.ask_bid) for t in made
    ]
    assert len({t.timestamp for t in made}) < len(made)  # several trades share a millisecond
    assert (done.written, done.done) == (400, True)
    report = verify(tmp_path)
    assert (report.ok, report.duplicates, report.out_of_order) == (True, 0, 0)


async def test_the_end_is_exclusive_to_the_millisecond(roomy: Env, tmp_path: Path) -> None:
    """Trades at exactly ``end`` are left out; those at ``start`` are in."""
    made = make_trades(roomy, 40)
    cut = made[20].timestamp
    await backfill(roomy.http, "KRW-BTC", "trades", made[4].timestamp, cut, tmp_path)
    assert ids(stored(tmp_path)) == [t.sequential_id for t in made if made[4].timestamp <= t.timestamp < cut]


async def test_interrupted_trade_backfill_ends_with_the_same_store(tight: Env, tmp_path: Path) -> None:
    """Cancelled after five requests and run again, a trade backfill stores exactly the trades of an
    uninterrupted run (none twice, none missing), paced at 3 requests per second without a 429 surfacing."""
    made = make_trades(tight, 400)
    start, end = made[0].timestamp, made[-1].timestamp + 1
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    await backfill(tight.http, "KRW-BTC", "trades", start, end, whole, page_size=100)

    reached = asyncio.Event()

    def progress(p: BackfillProgress) -> None:
        if p.pages >= 5:
            reached.set()

    task = asyncio.ensure_future(
        backfill(tight.http, "KRW-BTC", "trades", start, end, broken, page_size=100, progress=progress)
    )
    async with asyncio.timeout(DEADLINE):
        await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    partial = stored(broken)
    assert 0 < len(partial) < 400
    assert ids(partial) == ids(made)[: len(partial)]

    resumed = await backfill(tight.http, "KRW-BTC", "trades", start, end, broken, page_size=100)
    assert resumed.resumed_from == partial[-1].timestamp
    assert resumed.written == 400 - len(partial)
    assert stored(broken) == stored(whole)
    report = verify(broken)
    assert (report.ok, report.duplicates) == (True, 0)


async def test_a_store_cut_inside_a_millisecond_is_completed_without_duplicates(
    roomy: Env, tmp_path: Path
) -> None:
    """A store whose last trades are some of one millisecond's (a kill mid-write) gets the rest of that
    millisecond and what follows, and nothing it already has."""
    made = make_trades(roomy, 120)
    start, end = made[0].timestamp, made[-1].timestamp + 1
    whole = tmp_path / "whole"
    await backfill(roomy.http, "KRW-BTC", "trades", start, end, whole)
    full = stored(whole)
    k = next(i for i in range(40, len(full) - 1) if full[i].timestamp == full[i + 1].timestamp)
    cut = tmp_path / "cut"
    with RecordingWriter(cut) as writer:
        for trade in full[: k + 1]:
            writer.write(trade)
    done = await backfill(roomy.http, "KRW-BTC", "trades", start, end, cut)
    assert done.resumed_from == full[k].timestamp
    assert done.written == len(full) - (k + 1)
    assert ids(stored(cut)) == ids(full)
    assert verify(cut).duplicates == 0


async def test_trades_across_a_utc_midnight_are_fetched_from_both_days(
    near_midnight: Env, tmp_path: Path
) -> None:
    """Upbit addresses trades by day (``days_ago``) and time of day: a range over midnight gets both days."""
    made = make_trades(near_midnight, 200, pause=0.5, burst=2)
    days = {t.timestamp // DAY for t in made}
    assert len(days) == 2, "the trades should straddle midnight"
    done = await backfill(near_midnight.http, "KRW-BTC", "trades", made[0].timestamp,
                          made[-1].timestamp + 1, tmp_path, page_size=50)
    assert ids(stored(tmp_path)) == ids(made)
    assert done.written == 200


async def test_trades_older_than_seven_days_are_refused(roomy: Env, tmp_path: Path) -> None:
    """Upbit keeps a week of trades: an older start is a ConfigError saying so, and nothing is stored."""
    made = make_trades(roomy, 10)
    with pytest.raises(ConfigError, match="last 7 days"):
        await backfill(roomy.http, "KRW-BTC", "trades", made[0].timestamp - 9 * DAY, made[-1].timestamp,
                       tmp_path)
    assert list(iter_records(tmp_path)) == []


async def test_a_range_without_trades_completes_empty(roomy: Env, tmp_path: Path) -> None:
    """A quiet stretch stores no trade, still ends done, and is marked complete."""
    made = make_trades(roomy, 8, pause=30.0)
    done = await backfill(roomy.http, "KRW-BTC", "trades", made[3].timestamp + 1,
                          made[4].timestamp, tmp_path)
    assert (done.written, done.done) == (0, True)
    assert [r.item.kind for r in iter_records(tmp_path) if isinstance(r.item, Marker)] == ["backfilled"]

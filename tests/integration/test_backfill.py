"""``rxmarket.storage.backfill`` of candles against the simulator: coverage, resumption, rate limits.

The simulator runs on a frozen clock (``rate=0``), so its candle history is the same for every run of a
test and an interrupted backfill can be compared with an uninterrupted one record for record.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest

from rxmarket.errors import Banned, ConfigError, NotFound
from rxmarket.exchanges.upbit import history
from rxmarket.market import upbit
from rxmarket.models import Candle
from rxmarket.sim import SimLimits, UpbitSimulator
from rxmarket.storage import BackfillProgress, Marker, backfill, iter_records, replay, verify
from rxmarket.transport.http import HttpClient

T0 = 1_785_397_531.885  # 2026-07-30T07:45:31.885Z: the simulator's frozen "now"
NOW_MS = int(T0 * 1000)
MINUTE = 60_000
END = NOW_MS - NOW_MS % MINUTE - 10 * MINUTE  # well inside the generated history: every candle final
TIGHT = SimLimits(rest_per_sec=3)  # far below Upbit's 10/s: pacing has to work for the test to pass
DEADLINE = 30.0  # seconds a test may wait for a condition before failing (never waited out)


class Env(NamedTuple):
    sim: UpbitSimulator
    http: HttpClient


async def _env(limits: SimLimits | None) -> AsyncIterator[Env]:
    async with UpbitSimulator(markets=3, seed=7, rate=0, clock=lambda: T0, limits=limits) as sim:
        http = history.upbit_http_client(sim.rest_url)
        try:
            yield Env(sim, http)
        finally:
            await http.close()


@pytest.fixture
async def tight() -> AsyncIterator[Env]:
    """A frozen simulator that allows 3 REST requests per second per group, and a client for it."""
    async for env in _env(TIGHT):
        yield env


@pytest.fixture
async def roomy() -> AsyncIterator[Env]:
    """A frozen simulator with generous limits, and a client for it."""
    async for env in _env(None):
        yield env


def replayed(path: Path) -> list[Any]:
    """Every model of a recording, through ``replay`` (as fast as possible, synchronously)."""
    items: list[Any] = []
    replay(path).subscribe(items.append)
    return items


def markers(path: Path) -> list[Marker]:
    return [r.item for r in iter_records(path) if isinstance(r.item, Marker)]


def gaps(path: Path) -> list[tuple[int, int, int]]:
    report = verify(path, allow_gaps=True)
    return [(g.after, g.before, g.missing) for g in report.gaps]


async def cancel_after(pages: int, run: Callable[[Callable[[BackfillProgress], None]], Any]) -> int:
    """Start a backfill, cancel its task once it reported ``pages`` REST calls, and wait for it to end.

    Returns:
        The REST calls it reported before it ended.
    """
    reached = asyncio.Event()
    seen = [0]

    def progress(p: BackfillProgress) -> None:
        seen[0] = p.pages
        if p.pages >= pages:
            reached.set()

    task = asyncio.ensure_future(run(progress))
    async with asyncio.timeout(DEADLINE):
        await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return seen[0]


async def test_candles_cover_the_range_oldest_first(roomy: Env, tmp_path: Path) -> None:
    """Every candle starting in [start, end) is stored once, oldest first, as the REST history has it."""
    start = END - 300 * MINUTE
    done = await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path, unit="1m", page_size=70)
    stored = replayed(tmp_path)
    direct = await history.fetch_candles(roomy.http, "KRW-BTC", "1m", 300, to=END)
    expected = [c for c in direct if c.start >= start]
    assert [msgspec.structs.replace(c, source="rest") for c in stored] == expected
    assert (done.done, done.written, done.pages, done.position) == (True, len(expected), 5, END)
    assert all(start <= c.start < END for c in stored)
    assert len(expected) < 300  # the simulator leaves minutes without trades: gaps are real


async def test_range_bounds_are_inclusive_start_exclusive_end(roomy: Env, tmp_path: Path) -> None:
    """A start inside a minute begins at the next candle; a candle starting exactly at end is left out."""
    start = END - 20 * MINUTE + 1
    await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path, unit="1m")
    starts = [c.start for c in replayed(tmp_path)]
    assert starts[0] >= END - 19 * MINUTE
    assert starts[-1] <= END - MINUTE
    assert starts == sorted(set(starts))


async def test_interrupted_backfill_ends_with_the_same_store(tight: Env, tmp_path: Path) -> None:
    """Cancelled after two pages and run again, a backfill stores exactly what an uninterrupted run does:
    the same replayed sequence, the same (genuine) gaps, no duplicate, and no 429 reaching the caller even
    at 3 requests per second."""
    start = END - 300 * MINUTE
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    kw: dict[str, Any] = {"unit": "1m", "page_size": 60}
    done_whole = await backfill(tight.http, "KRW-BTC", "candles", start, END, whole, **kw)

    cut = await cancel_after(2, lambda progress: backfill(
        tight.http, "KRW-BTC", "candles", start, END, broken, progress=progress, **kw))
    partial = replayed(broken)
    assert 0 < len(partial) < done_whole.written
    assert partial == replayed(whole)[: len(partial)]  # the store is a prefix in time: no hole, no extra
    assert verify(broken, allow_gaps=True).ok
    assert markers(broken) == []  # not marked complete

    done_resumed = await backfill(tight.http, "KRW-BTC", "candles", start, END, broken, **kw)
    assert done_resumed.resumed_from == partial[-1].start + MINUTE
    assert done_resumed.written == done_whole.written - len(partial)
    assert replayed(broken) == replayed(whole)
    assert gaps(broken) == gaps(whole)
    report = verify(broken, allow_gaps=True)
    assert (report.ok, report.duplicates, report.out_of_order) == (True, 0, 0)
    assert [m.detail for m in markers(broken)] == [m.detail for m in markers(whole)]
    statuses = tight.sim.stats.rest_by_status
    # Every page was answered 200 once (the request cut by the cancel may have been answered too); a 429
    # that the pacing could not avoid (the server counts arrivals, we count departures) was retried
    # inside backfill, which returned normally: none reached the caller.
    pages = done_whole.pages + cut + done_resumed.pages
    assert statuses[200] in (pages, pages + 1)
    assert tight.sim.stats.rest_requests == statuses[200] + statuses.get(429, 0)


async def test_a_429_is_retried_after_retry_after(roomy: Env, tmp_path: Path) -> None:
    """Answers of 429 while the exchange pushes back are waited out and retried; the caller sees none."""
    roomy.sim.faults.rate_limit(0.3)
    done = await backfill(roomy.http, "KRW-BTC", "candles", END - 100 * MINUTE, END, tmp_path, unit="1m")
    assert roomy.sim.stats.rest_by_status.get(429, 0) >= 1
    assert done.done
    assert len(replayed(tmp_path)) == done.written > 80


async def test_a_ban_stops_the_backfill_and_a_later_run_completes_it(roomy: Env, tmp_path: Path) -> None:
    """A 418 is raised at once as Banned, leaving a consistent store that the next run completes."""
    start = END - 200 * MINUTE
    await backfill(roomy.http, "KRW-BTC", "candles", start, END - 100 * MINUTE, tmp_path / "first")
    roomy.sim.faults.ban(0.5)
    with pytest.raises(Banned):
        await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path / "store", page_size=50)
    assert replayed(tmp_path / "store") == []
    await roomy.sim.wait_fault_over("ban")
    done = await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path / "store", page_size=50)
    assert done.resumed_from == start
    assert verify(tmp_path / "store", allow_gaps=True).ok
    assert replayed(tmp_path / "store")[: len(replayed(tmp_path / "first"))] == replayed(tmp_path / "first")


async def test_running_a_completed_backfill_again_adds_nothing(roomy: Env, tmp_path: Path) -> None:
    """The second run finds the store complete: no record, no second marker."""
    start = END - 90 * MINUTE
    first = await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path)
    again = await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path)
    assert first.written > 0
    assert again.written == 0
    assert len(markers(tmp_path)) == 1
    assert len(replayed(tmp_path)) == first.written


async def test_an_extended_range_continues_after_the_stored_one(roomy: Env, tmp_path: Path) -> None:
    """Backfilling up to a later end appends only the newer candles, and the series stays in order."""
    start = END - 120 * MINUTE
    await backfill(roomy.http, "KRW-BTC", "candles", start, END - 60 * MINUTE, tmp_path)
    later = await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path)
    assert later.resumed_from > END - 61 * MINUTE
    whole = tmp_path / "whole"
    await backfill(roomy.http, "KRW-BTC", "candles", start, END, whole)
    assert replayed(tmp_path) == replayed(whole)
    assert verify(tmp_path, allow_gaps=True).ok


async def test_markets_share_a_store_and_resume_independently(roomy: Env, tmp_path: Path) -> None:
    """Each (market, unit) series resumes from its own last record, not from another series'."""
    start = END - 60 * MINUTE
    await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path)
    eth = await backfill(roomy.http, "KRW-ETH", "candles", start, END, tmp_path)
    five = await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path, unit="5m")
    assert (eth.resumed_from, five.resumed_from) == (start, start)
    counts = verify(tmp_path, allow_gaps=True).counts["candle"]
    assert counts["KRW-ETH"] == eth.written
    assert counts["KRW-BTC"] == five.written + len([c for c in replayed(tmp_path)
                                                     if c.symbol == "KRW-BTC" and c.unit == "1m"])


@pytest.mark.parametrize(
    ("unit", "periods"),
    [("3m", 25), ("60m", 30), ("240m", 13), ("1d", 40), ("1w", 12), ("1mo", 14), ("1y", 3)],
)
async def test_every_unit_is_paged_to_the_same_candles_as_rest(
    roomy: Env, tmp_path: Path, unit: str, periods: int
) -> None:
    """Any unit, in pages of 5 periods, gives exactly REST's candles of the range, aligned and in order."""
    # Minutes are generated for the last 3 days only; days (and weeks, months, years) for 800 days more.
    end_ms = END if unit.endswith("m") else int(datetime(2026, 7, 1, tzinfo=UTC).timestamp() * 1000)
    direct = await history.fetch_candles(roomy.http, "KRW-BTC", unit, periods, to=end_ms)
    assert len(direct) == periods, "the simulator's history should cover the range"
    start = direct[0].start
    done = await backfill(roomy.http, "KRW-BTC", "candles", start, end_ms, tmp_path, unit=unit, page_size=5)
    stored = replayed(tmp_path)
    assert [msgspec.structs.replace(c, source="rest") for c in stored] == direct
    assert done.pages == -(-periods // 5)  # one request per 5 periods, calendar units included
    assert verify(tmp_path, candle_unit=unit).ok


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "candles", "unit": "2m"}, "unknown candle unit"),
        ({"kind": "trades", "unit": "1m"}, "unit applies to candles only"),
        ({"kind": "ticks"}, "kind must be"),
        ({"kind": "candles", "end": END - 3 * MINUTE}, "start must be before end"),
        ({"kind": "candles", "page_size": 201}, "page_size for candles"),
        ({"kind": "trades", "page_size": 0}, "page_size for trades"),
        ({"kind": "candles", "symbol": "BTC"}, "QUOTE-BASE"),
        ({"kind": "candles", "start": datetime(2026, 7, 30)}, "timezone-aware"),
        ({"kind": "candles", "market": object()}, "reaches Upbit's REST history"),
    ],
)
async def test_bad_arguments_are_config_errors(
    roomy: Env, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    """A bad argument raises ConfigError naming the problem, before any request or write."""
    args: dict[str, Any] = {
        "market": roomy.http, "symbol": "KRW-BTC", "start": END - 2 * MINUTE, "end": END,
        "path": tmp_path / "s",
    }
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        await backfill(**args)
    assert roomy.sim.stats.rest_requests == 0
    assert not (tmp_path / "s").exists()


async def test_a_path_that_is_a_file_is_refused(roomy: Env, tmp_path: Path) -> None:
    """A store path naming a file is a ConfigError, and the file is left alone."""
    target = tmp_path / "file"
    target.write_bytes(b"keep")
    with pytest.raises(ConfigError, match="not a directory"):
        await backfill(roomy.http, "KRW-BTC", "candles", END - MINUTE, END, target)
    assert target.read_bytes() == b"keep"


async def test_an_unknown_market_is_not_found_and_writes_nothing(roomy: Env, tmp_path: Path) -> None:
    """The exchange's 404 for an unknown market reaches the caller as NotFound; the store stays empty."""
    with pytest.raises(NotFound):
        await backfill(roomy.http, "KRW-NOPE", "candles", END - 10 * MINUTE, END, tmp_path)
    assert list(iter_records(tmp_path)) == []


async def test_a_source_with_an_http_client_is_accepted(roomy: Env, tmp_path: Path) -> None:
    """Anything exposing ``http`` (as UpbitSource does) works like the client itself."""

    class Holder:
        http = roomy.http

    done = await backfill(Holder(), "krw-btc", "candles", END - 30 * MINUTE, END, tmp_path)
    assert done.symbol == "KRW-BTC"
    assert {c.symbol for c in replayed(tmp_path)} == {"KRW-BTC"}


async def test_progress_reports_climb_to_done(roomy: Env, tmp_path: Path) -> None:
    """Progress comes after every request, never goes back, and ends with done at the full range."""
    seen: list[BackfillProgress] = []
    start = END - 100 * MINUTE
    await backfill(roomy.http, "KRW-BTC", "candles", start, END, tmp_path, page_size=25, progress=seen.append)
    assert [p.pages for p in seen[:4]] == [1, 2, 3, 4]
    assert [p.position for p in seen] == sorted(p.position for p in seen)
    assert seen[-1].done
    assert seen[-1].fraction == 1.0
    assert seen[0].fraction == pytest.approx(0.25)
    assert isinstance(replayed(tmp_path)[0], Candle)


async def test_the_market_facade_is_accepted(roomy: Env, tmp_path: Path) -> None:
    """The market from ``rxmarket.upbit()`` backfills through its own client (and its limiter)."""
    async with upbit(rest_url=roomy.sim.rest_url, ws_url=roomy.sim.ws_url) as market:
        done = await backfill(market, "KRW-ETH", "candles", END - 30 * MINUTE, END, tmp_path)
    fetched = await history.fetch_candles(roomy.http, "KRW-ETH", "1m", 30, to=END)
    direct = [c for c in fetched if c.start >= END - 30 * MINUTE]
    assert [msgspec.structs.replace(c, source="rest") for c in replayed(tmp_path)] == direct
    assert done.written == len(direct)


def test_the_howto_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runnable example of docs/howto/backfill.md runs as printed: interrupted, resumed, the same."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "howto" / "backfill.md"
    blocks = re.findall(r"<!-- runnable -->\n```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "howto"}
    exec(compile(blocks[0], str(doc), "exec"), namespace)
    assert namespace["resumed"].resumed_from > namespace["start"]
    assert namespace["whole"].written == len(replayed(tmp_path / "whole")) > 250


async def test_a_range_before_the_stored_series_is_taken_as_stored(roomy: Env, tmp_path: Path) -> None:
    """Backfill extends a series forwards only: a range ending before the newest stored candle makes no
    request, adds nothing, and is not marked as backfilled."""
    await backfill(roomy.http, "KRW-BTC", "candles", END - 30 * MINUTE, END, tmp_path)
    before = roomy.sim.stats.rest_requests
    done = await backfill(roomy.http, "KRW-BTC", "candles", END - 120 * MINUTE, END - 60 * MINUTE, tmp_path)
    assert (done.pages, done.written, done.resumed_from, done.done) == (0, 0, END - 60 * MINUTE, True)
    assert roomy.sim.stats.rest_requests == before
    assert len(markers(tmp_path)) == 1

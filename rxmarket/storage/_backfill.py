"""``backfill()``: REST history (candles of any unit, trades) appended to a recording, resumable.

Upbit pages history **backwards** (newest first, ``to``/``cursor`` pointing at older data), but a recording
must grow **forwards**: ``verify`` and ``replay`` expect each series in time order, and a store that is
written backwards cannot say which part of it is complete. So the range ``[start, end)`` is cut into
chunks that follow each other in time, oldest first; each chunk is fetched by paging backwards from its
own end, and written oldest first, whole, in one flush::

    start                                                                   end
      |-- chunk 1 --|-- chunk 2 --|-- chunk 3 --|-- ...                      |
      <-- pages     <-- pages     <-- pages
      written 1st   written 2nd   written 3rd

Invariant: for each series (symbol, kind, unit) the store always holds everything in ``[start, P)`` for
some ``P``, and nothing later from this backfill. **"Continues where the store ends"** therefore means: the
newest record of the series (:func:`~rxmarket.storage.last_record`) is where the next run starts, and
nothing before it is fetched again:

* candles resume at the period after the last stored candle's ``start``;
* trades resume at the last stored trade's millisecond, skipping the ``sequential_id`` values already
  stored at that millisecond (several trades share a millisecond, and a write cut short by a kill may have
  stored only some of them; they are written in ``(timestamp, sequential_id)`` order, so what is missing
  comes after what is there).

An interrupted run loses at most the chunk it was fetching (one page for candles, about one page for
trades); a restarted run ends with exactly the records an uninterrupted one would have written. When a
run completes it appends a ``Marker(kind="backfilled")`` naming the series and the range, so a reader can
tell a finished backfill from one that stopped (an empty tail leaves no other trace).

Chunks: a candle chunk is exactly one page: ``page_size`` periods, fetched with ``to`` = the chunk's end and
``count`` = its number of periods (Upbit makes a candle only when something traded, so a page may reach
back past the chunk's start; what is older is dropped). A trade chunk is a span of time within one UTC day
(Upbit addresses trades by ``days_ago`` and a time of day) whose length adapts to the market's pace, aiming
at a bit less than one page per chunk; it is fetched with ``to`` + ``days_ago`` for the first page and
``cursor`` for the next ones. ``days_ago`` counts back from the day of the newest trade, which one request
(``count=1``) reads at the start. That day moves on when midnight passes during the run and something
trades: a count made before then addresses the wrong day. Every answer is checked for it (trades of a later
day than asked for; for an empty answer, one more ``count=1`` request), and the chunk is asked again with
the count corrected, so no trade is filtered out without a word.

Rate limits: every request goes through the caller's :class:`~rxmarket.transport.HttpClient`, whose
limiter paces each group and follows ``Remaining-Req``; a 429 that still happens holds the group back for
its ``retry_after`` and the page is asked again (``retries`` times), so no ``RateLimited`` reaches the
caller unless the exchange keeps refusing. A 418 (``Banned``) is raised at once: the store stays
consistent and a later run resumes.
"""

from __future__ import annotations

import asyncio
import calendar
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol, runtime_checkable

import msgspec

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit import history
from rxmarket.exchanges.upbit.protocol import DEFAULT_CONFIG, UpbitProtocolConfig
from rxmarket.models import CANDLE_UNITS, Candle, Trade
from rxmarket.storage._format import Marker
from rxmarket.storage._reader import last_record, read_segment, segment_paths
from rxmarket.storage._writer import RecordingWriter
from rxmarket.transport.http import HttpClient

__all__ = ["FIXED_MS", "BackfillProgress", "HistorySource", "Kind", "backfill", "next_period"]

Kind = Literal["candles", "trades"]

DAY_MS: Final = 86_400_000
MARKER_KIND: Final = "backfilled"
TRADE_DAYS: Final = 7  # Upbit serves trades of the newest trade's day and 7 days before it
FIXED_MS: Final[dict[str, int]] = {
    "1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "10m": 600_000, "15m": 900_000,
    "30m": 1_800_000, "60m": 3_600_000, "240m": 14_400_000, "1d": DAY_MS, "1w": 7 * DAY_MS,
}
_MONDAY_SHIFT: Final = 3 * DAY_MS  # 1970-01-01 was a Thursday; Upbit's weeks start on Monday (UTC)
_FIRST_TRADE_SPAN: Final = 60_000  # ms; the first trade chunk, before the market's pace is known
_MIN_TRADE_SPAN: Final = 1000
_MAX_SPAN_FACTOR: Final = 8.0  # a trade chunk grows or shrinks at most this much from one to the next
_CODE: Final = re.compile(r"[A-Z0-9]+-[A-Z0-9]+")
_NO_FLUSH: Final = 1 << 62  # the writer never flushes by itself: backfill flushes whole chunks


@runtime_checkable
class HistorySource(Protocol):
    """Anything that can reach Upbit's REST history: it exposes its HTTP client as ``http``.

    :class:`~rxmarket.exchanges.upbit.source.UpbitSource` is one. Also accepted by :func:`backfill`: a
    facade whose ``source`` is one (``rxmarket.upbit()``'s ``MarketData``), and a bare
    :class:`~rxmarket.transport.HttpClient` (e.g. from
    :func:`~rxmarket.exchanges.upbit.history.upbit_http_client`).
    """

    @property
    def http(self) -> HttpClient:
        """The client REST calls go through (its limiter paces them)."""
        ...


class BackfillProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a backfill stands; passed to ``progress`` after every REST call, and returned at the end.

    Attributes:
        symbol: the market.
        kind: ``"candles"`` or ``"trades"``.
        unit: the candle unit, or ``None`` for trades.
        start: the requested start (ms, inclusive).
        end: the requested end (ms, exclusive).
        resumed_from: where this run began: ``start`` on an empty store, later when it resumed.
        position: the store now holds the whole series in ``[start, position)``.
        pages: REST calls made by this run.
        written: records appended by this run.
        done: the whole range is in the store.
    """

    symbol: str
    kind: str
    unit: str | None
    start: int
    end: int
    resumed_from: int
    position: int
    pages: int
    written: int
    done: bool = False

    @property
    def fraction(self) -> float:
        """How much of ``[start, end)`` is in the store, 0.0-1.0."""
        span = self.end - self.start
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.position - self.start) / span))


Progress = Callable[[BackfillProgress], None]


# -- arguments ------------------------------------------------------------------------------------------


def _ms(value: int | datetime, name: str) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(f"{name} must be timezone-aware (e.g. tzinfo=UTC), got naive {value!r}")
        return round(value.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{name} must be ms since the epoch or an aware datetime, got {value!r}")


def _holders(market: object) -> list[object]:
    """``market`` and, for a facade, the source behind it (``market.source``)."""
    return [market, getattr(market, "source", None)]


def _http_of(market: HistorySource | HttpClient) -> HttpClient:
    if isinstance(market, HttpClient):
        return market
    for holder in _holders(market):
        http = getattr(holder, "http", None)
        if isinstance(http, HttpClient):
            return http
    raise ConfigError(
        f"backfill needs something that reaches Upbit's REST history (a MarketData, an UpbitSource, "
        f"anything with an 'http' client, or an HttpClient), got {type(market).__name__}"
    )


def _protocol_of(market: object) -> UpbitProtocolConfig:
    for holder in _holders(market):
        config = getattr(getattr(holder, "config", None), "protocol", None)
        if isinstance(config, UpbitProtocolConfig):
            return config
    return DEFAULT_CONFIG


# -- candle periods -------------------------------------------------------------------------------------


def _floor(unit: str, ms: int) -> int:
    """The start of the ``unit`` period holding ``ms`` (UTC; weeks start on Monday)."""
    if unit == "1w":
        return ms - (ms + _MONDAY_SHIFT) % FIXED_MS["1w"]
    step = FIXED_MS.get(unit)
    if step is not None:
        return ms - ms % step
    d = datetime.fromtimestamp(ms / 1000, tz=UTC)
    month = 1 if unit == "1y" else d.month
    return calendar.timegm((d.year, month, 1, 0, 0, 0)) * 1000


def next_period(unit: str, start: int) -> int:
    """The start of the period after the one starting at ``start``."""
    step = FIXED_MS.get(unit)
    if step is not None:
        return start + step
    d = datetime.fromtimestamp(start / 1000, tz=UTC)
    if unit == "1y":
        return calendar.timegm((d.year + 1, 1, 1, 0, 0, 0)) * 1000
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000


def _ceil(unit: str, ms: int) -> int:
    """The first period start at or after ``ms``."""
    floor = _floor(unit, ms)
    return floor if floor == ms else next_period(unit, floor)


def _periods(unit: str, lo: int, hi: int, limit: int) -> tuple[int, int]:
    """``(n, b)``: the number of period starts in ``[lo, b)``, and ``b``: ``hi`` or the end of the
    ``limit``-th period from ``lo``, whichever comes first. ``lo`` is a period start below ``hi``."""
    step = FIXED_MS.get(unit)
    if step is not None:
        n = min(limit, math.ceil((hi - lo) / step))
        return n, min(hi, lo + n * step)
    n, t = 0, lo
    while n < limit and t < hi:
        t = next_period(unit, t)
        n += 1
    return n, min(t, hi)


def _ceil_second(ms: int) -> int:
    return -(-ms // 1000) * 1000


# -- the run --------------------------------------------------------------------------------------------


class _Run:
    """State shared by the candle and trade loops: counters, the writer, progress reports."""

    def __init__(
        self,
        writer: RecordingWriter,
        template: BackfillProgress,
        progress: Progress | None,
    ) -> None:
        self.writer = writer
        self.state = template
        self.progress = progress

    def report(self, *, pages: int = 0, written: int = 0, position: int | None = None) -> None:
        s = self.state
        self.state = msgspec.structs.replace(
            s,
            pages=s.pages + pages,
            written=s.written + written,
            position=s.position if position is None else max(s.position, position),
        )
        if self.progress is not None:
            self.progress(self.state)

    def write(self, items: list[Candle] | list[Trade]) -> None:
        """Append one whole chunk, oldest first, and flush it in one write."""
        write = self.writer.write
        for item in items:
            write(item)
        self.writer.flush()


async def _candles(
    run: _Run, http: HttpClient, symbol: str, unit: str, lo: int, end: int, page: int, retries: int,
    config: UpbitProtocolConfig,
) -> None:
    pos = _ceil(unit, lo)
    while pos < end:
        count, b = _periods(unit, pos, end, page)
        # Upbit's ``to`` is exclusive and whole seconds: round up, then keep only starts below ``b``.
        got = await history.candles_page(
            http, symbol, unit, to=_ceil_second(b), count=count, retries=retries, config=config
        )
        chunk: list[Candle] = []
        last = pos - 1
        for candle in got.items:  # oldest first
            if pos <= candle.start < b and candle.start > last:
                chunk.append(candle)
                last = candle.start
        run.write(chunk)
        pos = b
        run.report(pages=1, written=len(chunk), position=pos)


async def _newest_trade_day(
    http: HttpClient, symbol: str, retries: int, config: UpbitProtocolConfig
) -> int | None:
    """The UTC day (ms) of the newest trade: what Upbit counts ``days_ago`` from."""
    got = await history.trades_page(http, symbol, count=1, retries=retries, config=config)
    if not got.items:
        return None
    ts = got.items[-1].timestamp
    return ts - ts % DAY_MS


def _time_of_day(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


async def _trades(
    run: _Run, http: HttpClient, symbol: str, lo: int, end: int, skip: set[int], page: int, retries: int,
    config: UpbitProtocolConfig,
) -> None:
    ref_day = await _newest_trade_day(http, symbol, retries, config)
    run.report(pages=1)
    if ref_day is None:
        run.report(position=end)  # no trade at all: nothing to fetch
        return
    oldest_day = ref_day - TRADE_DAYS * DAY_MS
    if lo < oldest_day:
        raise ConfigError(
            f"Upbit serves the trades of the last {TRADE_DAYS} days only (from {_iso(oldest_day)} for "
            f"{symbol}); backfill candles for older history"
        )
    pos, span = lo, _FIRST_TRADE_SPAN
    target = max(1.0, 0.8 * page)
    while pos < end:
        day = pos - pos % DAY_MS
        if day > ref_day:
            # Midnight passed since the run began: count days_ago from the new newest trade.
            ref_day = await _newest_trade_day(http, symbol, retries, config) or ref_day
            run.report(pages=1)
            if day > ref_day:
                run.report(position=end)  # nothing has traded on this day yet
                return
        b = min(end, pos + span, day + DAY_MS)
        ordered, ref_day = await _trade_chunk(
            run, http, symbol, pos, b, skip, ref_day, page=page, retries=retries, config=config
        )
        run.write(ordered)
        skip = set()  # only the resume millisecond can hold trades already stored
        pos = b
        run.report(pages=1, written=len(ordered), position=pos)
        factor = min(_MAX_SPAN_FACTOR, max(1 / _MAX_SPAN_FACTOR, target / max(len(ordered), 1)))
        span = int(min(DAY_MS, max(_MIN_TRADE_SPAN, span * factor)))


async def _trade_chunk(
    run: _Run, http: HttpClient, symbol: str, pos: int, b: int, skip: set[int], ref_day: int, *,
    page: int, retries: int, config: UpbitProtocolConfig,
) -> tuple[list[Trade], int]:
    """The trades of ``[pos, b)`` (inside one UTC day) oldest first, and the newest trade's day as it is now.

    The first page asks with ``to`` (the chunk's end as a time of day) and ``days_ago``, the next ones with
    ``cursor``. Every call but the last is reported here; the caller reports the last one with the chunk.

    Upbit counts ``days_ago`` from the day of its newest trade, and that day moves on when midnight passes
    and something trades: a ``days_ago`` counted before then addresses the day *after* the chunk's. Kept
    unnoticed, the chunk's filter would drop that day's trades and store an empty chunk without a word. So
    each answer is checked: trades of a later day than the chunk's show by how much the count moved; an
    empty answer cannot show which day it came from, so the newest trade's day is read again (one call).
    When the count moved, the chunk is asked again from its first page with ``days_ago`` recounted.
    """
    day = pos - pos % DAY_MS
    upper = _ceil_second(b) - day
    to = _time_of_day(upper) if upper < DAY_MS else None
    chunk: dict[int, Trade] = {}
    cursor: int | None = None
    while True:
        back = (ref_day - day) // DAY_MS
        if back > TRADE_DAYS:
            raise ConfigError(
                f"midnight passed during the backfill of {symbol}: the trades of {_iso(day)} are now "
                f"more than {TRADE_DAYS} days old and Upbit no longer serves them (the store is complete "
                f"up to {_iso(pos)}); backfill candles for older history"
            )
        got = await history.trades_page(
            http, symbol, cursor=cursor, count=page, to=to if cursor is None else None,
            days_ago=back or None, retries=retries, config=config,
        )
        items = got.items  # oldest first
        if items:
            moved = items[-1].timestamp - items[-1].timestamp % DAY_MS - day  # > 0: a later day answered
        else:
            run.report(pages=1)
            newest = await _newest_trade_day(http, symbol, retries, config)
            if newest is None or newest <= ref_day:
                break  # the count holds: the chunk has nothing more
            moved = newest - ref_day
        if moved > 0:
            ref_day += moved
            cursor = None
            run.report(pages=1)
            continue
        for trade in items:
            if pos <= trade.timestamp < b and trade.sequential_id not in skip:
                chunk[trade.sequential_id] = trade
        if got.next_cursor is None or items[0].timestamp < pos:
            break
        run.report(pages=1)
        cursor = got.next_cursor
    return sorted(chunk.values(), key=lambda t: (t.timestamp, t.sequential_id)), ref_day


def _iso(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, tz=UTC):%Y-%m-%dT%H:%M:%SZ}"


def _trade_tail(path: Path, symbol: str) -> tuple[int, set[int]] | None:
    """The time of the last stored trade of ``symbol`` and the ids of the trades stored at that ms."""
    ts: int | None = None
    ids: set[int] = set()
    for seg in reversed(segment_paths(path)):
        trades = [
            r.item for r in read_segment(seg)
            if type(r.item) is Trade and r.item.symbol == symbol
        ]
        if not trades:
            continue
        if ts is None:
            ts = trades[-1].timestamp
        i = len(trades)
        while i and trades[i - 1].timestamp == ts:
            i -= 1
            ids.add(trades[i].sequential_id)
        if i:  # the run of trades at `ts` starts in this segment
            break
    return None if ts is None else (ts, ids)


def _describe(kind: str, symbol: str, unit: str | None, start: int, end: int) -> str:
    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")

    what = f"{kind} {symbol}" + (f" {unit}" if unit else "")
    return f"{what} [{iso(start)}, {iso(end)})"


async def backfill(
    market: HistorySource | HttpClient,
    symbol: str,
    kind: Kind,
    start: int | datetime,
    end: int | datetime,
    path: str | Path,
    *,
    unit: str | None = None,
    page_size: int | None = None,
    progress: Progress | None = None,
    retries: int = 5,
) -> BackfillProgress:
    """Fetch the history of one market over REST into a recording, resuming where the store ends.

    Candles (any unit) or trades with ``start <= time < end`` are appended to the recording at ``path``,
    oldest first, in chunks; an interrupted run (cancelled, killed, failed) leaves a consistent store, and
    running the same call again continues after the newest record of the series already there. A series
    is only ever extended forwards: a range ending before its newest stored record counts as stored (no
    request is made). See the module documentation for how a backwards pager fills a forwards store.

    Args:
        market: what reaches Upbit's REST history: the market from ``rxmarket.upbit()``, an
            ``UpbitSource``, anything exposing an ``http`` :class:`~rxmarket.transport.HttpClient`, or the
            client itself. The client's limiter paces the calls.
        symbol: the market code, e.g. ``"KRW-BTC"``.
        kind: ``"candles"`` or ``"trades"``.
        start: the first instant wanted (ms since the epoch or an aware datetime), inclusive. For candles,
            the first candle is the first one *starting* at or after it.
        end: the end (exclusive): candles starting before it, trades made before it. A candle still open
            at that moment is stored as it was when fetched; pick an ``end`` in the past for final ones.
        path: the recording directory (created if missing; other series may share it).
        unit: the candle unit (``"1s"``, ``"1m"`` ... ``"240m"``, ``"1d"``, ``"1w"``, ``"1mo"``, ``"1y"``);
            default ``"1m"``. Not used for trades.
        page_size: items per REST call (candles 1-200, trades 1-500; default the maximum). A candle chunk
            is one page of ``page_size`` periods.
        progress: called after every REST call with a :class:`BackfillProgress` (on the event loop; a
            callback that raises stops the backfill, leaving the store consistent).
        retries: further attempts of a page after a 429 (once the limiter's hold-back has passed), a 5xx
            or a network failure.

    Returns:
        The final :class:`BackfillProgress` (``done=True``).

    Raises:
        ConfigError: a bad argument (unknown unit, malformed code, ``start >= end``, trades older than
            Upbit keeps, also when a midnight passing during the run pushes the day being fetched out of
            Upbit's week; the store then holds everything before that day's chunk), or the recording is in
            use by another writer.
        RxMarketError: a REST failure that ``retries`` did not cure (``NotFound`` for an unknown market,
            ``Banned``, ``ServerError``, ``TransportError``, ``RateLimited``); the store stays consistent.
    """
    http = _http_of(market)
    config = _protocol_of(market)
    code = symbol.strip().upper() if isinstance(symbol, str) else ""
    if not _CODE.fullmatch(code):
        raise ConfigError(f"market code {symbol!r} is not QUOTE-BASE, e.g. 'KRW-BTC'")
    lo, hi = _ms(start, "start"), _ms(end, "end")
    if lo >= hi:
        raise ConfigError(f"start must be before end, got start={lo} end={hi} (ms)")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
    if kind == "candles":
        unit = "1m" if unit is None else unit
        if unit not in CANDLE_UNITS:
            raise ConfigError(f"unknown candle unit {unit!r}; choose from {', '.join(CANDLE_UNITS)}")
        limit = history.MAX_CANDLES_PER_PAGE
    elif kind == "trades":
        if unit is not None:
            raise ConfigError("unit applies to candles only; trades have none")
        limit = history.MAX_TRADES_PER_PAGE
    else:
        raise ConfigError(f"kind must be 'candles' or 'trades', got {kind!r}")
    page = limit if page_size is None else page_size
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= limit:
        raise ConfigError(f"page_size for {kind} must be an integer in 1..{limit}, got {page_size!r}")
    store = Path(path)
    detail = _describe(kind, code, unit, lo, hi)
    metadata: dict[str, Any] = {"kind": kind[:-1], "symbol": code, "backfill": [lo, hi]}
    if unit is not None:
        metadata["unit"] = unit
    # The writer's lock comes first: nobody else may append between reading the resume point and writing.
    writer = _open_writer(store, metadata)
    try:
        # Reading the store's tail can take a moment on a large segment: keep the loop free meanwhile.
        resume, skip = await asyncio.to_thread(_resume_point, store, kind, code, unit, lo)
        resume = min(resume, hi)
        run = _Run(writer, BackfillProgress(
            symbol=code, kind=kind, unit=unit, start=lo, end=hi, resumed_from=resume, position=resume,
            pages=0, written=0,
        ), progress)
        if resume < hi:
            if unit is not None:
                await _candles(run, http, code, unit, resume, hi, page, retries, config)
            else:
                await _trades(run, http, code, resume, hi, skip, page, retries, config)
        if run.state.pages:  # a run that fetched nothing (the store reaches past `end`) vouches for nothing
            _finish(writer, store, detail, run.state.written)
    finally:
        writer.close()
    final = msgspec.structs.replace(run.state, position=hi, done=True)
    if progress is not None:
        progress(final)
    return final


def _open_writer(store: Path, metadata: dict[str, Any]) -> RecordingWriter:
    if store.exists() and not store.is_dir():
        raise ConfigError(f"cannot backfill into {store}: it exists and is not a directory")
    # Chunks are flushed whole by `_Run.write`; the writer must never flush half a chunk by itself.
    return RecordingWriter(store, flush_every=_NO_FLUSH, flush_interval=1e9, metadata=metadata)


def _resume_point(store: Path, kind: str, code: str, unit: str | None, lo: int) -> tuple[int, set[int]]:
    """Where this run starts (ms) and the trade ids already stored at that millisecond."""
    if kind == "candles":
        assert unit is not None
        last = last_record(store, symbol=code, unit=unit)
        if last is not None and isinstance(last.item, Candle):
            return max(lo, next_period(unit, last.item.start)), set()
        return lo, set()
    tail = _trade_tail(store, code)
    if tail is not None and tail[0] >= lo:
        return tail
    return lo, set()


def _finish(writer: RecordingWriter, store: Path, detail: str, written: int) -> None:
    """Mark the range done, unless this run added nothing and the store's newest marker says so already.

    Only the newest segment is looked at: a run that adds nothing opens no segment of its own, so the
    marker of the run that completed the range is there unless something else was appended since (and
    then one more marker is harmless).
    """
    if not written:
        segments = segment_paths(store)
        newest: Marker | None = None
        if segments:
            for rec in read_segment(segments[-1]):
                if type(rec.item) is Marker:
                    newest = rec.item
        if newest is not None and newest.kind == MARKER_KIND and newest.detail == detail:
            return
    writer.mark(MARKER_KIND, detail)

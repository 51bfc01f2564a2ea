"""Upbit history over REST: candles and trades, paged backwards, delivered oldest first.

Upbit answers history newest first, at most 200 candles or 500 trades per call, and pages backwards:

* candles: the next (older) page is asked with ``to`` = the oldest ``candle_date_time_utc`` of this page
  (an exclusive upper bound);
* trades: with ``cursor`` = the oldest ``sequential_id`` of this page.

Three levels, pick the one you need::

    page = await candles_page(http, "KRW-BTC", "1m", to=None, count=200)    # one call: CandlePage
    more = await candles_page(http, "KRW-BTC", "1m", to=page.next_to)       # the page before it
    bars = await fetch_candles(http, "KRW-BTC", "1m", 1000)                 # all pages: list, oldest first
    candles(http, "KRW-BTC", "1m", 1000).subscribe(print)                    # the same as a cold Observable

Items are deduplicated across pages (candles by ``(symbol, unit, start)``, trades by ``sequential_id``)
and come out oldest first. Every call goes through the :class:`~rxmarket.transport.HttpClient`'s rate
limiter; a ``RateLimited`` answer (429) makes the limiter hold the group back for ``retry_after`` and the
call is retried after that wait; 5xx answers and network failures are retried ``retries`` times with a
growing delay; a ``Banned`` answer (418) and caller errors (unknown market: ``NotFound``) are raised at
once. :func:`upbit_http_client` makes an ``HttpClient`` that speaks Upbit: error bodies mapped by
:func:`~rxmarket.exchanges.upbit.protocol.error_from_response`, pacing fed by ``Remaining-Req``.

The Observables (:func:`candles`, :func:`trades`) take their owner's ``closed`` test: once it holds, a
subscription fails at once with ``ConfigError`` and sends nothing. Without it, a fetch on the owner's closed
client would be retried as a network failure until the retry budget is spent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import msgspec
import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxmarket.errors import (
    ConfigError,
    ProtocolError,
    RateLimited,
    ServerError,
    TransportError,
)
from rxmarket.exchanges.upbit import endpoints
from rxmarket.exchanges.upbit.endpoints import REST_URL, RestRequest
from rxmarket.exchanges.upbit.protocol import (
    DEFAULT_CONFIG,
    UpbitProtocolConfig,
    decode_rest,
    error_from_response,
    parse_remaining_req,
)
from rxmarket.models import Candle, Trade
from rxmarket.policy.ratelimit import RateLimiter
from rxmarket.transport.http import HttpClient

__all__ = [
    "CandlePage",
    "TradePage",
    "candles",
    "candles_page",
    "fetch_candles",
    "fetch_trades",
    "fetch_trades_since",
    "get_rest",
    "trades",
    "trades_page",
    "upbit_http_client",
]

T = TypeVar("T")

MAX_CANDLES_PER_PAGE = endpoints.MAX_CANDLES_COUNT
MAX_TRADES_PER_PAGE = endpoints.MAX_TRADES_COUNT
DEFAULT_RETRIES = 3
_RETRY_DELAY = 0.25  # first wait after a 5xx / network failure; doubles per attempt
_DAY_MS = 86_400_000  # Upbit addresses trades by UTC day (``days_ago``)

#: The error message of every call on a closed :class:`~rxmarket.exchanges.upbit.UpbitSource` (its
#: streams, polls and history fetches all say the same thing).
SOURCE_CLOSED = "this UpbitSource is closed; make a new one"

Sleep = Callable[[float], Awaitable[None]]

# Tasks of Observables subscribed without an owner's task set: referenced here until they end, so the
# event loop (which keeps only weak references) cannot collect one mid-flight.
_RUNNING: set[asyncio.Task[None]] = set()


def upbit_http_client(
    rest_url: str = REST_URL,
    *,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
    limiter: RateLimiter | None = None,
    timeout: float = 10.0,
    sleep: Sleep = asyncio.sleep,
) -> HttpClient:
    """An :class:`HttpClient` for Upbit's quotation REST API.

    Args:
        rest_url: the REST base (default Upbit's; a simulator's ``rest_url`` in tests).
        config: how to read Upbit's unconfirmed error bodies (see ``UpbitProtocolConfig``).
        limiter: the per-group limiter (default: Upbit's 10 requests per second per group).
        timeout: seconds for a whole request.
        sleep: awaited for pacing waits.

    Returns:
        A client whose errors are Upbit's (``NotFound``, ``RateLimited``, ``Banned`` ...) and whose pacing
        follows ``Remaining-Req``. Close it with ``await client.close()``.
    """

    def error_mapper(status: int, body: bytes, headers: Mapping[str, str]) -> Exception | None:
        if status < 400:
            return None
        return error_from_response(status, body, headers, config=config)

    def remaining(headers: Mapping[str, str]) -> int | None:
        value = headers.get("Remaining-Req")
        if value is None:
            return None
        try:
            return parse_remaining_req(value).sec
        except ProtocolError:
            return None  # a malformed header must not fail a good answer; pacing falls back to our count

    return HttpClient(
        rest_url,
        timeout=timeout,
        limiter=limiter,
        error_mapper=error_mapper,
        remaining=remaining,
        sleep=sleep,
    )


async def get_rest(
    http: HttpClient,
    request: RestRequest,
    *,
    symbol: str | None = None,
    retries: int = DEFAULT_RETRIES,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
    sleep: Sleep = asyncio.sleep,
) -> list[Any]:
    """Send one REST request and decode its answer, retrying what a retry can cure.

    Args:
        http: the client (its limiter paces the call).
        request: built by :mod:`~rxmarket.exchanges.upbit.endpoints`.
        symbol: if given, every item of the answer must be about this market.
        retries: further attempts after a ``RateLimited``, ``ServerError`` or ``TransportError``.
        config: passed to ``decode_rest``.
        sleep: awaited between attempts after a 5xx or a network failure.

    Returns:
        The decoded items, in the answer's order.

    Raises:
        RateLimited, ServerError, TransportError: still failing after ``retries`` more attempts (at once
            when ``http`` is closed: no retry can cure that).
        Banned: HTTP 418 (never retried here: a block lasts long; the limiter holds every group back).
        NotFound, ExchangeRejected, ProtocolError: not curable by a retry.
    """
    attempt = 0
    while True:
        try:
            response = await http.get(request.path, dict(request.params), group=request.group)
            return decode_rest(request.kind, response.body, unit=request.unit, symbol=symbol, config=config)
        except RateLimited:
            # The client's limiter now holds this group back for retry_after: the next get() waits it out.
            if attempt >= retries:
                raise
        except (ServerError, TransportError):
            if attempt >= retries or http.closed:  # a closed client stays closed: no retry can cure it
                raise
            await sleep(_RETRY_DELAY * 2**attempt)
        attempt += 1


# -- candles ----------------------------------------------------------------------------------------------


class CandlePage(msgspec.Struct, frozen=True):
    """One page of candles.

    Attributes:
        items: the candles, oldest first.
        next_to: pass as ``to`` to get the page before this one; ``None`` when this page was not full
            (no older candles exist).
    """

    items: tuple[Candle, ...]
    next_to: int | None


async def candles_page(
    http: HttpClient,
    symbol: str,
    unit: str,
    *,
    to: str | int | None = None,
    count: int = MAX_CANDLES_PER_PAGE,
    retries: int = DEFAULT_RETRIES,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> CandlePage:
    """Fetch one page of candles ending before ``to``.

    Args:
        http: the client.
        symbol: the market code.
        unit: ``"1s"``, ``"1m"`` ... ``"240m"``, ``"1d"``, ``"1w"``, ``"1mo"``, ``"1y"``.
        to: exclusive upper bound: epoch ms (a previous page's ``next_to``) or an ISO 8601 string;
            ``None`` for the newest candles.
        count: candles in the page, 1-200.
        retries: see :func:`get_rest`.
        config: see :func:`get_rest`.

    Returns:
        The page, oldest first, with the cursor to the one before it.

    Raises:
        ConfigError: an unknown unit, a malformed code or ``count`` outside 1-200.
        RxMarketError: as :func:`get_rest`.
    """
    request = endpoints.candles(symbol, unit, to=to, count=count, config=config)
    items: list[Candle] = await get_rest(http, request, symbol=symbol, retries=retries, config=config)
    items.reverse()  # Upbit: newest first
    next_to = items[0].start if items and len(items) >= count else None
    return CandlePage(tuple(items), next_to)


async def fetch_candles(
    http: HttpClient,
    symbol: str,
    unit: str,
    count: int,
    *,
    to: str | int | None = None,
    retries: int = DEFAULT_RETRIES,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> list[Candle]:
    """The ``count`` newest candles before ``to`` (fewer if history is shorter), oldest first.

    Raises:
        ConfigError: ``count`` below 1, an unknown unit or a malformed code.
        RxMarketError: as :func:`get_rest`.
    """
    _check_count(count)
    newest_first: list[Candle] = []
    starts: set[int] = set()
    cursor: str | int | None = to
    while len(newest_first) < count:
        page = await candles_page(
            http, symbol, unit, to=cursor, count=min(MAX_CANDLES_PER_PAGE, count - len(newest_first)),
            retries=retries, config=config,
        )
        fresh = [c for c in reversed(page.items) if c.start not in starts]
        starts.update(c.start for c in fresh)
        newest_first.extend(fresh)
        if page.next_to is None or not fresh:
            break
        cursor = page.next_to
    del newest_first[count:]
    newest_first.reverse()
    return newest_first


def candles(
    http: HttpClient,
    symbol: str,
    unit: str,
    count: int,
    *,
    to: str | int | None = None,
    retries: int = DEFAULT_RETRIES,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
    tasks: set[asyncio.Task[None]] | None = None,
    closed: Callable[[], bool] | None = None,
) -> Observable[Candle]:
    """:func:`fetch_candles` as a cold Observable: each subscription fetches, emits oldest first, completes.

    Arguments are checked at the call (``ConfigError``); REST errors arrive as ``on_error``. Disposing
    cancels the fetch. ``tasks`` (an owner's set) keeps the fetch task, so its owner can cancel it;
    ``closed`` tells whether the owner is closed: a subscription then fails at once with ``ConfigError``,
    without a request.
    """
    _check_count(count)
    endpoints.candles(symbol, unit, to=to, count=min(count, MAX_CANDLES_PER_PAGE), config=config)
    return _deferred(
        lambda: fetch_candles(http, symbol, unit, count, to=to, retries=retries, config=config),
        tasks,
        closed,
    )


# -- trades -----------------------------------------------------------------------------------------------


class TradePage(msgspec.Struct, frozen=True):
    """One page of trades.

    Attributes:
        items: the trades, oldest first.
        next_cursor: pass as ``cursor`` to get the page before this one; ``None`` when this page was not
            full (no older trades in the window Upbit keeps).
    """

    items: tuple[Trade, ...]
    next_cursor: int | None


async def trades_page(
    http: HttpClient,
    symbol: str,
    *,
    cursor: int | None = None,
    count: int = MAX_TRADES_PER_PAGE,
    to: str | None = None,
    days_ago: int | None = None,
    retries: int = DEFAULT_RETRIES,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> TradePage:
    """Fetch one page of trades older than ``cursor`` (the newest ones when ``cursor`` is ``None``).

    Args:
        http: the client.
        symbol: the market code.
        cursor: a ``sequential_id`` (a previous page's ``next_cursor``).
        count: trades in the page, 1-500.
        to: a UTC time of day, ``HHmmss`` or ``HH:mm:ss``: trades before it.
        days_ago: 1-7: trades of that many days back.
        retries: see :func:`get_rest`.
        config: see :func:`get_rest`.

    Returns:
        The page, oldest first, with the cursor to the one before it.

    Raises:
        ConfigError: a malformed argument.
        RxMarketError: as :func:`get_rest`.
    """
    request = endpoints.trades_ticks(
        symbol, to=to, count=count, cursor=cursor, days_ago=days_ago, config=config
    )
    items: list[Trade] = await get_rest(http, request, symbol=symbol, retries=retries, config=config)
    items.reverse()
    next_cursor = items[0].sequential_id if items and len(items) >= count else None
    return TradePage(tuple(items), next_cursor)


async def fetch_trades_since(
    http: HttpClient,
    symbol: str,
    since: int,
    *,
    max_pages: int = 5,
    page_size: int = MAX_TRADES_PER_PAGE,
    retries: int = DEFAULT_RETRIES,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> tuple[list[Trade], bool]:
    """Trades from now back to ``since`` (ms, inclusive), newest first, at most ``max_pages`` calls.

    This is the gap fill's query. Upbit addresses trades by UTC day: without ``days_ago``, ``cursor`` pages
    through the day of the newest trade only, and an earlier day is reached with ``days_ago`` (counted
    from the newest trade's day) for its first page, then ``cursor``. So this pages back through the newest
    day until a page reaches ``since``; when the day is used up and ``since`` lies before its start, it goes
    on with the day before (a drop over a UTC midnight gets the trades of both days), and so on. A day's
    first page asks for no ``to``: the whole day is wanted, up to its end, as in the storage backfill.

    If midnight passes during the fill, Upbit's day count moves under it: a day's first page then holds the
    trades of a later day than asked for. The count is corrected and the page asked again (one more call).

    Upbit serves ``days_ago`` 1-7 only: trades older than the 7th day before the newest trade's day cannot
    be reached, and a ``since`` before that day gives ``complete=False`` with every trade Upbit still
    serves. A server whose ``cursor`` pages cross midnight by themselves (the simulator without
    ``SimOptions(trades_by_day=True)``) is paged by ``cursor`` alone until its pages run out.

    Args:
        http: the client.
        symbol: the market code.
        since: the oldest trade time wanted (ms, inclusive).
        max_pages: REST calls allowed in total, over all days.
        page_size: trades per call, 1-500.
        retries: see :func:`get_rest`.
        config: see :func:`get_rest` (also the spelling of ``days_ago``).

    Returns:
        ``(trades newest first, complete)``: each trade once; ``complete`` is ``False`` when ``max_pages``
        ran out first, or when ``since`` lies more than 7 days before the newest trade's day.

    Raises:
        RxMarketError: as :func:`get_rest`.
    """
    newest_first: list[Trade] = []
    ids: set[int] = set()
    cursor: int | None = None
    days_ago: int | None = None  # None: the newest trade's day (Upbit's default)
    day: int | None = None  # start (ms) of the UTC day being paged; None before the first answer
    ref_day = 0  # the newest trade's day, which days_ago counts from
    for _ in range(max_pages):
        page = await trades_page(
            http, symbol, cursor=cursor, count=page_size, days_ago=days_ago, retries=retries, config=config
        )
        items = page.items  # oldest first
        if cursor is None and items:  # a day's first page: its trades say which day Upbit took
            held = _day_start(items[-1].timestamp)
            if day is None:
                day = ref_day = held
            elif held != day:
                # Upbit counts days_ago from its newest trade's day, which moved since ref_day was read
                # (midnight passed): count from where it is now, and ask for the same day again.
                ref_day += held - day
                if (days_ago := _days_ago(ref_day, day)) == 0:
                    return newest_first, False
                continue
        for trade in reversed(items):
            if trade.timestamp >= since and trade.sequential_id not in ids:
                ids.add(trade.sequential_id)
                newest_first.append(trade)
        if items:
            if items[0].timestamp < since:
                return newest_first, True
            if day is not None:  # a cursor that crossed midnight by itself: the pages are that far back
                day = min(day, _day_start(items[0].timestamp))
            if page.next_cursor is not None:
                cursor = page.next_cursor
                continue
        # This day is used up (no trade at all yet, when ``day`` is None).
        if day is None or since >= day:
            return newest_first, True
        day -= _DAY_MS
        cursor = None
        if (days_ago := _days_ago(ref_day, day)) == 0:
            return newest_first, False
    return newest_first, False


def _day_start(ms: int) -> int:
    """The start (ms) of the UTC day holding ``ms``."""
    return ms - ms % _DAY_MS


def _days_ago(ref_day: int, day: int) -> int | None:
    """The ``days_ago`` that asks Upbit for ``day`` when its newest trade is of ``ref_day``: ``None`` for that
    day itself (no ``days_ago``), ``0`` when ``day`` is out of Upbit's reach (more than 7 days back)."""
    back = (ref_day - day) // _DAY_MS
    if back == 0:
        return None
    return back if 1 <= back <= endpoints.MAX_DAYS_AGO else 0


async def fetch_trades(
    http: HttpClient,
    symbol: str,
    count: int,
    *,
    cursor: int | None = None,
    to: str | None = None,
    days_ago: int | None = None,
    since: int | None = None,
    retries: int = DEFAULT_RETRIES,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> list[Trade]:
    """Up to ``count`` trades going back from ``cursor`` / ``to`` / ``days_ago``, oldest first.

    Args:
        since: also stop at this trade time (ms, inclusive): nothing older is returned.
        Others: as :func:`trades_page`.

    Raises:
        ConfigError: ``count`` below 1, or a malformed argument.
        RxMarketError: as :func:`get_rest`.
    """
    _check_count(count)
    newest_first: list[Trade] = []
    ids: set[int] = set()
    while len(newest_first) < count:
        page = await trades_page(
            http, symbol, cursor=cursor, count=min(MAX_TRADES_PER_PAGE, count - len(newest_first)),
            to=to if cursor is None else None, days_ago=days_ago, retries=retries, config=config,
        )
        fresh = 0
        done = False
        for trade in reversed(page.items):
            if since is not None and trade.timestamp < since:
                done = True
                continue
            if trade.sequential_id not in ids:
                ids.add(trade.sequential_id)
                newest_first.append(trade)
                fresh += 1
        if done or page.next_cursor is None or fresh == 0:
            break
        cursor = page.next_cursor
    del newest_first[count:]
    newest_first.reverse()
    return newest_first


def trades(
    http: HttpClient,
    symbol: str,
    count: int,
    *,
    cursor: int | None = None,
    to: str | None = None,
    days_ago: int | None = None,
    since: int | None = None,
    retries: int = DEFAULT_RETRIES,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
    tasks: set[asyncio.Task[None]] | None = None,
    closed: Callable[[], bool] | None = None,
) -> Observable[Trade]:
    """:func:`fetch_trades` as a cold Observable (oldest first, then completion); see :func:`candles` (also
    for ``tasks`` and ``closed``)."""
    _check_count(count)
    endpoints.trades_ticks(
        symbol, to=to, count=min(count, MAX_TRADES_PER_PAGE), cursor=cursor, days_ago=days_ago, config=config
    )
    return _deferred(
        lambda: fetch_trades(
            http, symbol, count, cursor=cursor, to=to, days_ago=days_ago, since=since, retries=retries,
            config=config,
        ),
        tasks,
        closed,
    )


# -- plumbing ---------------------------------------------------------------------------------------------


def _check_count(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"count must be an integer >= 1, got {count!r}")


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()


def _deferred(
    fetch: Callable[[], Awaitable[list[T]]],
    tasks: set[asyncio.Task[None]] | None,
    closed: Callable[[], bool] | None = None,
) -> Observable[T]:
    """A cold Observable that runs ``fetch`` in a task per subscription and emits its list.

    A subscription made once ``closed()`` holds fails at once with ``ConfigError`` (no task, no request).
    A task cancelled by its owner (not by a dispose) ends the subscription with ``ConfigError``.
    """

    def subscribe(observer: abc.ObserverBase[T], _scheduler: abc.SchedulerBase | None = None) -> Disposable:
        if closed is not None and closed():
            # Checked here, not when the Observable was made: it may have been made before the close.
            observer.on_error(ConfigError(SOURCE_CLOSED))
            return Disposable()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            observer.on_error(ConfigError("subscribe to REST history from inside a running event loop"))
            return Disposable()

        async def run() -> None:
            try:
                items = await fetch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                observer.on_error(exc)
                return
            try:
                for item in items:
                    observer.on_next(item)
            except Exception as exc:  # the subscriber's on_next failed: Rx sends that to its on_error
                observer.on_error(exc)
                return
            observer.on_completed()

        def ended(task: asyncio.Task[None]) -> None:
            # Cancelled by its owner (the source closing) rather than by a dispose (the observer is then
            # stopped and ignores this): say so, instead of leaving the subscriber waiting or cutting the
            # list short in silence.
            if task.cancelled():
                observer.on_error(ConfigError("the source closed before this history fetch finished"))

        task = loop.create_task(run(), name="rxmarket-upbit-history")
        holder = tasks if tasks is not None else _RUNNING
        holder.add(task)
        task.add_done_callback(holder.discard)
        task.add_done_callback(ended)
        return Disposable(lambda: _cancel(task))

    return reactivex.create(subscribe)

"""``MarketData``: the backbone users start with: typed, self-healing, shared market data streams.

::

    import rxmarket

    async with rxmarket.upbit() as market:                    # real Upbit; rest_url=/ws_url= for a simulator
        market.ticker(["KRW-BTC"]).subscribe(print)           # Observable[Ticker], WebSocket first
        book = await anext(market.stream_orderbook(["KRW-ETH"], depth=15))
        print(await market.get_ticker("KRW-BTC"))             # cache -> REST -> WebSocket
        market.status.subscribe(log)                          # connection, staleness, circuit, quarantine
        print(market.stats())

What a call gives you, with no operator written:

* ``ticker`` / ``orderbook``: the default chain of :mod:`rxmarket.pipelines` for the ``channel`` asked:
  ``"auto"`` (WebSocket; REST polling while it is down, back to WebSocket when it recovers), ``"websocket"``
  (with retries after the connection gives up) or ``"rest"`` (polling). Unified (newest per market wins),
  validated (``on_invalid``), written through a disk cache.
* ``trades``: the WebSocket trades, gaps after a reconnect filled from REST by the source, deduplicated,
  validated. ``candles``: REST history, paged, oldest first.
* **Hot and shared**: every call with the same (kind, markets, channel, depth) attaches to one running
  chain (ref-counted: the first subscriber starts it, the last one's dispose stops it). A subscriber that
  joins a running ticker or book chain first gets the latest value of each market (``source="cache"``).
* ``get_ticker``: the latest ticker from the cache when it is fresh, else one batched REST call, else the
  first ticker of the WebSocket. Markets asked for stay streamed for ``keep_warm`` seconds, so polling
  ``get_ticker`` is answered from memory (see ``docs/topics/channels-and-failover.md`` for the rules).
* Bad arguments raise :class:`~rxmarket.errors.ConfigError` at the call, never later.

``async with market`` closes everything on exit: every chain is disposed (its subscribers complete), the
source's sockets and HTTP session are closed, the cache is closed and a temporary cache directory removed.
A closed market sends nothing more: a later subscription (to an Observable made before or after the close)
fails at once through ``on_error``, and ``get_ticker`` raises, each with ``ConfigError`` ("this MarketData
is closed"), before any request or connection attempt.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import warnings
import weakref
from collections.abc import Iterable
from functools import partial
from operator import attrgetter
from types import TracebackType
from typing import Any, TypeVar

import diskcache
import msgspec
import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from rxmarket._market_config import (
    CHANNELS,
    Channel,
    MarketConfig,
    MarketStats,
    check_channel,
    check_depth,
    check_markets,
)
from rxmarket._market_feed import CountedIterator, Feed, Health, Retired, as_cached
from rxmarket.aio import OVERFLOW_POLICIES, BufferedAsyncIterator, Overflow
from rxmarket.errors import ConfigError, NotFound, RxMarketError, TransportError
from rxmarket.exchanges.upbit import endpoints
from rxmarket.exchanges.upbit.history import get_rest, upbit_http_client
from rxmarket.exchanges.upbit.source import SourceConfig, UpbitSource
from rxmarket.models import CANDLE_UNITS, Candle, Orderbook, Status, Ticker, Trade
from rxmarket.operators._cache_replay import CacheDegraded, CacheReplay, cache_replay, open_cache
from rxmarket.operators._validate import Quarantine, Rejected
from rxmarket.pipelines import (
    Pipeline,
    candle_pipeline,
    link_down,
    orderbook_pipeline,
    ticker_pipeline,
    trade_pipeline,
)
from rxmarket.policy.breaker import BreakerState, Transition
from rxmarket.policy.checks import check_ticker
from rxmarket.policy.ratelimit import RateLimiter
from rxmarket.policy.retry import RetryEvent

__all__ = ["CHANNELS", "Channel", "MarketConfig", "MarketData", "MarketStats", "upbit"]

T = TypeVar("T")
_SYMBOL = attrgetter("symbol")


# -- the facade --------------------------------------------------------------------------------------------


class MarketData:
    """Upbit market data as typed, hot, shared, self-healing Observables (see the module docstring).

    Make one with :func:`upbit`. Everything opens lazily (the first subscription connects) and is closed
    by ``async with`` or :meth:`close`.

    Args:
        config: the settings (default: ``MarketConfig()``: Upbit's real endpoints).

    Raises:
        ConfigError: ``config`` is not a :class:`MarketConfig`.
    """

    def __init__(self, config: MarketConfig | None = None) -> None:
        cfg = config if config is not None else MarketConfig()
        if not isinstance(cfg, MarketConfig):
            raise ConfigError(f"config must be a MarketConfig, got {type(cfg).__name__}")
        self.config = cfg
        self._http = upbit_http_client(
            cfg.rest_url,
            config=(cfg.source or SourceConfig()).protocol,
            limiter=RateLimiter((cfg.rest_rate, 1.0)),
            timeout=cfg.request_timeout,
        )
        self._source = UpbitSource(cfg.source_config(), http=self._http)
        self._events: Subject[Status] = Subject()
        self._quarantine = Quarantine()
        self._quarantine.subscribe(self._on_reject)
        self._health = Health()
        self._health_sub: abc.DisposableBase | None = None
        self._feeds: dict[tuple[Any, ...], Feed] = {}
        self._ticker_feeds: dict[str, set[Feed]] = {}
        self._tickers: dict[str, tuple[float, Ticker]] = {}  # latest ticker per market, with arrival time
        self._retired = Retired()
        self._db: diskcache.Cache | None = None
        self._closed_cache = False  # the cache could not be opened: do not try on every call
        self._temp_dir: str | None = None
        self._lookup_op: CacheReplay | None = None  # get_ticker's reads and write-through
        self._batch: dict[str, None] = {}
        self._batch_future: asyncio.Future[dict[str, Ticker | Exception]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warm: dict[str, tuple[abc.DisposableBase, float]] = {}
        self._warm_timer: asyncio.TimerHandle | None = None
        self._iterators: weakref.WeakSet[BufferedAsyncIterator[Any]] = weakref.WeakSet()
        self._iter_drops = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._hits = self._misses = self._rest_answers = self._ws_answers = 0
        self._replayed = 0
        self._callback_errors = 0

    # -- streams ------------------------------------------------------------------------------------------

    def ticker(self, markets: str | Iterable[str], *, channel: Channel = "auto") -> Observable[Ticker]:
        """Tickers of ``markets`` (returns at once; hot and shared).

        Args:
            markets: codes like ``"KRW-BTC"`` (case-insensitive; sent upper-case).
            channel: ``"auto"`` (WebSocket, REST while it is down), ``"websocket"`` or ``"rest"``.

        Returns:
            An Observable of :class:`~rxmarket.models.Ticker`; ``source`` says where each one came from.

        Raises:
            ConfigError: a malformed code or an unknown channel.
        """
        codes, ch = check_markets(markets), check_channel(channel)
        return self._shared(("ticker", tuple(sorted(codes)), ch, None), "ticker", codes, ch)

    def orderbook(
        self, markets: str | Iterable[str], *, depth: int | None = None, channel: Channel = "auto"
    ) -> Observable[Orderbook]:
        """Whole order books of ``markets`` (returns at once; hot and shared).

        Args:
            markets: codes like ``"KRW-BTC"``.
            depth: levels per side: 1, 5, 15 or 30 (``None``: Upbit's full 30).
            channel: ``"auto"``, ``"websocket"`` or ``"rest"``.

        Returns:
            An Observable of :class:`~rxmarket.models.Orderbook`.

        Raises:
            ConfigError: a malformed code, an unknown channel, a depth Upbit does not serve.
        """
        codes, ch, levels = check_markets(markets), check_channel(channel), check_depth(depth)
        return self._shared(("orderbook", tuple(sorted(codes)), ch, levels), "orderbook", codes, ch)

    def trades(self, markets: str | Iterable[str]) -> Observable[Trade]:
        """Live trades of ``markets`` over the WebSocket (returns at once; hot and shared).

        Trades missed during a reconnect are fetched over REST and delivered in order, each trade once.

        Raises:
            ConfigError: a malformed code.
        """
        codes = check_markets(markets)
        return self._shared(("trade", tuple(sorted(codes)), "websocket", None), "trade", codes, "websocket")

    def candles(
        self, symbol: str, unit: str = "1m", count: int = 200, *, to: str | int | None = None
    ) -> Observable[Candle]:
        """The ``count`` newest candles of ``symbol`` before ``to``, over REST, oldest first (cold).

        Args:
            symbol: a market code.
            unit: one of ``"1s"``, ``"1m"`` ... ``"240m"``, ``"1d"``, ``"1w"``, ``"1mo"``, ``"1y"``.
            count: how many (paged by 200 under the hood).
            to: exclusive upper bound: epoch ms or an ISO 8601 time (``None``: now).

        Returns:
            An Observable that fetches on each subscription, emits the validated candles, then completes.
            Subscribed once the market is closed, it fails at once with ``ConfigError`` (no request), like
            the Observables of :meth:`ticker`.

        Raises:
            ConfigError: a malformed code, an unknown unit, ``count`` below 1.
        """
        (code,) = check_markets([symbol])
        if unit not in CANDLE_UNITS:
            raise ConfigError(f"unknown candle unit {unit!r}; expected one of {', '.join(CANDLE_UNITS)}")
        history = self._source.candles(code, unit, count, to=to)
        pipeline = candle_pipeline(
            history, on_invalid=self.config.on_invalid, quarantine=self._quarantine,
            name=f"candles {code} {unit}",
        )
        return self._unless_closed(pipeline)

    def stream_ticker(
        self,
        markets: str | Iterable[str],
        *,
        channel: Channel = "auto",
        maxsize: int | None = None,
        overflow: Overflow | None = None,
    ) -> BufferedAsyncIterator[Ticker]:
        """:meth:`ticker` as an async iterator (``async for t in market.stream_ticker([...])``).

        Args:
            markets: codes.
            channel: see :meth:`ticker`.
            maxsize: buffer size (default ``config.iter_maxsize``).
            overflow: when the buffer is full (default ``config.ticker_overflow``, ``"drop_oldest"``).

        Returns:
            The iterator; leaving the loop (``break``) disposes the subscription. Drops are counted in
            its ``dropped`` and in ``stats().drops``.
        """
        cfg = self.config
        source = self.ticker(markets, channel=channel)
        return self._iterate(
            source,
            cfg.iter_maxsize if maxsize is None else maxsize,
            cfg.ticker_overflow if overflow is None else overflow,
        )

    def stream_orderbook(
        self,
        markets: str | Iterable[str],
        *,
        depth: int | None = None,
        channel: Channel = "auto",
        maxsize: int | None = None,
        overflow: Overflow | None = None,
    ) -> BufferedAsyncIterator[Orderbook]:
        """:meth:`orderbook` as an async iterator; the default overflow is ``"latest"`` (newest book per
        market). See :meth:`stream_ticker`."""
        cfg = self.config
        source = self.orderbook(markets, depth=depth, channel=channel)
        return self._iterate(
            source,
            cfg.iter_maxsize if maxsize is None else maxsize,
            cfg.orderbook_overflow if overflow is None else overflow,
        )

    @property
    def status(self) -> Observable[Status]:
        """Health events (hot): the source's (connecting, live, backoff, stale, reconnected, gap_filled,
        quarantined, rate_limited, gave_up, closed), plus this market's: ``circuit`` (an ``"auto"`` chain's
        breaker changed state: ``detail`` is ``"open"``, ``"half_open"`` or ``"closed"``), ``quarantined``
        (validation rejected an item), ``backoff`` (a chain retries). Completes when the market closes."""
        return reactivex.merge(self._source.status, self._events)

    @property
    def source(self) -> UpbitSource:
        """The :class:`UpbitSource` underneath (its raw streams, polls and history)."""
        return self._source

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    @property
    def cache_directory(self) -> str | None:
        """The disk cache's directory once it is open (a temporary one unless ``cache_dir`` was given)."""
        return self.config.cache_dir if self.config.cache_dir is not None else self._temp_dir

    # -- get_ticker ---------------------------------------------------------------------------------------

    async def get_ticker(self, symbol: str) -> Ticker:
        """The current ticker of one market: from the cache when fresh, else REST, else the WebSocket.

        Args:
            symbol: a market code.

        Returns:
            The ticker; ``source`` is ``"cache"``, ``"rest"`` or ``"websocket"``.

        Raises:
            ConfigError: a malformed code, or the market is closed.
            NotFound: Upbit does not know the market.
            TransportError: REST failed and the WebSocket sent nothing within ``first_item_timeout``.
        """
        (ticker,) = await self.get_tickers([symbol])
        return ticker

    async def get_tickers(self, symbols: str | Iterable[str]) -> list[Ticker]:
        """Current tickers of several markets, in the order asked; misses fetched in one REST call.

        Calls made in the same event-loop tick share that call too. See :meth:`get_ticker`.
        """
        codes = check_markets(symbols)
        self._check_open()
        self._bind()
        now = time.monotonic()
        found: dict[str, Ticker] = {}
        missing: list[str] = []
        for code in codes:
            hit = self._lookup(code, now)
            if hit is None:
                missing.append(code)
            else:
                found[code] = hit
        self._hits += len(found)
        self._misses += len(missing)
        if missing:
            answers = await asyncio.shield(self._request(missing))
            for code in missing:
                answer = answers[code]
                if isinstance(answer, Exception):
                    raise answer
                found[code] = answer
        self._keep_warm(codes)
        return [found[code] for code in codes]

    def _lookup(self, code: str, now: float) -> Ticker | None:
        entry = self._tickers.get(code)
        if entry is not None:
            arrived, ticker = entry
            age = now - arrived
            cfg = self.config
            if age <= cfg.cache_ttl or (age <= cfg.live_ttl and self._watched(code)):
                return as_cached(ticker)  # type: ignore[no-any-return]  # a Ticker in, a Ticker out
        if self.config.cache_dir is not None:
            # A persistent cache may hold a fresh value written by an earlier run (or another process).
            op = self._cache_op("ticker", ())
            if op is not None:
                value = op.lookup(code)
                if isinstance(value, Ticker):
                    return value
        return None

    def _watched(self, code: str) -> bool:
        """Whether a running chain streams ``code``'s tickers over a healthy WebSocket now."""
        feeds = self._ticker_feeds.get(code)
        if not feeds:
            return False
        conn = self._source.connection_of(code)
        if conn is None or conn not in self._health.live or ("ticker", code) in self._health.stale:
            return False
        for feed in feeds:
            pipeline = feed.pipeline
            if feed.channel != "rest" and pipeline is not None and pipeline.on_primary:
                return True
        return False

    def _request(self, codes: list[str]) -> asyncio.Future[dict[str, Ticker | Exception]]:
        """Join the REST call of this loop tick (one batched ``/ticker`` request for every caller)."""
        future = self._batch_future
        if future is None:
            loop = self._bind()
            future = self._batch_future = loop.create_future()
            # Mark a failure as seen even if every caller was cancelled meanwhile.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            loop.call_soon(self._flush_batch)
        self._batch.update(dict.fromkeys(codes))
        return future

    def _flush_batch(self) -> None:
        codes, future = list(self._batch), self._batch_future
        self._batch, self._batch_future = {}, None
        if future is None:
            return
        self._spawn(self._answer(codes, future), "rxmarket-get-ticker")

    async def _answer(self, codes: list[str], future: asyncio.Future[dict[str, Ticker | Exception]]) -> None:
        try:
            answers = await self._fetch(codes)
        except asyncio.CancelledError:
            if not future.done():  # the market is closing: the callers must hear why, not be cancelled
                future.set_exception(ConfigError("the MarketData was closed while get_ticker waited"))
            raise
        except Exception as exc:  # a bug here must reach the callers, not vanish in a task
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(answers)

    async def _fetch(self, codes: list[str]) -> dict[str, Ticker | Exception]:
        """REST for every code (an unknown code fails only itself), then the WebSocket for what is left."""
        answers: dict[str, Ticker | Exception] = {}
        rest_error: Exception | None = None
        try:
            for ticker in await self._rest_tickers(codes):
                answers[ticker.symbol] = ticker
        except NotFound as exc:
            if len(codes) == 1:
                return {codes[0]: exc}
            # Upbit fails the whole call for one unknown code: ask each one alone to find it.
            singles = await asyncio.gather(*(self._fetch([code]) for code in codes))
            for single in singles:
                answers.update(single)
            return answers
        except RxMarketError as exc:
            rest_error = exc
        self._rest_answers += len(answers)
        left = [code for code in codes if code not in answers]
        if left:
            waits = await asyncio.gather(
                *(self._first_websocket_ticker(code, rest_error) for code in left), return_exceptions=True
            )
            for code, got in zip(left, waits, strict=True):
                if isinstance(got, BaseException) and not isinstance(got, Exception):
                    raise got
                answers[code] = got
        return answers

    async def _rest_tickers(self, codes: list[str]) -> list[Ticker]:
        cfg = self.config
        protocol = (cfg.source or SourceConfig()).protocol
        items: list[Ticker] = await get_rest(
            self._http, endpoints.ticker(codes), retries=cfg.rest_retries, config=protocol
        )
        good: list[Ticker] = []
        for ticker in items:
            failure = check_ticker(ticker)
            if failure is None:
                good.append(ticker)
            else:
                self._quarantine.report(
                    Rejected(item=ticker, reason=failure.reason, check=failure.check, action="dropped")
                )
        now = time.monotonic()
        for ticker in good:
            self._tickers[ticker.symbol] = (now, ticker)
        op = self._cache_op("ticker", ())
        if op is not None and good:
            op.warm(good)  # write-through: a later run (persistent cache_dir) starts warm
        return good

    async def _first_websocket_ticker(self, code: str, rest_error: Exception | None) -> Ticker:
        loop = self._bind()
        future: asyncio.Future[Ticker] = loop.create_future()

        def on_next(ticker: Ticker) -> None:
            if not future.done() and check_ticker(ticker) is None:
                future.set_result(ticker)

        def on_error(exc: Exception) -> None:
            if not future.done():
                future.set_exception(exc)

        subscription = self._source.stream("ticker", code).subscribe(on_next, on_error)
        timeout = self.config.first_item_timeout
        try:
            async with asyncio.timeout(timeout):
                ticker = await future
        except TimeoutError:
            reason = f"REST failed ({rest_error})" if rest_error is not None else "REST had no ticker for it"
            raise TransportError(
                f"no ticker for {code}: {reason} and the WebSocket sent none within {timeout:.3g}s"
            ) from rest_error
        finally:
            subscription.dispose()
        self._ws_answers += 1
        self._tickers[code] = (time.monotonic(), ticker)
        return ticker

    def _keep_warm(self, codes: Iterable[str]) -> None:
        """Keep streaming markets asked for by ``get_ticker`` so the next asks are answered from memory."""
        keep = self.config.keep_warm
        if keep is None or self._closed:
            return
        loop = self._bind()
        deadline = loop.time() + keep
        for code in codes:
            entry = self._warm.get(code)
            if entry is not None:
                self._warm[code] = (entry[0], deadline)
                continue
            if self._ticker_feeds.get(code):
                continue  # already streamed by someone's chain
            subscription = self.ticker([code]).subscribe(
                lambda _t: None, partial(self._warm_failed, code)
            )
            if code not in self._warm:  # not failed at once
                self._warm[code] = (subscription, deadline)
        if self._warm and self._warm_timer is None:
            self._warm_timer = loop.call_at(deadline, self._expire_warm)

    def _warm_failed(self, code: str, _error: Exception) -> None:
        entry = self._warm.pop(code, None)
        if entry is not None:
            entry[0].dispose()

    def _expire_warm(self) -> None:
        self._warm_timer = None
        loop = self._loop
        if loop is None or self._closed:
            return
        now = loop.time()
        for code, (subscription, deadline) in list(self._warm.items()):
            if deadline <= now:
                del self._warm[code]
                subscription.dispose()
        if self._warm:
            self._warm_timer = loop.call_at(min(d for _, d in self._warm.values()), self._expire_warm)

    # -- counters -----------------------------------------------------------------------------------------

    def stats(self) -> MarketStats:
        """A snapshot of every counter (see :class:`MarketStats`)."""
        src = self._source.stats()
        retired = self._retired
        duplicates, opens, retries = retired.duplicates, retired.opens, retired.retries
        cache_writes, cache_errors = retired.cache_writes, retired.cache_errors
        replayed = self._replayed + retired.cache_hits
        subscribers = 0
        for feed in self._feeds.values():
            subscribers += len(feed.observers)
            if feed.pipeline is not None:
                p = feed.pipeline.stats()
                duplicates += p.duplicates
                opens += p.circuit_opens
                retries += p.retries
                replayed += p.cache_hits
                cache_writes += p.cache_writes
                cache_errors += p.cache_errors
        if self._lookup_op is not None:
            c = self._lookup_op.stats()
            cache_writes += c.writes
            cache_errors += c.errors
        q = self._quarantine.stats()
        drops = self._iter_drops + sum(it.dropped for it in list(self._iterators))
        return MarketStats(
            messages=src.messages,
            reconnects=src.reconnects,
            disconnects=src.drops,
            drops=drops,
            duplicates=duplicates + src.duplicates,
            rejected=q.dropped + q.errors,
            corrected=q.corrected,
            quarantined=src.quarantined + src.error_frames,
            cache_hits=self._hits,
            cache_misses=self._misses,
            rest_answers=self._rest_answers,
            websocket_answers=self._ws_answers,
            cache_writes=cache_writes,
            cache_errors=cache_errors,
            replayed=replayed,
            polls=src.polls,
            poll_errors=src.poll_errors,
            circuit_opens=opens,
            retries=retries,
            feeds=len(self._feeds),
            subscribers=subscribers,
            callback_errors=self._callback_errors + src.callback_errors,
            source=src,
        )

    # -- lifetime -----------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Dispose every chain (subscribers complete), close the source, the HTTP session and the cache.

        Idempotent. Afterwards every call that would touch the network fails at once with ``ConfigError``
        ("this MarketData is closed"), before any request or connection attempt: subscribing to an
        Observable of :meth:`ticker`, :meth:`orderbook`, :meth:`trades` or :meth:`candles` (made before or
        after the close) delivers it to ``on_error`` (``subscribe`` never raises), the iterators of
        :meth:`stream_ticker` / :meth:`stream_orderbook` raise it from their first step, and
        :meth:`get_ticker`, :meth:`get_tickers` and ``async with`` raise it. :attr:`status` completes at
        once; :meth:`stats` still answers.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._warm_timer is not None:
                self._warm_timer.cancel()
                self._warm_timer = None
            warm, self._warm = self._warm, {}
            for subscription, _ in warm.values():
                subscription.dispose()
            for feed in list(self._feeds.values()):
                feed.on_completed()
            future, self._batch_future = self._batch_future, None
            if future is not None and not future.done():
                future.set_exception(ConfigError("the MarketData was closed while get_ticker waited"))
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            # Even when close() itself is cancelled (a timeout around ``async with``): sockets and session.
            try:
                await self._source.close()
            finally:
                try:
                    await self._http.close()
                finally:
                    self._release()

    def _release(self) -> None:
        """The synchronous end of :meth:`close`: status, cache, temporary directory, quarantine."""
        if self._health_sub is not None:
            self._health_sub.dispose()
            self._health_sub = None
        self._lookup_op = None
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
        self._events.on_completed()
        self._quarantine.close()

    async def __aenter__(self) -> MarketData:
        self._check_open()
        self._bind()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._feeds)} feeds"
        return f"<MarketData {self.config.ws_url} {state}>"

    # -- internals ----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise _closed_error()

    def _unless_closed(self, observable: Observable[T]) -> Observable[T]:
        """``observable``, except that a subscription made once the market is closed fails at once."""

        def subscribe(observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None) -> Any:
            # Checked at subscribe time: the Observable may have been made before the close.
            if self._closed:
                observer.on_error(_closed_error())
                return Disposable()
            return observable.subscribe(observer, scheduler=scheduler)

        return reactivex.create(subscribe)

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._health_sub is None and not self._closed:
            self._health_sub = self._source.status.subscribe(self._health)
        return loop

    def _spawn(self, coro: Any, name: str) -> None:
        task = self._bind().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _shared(
        self, key: tuple[Any, ...], kind: str, codes: tuple[str, ...], channel: str
    ) -> Observable[Any]:
        """The Observable of one shared feed: each subscription attaches to the feed of ``key``."""

        def subscribe(observer: abc.ObserverBase[Any], _scheduler: abc.SchedulerBase | None = None) -> Any:
            if self._closed:
                observer.on_error(_closed_error())
                return Disposable()
            try:
                self._bind()
            except RuntimeError:
                observer.on_error(ConfigError("subscribe to market data from inside a running event loop"))
                return Disposable()
            feed = self._feeds.get(key)
            if feed is None:
                state = kind in ("ticker", "orderbook")
                feed = self._feeds[key] = Feed(
                    self, key, kind, codes, channel, replay=state,
                    tickers=self._tickers if kind == "ticker" else None,
                )
            return feed.attach(observer)

        return reactivex.create(subscribe)

    def _feed_started(self, feed: Feed) -> None:
        if feed.kind == "ticker":
            for code in feed.codes:
                self._ticker_feeds.setdefault(code, set()).add(feed)

    def _feed_stopped(self, feed: Feed) -> None:
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]
        if feed.kind == "ticker":
            for code in feed.codes:
                feeds = self._ticker_feeds.get(code)
                if feeds is not None:
                    feeds.discard(feed)
                    if not feeds:
                        del self._ticker_feeds[code]
        if feed.pipeline is not None:
            self._retired.add(feed.pipeline.stats())

    def _build(self, feed: Feed) -> Pipeline[Any]:
        """Assemble the default chain of a feed (see :mod:`rxmarket.pipelines`)."""
        cfg, source = self.config, self._source
        codes, channel, kind = feed.codes, feed.channel, feed.kind
        name = f"{kind} {','.join(codes)}"
        if kind == "trade":
            return trade_pipeline(
                source.stream_many("trade", codes), retry=cfg.backoff, on_invalid=cfg.on_invalid,
                quarantine=self._quarantine, on_retry=partial(self._on_retry, name), name=name,
            )
        depth = feed.key[3]
        ws = source.stream_many(kind, codes, depth=depth) if channel != "rest" else None
        rest = (
            source.poll(kind, codes, cfg.poll_interval, depth=depth)  # type: ignore[arg-type]  # ticker|orderbook
            if channel != "websocket" else None
        )
        down = (
            link_down(source.status, codes, kind, source.connection_of, stale=cfg.failover_on_stale)
            if channel == "auto" else None
        )
        build = ticker_pipeline if kind == "ticker" else orderbook_pipeline
        return build(
            ws,
            rest,
            down=down,
            failure_threshold=cfg.failover_threshold,
            reset_timeout=cfg.failover_retry,
            retry=cfg.backoff if channel == "websocket" else None,
            on_invalid=cfg.on_invalid,
            quarantine=self._quarantine,
            cache=self._cache_op(kind, codes, depth),
            on_transition=partial(self._on_transition, kind, codes),
            on_retry=partial(self._on_retry, name),
            name=name,
        )

    def _cache_op(self, kind: str, codes: tuple[str, ...], depth: int | None = None) -> CacheReplay | None:
        """A ``cache_replay`` stage on the market's disk cache for ``codes`` of ``kind`` (no codes: the
        operator ``get_ticker`` reads and warms tickers through).

        Entries are ``rxmarket:<kind>:<code>`` (books of a ``depth``: ``rxmarket:orderbook.<depth>:<code>``,
        so a chain never replays a book of another depth): the key is the item's ``symbol`` read in C
        (``attrgetter``), cheaper per item than formatting a string. The first call opens the cache (a
        temporary directory unless ``cache_dir`` is set); a cache that cannot be opened leaves the market
        without one (a ``CacheDegraded`` warning says why).
        """
        if not codes and self._lookup_op is not None:
            return self._lookup_op
        db = self._open_db()
        if db is None:
            return None
        cfg = self.config
        namespace = f"rxmarket:{kind}:" if depth is None else f"rxmarket:{kind}.{depth}:"
        # Each feed replays only its own markets (replaying the namespace would replay every market).
        op = cache_replay(
            db, key=_SYMBOL, ttl=cfg.cache_ttl, namespace=namespace, keys=codes or None,
            flush_interval=cfg.cache_flush_interval,
        )
        if not codes:
            self._lookup_op = op
        return op

    def _open_db(self) -> diskcache.Cache | None:
        if self._db is not None:
            return self._db
        if self._closed or self._closed_cache:
            return None
        directory = self.config.cache_dir
        if directory is None:
            directory = self._temp_dir = tempfile.mkdtemp(prefix="rxmarket-cache-")
        try:
            self._db = open_cache(directory)
        except Exception as exc:  # an unusable cache directory must not stop the market data
            warnings.warn(
                f"cache at {directory!r} could not be opened, going on without it: {exc!r}",
                CacheDegraded, stacklevel=3,
            )
            self._closed_cache = True
            return None
        return self._db

    def _iterate(self, source: Observable[T], maxsize: int, overflow: Overflow) -> BufferedAsyncIterator[T]:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigError(f"maxsize must be an integer >= 1, got {maxsize!r}")
        if overflow not in OVERFLOW_POLICIES:
            raise ConfigError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}; got {overflow!r}")
        iterator = CountedIterator(source, maxsize, overflow, self._retire_iterator)
        self._iterators.add(iterator)
        return iterator

    def _retire_iterator(self, dropped: int) -> None:
        self._iter_drops += dropped

    def _publish(self, status: Status) -> None:
        if not self._closed:
            self._events.on_next(status)

    def _on_transition(self, kind: str, codes: tuple[str, ...], transition: Transition) -> None:
        delay = None
        if transition.state is BreakerState.OPEN and transition.retry_at is not None:
            delay = max(transition.retry_at - transition.at, 0.0)
        self._publish(
            Status(
                kind="circuit", timestamp=time.time(), channel=kind, symbol=",".join(codes),
                delay=delay, detail=transition.state.value,
            )
        )

    def _on_retry(self, name: str, event: RetryEvent) -> None:
        self._publish(
            Status(
                kind="backoff", timestamp=time.time(), channel=name, delay=event.delay, count=event.attempt,
                detail=f"retrying after {event.error}",
            )
        )

    def _on_reject(self, rejected: Rejected) -> None:
        item = rejected.item
        self._publish(
            Status(
                kind="quarantined", timestamp=time.time(),
                channel=getattr(getattr(item, "__struct_config__", None), "tag", None),
                symbol=getattr(item, "symbol", None),
                detail=f"{rejected.check}: {rejected.reason} ({rejected.action})",
            )
        )

    def _callback_failed(self, exc: BaseException) -> None:
        self._callback_errors += 1
        loop = self._loop
        if loop is not None:
            loop.call_exception_handler(
                {"message": f"{self!r}: a subscriber's callback raised {exc!r}; the stream goes on",
                 "exception": exc}
            )


def _closed_error() -> ConfigError:
    """The one error of every call on a closed :class:`MarketData` (a fresh instance per call: a raised
    exception carries its traceback, which must not leak from one failed call into the next)."""
    return ConfigError("this MarketData is closed; make a new one with rxmarket.upbit()")


def upbit(config: MarketConfig | None = None, **overrides: Any) -> MarketData:
    """A :class:`MarketData` for Upbit (real endpoints unless ``rest_url``/``ws_url`` say otherwise).

    Examples:
        >>> market = rxmarket.upbit()
        >>> market = rxmarket.upbit(rest_url=sim.rest_url, ws_url=sim.ws_url, poll_interval=0.2)
        >>> market = rxmarket.upbit(config=MarketConfig(cache_dir="~/.cache/rxmarket"))

    Args:
        config: settings to start from (default ``MarketConfig()``).
        **overrides: any :class:`MarketConfig` field (``cache_dir`` also takes a ``Path``).

    Returns:
        The market, not connected yet (the first subscription connects); use ``async with``.

    Raises:
        ConfigError: an unknown setting or a value out of range, at once.
    """
    base = config if config is not None else MarketConfig()
    if not isinstance(base, MarketConfig):
        raise ConfigError(f"config must be a MarketConfig, got {type(base).__name__}")
    known = set(MarketConfig.__struct_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}; MarketConfig has: {', '.join(sorted(known))}"
        )
    if isinstance(overrides.get("cache_dir"), os.PathLike):
        overrides["cache_dir"] = os.path.expanduser(os.fspath(overrides["cache_dir"]))
    cfg = msgspec.structs.replace(base, **overrides) if overrides else base
    return MarketData(cfg)


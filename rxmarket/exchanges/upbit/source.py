"""Upbit market data as hot, shared, ref-counted Observables that survive network trouble.

:class:`UpbitSource` turns Upbit's WebSocket into one Observable per (channel, market)::

    async with UpbitSource(SourceConfig(ws_url=..., rest_url=...)) as upbit:
        upbit.stream("trade", "KRW-BTC").subscribe(print)        # hot, shared
        upbit.stream("orderbook", "KRW-ETH", depth=5).subscribe(show)
        upbit.status.subscribe(log)                               # connecting, live, backoff, ...
        print(upbit.stats())                                      # counters

How the pieces fit::

    frames --ReconnectingWebSocket (x <= 5)--> Connection.on_frame --decode_ws--> route by (type, symbol)
                                                      |                           |
                                          bad frame: counted,                     v
                                          Status("quarantined")        Stream.push -> on_next (each)
    subscribe/dispose --> Registry (ref-count + grace) --> ShardPlan (market -> connection)
                          --> one merged subscription frame per connection, re-sent (coalesced per loop tick)
    reconnected --> GapFiller (REST, per trade stream)      timer --> StaleWatch (per-stream silence)

* **Hot and shared**: every subscriber of a (channel, market) shares one upstream subscription. The first
  subscriber starts it; the last one's dispose stops it after ``grace`` seconds. Markets are packed on at
  most ``max_connections`` connections, every channel of a market on the same one, all channels of a
  connection in one subscription frame; a change re-sends that one frame (Upbit replaces a connection's
  subscription set with each request), paced by the transport under Upbit's 5 messages/s and 100/min.
* **Books**: one depth per market (the largest asked for); shallower subscribers get truncated copies.
* **Reconnects** are the transport's job (backoff, ping, idle timeout); a drop never reaches a subscriber.
  After a reconnect, each trade stream holds live trades, fetches the missed ones over REST (oldest first,
  no duplicates by ``sequential_id``), then goes on: ``Status(kind="gap_filled", symbol, count)``.
* **Rate limits**: an upgrade answered 429 waits ``retry_after`` before the next attempt, one answered 418
  waits the ban (``Status(kind="circuit")``); a "too many requests" error frame makes the connection
  re-send its subscription after the wait. A ban seen over REST holds the WebSocket back too.
* **Nothing silent**: decode failures and error frames are counted and published as
  ``Status(kind="quarantined")``; the stream goes on. Only two things end streams: the connection giving up
  (its streams get ``on_error(GaveUp)``) and :meth:`UpbitSource.close` (every stream completes).

Sources emit on the event loop's thread. Subscribe there (a subscription made from another thread is handed
to the loop). The frame -> subscriber path allocates nothing but the decoded model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from threading import get_ident
from types import TracebackType
from typing import Any, Literal, overload

import reactivex
from reactivex import Observable, abc
from reactivex import operators as rx_ops
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.scheduler import VirtualTimeScheduler

from rxmarket._scheduler import default_scheduler
from rxmarket.errors import ConfigError, ExchangeRejected, GaveUp, RateLimited, RxMarketError, TransportError
from rxmarket.exchanges.upbit import endpoints, history
from rxmarket.exchanges.upbit._source_config import SourceConfig, SourceStats
from rxmarket.exchanges.upbit._source_conn import Connection, handshake_status
from rxmarket.exchanges.upbit._source_fill import GapFiller
from rxmarket.exchanges.upbit._source_gapfill import TradeLog
from rxmarket.exchanges.upbit._source_poll import PollCounters, poll_observable
from rxmarket.exchanges.upbit._source_registry import (
    FULL_DEPTH,
    OrderbookStream,
    Registry,
    Stream,
    Subscriber,
    TradeStream,
)
from rxmarket.exchanges.upbit._source_shard import ShardPlan
from rxmarket.exchanges.upbit._source_stale import StaleWatch
from rxmarket.exchanges.upbit.protocol import CHANNELS, KEEPALIVE, ORDERBOOK_DEPTHS, decoder_for, market_code
from rxmarket.models import Candle, Orderbook, Status, Ticker, Trade
from rxmarket.policy.ratelimit import SlidingWindowLimiter
from rxmarket.transport import AiohttpWsClient, HttpClient, WebsocketsWsClient, WsEvent
from rxmarket.transport.ws import WsClient, WsStats

__all__ = ["SourceConfig", "SourceStats", "UpbitSource"]

_KIND_INDEX = {"ticker": 0, "orderbook": 1, "trade": 2}  # anything else is a candle channel: 3
_ROUTED: dict[str, type] = {"ticker": Ticker, "orderbook": Orderbook, "trade": Trade}


class UpbitSource:
    """Upbit's quotation feeds as hot, shared Observables, plus REST polls and history.

    Args:
        config: connection, sharing and recovery settings (default: Upbit's real endpoints).
        http: an HTTP client for REST (default: one made by
            :func:`~rxmarket.exchanges.upbit.history.upbit_http_client`, owned and closed by the source).
        ws_client: the WebSocket library seam (default: from ``config.transport``, owned by the source).
        scheduler: runs grace and staleness timers (default: the running loop's ``AsyncIOScheduler``).

    Everything opens lazily: the first subscription connects. Close with ``await source.close()`` or use
    ``async with``; afterwards no task, socket or HTTP session of the source is left.

    Raises:
        ConfigError: ``config`` is not a :class:`SourceConfig`.
    """

    def __init__(
        self,
        config: SourceConfig | None = None,
        *,
        http: HttpClient | None = None,
        ws_client: WsClient | None = None,
        scheduler: abc.SchedulerBase | None = None,
    ) -> None:
        cfg = config if config is not None else SourceConfig()
        if not isinstance(cfg, SourceConfig):
            raise ConfigError(f"config must be a SourceConfig, got {type(cfg).__name__}")
        self.config = cfg
        self._owns_http = http is None
        if http is None:
            http = history.upbit_http_client(cfg.rest_url, config=cfg.protocol)
        self._http = http
        self._owns_client = ws_client is None
        if ws_client is None:
            ws_client = AiohttpWsClient() if cfg.transport == "aiohttp" else WebsocketsWsClient()
        self._client: WsClient = ws_client
        self._scheduler_arg = scheduler
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._registry: Registry | None = None  # made when the source binds to its loop
        self._stale: StaleWatch | None = None
        self._decode = decoder_for("DEFAULT", config=cfg.protocol)
        self._routes: dict[type, dict[str, Stream]] = {cls: {} for cls in _ROUTED.values()}
        self._candle_routes: dict[str, dict[str, Stream]] = {}
        self._plan = ShardPlan(cfg.max_connections, cfg.codes_per_connection)
        self._conns: dict[int, Connection] = {}
        self._connect_limiter = SlidingWindowLimiter([(cfg.connects_per_second, 1.0)])
        self._tasks: set[asyncio.Task[None]] = set()  # fills, polls, history fetches
        self._closers: set[asyncio.Task[None]] = set()  # connections being closed
        self._filler = GapFiller(config=cfg, http=http, publish=self._publish, tasks=self._tasks)
        self._block_until = float("-inf")  # no WebSocket attempt before this (loop time): 429 / 418
        self._closed = False
        self._closed_event: asyncio.Event | None = None
        self._status = Stream("status", "*", self._report)
        self._poll_counters = PollCounters()
        # Counters of things that are gone (stopped streams, closed connections), kept for stats().
        self._retired_items = [0, 0, 0, 0]  # tickers, orderbooks, trades, candles
        self._retired_duplicates = 0
        self._retired_conn = [0, 0]  # unrouted, resubscribes
        self._retired_ws = WsStats(0, 0, 0, 0, 0, 0, 0)
        self._keepalives = 0
        self._quarantined = 0
        self._error_frames = 0
        self._rate_limited = 0
        self._callback_errors = 0
        self._gave_up = 0

    # -- public surface ---------------------------------------------------------------------------------

    @property
    def http(self) -> HttpClient:
        """The HTTP client used for gap fills, polls and history."""
        return self._http

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    @property
    def status(self) -> Observable[Status]:
        """Health events of every connection and stream (hot: a subscriber sees events from then on).

        Kinds: ``connecting`` (``connection``, attempt in ``count``), ``live``, ``reconnected``
        (``downtime``), ``backoff`` (``delay``, ``detail`` = what failed), ``stale`` (a stream: ``channel``,
        ``symbol``, silent for ``delay``; or a whole ``connection`` that went idle and is replaced), ``live``
        with ``symbol`` (a stale stream moved again), ``gap_filled`` (``symbol``, trades recovered in
        ``count``; ``detail`` starts with ``incomplete`` when the fill could not finish), ``quarantined`` (a
        bad frame or an error frame: ``detail``), ``rate_limited`` (``delay``), ``circuit`` (a 418 ban:
        ``detail="open: ..."``, ``delay`` = its length), ``gave_up`` (a connection stopped for good), and
        ``closed`` (the source was closed; the Observable then completes).
        """

        def subscribe(observer: abc.ObserverBase[Status], _scheduler: abc.SchedulerBase | None = None) -> Any:
            if self._closed:
                observer.on_completed()
                return Disposable()
            sub = Subscriber(observer, FULL_DEPTH, self._status)
            self._status.add(sub)

            def dispose() -> None:
                if sub.active:
                    self._status.remove(sub)

            return Disposable(dispose)

        return reactivex.create(subscribe)

    @overload
    def stream(
        self, channel: Literal["ticker"], symbol: str, *, depth: None = None
    ) -> Observable[Ticker]: ...
    @overload
    def stream(
        self, channel: Literal["trade"], symbol: str, *, depth: None = None
    ) -> Observable[Trade]: ...
    @overload
    def stream(
        self, channel: Literal["orderbook"], symbol: str, *, depth: int | None = None
    ) -> Observable[Orderbook]: ...
    @overload
    def stream(self, channel: str, symbol: str, *, depth: int | None = None) -> Observable[Any]: ...

    def stream(self, channel: str, symbol: str, *, depth: int | None = None) -> Observable[Any]:
        """The hot, shared stream of one market on one channel (returns at once).

        Args:
            channel: ``"ticker"``, ``"trade"``, ``"orderbook"`` or ``"candle.1s"`` ... ``"candle.240m"``.
            symbol: the market code, e.g. ``"KRW-BTC"`` (case-insensitive).
            depth: orderbook only: 1, 5, 15 or 30 levels (``None``: 30). The market is subscribed at the
                largest depth any subscriber wants; shallower subscribers get truncated copies.

        Returns:
            An Observable of ``Ticker`` / ``Trade`` / ``Orderbook`` / ``Candle``. Subscribing attaches to the
            shared upstream subscription (starting it if needed); disposing detaches (the last one stops it
            after the grace period). Items arrive on the event loop's thread. The stream completes when the
            source closes and fails with ``GaveUp`` if its connection gives up; nothing else ends it.

        Raises:
            ConfigError: an unknown channel, a malformed market code, or a depth Upbit does not serve.
        """
        return self.stream_many(channel, [symbol], depth=depth)

    def stream_many(
        self, channel: str, symbols: Iterable[str], *, depth: int | None = None
    ) -> Observable[Any]:
        """:meth:`stream` of several markets as one Observable (returns at once).

        Each market is still its own shared stream; a subscription here attaches the one observer to each
        of them directly (no merge operator, no lock per item). The Observable completes when the source
        closes and fails with ``GaveUp`` when any of its markets' connections gives up (the subscription to
        the other markets is then disposed).

        Raises:
            ConfigError: as :meth:`stream`, or no market code at all.
        """
        if channel not in CHANNELS:
            raise ConfigError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
        if isinstance(symbols, str):
            symbols = [symbols]
        codes = list(dict.fromkeys(market_code(s) for s in symbols))
        if not codes:
            raise ConfigError("stream_many() needs at least one market code")
        if depth is not None:
            if channel != "orderbook":
                raise ConfigError(f"depth applies to the orderbook channel only, not {channel!r}")
            if isinstance(depth, bool) or depth not in ORDERBOOK_DEPTHS:
                raise ConfigError(
                    f"orderbook depth {depth!r} is not served; expected one of {ORDERBOOK_DEPTHS}"
                )
        levels = FULL_DEPTH if depth is None else depth

        def subscribe(observer: abc.ObserverBase[Any], _scheduler: abc.SchedulerBase | None = None) -> Any:
            if len(codes) == 1:
                return self._subscribe(channel, codes[0], levels, observer)
            return CompositeDisposable([self._subscribe(channel, code, levels, observer) for code in codes])

        return reactivex.create(subscribe)

    def poll(
        self,
        kind: Literal["ticker", "orderbook"],
        symbols: Iterable[str],
        interval: float,
        *,
        depth: int | None = None,
    ) -> Observable[Any]:
        """Poll REST every ``interval`` seconds, all markets in one request (returns at once).

        Args:
            kind: ``"ticker"`` or ``"orderbook"``.
            symbols: market codes (one call covers them all: ``/ticker?markets=A,B,C``).
            interval: seconds between requests (> 0).
            depth: orderbook only: levels per side, 1-30.

        Returns:
            A shared Observable of ``Ticker`` / ``Orderbook`` with ``source="rest"``: the first subscriber
            starts the polling, the last dispose stops it. Transient failures (429, 418, 5xx, network) are
            counted and published on :attr:`status`; the poll goes on. An unknown market fails it
            (``NotFound``).

        Raises:
            ConfigError: an unknown kind, malformed codes, a bad interval or depth.
        """
        if isinstance(symbols, str):
            symbols = [symbols]
        codes = [market_code(s) for s in symbols]
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise ConfigError(f"interval must be > 0 seconds, got {interval!r}")
        if kind == "ticker":
            if depth is not None:
                raise ConfigError("depth applies to orderbook polls only")
            request = endpoints.ticker(codes)
        elif kind == "orderbook":
            request = endpoints.orderbook(codes, count=depth)
        else:
            raise ConfigError(f"poll kind must be 'ticker' or 'orderbook', got {kind!r}")
        return poll_observable(
            http=lambda: self._http,
            request=request,
            interval=float(interval),
            channel=f"rest:{kind}",
            publish=self._publish,
            counters=self._poll_counters,
            tasks=self._tasks,
            config=self.config.protocol,
            closed=self._is_closed,
        ).pipe(rx_ops.share())

    def candles(
        self, symbol: str, unit: str, count: int, *, to: str | int | None = None
    ) -> Observable[Candle]:
        """REST candle history, paged backwards, emitted oldest first (cold; see :mod:`.history`).

        A subscription made after :meth:`close` fails at once with ``ConfigError`` (no request is sent);
        one still fetching when the source closes fails with ``ConfigError`` too.

        Raises:
            ConfigError: a malformed code, an unknown unit, ``count`` below 1 or a bad ``to``.
        """
        code = market_code(symbol)
        return history.candles(
            self._http, code, unit, count, to=to, config=self.config.protocol, tasks=self._tasks,
            closed=self._is_closed,
        )

    def trades(
        self,
        symbol: str,
        count: int,
        *,
        cursor: int | None = None,
        to: str | None = None,
        days_ago: int | None = None,
        since: int | None = None,
    ) -> Observable[Trade]:
        """REST trade history, paged backwards, emitted oldest first (cold; see :mod:`.history`).

        After :meth:`close`, as :meth:`candles`: a subscription fails at once with ``ConfigError``.

        Raises:
            ConfigError: a malformed argument.
        """
        return history.trades(
            self._http, market_code(symbol), count, cursor=cursor, to=to, days_ago=days_ago, since=since,
            config=self.config.protocol, tasks=self._tasks, closed=self._is_closed,
        )

    def stats(self) -> SourceStats:
        """A snapshot of every counter (see :class:`SourceStats`)."""
        items = list(self._retired_items)
        duplicates = self._retired_duplicates
        subscribers = 0
        streams = list(self._registry.streams.values()) if self._registry is not None else []
        for stream in streams:
            items[_KIND_INDEX.get(stream.channel, 3)] += stream.count
            if isinstance(stream, TradeStream):
                duplicates += stream.log.duplicates
            subscribers += len(stream.subscribers)
        unrouted, resubscribes = self._retired_conn
        ws = self._retired_ws
        frames, sent, connects = ws.frames, ws.messages_sent, ws.connects
        reconnects, failures, idle = ws.reconnects, ws.failures, ws.idle_timeouts
        for conn in self._conns.values():
            s = conn.ws.stats()
            frames += s.frames
            sent += s.messages_sent
            connects += s.connects
            reconnects += s.reconnects
            failures += s.failures
            idle += s.idle_timeouts
            unrouted += conn.unrouted
            resubscribes += conn.resubscribes
        filler = self._filler
        return SourceStats(
            frames=frames,
            messages=sum(items),
            tickers=items[0],
            orderbooks=items[1],
            trades=items[2],
            candles=items[3],
            keepalives=self._keepalives,
            unrouted=unrouted,
            duplicates=duplicates,
            quarantined=self._quarantined,
            error_frames=self._error_frames,
            rate_limited=self._rate_limited + self._poll_counters.rate_limited,
            callback_errors=self._callback_errors,
            connections=len(self._conns),
            streams=len(streams),
            subscribers=subscribers,
            connects=connects,
            reconnects=reconnects,
            drops=failures,
            idle_timeouts=idle,
            resubscribes=resubscribes,
            messages_sent=sent,
            gap_fills=filler.fills,
            gap_trades=filler.trades,
            gap_fill_failures=filler.failures,
            stale=self._stale.reported if self._stale is not None else 0,
            polls=self._poll_counters.requests,
            poll_errors=self._poll_counters.errors,
            gave_up=self._gave_up,
        )

    def connection_of(self, symbol: str) -> int | None:
        """The id of the connection carrying ``symbol`` now, or ``None``."""
        return self._plan.connection_of(market_code(symbol))

    async def wait_live(self) -> None:
        """Wait until every connection has a live link (returns at once with none).

        Raises:
            GaveUp: a connection gave up before its link came up.
            ConfigError: the source is closed, or closed while this waited.
        """
        self._check_open()
        await asyncio.sleep(0)  # a connection made this tick starts at the tick's end
        for conn in list(self._conns.values()):
            if conn.started and not conn.ws.live:
                try:
                    await conn.ws.wait_live()
                except TransportError as exc:
                    if self._closed:  # not a network failure: the link was closed by our own close()
                        closed = f"{history.SOURCE_CLOSED} (closed while wait_live() waited)"
                        raise ConfigError(closed) from exc
                    raise

    async def close(self) -> None:
        """Complete every stream, close every connection, stop every task and release sessions.

        REST polls complete too; a history fetch still running fails with ``ConfigError`` (its list would
        be cut short). Idempotent: a second call waits for the first one to finish.

        Afterwards every call that would touch the network fails at once with ``ConfigError`` ("this
        UpbitSource is closed"), before any request or connection attempt: a subscription to a stream, a
        poll or a history fetch gets it through ``on_error`` (``subscribe`` itself never raises);
        :meth:`wait_live` and ``async with`` raise it. :attr:`status` completes at once; :meth:`stats` and
        :meth:`connection_of` still answer.
        """
        if self._closed:
            if self._closed_event is not None:
                await self._closed_event.wait()
            return
        self._closed = True
        self._closed_event = asyncio.Event()
        try:
            if self._stale is not None:
                self._stale.close()
            for task in list(self._tasks):
                task.cancel()
            if self._registry is not None:
                self._registry.close()
            for route in (*self._routes.values(), *self._candle_routes.values()):
                route.clear()
            conns = list(self._conns.values())
            self._conns.clear()
            for conn in conns:
                conn.abandon()
            await asyncio.gather(*(self._close_conn(conn) for conn in conns))
            while self._tasks or self._closers:
                await asyncio.wait({*self._tasks, *self._closers})
            if self._owns_client:
                await self._client.close()
            if self._owns_http:
                await self._http.close()
        finally:
            self._publish(Status(kind="closed", timestamp=time.time()))
            self._status.end(None)
            self._closed_event.set()

    async def __aenter__(self) -> UpbitSource:
        """Bind the source to the running loop (nothing connects before the first subscription).

        Raises:
            ConfigError: the source is closed.
        """
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
        state = "closed" if self._closed else f"{len(self._conns)} connections"
        return f"<UpbitSource {self.config.ws_url} {state}>"

    # -- subscriptions ----------------------------------------------------------------------------------

    def _is_closed(self) -> bool:
        """The ``closed`` test handed to polls and history fetches (read when they are subscribed)."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError(history.SOURCE_CLOSED)

    def _bind(self) -> asyncio.AbstractEventLoop:
        """Adopt the running loop (first use); every timer and task of the source lives on it."""
        loop = self._loop
        if loop is not None:
            return loop
        loop = asyncio.get_running_loop()  # RuntimeError outside a loop: the caller reports it
        self._loop = loop
        self._thread = get_ident()
        scheduler = default_scheduler(self._scheduler_arg)
        clock: Callable[[], float] = loop.time
        if isinstance(scheduler, VirtualTimeScheduler):
            virtual = scheduler

            def clock() -> float:
                return float(virtual.clock)
        registry = self._registry = Registry(
            make=self._make_stream,
            on_start=self._start_stream,
            on_stop=self._stop_stream,
            on_wire_change=self._wire_changed,
            grace=self.config.grace,
            scheduler=scheduler,
        )
        self._stale = StaleWatch(
            config=self.config,
            scheduler=scheduler,
            clock=clock,
            publish=self._publish,
            streams=lambda: list(registry.streams.values()),
        )
        return loop

    def _subscribe(self, channel: str, symbol: str, depth: int, observer: abc.ObserverBase[Any]) -> Any:
        if self._closed:
            observer.on_error(ConfigError(history.SOURCE_CLOSED))
            return Disposable()
        try:
            loop = self._bind()
        except RuntimeError:
            observer.on_error(ConfigError("subscribe to an Upbit stream from inside a running event loop"))
            return Disposable()
        if get_ident() == self._thread:
            sub = self._attach(channel, symbol, depth, observer)
            return Disposable(lambda: self._detach_from_any_thread(sub))
        # Another thread: hand the attach to the loop, and make a dispose that may come first a no-op.
        cell: list[Subscriber | None] = []

        def attach() -> None:
            cell.append(None if cell else self._attach(channel, symbol, depth, observer))

        def dispose() -> None:
            if cell and cell[0] is not None:
                self._detach(cell[0])
            elif not cell:
                cell.append(None)

        loop.call_soon_threadsafe(attach)
        return Disposable(lambda: _call_soon_threadsafe(loop, dispose))

    def _attach(
        self, channel: str, symbol: str, depth: int, observer: abc.ObserverBase[Any]
    ) -> Subscriber | None:
        if self._closed:
            observer.on_error(ConfigError(history.SOURCE_CLOSED))
            return None
        assert self._registry is not None
        return self._registry.attach(channel, symbol, observer, depth)

    def _detach_from_any_thread(self, sub: Subscriber | None) -> None:
        if sub is None:
            return
        if get_ident() == self._thread:
            self._detach(sub)
        elif self._loop is not None:
            _call_soon_threadsafe(self._loop, lambda: self._detach(sub))

    def _detach(self, sub: Subscriber | None) -> None:
        if sub is not None and self._registry is not None and not self._closed:
            self._registry.detach(sub)

    def _make_stream(self, channel: str, symbol: str) -> Stream:
        if channel == "trade":
            log = TradeLog(self.config.dedupe_window, self.config.gap_fill_hold)
            return TradeStream(channel, symbol, self._report, log, on_overflow=self._filler.overflow)
        if channel == "orderbook":
            return OrderbookStream(channel, symbol, self._report)
        return Stream(channel, symbol, self._report)

    def _route_table(self, channel: str) -> dict[str, Stream]:
        if channel.startswith("candle."):
            return self._candle_routes.setdefault(channel[len("candle.") :], {})
        return self._routes[_ROUTED[channel]]

    def _start_stream(self, stream: Stream) -> None:
        conn_id, _opened = self._plan.place(stream.symbol)
        conn = self._conns.get(conn_id)
        if conn is None:
            conn = self._conns[conn_id] = self._new_connection(conn_id)
        stream.conn = conn_id
        conn.streams[stream.key] = stream
        self._route_table(stream.channel)[stream.symbol] = stream
        assert self._stale is not None
        self._stale.add(stream)
        conn.mark_dirty()  # a new connection starts at the end of this tick, with every stream of the tick

    def _stop_stream(self, stream: Stream) -> None:
        route = self._route_table(stream.channel)
        if route.get(stream.symbol) is stream:
            del route[stream.symbol]
        assert self._stale is not None
        self._stale.forget(stream)
        self._filler.cancel(stream)
        self._retired_items[_KIND_INDEX.get(stream.channel, 3)] += stream.count
        if isinstance(stream, TradeStream):
            self._retired_duplicates += stream.log.duplicates
        conn = self._conns.get(stream.conn)
        if conn is None or conn.streams.get(stream.key) is not stream:
            return  # its connection already went away (gave up)
        del conn.streams[stream.key]
        _, emptied = self._plan.release(stream.symbol)
        if emptied:
            del self._conns[conn.id]
            conn.abandon()
            self._spawn_closer(conn)
        else:
            conn.mark_dirty()

    def _wire_changed(self, stream: Stream) -> None:
        conn = self._conns.get(stream.conn)
        if conn is not None:
            conn.mark_dirty()

    # -- connections ------------------------------------------------------------------------------------

    def _new_connection(self, conn_id: int) -> Connection:
        assert self._loop is not None
        return Connection(
            conn_id,
            loop=self._loop,
            config=self.config,
            client=self._client,
            connect_limiter=self._connect_limiter,
            sleep=self._sleep,
            routes=self._routes,
            decode=self._decode,
            on_other=self._other_message,
            on_bad_frame=self._bad_frame,
            on_event=self._on_ws_event,
        )

    def _spawn_closer(self, conn: Connection) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._close_conn(conn), name=f"rxmarket-upbit-close #{conn.id}")
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close_conn(self, conn: Connection) -> None:
        try:
            await conn.ws.close()
        finally:
            # The connection is out of self._conns: its counters move to the retired totals, once.
            s, r = conn.ws.stats(), self._retired_ws
            self._retired_ws = WsStats(*(a + b for a, b in zip(_ws_tuple(r), _ws_tuple(s), strict=True)))
            self._retired_conn[0] += conn.unrouted
            self._retired_conn[1] += conn.resubscribes

    async def _sleep(self, delay: float) -> None:
        """The transports' backoff and pacing sleep, stretched over a rate-limit block or a ban."""
        await asyncio.sleep(max(delay, self._blocked_for()))

    def _blocked_for(self) -> float:
        """Seconds before the WebSocket may try again: a 429/418 seen here, or a ban seen over REST."""
        assert self._loop is not None
        now = self._loop.time()
        return max(self._block_until - now, self._http.limiter.blocked_for("websocket", now), 0.0)

    def _on_ws_event(self, conn: Connection, event: WsEvent) -> None:
        kind = event.kind
        now = time.time()
        if kind == "connecting":
            self._publish(Status(kind="connecting", timestamp=now, connection=conn.id, count=event.attempt))
        elif kind == "live":
            self._publish(Status(kind="live", timestamp=now, connection=conn.id))
        elif kind == "reconnected":
            self._publish(
                Status(kind="reconnected", timestamp=now, connection=conn.id, downtime=event.downtime)
            )
            if self.config.gap_fill:
                self._filler.start(conn.streams.values())
        elif kind == "idle":
            self._publish(
                Status(
                    kind="stale", timestamp=now, connection=conn.id, delay=event.silent_for,
                    detail="no frame on the link: replacing it",
                )
            )
        elif kind == "backoff":
            self._refused(conn, event.error)
            self._publish(
                Status(
                    kind="backoff",
                    timestamp=now,
                    connection=conn.id,
                    delay=max(event.delay or 0.0, self._blocked_for()),
                    count=event.attempt,
                    detail=str(event.error) if event.error is not None else "",
                )
            )
        elif kind == "gave_up" or (kind == "closed" and event.error is not None):
            self._give_up(conn, event.error)

    def _refused(self, conn: Connection, error: BaseException | None) -> None:
        """An upgrade answered 429 waits ``retry_after``; one answered 418 waits the ban's length."""
        status = handshake_status(error)
        if status not in (429, 418):
            return
        assert self._loop is not None
        protocol = self.config.protocol
        wait = protocol.default_retry_after if status == 429 else protocol.ban_duration
        self._rate_limited += 1
        self._block_until = max(self._block_until, self._loop.time() + wait)
        if status == 429:
            status_event = Status(
                kind="rate_limited", timestamp=time.time(), connection=conn.id, delay=wait,
                detail="WebSocket upgrade answered HTTP 429",
            )
        else:
            status_event = Status(
                kind="circuit", timestamp=time.time(), connection=conn.id, delay=wait,
                detail="open: WebSocket upgrade answered HTTP 418 (blocked)",
            )
        self._publish(status_event)

    def _give_up(self, conn: Connection, error: BaseException | None) -> None:
        """A connection stopped for good: its streams fail with ``GaveUp``; later subscriptions start anew."""
        if self._conns.get(conn.id) is not conn:
            return
        self._gave_up += 1
        failure = error if isinstance(error, GaveUp) else GaveUp(1, self.config.failure_window, error)
        self._publish(Status(kind="gave_up", timestamp=time.time(), connection=conn.id, detail=str(failure)))
        del self._conns[conn.id]
        conn.abandon()
        self._plan.forget_connection(conn.id)
        streams = list(conn.streams.values())
        conn.streams.clear()
        assert self._registry is not None
        for stream in streams:
            self._registry.drop(stream, failure)
        self._spawn_closer(conn)

    # -- frames that are not routed items ---------------------------------------------------------------

    def _other_message(self, conn: Connection, msg: Any) -> None:
        if msg is KEEPALIVE:
            self._keepalives += 1
        elif msg.__class__ is Candle:
            stream = self._candle_routes.get(msg.unit, {}).get(msg.symbol)
            if stream is None:
                conn.unrouted += 1
            else:
                stream.push(msg)
        # A LIST_SUBSCRIPTIONS answer (we never ask for one) needs nothing.

    def _bad_frame(self, conn: Connection, exc: Exception) -> None:
        if isinstance(exc, RateLimited):
            assert self._loop is not None
            self._rate_limited += 1
            self._block_until = max(self._block_until, self._loop.time() + exc.retry_after)
            self._publish(
                Status(
                    kind="rate_limited", timestamp=time.time(), connection=conn.id, delay=exc.retry_after,
                    detail=str(exc),
                )
            )
            # The request that drew the refusal was dropped by the server: our subscription set may not be
            # in force. Send it again once the wait is over (the transport's limiter paces it further).
            conn.resend_later(exc.retry_after)
            return
        if isinstance(exc, ExchangeRejected):
            self._error_frames += 1
        else:
            self._quarantined += 1
        detail = str(exc) if isinstance(exc, RxMarketError) else f"{type(exc).__name__}: {exc}"
        self._publish(Status(kind="quarantined", timestamp=time.time(), connection=conn.id, detail=detail))

    # -- plumbing -----------------------------------------------------------------------------------------

    def _publish(self, status: Status) -> None:
        self._status.push(status)

    def _report(self, exc: BaseException) -> None:
        """A subscriber's callback raised: count it and hand it to the loop's exception handler."""
        self._callback_errors += 1
        loop = self._loop
        if loop is None:
            return
        message = f"{self!r}: a subscriber's callback raised {exc!r}; the stream goes on"
        loop.call_exception_handler({"message": message, "exception": exc})




def _ws_tuple(s: WsStats) -> tuple[int, ...]:
    return (
        s.frames, s.messages_sent, s.connects, s.reconnects, s.failures, s.idle_timeouts, s.callback_errors,
    )


def _call_soon_threadsafe(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(fn)

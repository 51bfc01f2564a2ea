"""The settings, counters and argument checks of :class:`rxmarket.market.MarketData`.

Everything a bad argument or setting can get wrong is checked here, at the call, with a
:class:`~rxmarket.errors.ConfigError` that says what was given and what is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final, Literal, get_args

import msgspec

from rxmarket.aio import OVERFLOW_POLICIES, Overflow
from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit._source_config import DEFAULT_STALENESS
from rxmarket.exchanges.upbit.endpoints import REST_URL, WS_URL
from rxmarket.exchanges.upbit.protocol import ORDERBOOK_DEPTHS, market_code
from rxmarket.exchanges.upbit.source import SourceConfig, SourceStats
from rxmarket.operators._validate import OnInvalid
from rxmarket.policy.backoff import BackoffPolicy

__all__ = [
    "CHANNELS",
    "Channel",
    "MarketConfig",
    "MarketStats",
    "check_channel",
    "check_depth",
    "check_markets",
]

Channel = Literal["auto", "rest", "websocket"]
CHANNELS: Final[tuple[str, ...]] = get_args(Channel)
_ON_INVALID: Final = get_args(OnInvalid)


def _default_backoff() -> BackoffPolicy:
    return BackoffPolicy(initial=0.5, multiplier=2.0, max_delay=30.0, jitter=0.2, immediate_first=True)


class MarketConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting of a :class:`MarketData`, checked when it is made (``ConfigError``).

    ``rxmarket.upbit(**overrides)`` builds one from the defaults; ``rxmarket.upbit(config=cfg, grace=0)``
    starts from ``cfg``.

    Attributes:
        rest_url: the REST base (Upbit's, or a simulator's ``rest_url``).
        ws_url: the WebSocket endpoint.
        transport: the WebSocket library, ``"aiohttp"`` (default: the faster one in
            ``docs/benchmarks.md``) or ``"websockets"``.
        open_timeout: seconds for one WebSocket connection attempt.
        request_timeout: seconds for one REST request.
        first_item_timeout: seconds ``get_ticker`` waits for the WebSocket when REST failed.
        ping_interval: seconds between WebSocket pings (``None``: none).
        idle_timeout: a WebSocket that receives nothing for this long is replaced (``None``: never).
        backoff: delays between reconnect attempts and between retries (initial, multiplier, max_delay,
            jitter).
        max_failures: the give-up budget: failures within ``failure_window`` seconds after which a
            connection gives up (``"websocket"`` chains then retry with ``backoff``; ``"auto"`` ones poll).
        failure_window: see ``max_failures``.
        grace: seconds an upstream subscription outlives its last subscriber.
        staleness: seconds of silence, per channel, before a stream is reported stale (and, with
            ``failover_on_stale``, an ``"auto"`` chain polls REST).
        rest_rate: REST requests per second per rate-limit group (Upbit: 10).
        max_connections: WebSocket connections at most (Upbit: 5).
        poll_interval: seconds between REST polls (``channel="rest"``, and ``"auto"`` while the WebSocket
            is down).
        failover_threshold: consecutive "WebSocket down" signals that switch an ``"auto"`` chain to REST.
        failover_retry: seconds on REST before an ``"auto"`` chain tries the WebSocket again.
        failover_on_stale: count a stale stream as a "WebSocket down" signal.
        rest_retries: retries of a failed ``get_ticker`` REST call (5xx, network, 429) before the
            WebSocket is asked.
        cache_dir: a directory for a persistent disk cache; ``None``: a temporary one, owned by the market
            and removed when it closes.
        cache_ttl: seconds a cached value is fresh (replays, and ``get_ticker`` for markets not streamed).
        live_ttl: seconds a ticker of a market streamed live over a healthy WebSocket is served by
            ``get_ticker`` from memory (Upbit sends a ticker on every change, so while the link is healthy
            the last one is the current one); ``0`` turns that rule off.
        cache_flush_interval: seconds the newest value per key is held before the cache is written
            (``None``: write every item, ~40x the cost).
        keep_warm: seconds a market asked for by ``get_ticker`` stays streamed after the last ask
            (``None``: never stream for ``get_ticker``).
        on_invalid: what validation does with a bad item: ``"drop"``, ``"error"`` or ``"correct"``.
        iter_maxsize: buffer size of ``stream_ticker`` / ``stream_orderbook``.
        ticker_overflow: their overflow policy for tickers: ``"drop_oldest"`` (default: a slow consumer
            stays current and never fails; drops are counted).
        orderbook_overflow: for books: ``"latest"`` (default: only the newest book per market waits).
        source: a :class:`~rxmarket.exchanges.upbit.source.SourceConfig` to start the source's settings
            from (for knobs not named here); the fields named here always win.
    """

    rest_url: str = REST_URL
    ws_url: str = WS_URL
    transport: Literal["aiohttp", "websockets"] = "aiohttp"
    open_timeout: float = 10.0
    request_timeout: float = 10.0
    first_item_timeout: float = 5.0
    ping_interval: float | None = 20.0
    idle_timeout: float | None = 30.0
    backoff: BackoffPolicy = msgspec.field(default_factory=_default_backoff)
    max_failures: int = 10
    failure_window: float = 300.0
    grace: float = 2.0
    staleness: dict[str, float | None] = msgspec.field(default_factory=lambda: dict(DEFAULT_STALENESS))
    rest_rate: int = 10
    max_connections: int = 5
    poll_interval: float = 1.0
    failover_threshold: int = 1
    failover_retry: float = 5.0
    failover_on_stale: bool = True
    rest_retries: int = 1
    cache_dir: str | None = None
    cache_ttl: float = 1.0
    live_ttl: float = 30.0
    cache_flush_interval: float | None = 1.0
    keep_warm: float | None = 60.0
    on_invalid: OnInvalid = "drop"
    iter_maxsize: int = 1024
    ticker_overflow: Overflow = "drop_oldest"
    orderbook_overflow: Overflow = "latest"
    source: SourceConfig | None = None

    def __post_init__(self) -> None:
        for name in ("open_timeout", "request_timeout", "first_item_timeout", "failure_window",
                     "poll_interval", "failover_retry"):
            _seconds(name, getattr(self, name))
        for name in ("grace", "cache_ttl", "live_ttl"):
            _seconds(name, getattr(self, name), zero=True)
        for name in ("ping_interval", "idle_timeout", "cache_flush_interval", "keep_warm"):
            value = getattr(self, name)
            if value is not None:
                _seconds(name, value)
        for name in ("max_failures", "rest_rate", "failover_threshold", "iter_maxsize"):
            _integer(name, getattr(self, name), 1)
        _integer("rest_retries", self.rest_retries, 0)
        if self.on_invalid not in _ON_INVALID:
            raise ConfigError(f"on_invalid must be one of {', '.join(_ON_INVALID)}; got {self.on_invalid!r}")
        for name in ("ticker_overflow", "orderbook_overflow"):
            if getattr(self, name) not in OVERFLOW_POLICIES:
                raise ConfigError(
                    f"{name} must be one of {', '.join(OVERFLOW_POLICIES)}; got {getattr(self, name)!r}"
                )
        if self.cache_dir is not None and (not isinstance(self.cache_dir, str) or not self.cache_dir):
            raise ConfigError(f"cache_dir must be a directory path or None, got {self.cache_dir!r}")
        if not isinstance(self.failover_on_stale, bool):
            raise ConfigError(f"failover_on_stale must be True or False, got {self.failover_on_stale!r}")
        if self.source is not None and not isinstance(self.source, SourceConfig):
            raise ConfigError(f"source must be a SourceConfig or None, got {type(self.source).__name__}")
        self.source_config()  # the source's own checks (URLs, backoff, staleness, ...) run now, not later

    def source_config(self) -> SourceConfig:
        """The :class:`SourceConfig` these settings make (``source`` overlaid with the fields named here).

        Raises:
            ConfigError: a value the source refuses.
        """
        base = self.source if self.source is not None else SourceConfig()
        try:
            return msgspec.structs.replace(
                base,
                ws_url=self.ws_url,
                rest_url=self.rest_url,
                transport=self.transport,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                idle_timeout=self.idle_timeout,
                backoff=self.backoff,
                max_failures=self.max_failures,
                failure_window=self.failure_window,
                grace=self.grace,
                staleness=dict(self.staleness),
                max_connections=self.max_connections,
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(str(exc)) from exc


def _seconds(name: str, value: object, *, zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):  # type: ignore[operator]  # numeric, checked above
        raise ConfigError(f"{name} must be a number of seconds {'>= 0' if zero else '> 0'}, got {value!r}")


def _integer(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")


class MarketStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`MarketData` since it was made (a snapshot: call ``stats()`` again for more).

    Attributes:
        messages: market-data items the source delivered (every channel, once per item).
        reconnects: WebSocket links re-established after a drop.
        disconnects: WebSocket links lost or connection attempts failed.
        drops: items dropped by the overflow policies of ``stream_ticker`` / ``stream_orderbook``.
        duplicates: repeats and out-of-date items removed (the source's trade ids, ``merge_unify``,
            ``dedupe``).
        rejected: items validation dropped (or ended a stream on).
        corrected: items validation repaired (``on_invalid="correct"``).
        quarantined: WebSocket frames that did not decode, and error frames.
        cache_hits: ``get_ticker`` answers served from the cache.
        cache_misses: ``get_ticker`` answers that needed REST or the WebSocket.
        rest_answers: ``get_ticker`` answers from REST.
        websocket_answers: ``get_ticker`` answers from the WebSocket (REST failed).
        cache_writes: values written to the disk cache.
        cache_errors: disk cache problems survived.
        replayed: cached values replayed to new subscribers.
        polls: REST poll requests made (``"rest"`` chains, and ``"auto"`` ones while the WebSocket is down).
        poll_errors: poll requests that failed.
        circuit_opens: times an ``"auto"`` chain switched from the WebSocket to REST.
        retries: resubscriptions of ``"websocket"`` and trade chains after their connection gave up.
        feeds: shared chains running now.
        subscribers: subscriptions to them now.
        callback_errors: exceptions raised by subscribers' own callbacks (reported, never fatal).
        source: the source's own counters, in full.
    """

    messages: int
    reconnects: int
    disconnects: int
    drops: int
    duplicates: int
    rejected: int
    corrected: int
    quarantined: int
    cache_hits: int
    cache_misses: int
    rest_answers: int
    websocket_answers: int
    cache_writes: int
    cache_errors: int
    replayed: int
    polls: int
    poll_errors: int
    circuit_opens: int
    retries: int
    feeds: int
    subscribers: int
    callback_errors: int
    source: SourceStats


# -- argument checks (at the call) -------------------------------------------------------------------------


def check_markets(markets: str | Iterable[str]) -> tuple[str, ...]:
    """Normalised, de-duplicated codes: ``" krw-btc"`` -> ``"KRW-BTC"`` (Upbit takes upper case only)."""
    if isinstance(markets, str):
        markets = [markets]
    try:
        given = list(markets)
    except TypeError:
        raise ConfigError(f"markets must be a code or a list of codes like 'KRW-BTC': {markets!r}") from None
    codes: dict[str, None] = {}
    for market in given:
        codes[market_code(market)] = None
    if not codes:
        raise ConfigError("at least one market code is needed, e.g. ['KRW-BTC']")
    return tuple(codes)


def check_channel(channel: str) -> Channel:
    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    return channel  # type: ignore[return-value]  # checked against the Literal's values just above


def check_depth(depth: int | None) -> int | None:
    if depth is not None and (isinstance(depth, bool) or depth not in ORDERBOOK_DEPTHS):
        raise ConfigError(f"orderbook depth {depth!r} is not served; expected {ORDERBOOK_DEPTHS} or None")
    return depth

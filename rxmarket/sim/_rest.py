"""The REST side: Upbit's quotation endpoints under ``/v1``, with their parameters, bodies and errors.

Behaviour follows ``upbit-protocol.md`` section 2 and the 2026 probe log
(``tests/data/upbit/http/rest_error_responses.jsonl``): errors are ``{"error": {"name": <HTTP status as an
integer>, "message": ...}}``; an unknown code anywhere in ``markets`` fails the whole call with 404
``Code not found``; a missing parameter is 400; lower-case codes are accepted; orderbook ``count`` is
clamped to 30; ``level`` on a non-KRW market yields no book; an unrouted path answers 404 ``not_found``
without ``Remaining-Req``. Every routed answer carries ``Remaining-Req`` for its group.

Where no source pins a behaviour down, the simulator picks one and says so: ``count`` above the maximum is
clamped (trades 500, candles 200); ``to`` on ``/trades/ticks`` is an exclusive bound like the candles'.
With ``SimOptions.trades_by_day``, ``/trades/ticks`` keeps to Upbit's UTC days: a page never holds trades
of two days, and ``days_ago`` counts back from the newest trade's day.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from aiohttp import web

from rxmarket.sim import _times as t
from rxmarket.sim._history import DAY_MS
from rxmarket.sim._market import BOOK_DEPTH, MarketState
from rxmarket.sim._ratelimit import Decision, remaining_req
from rxmarket.sim._wire import ENCODE, REST_MARKET
from rxmarket.sim._ws import Context

__all__ = ["ApiError", "RestApi", "not_found"]

MISSING: Final = "Missing request parameter error. Check the required parameters!"
TYPE_MISMATCH: Final = "Type mismatch error. Check the parameters type!"
OUT_OF_RANGE: Final = "Invalid parameter error. Check the parameters range!"
NOT_FOUND: Final = "Code not found"
MINUTE_UNITS: Final = (1, 3, 5, 10, 15, 30, 60, 240)
_JSON: Final = "application/json; charset=utf-8"
_COMMON_HEADERS: Final = {
    "limit-by-ip": "Yes",
    "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
}
_KRW_RATE: Final = {"BTC": 140_000_000.0, "USDT": 1_450.0}

Query = Mapping[str, str]


class ApiError(Exception):
    """An Upbit REST error answer.

    Args:
        status: HTTP status.
        message: the ``error.message``; ``error.name`` is the status as an integer, as Upbit sends it.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


def _first(query: Query, *names: str) -> str | None:
    for name in names:
        value = query.get(name)
        if value is not None:
            return value
    return None


def _required(query: Query, *names: str) -> str:
    value = _first(query, *names)
    if value is None or value.strip() == "":
        raise ApiError(400, MISSING)
    return value


def _int(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ApiError(400, TYPE_MISMATCH) from exc


def _bool(value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiError(400, TYPE_MISMATCH)


class RestApi:
    """The REST handlers of one simulator.

    Args:
        ctx: the shared context (market, faults, limiter, counters).
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes for every endpoint."""
        return [
            web.get("/v1/market/all", self._route("market", self.market_all)),
            web.get("/v1/ticker", self._route("ticker", self.ticker)),
            web.get("/v1/ticker/all", self._route("ticker", self.ticker_all)),
            web.get("/v1/orderbook", self._route("orderbook", self.orderbook)),
            web.get("/v1/orderbook/instruments", self._route("orderbook", self.instruments)),
            web.get("/v1/trades/ticks", self._route("crix-trades", self.trades)),
            web.get("/v1/candles/seconds", self._route("candles", self._candles_of("1s"))),
            web.get("/v1/candles/minutes/{unit}", self._route("candles", self.minutes)),
            web.get("/v1/candles/days", self._route("candles", self._candles_of("1d"))),
            web.get("/v1/candles/weeks", self._route("candles", self._candles_of("1w"))),
            web.get("/v1/candles/months", self._route("candles", self._candles_of("1mo"))),
            web.get("/v1/candles/years", self._route("candles", self._candles_of("1y"))),
        ]

    # -- plumbing ------------------------------------------------------------------------------------------

    def _count(self, group: str, status: int) -> None:
        counters = self.ctx.counters
        counters.rest_requests += 1
        counters.rest_by_group[group] = counters.rest_by_group.get(group, 0) + 1
        counters.rest_by_status[status] = counters.rest_by_status.get(status, 0) + 1
        self.ctx.notify()

    def _route(
        self, group: str, build: Callable[[web.Request], Any]
    ) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            response = await self._serve(request, group, build)
            self._count(group, response.status)
            return response

        return handler

    async def _serve(
        self, request: web.Request, group: str, build: Callable[[web.Request], Any]
    ) -> web.Response:
        ctx = self.ctx
        faults = ctx.faults
        delay = faults.latency_seconds
        if delay:
            # Wait out the latency, unless the simulator closes meanwhile (then answer at once).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await ctx.closing.wait()
        if faults.refusing or ctx.closing.is_set():
            return web.Response(status=503, text="Service Unavailable")
        status = faults.server_error_status
        if status is not None:
            return web.Response(status=status, text="Internal Server Error")
        loop = asyncio.get_running_loop()
        if faults.rate_limited:
            decision = Decision(429, remaining_req(group, ctx.limits.rest_min_header, 0), 1.0)
        else:
            origin = "Origin" in request.headers
            decision = ctx.limiter.check(request.remote or "?", group, loop.time(), origin=origin)
        if decision.status != 200:
            return self._limited(decision)
        headers = {"Remaining-Req": decision.header, **_COMMON_HEADERS}
        try:
            body = build(request)
        except ApiError as exc:
            payload = ENCODE({"error": {"name": exc.status, "message": exc.message}})
            return web.Response(status=exc.status, body=payload, headers={**headers, "Content-Type": _JSON})
        return web.Response(body=ENCODE(body), headers={**headers, "Content-Type": _JSON})

    def _limited(self, decision: Decision) -> web.Response:
        limits = self.ctx.limits
        headers = {"Remaining-Req": decision.header}
        if limits.retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
        if decision.status == 418:
            seconds = math.ceil(decision.ban_seconds)
            name, message = "blocked", f"Too many API requests. Blocked for {seconds} seconds."
        else:
            name, message = "too_many_requests", "Too many API requests."
        if limits.limit_body == "text":
            return web.Response(status=decision.status, text=message, headers=headers)
        body = ENCODE({"error": {"name": name, "message": message}})
        return web.Response(status=decision.status, body=body, headers={**headers, "Content-Type": _JSON})

    def _states(self, text: str) -> list[MarketState]:
        exchange = self.ctx.exchange
        codes = [c.strip().upper() for c in text.split(",") if c.strip()]
        if not codes or any(c not in exchange.by_code for c in codes):
            # One unknown code fails the whole call, even beside valid ones (2026 probe).
            raise ApiError(404, NOT_FOUND)
        return exchange.markets(codes)

    # -- endpoints -----------------------------------------------------------------------------------------

    def market_all(self, request: web.Request) -> Any:
        """``GET /market/all[?is_details=true]``."""
        details = _bool(_first(request.query, "is_details", "isDetails"))
        out: list[Any] = []
        for info in self.ctx.exchange.catalog:
            if not details:
                out.append(REST_MARKET.make(False, (info.code, info.korean_name, info.english_name)))
                continue
            caution = {name: name in info.caution for name in (
                "PRICE_FLUCTUATIONS", "TRADING_VOLUME_SOARING", "DEPOSIT_AMOUNT_SOARING",
                "GLOBAL_PRICE_DIFFERENCES", "CONCENTRATION_OF_SMALL_ACCOUNTS",
            )}
            out.append({
                "market": info.code,
                "korean_name": info.korean_name,
                "english_name": info.english_name,
                "market_event": {"warning": info.warning, "caution": caution},
            })
        return out

    def ticker(self, request: web.Request) -> Any:
        """``GET /ticker?markets=...``."""
        now = self.ctx.exchange.now_ms()
        return [s.rest_ticker(now) for s in self._states(_required(request.query, "markets"))]

    def ticker_all(self, request: web.Request) -> Any:
        """``GET /ticker/all?quote_currencies=KRW,BTC``."""
        quotes = {q.strip().upper() for q in _required(request.query, "quote_currencies").split(",")}
        exchange = self.ctx.exchange
        now = exchange.now_ms()
        return [exchange.market(m.code).rest_ticker(now) for m in exchange.catalog if m.quote in quotes]

    def orderbook(self, request: web.Request) -> Any:
        """``GET /orderbook?markets=...[&count=n][&level=step]``."""
        query = request.query
        states = self._states(_required(query, "markets"))
        depth = min(max(_int(query.get("count"), BOOK_DEPTH), 1), BOOK_DEPTH)
        level_text = query.get("level")
        level = 0.0
        if level_text is not None:
            try:
                level = float(level_text)
            except ValueError as exc:
                raise ApiError(400, TYPE_MISMATCH) from exc
            if level < 0 or not math.isfinite(level):
                raise ApiError(400, OUT_OF_RANGE)
        # A level on a non-KRW market gives no book for it (200 with [] when asked alone).
        return [s.rest_orderbook(depth, level) for s in states if level == 0 or s.info.quote == "KRW"]

    def instruments(self, request: web.Request) -> Any:
        """``GET /orderbook/instruments?markets=...``."""
        out = []
        for state in self._states(_required(request.query, "markets")):
            info = state.info
            tick = str(int(info.tick)) if info.tick >= 1 else f"{info.tick:.8f}".rstrip("0")
            out.append({
                "market": info.code,
                "quote_currency": info.quote,
                "tick_size": tick,
                "supported_levels": info.supported_levels,
            })
        return out

    def trades(self, request: web.Request) -> Any:
        """``GET /trades/ticks?market=...[&count][&to][&cursor][&days_ago]``, newest first.

        With ``SimOptions.trades_by_day`` (Upbit's behaviour) every answer keeps to one UTC day: the
        newest trade's day, or with ``days_ago=N`` the day N days before it; ``to`` is a time of that day
        and ``cursor`` pages back within it. Without it, ``days_ago`` counts from the clock's day and
        pages without ``days_ago`` run on through midnight.
        """
        query = request.query
        (state,) = self._states(_required(query, "market").split(",")[0])
        count = min(max(_int(query.get("count"), 1), 1), 500)
        cursor_text = query.get("cursor")
        cursor = _int(cursor_text, 0) if cursor_text else None
        days_ago = _int(_first(query, "days_ago", "daysAgo"), 0)
        if days_ago and not 1 <= days_ago <= 7:
            raise ApiError(400, OUT_OF_RANGE)
        by_day = self.ctx.options.trades_by_day
        # Upbit counts days from the day of its newest trade: a quiet market's "today" is that trade's day
        # even after the clock passed midnight (``state.trades`` is never empty: it is prefilled).
        ref = state.last.ts if by_day else self.ctx.exchange.now_ms()
        day = ref - ref % DAY_MS - days_ago * DAY_MS
        to_text = query.get("to")
        upper: int | None = None
        if to_text:
            try:
                upper = day + t.parse_trade_to(to_text)
            except ValueError as exc:
                raise ApiError(400, TYPE_MISMATCH) from exc
        elif days_ago:
            upper = day + DAY_MS
        lower = day if by_day or days_ago else None
        out = []
        for rec in reversed(state.trades):
            if cursor is not None and rec.sid >= cursor:
                continue
            if upper is not None and rec.ts >= upper:
                continue
            if lower is not None and rec.ts < lower:
                break
            out.append(state.rest_trade(rec))
            if len(out) >= count:
                break
        return out

    def minutes(self, request: web.Request) -> Any:
        """``GET /candles/minutes/{unit}``."""
        unit = _int(request.match_info["unit"], 0)
        if unit not in MINUTE_UNITS:
            raise ApiError(400, OUT_OF_RANGE)
        return self._candles(request, f"{unit}m", {"unit": unit})

    def _candles_of(self, unit: str) -> Callable[[web.Request], Any]:
        return lambda request: self._candles(request, unit, None)

    def _candles(self, request: web.Request, unit: str, extra: dict[str, Any] | None) -> Any:
        query = request.query
        (state,) = self._states(_required(query, "market").split(",")[0])
        count = min(max(_int(query.get("count"), 1), 1), 200)
        exchange = self.ctx.exchange
        now = exchange.now_ms()
        to_text = query.get("to")
        to_ms = now + 1
        if to_text:
            try:
                to_ms = t.parse_candle_to(to_text)
            except ValueError as exc:
                raise ApiError(400, TYPE_MISMATCH) from exc
        if unit != "1d":
            bars = state.candles(unit, to_ms, count, now)
            out = []
            for bar in bars:
                keys = dict(extra or {})
                if unit in ("1w", "1mo", "1y"):
                    keys["first_day_of_period"] = t.period_first_day(bar.start)
                out.append(state.rest_candle(unit, bar, keys))
            return out
        converting = _first(query, "converting_price_unit", "convertingPriceUnit")
        bars = state.candles("1d", to_ms, count + 1, now)
        out = []
        for i, bar in enumerate(bars[:count]):
            prev = bars[i + 1].close if i + 1 < len(bars) else bar.open
            diff = round(bar.close - prev, state.info.decimals)
            more: dict[str, Any] = {
                "prev_closing_price": prev,
                "change_price": diff,
                "change_rate": round(diff / prev, 10) if prev else 0.0,
            }
            if converting:
                more["converted_trade_price"] = bar.close * self._krw_rate(state.info.quote)
            out.append(state.rest_candle("1d", bar, more))
        return out

    def _krw_rate(self, quote: str) -> float:
        if quote == "KRW":
            return 1.0
        exchange = self.ctx.exchange
        code = f"KRW-{quote}"
        if code in exchange.by_code:
            return exchange.market(code).last.price
        return _KRW_RATE.get(quote, 1.0)


async def not_found(request: web.Request) -> web.Response:
    """Any unrouted path: Upbit's gateway answer, without ``Remaining-Req``."""
    body = ENCODE({"error": {"name": "not_found", "message": "no Route matched with those values"}})
    return web.Response(status=404, body=body, headers={"Content-Type": _JSON})

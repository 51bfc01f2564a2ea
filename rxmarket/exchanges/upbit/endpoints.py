"""Upbit quotation REST endpoints: paths, query parameters and rate-limit groups, sans I/O.

Each builder checks its arguments against Upbit's documented limits (protocol.md section 2) and returns a
:class:`RestRequest`: the path, the query, the ``Remaining-Req`` group the call counts in, and the
``decode_rest`` kind (and candle unit) that reads its answer. The HTTP layer only joins it to a base URL::

    req = endpoints.candles("KRW-BTC", "1m", count=200)
    body = await http.get(req.url(rest_url))           # transport: not here
    candles = protocol.decode_rest(req.kind, body, unit=req.unit)

Parameter names that older docs spelled differently (``isDetails``, ``daysAgo``, ``convertingPriceUnit``)
come from :class:`~rxmarket.exchanges.upbit.protocol.UpbitProtocolConfig`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlencode

import msgspec

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit.protocol import DEFAULT_CONFIG, UpbitProtocolConfig, market_code
from rxmarket.models import CANDLE_UNITS

__all__ = [
    "CANDLE_PATHS",
    "MAX_CANDLES_COUNT",
    "MAX_DAYS_AGO",
    "MAX_ORDERBOOK_COUNT",
    "MAX_TRADES_COUNT",
    "REST_URL",
    "WS_URL",
    "RestRequest",
    "candle_path",
    "candles",
    "market_all",
    "orderbook",
    "orderbook_instruments",
    "ticker",
    "ticker_all",
    "trades_ticks",
]

REST_URL: Final = "https://api.upbit.com/v1"
"""Upbit's quotation REST base (regional twins: ``https://{sg,id,th}-api.upbit.com/v1``)."""

WS_URL: Final = "wss://api.upbit.com/websocket/v1"
"""Upbit's public (quotation) WebSocket."""

CANDLE_PATHS: Final = {
    "1s": "/candles/seconds",
    **{f"{n}m": f"/candles/minutes/{n}" for n in (1, 3, 5, 10, 15, 30, 60, 240)},
    "1d": "/candles/days",
    "1w": "/candles/weeks",
    "1mo": "/candles/months",
    "1y": "/candles/years",
}
"""Our candle units -> Upbit paths (every unit of :data:`rxmarket.models.CANDLE_UNITS`)."""

# Upbit's documented per-call limits (protocol.md 2).
MAX_ORDERBOOK_COUNT: Final = 30
MAX_TRADES_COUNT: Final = 500
MAX_CANDLES_COUNT: Final = 200
MAX_DAYS_AGO: Final = 7


class RestRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One GET request to the quotation API, ready for the HTTP layer.

    Attributes:
        path: the path below the base URL, e.g. ``"/candles/minutes/1"``.
        params: the query, in order, as strings.
        group: the ``Remaining-Req`` group this call is counted in (header spelling: ``candles``,
            ``crix-trades`` ...), for a per-group rate limiter.
        kind: the :func:`~rxmarket.exchanges.upbit.protocol.decode_rest` kind that reads the answer.
        unit: for candles, the unit to pass to ``decode_rest``.
    """

    path: str
    params: tuple[tuple[str, str], ...] = ()
    group: str
    kind: str
    unit: str | None = None

    def url(self, base: str = REST_URL) -> str:
        """The full URL below ``base`` (e.g. a simulator's ``rest_url``), query URL-encoded."""
        url = base.rstrip("/") + self.path
        return f"{url}?{urlencode(self.params)}" if self.params else url


def market_all(details: bool = False, *, config: UpbitProtocolConfig = DEFAULT_CONFIG) -> RestRequest:
    """``GET /market/all``: every market; ``details=True`` adds ``market_event`` (warnings, cautions)."""
    return RestRequest(
        path="/market/all",
        params=((config.details_param, _bool(details)),),
        group="market",
        kind="markets",
    )


def ticker(markets: Iterable[str]) -> RestRequest:
    """``GET /ticker?markets=...``: one ticker per code (one unknown code fails the whole call: 404)."""
    return RestRequest(path="/ticker", params=(("markets", _codes(markets)),), group="ticker", kind="ticker")


def ticker_all(quote_currencies: Iterable[str]) -> RestRequest:
    """``GET /ticker/all?quote_currencies=KRW,BTC``: tickers of every market of those quotes."""
    quotes = _listed(quote_currencies, "quote currencies")
    for q in quotes:
        if not q.isalnum():
            raise ConfigError(f"quote currency {q!r} is not alphanumeric (e.g. 'KRW')")
    return RestRequest(
        path="/ticker/all", params=(("quote_currencies", ",".join(quotes)),), group="ticker", kind="ticker"
    )


def orderbook(
    markets: Iterable[str], *, count: int | None = None, level: int | float | None = None
) -> RestRequest:
    """``GET /orderbook``: whole books for the codes.

    Args:
        markets: market codes.
        count: levels per side, 1-30 (Upbit's default 30).
        level: price grouping step, KRW markets only (a non-KRW market answers ``[]``).

    Raises:
        ConfigError: no code, a malformed code, ``count`` outside 1-30 or a negative ``level``.
    """
    params = [("markets", _codes(markets))]
    if count is not None:
        params.append(("count", str(_count(count, MAX_ORDERBOOK_COUNT, "orderbook count"))))
    if level is not None:
        if isinstance(level, bool) or not isinstance(level, int | float) or not level >= 0:
            raise ConfigError(f"orderbook level must be a number >= 0, got {level!r}")
        params.append(("level", _number(level)))
    return RestRequest(path="/orderbook", params=tuple(params), group="orderbook", kind="orderbook")


def orderbook_instruments(markets: Iterable[str]) -> RestRequest:
    """``GET /orderbook/instruments``: tick size and accepted ``level`` values per market."""
    return RestRequest(
        path="/orderbook/instruments",
        params=(("markets", _codes(markets)),),
        group="orderbook",
        kind="instruments",
    )


_HHMMSS = re.compile(r"(?:[01]\d|2[0-3])(:?)[0-5]\d\1[0-5]\d")


def trades_ticks(
    market: str,
    *,
    to: str | None = None,
    count: int | None = None,
    cursor: int | str | None = None,
    days_ago: int | None = None,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> RestRequest:
    """``GET /trades/ticks``: recent trades of one market, newest first.

    Args:
        market: the market code.
        to: upper bound as UTC time of day, ``HHmmss`` or ``HH:mm:ss``.
        count: trades per page, 1-500 (Upbit's default 1).
        cursor: a ``sequential_id``: page backwards from it.
        days_ago: 1-7, trades of that many days back.
        config: spelling of ``days_ago``.

    Raises:
        ConfigError: a malformed code or ``to``, or a number outside its range.
    """
    params = [("market", market_code(market))]
    if to is not None:
        if not isinstance(to, str) or not _HHMMSS.fullmatch(to):
            raise ConfigError(f"trades 'to' must be a UTC time 'HHmmss' or 'HH:mm:ss', got {to!r}")
        params.append(("to", to))
    if count is not None:
        params.append(("count", str(_count(count, MAX_TRADES_COUNT, "trades count"))))
    if cursor is not None:
        if isinstance(cursor, bool) or not str(cursor).isdigit():
            raise ConfigError(f"cursor must be a sequential_id (digits), got {cursor!r}")
        params.append(("cursor", str(cursor)))
    if days_ago is not None:
        params.append((config.days_ago_param, str(_count(days_ago, MAX_DAYS_AGO, "days_ago"))))
    return RestRequest(path="/trades/ticks", params=tuple(params), group="crix-trades", kind="trades")


def candle_path(unit: str) -> str:
    """The REST path of a candle unit: ``"1s"`` -> ``/candles/seconds``, ``"15m"`` -> ``/candles/minutes/15``.

    Raises:
        ConfigError: an unknown unit.
    """
    try:
        return CANDLE_PATHS[unit]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown candle unit {unit!r}; expected one of {', '.join(CANDLE_UNITS)}"
        ) from None


def candles(
    market: str,
    unit: str,
    *,
    to: str | datetime | int | None = None,
    count: int | None = None,
    converting_price_unit: str | None = None,
    config: UpbitProtocolConfig = DEFAULT_CONFIG,
) -> RestRequest:
    """``GET /candles/...``: candles of one market and unit, newest first.

    Page backwards by passing the oldest candle's start as the next ``to`` (exclusive upper bound).

    Args:
        market: the market code.
        unit: ``"1s"``, ``"1m"`` ... ``"240m"``, ``"1d"``, ``"1w"``, ``"1mo"``, ``"1y"``.
        to: exclusive upper bound: an ISO 8601 string as Upbit takes it, a ``datetime`` (naive = UTC) or
            epoch milliseconds (sent to the second).
        count: candles per page, 1-200.
        converting_price_unit: daily candles only: also price them in this quote (e.g. ``"KRW"``).
        config: spelling of ``converting_price_unit``.

    Raises:
        ConfigError: an unknown unit, a malformed code, ``count`` outside 1-200, or
            ``converting_price_unit`` on a unit other than ``"1d"``.
    """
    path = candle_path(unit)
    params = [("market", market_code(market))]
    if to is not None:
        params.append(("to", _iso_utc(to)))
    if count is not None:
        params.append(("count", str(_count(count, MAX_CANDLES_COUNT, "candles count"))))
    if converting_price_unit is not None:
        if unit != "1d":
            raise ConfigError("converting_price_unit applies to daily candles ('1d') only")
        if not converting_price_unit.isalnum():
            raise ConfigError(f"converting_price_unit must be a currency code, got {converting_price_unit!r}")
        params.append((config.converting_price_unit_param, converting_price_unit.upper()))
    return RestRequest(path=path, params=tuple(params), group="candles", kind="candles", unit=unit)


# ---------------------------------------------------------------------------------------------------------

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _listed(items: Iterable[str], what: str) -> list[str]:
    if isinstance(items, str):
        items = items.split(",")
    out = [str(i).strip().upper() for i in items]
    if not out or not all(out):
        raise ConfigError(f"expected one or more {what}, got {out!r}")
    return out


def _codes(markets: Iterable[str]) -> str:
    """Comma-joined upper-case codes (REST accepts any case; one spelling keeps caches consistent)."""
    return ",".join(market_code(c) for c in _listed(markets, "market codes"))


def _count(value: int, maximum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ConfigError(f"{what} must be an integer from 1 to {maximum}, got {value!r}")
    return value


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _number(value: int | float) -> str:
    """``10000`` and ``10000.0`` both as ``10000``: Upbit's level is a numeric string."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _iso_utc(to: str | datetime | int) -> str:
    if isinstance(to, str):
        if not to.strip():
            raise ConfigError("candles 'to' must not be empty")
        return to
    if isinstance(to, datetime):
        moment = to if to.tzinfo is not None else to.replace(tzinfo=UTC)
    elif isinstance(to, int) and not isinstance(to, bool):
        try:
            moment = _EPOCH + timedelta(milliseconds=to)
        except OverflowError:
            raise ConfigError(f"candles 'to' of {to} ms is out of range") from None
    else:
        raise ConfigError(f"candles 'to' must be a str, datetime or epoch ms, got {to!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

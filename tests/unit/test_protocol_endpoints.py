"""REST endpoint builders: paths, queries, rate groups, and their link to decode_rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit import endpoints, protocol
from rxmarket.exchanges.upbit.endpoints import RestRequest
from rxmarket.exchanges.upbit.protocol import UpbitProtocolConfig
from rxmarket.models import CANDLE_UNITS, Candle

DATA = Path(__file__).resolve().parent.parent / "data" / "upbit"


def test_default_hosts() -> None:
    """The default hosts are Upbit's public REST base and quotation WebSocket."""
    assert endpoints.REST_URL == "https://api.upbit.com/v1"
    assert endpoints.WS_URL == "wss://api.upbit.com/websocket/v1"


@pytest.mark.parametrize(
    ("unit", "path"),
    [
        ("1s", "/candles/seconds"), ("1m", "/candles/minutes/1"), ("3m", "/candles/minutes/3"),
        ("5m", "/candles/minutes/5"), ("10m", "/candles/minutes/10"), ("15m", "/candles/minutes/15"),
        ("30m", "/candles/minutes/30"), ("60m", "/candles/minutes/60"), ("240m", "/candles/minutes/240"),
        ("1d", "/candles/days"), ("1w", "/candles/weeks"), ("1mo", "/candles/months"),
        ("1y", "/candles/years"),
    ],
)
def test_candle_paths(unit: str, path: str) -> None:
    """Each of our candle units maps to Upbit's path."""
    assert endpoints.candle_path(unit) == path


def test_every_model_unit_has_a_path() -> None:
    """CANDLE_PATHS covers exactly the models' CANDLE_UNITS."""
    assert set(endpoints.CANDLE_PATHS) == set(CANDLE_UNITS)


@pytest.mark.parametrize("unit", ["2m", "1h", "1M", "", "minutes"])
def test_unknown_candle_unit(unit: str) -> None:
    """An unknown unit is a ConfigError listing the known ones."""
    with pytest.raises(ConfigError, match="1mo"):
        endpoints.candle_path(unit)


def query(req: RestRequest) -> dict[str, str]:
    return dict(req.params)


def test_market_all() -> None:
    """``/market/all`` with ``is_details``; counted in group ``market``; decoded as markets."""
    req = endpoints.market_all(details=True)
    assert (req.path, req.group, req.kind) == ("/market/all", "market", "markets")
    assert query(req) == {"is_details": "true"}
    assert query(endpoints.market_all()) == {"is_details": "false"}


def test_unconfirmed_spellings_are_configurable() -> None:
    """``isDetails``, ``daysAgo``, ``convertingPriceUnit``: the older spellings come from the config."""
    config = UpbitProtocolConfig(
        details_param="isDetails", days_ago_param="daysAgo", converting_price_unit_param="convertingPriceUnit"
    )
    assert query(endpoints.market_all(True, config=config)) == {"isDetails": "true"}
    assert query(endpoints.trades_ticks("KRW-BTC", days_ago=2, config=config))["daysAgo"] == "2"
    assert query(endpoints.candles("KRW-BTC", "1d", converting_price_unit="krw", config=config)) == {
        "market": "KRW-BTC", "convertingPriceUnit": "KRW",
    }


def test_ticker_and_ticker_all() -> None:
    """Tickers: comma-joined upper-case codes; ``/ticker/all`` by quote currencies."""
    req = endpoints.ticker(["krw-btc", "KRW-ETH"])
    assert (req.path, req.group, req.kind) == ("/ticker", "ticker", "ticker")
    assert query(req) == {"markets": "KRW-BTC,KRW-ETH"}
    req = endpoints.ticker_all(["KRW", "btc"])
    assert (req.path, req.kind) == ("/ticker/all", "ticker")
    assert query(req) == {"quote_currencies": "KRW,BTC"}


def test_orderbook_with_count_and_level() -> None:
    """``/orderbook`` with count and a numeric-string level."""
    req = endpoints.orderbook(["KRW-BTC"], count=15, level=10000.0)
    assert (req.path, req.group, req.kind) == ("/orderbook", "orderbook", "orderbook")
    assert req.params == (("markets", "KRW-BTC"), ("count", "15"), ("level", "10000"))


def test_orderbook_instruments() -> None:
    """``/orderbook/instruments`` decodes as instruments."""
    req = endpoints.orderbook_instruments(["KRW-BTC"])
    assert (req.path, req.kind, req.group) == ("/orderbook/instruments", "instruments", "orderbook")


def test_trades_ticks_full_query() -> None:
    """``/trades/ticks`` with to/count/cursor/days_ago; group ``crix-trades`` as in the header."""
    req = endpoints.trades_ticks("KRW-BTC", to="07:04:03", count=500, cursor=17853950437790001, days_ago=7)
    assert (req.path, req.group, req.kind) == ("/trades/ticks", "crix-trades", "trades")
    assert req.params == (
        ("market", "KRW-BTC"), ("to", "07:04:03"), ("count", "500"), ("cursor", "17853950437790001"),
        ("days_ago", "7"),
    )


def test_candles_query_and_decode_hint() -> None:
    """Candles carry their unit so decode_rest can be called with ``req.kind``/``req.unit``."""
    req = endpoints.candles("KRW-BTC", "15m", count=200, to="2025-06-24T04:56:53Z")
    assert (req.path, req.group, req.kind, req.unit) == ("/candles/minutes/15", "candles", "candles", "15m")
    assert query(req) == {"market": "KRW-BTC", "count": "200", "to": "2025-06-24T04:56:53Z"}


def test_request_decodes_its_fixture() -> None:
    """A request's kind and unit decode the matching captured answer (days endpoint, 2021)."""
    req = endpoints.candles("KRW-BTC", "1d")
    (candle,) = protocol.decode_rest(
        req.kind, (DATA / "rest_candles_days_2021.json").read_bytes(), unit=req.unit
    )
    assert isinstance(candle, Candle)
    assert candle.unit == "1d"


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        (datetime(2025, 6, 24, 4, 56, 53), "2025-06-24T04:56:53Z"),
        (datetime(2025, 6, 24, 13, 56, 53, tzinfo=timezone(timedelta(hours=9))), "2025-06-24T04:56:53Z"),
        (int(datetime(2025, 6, 24, 4, 56, 53, tzinfo=UTC).timestamp() * 1000) + 999, "2025-06-24T04:56:53Z"),
        ("2025-06-24 04:56:53", "2025-06-24 04:56:53"),
    ],
)
def test_candles_to_forms(to: Any, expected: str) -> None:
    """``to`` as a naive (UTC) or aware datetime, epoch ms or a string is sent as UTC ISO text."""
    assert query(endpoints.candles("KRW-BTC", "1m", to=to))["to"] == expected


def test_url_joins_and_encodes() -> None:
    """url() joins any base (trailing slash or not) and URL-encodes the query."""
    req = endpoints.candles("KRW-BTC", "1m", to="2025-06-24T04:56:53+09:00")
    url = req.url("http://127.0.0.1:8080/v1/")
    parts = urlsplit(url)
    assert parts.path == "/v1/candles/minutes/1"
    assert dict(parse_qsl(parts.query)) == {"market": "KRW-BTC", "to": "2025-06-24T04:56:53+09:00"}
    assert "%2B09%3A00" in url
    assert endpoints.market_all().url() == "https://api.upbit.com/v1/market/all?is_details=false"
    assert RestRequest(path="/x", group="g", kind="ticker").url("http://h") == "http://h/x"


@pytest.mark.parametrize(
    "call",
    [
        lambda: endpoints.ticker([]),
        lambda: endpoints.ticker(["BTC"]),
        lambda: endpoints.ticker(["KRW-BTC.15"]),
        lambda: endpoints.ticker_all(["K-RW"]),
        lambda: endpoints.orderbook(["KRW-BTC"], count=31),
        lambda: endpoints.orderbook(["KRW-BTC"], count=0),
        lambda: endpoints.orderbook(["KRW-BTC"], level=-5),
        lambda: endpoints.trades_ticks("KRW-BTC", count=501),
        lambda: endpoints.trades_ticks("KRW-BTC", to="7:04"),
        lambda: endpoints.trades_ticks("KRW-BTC", to="25:00:00"),
        lambda: endpoints.trades_ticks("KRW-BTC", cursor="abc"),
        lambda: endpoints.trades_ticks("KRW-BTC", days_ago=8),
        lambda: endpoints.candles("KRW-BTC", "1m", count=201),
        lambda: endpoints.candles("KRW-BTC", "1m", count=True),
        lambda: endpoints.candles("KRW-BTC", "1m", converting_price_unit="KRW"),
        lambda: endpoints.candles("KRW-BTC", "1m", to=""),
        lambda: endpoints.candles("KRW-BTC", "1m", to=10**20),
        lambda: endpoints.candles("KRW-BTC", "2h"),
    ],
)
def test_out_of_range_arguments_are_config_errors(call: Any) -> None:
    """Arguments outside Upbit's documented ranges are refused before any request is made."""
    with pytest.raises(ConfigError):
        call()

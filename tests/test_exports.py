"""The public surface: ``rxmarket.__all__`` matches what the package defines, and DESIGN.md's contract names
exist with their contract shapes (after httpx's ``tests/test_exported_members.py``)."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

import rxmarket
import rxmarket.exchanges.upbit.protocol as protocol
import rxmarket.sim

DATA = Path(__file__).resolve().parent / "data" / "upbit"
SIX_OPERATORS = ("merge_unify", "dedupe", "validate", "retry_with_backoff", "circuit_break", "cache_replay")
EXPORTED_MODULES = {"ops", "operators"}


def test_all_lists_exactly_the_public_names_defined() -> None:
    """Every public non-module name of the package is in ``__all__`` and every entry exists: no drift."""
    defined = {
        name for name, value in vars(rxmarket).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    listed = set(rxmarket.__all__) - EXPORTED_MODULES - {"__version__"}
    assert listed == defined
    assert len(rxmarket.__all__) == len(set(rxmarket.__all__))
    for name in rxmarket.__all__:
        assert hasattr(rxmarket, name), name


def test_the_modules_in_all_are_the_operator_modules() -> None:
    """``rxmarket.ops`` and ``rxmarket.operators`` are listed and are the same operators."""
    assert {n for n in rxmarket.__all__ if isinstance(getattr(rxmarket, n), ModuleType)} == EXPORTED_MODULES
    assert set(rxmarket.ops.__all__) == set(rxmarket.operators.__all__)
    for name in rxmarket.ops.__all__:
        assert getattr(rxmarket.ops, name) is getattr(rxmarket.operators, name)


@pytest.mark.parametrize("name", SIX_OPERATORS)
def test_the_six_operators_are_in_ops(name: str) -> None:
    """``from rxmarket import ops`` gives the six contract operators, callable."""
    from rxmarket import ops

    assert name in ops.__all__
    assert callable(getattr(ops, name))


def test_upbit_makes_a_market_data_with_the_contract_methods() -> None:
    """``rxmarket.upbit()`` returns a ``MarketData`` with the contract's methods and knobs."""
    market = rxmarket.upbit()
    assert isinstance(market, rxmarket.MarketData)
    assert market.config.rest_url.startswith("https://api.upbit.com")
    assert market.config.ws_url.startswith("wss://api.upbit.com")
    for method in ("ticker", "orderbook", "trades", "candles", "stream_ticker", "stream_orderbook", "stats"):
        assert callable(getattr(market, method)), method
    assert inspect.iscoroutinefunction(market.get_ticker)
    assert isinstance(inspect.getattr_static(rxmarket.MarketData, "status"), property)
    assert hasattr(market, "__aenter__")
    assert hasattr(market, "__aexit__")
    assert inspect.signature(market.ticker).parameters["channel"].default == "auto"
    assert "depth" in inspect.signature(market.orderbook).parameters
    assert {"unit", "count"} <= set(inspect.signature(market.candles).parameters)
    assert set(inspect.signature(rxmarket.upbit).parameters) == {"config", "overrides"}


def test_to_async_iter_has_the_contract_defaults_and_policies() -> None:
    """``rxmarket.to_async_iter(observable, maxsize=1024, overflow="error")`` with the four policies."""
    params = inspect.signature(rxmarket.to_async_iter).parameters
    assert params["maxsize"].default == 1024
    assert params["overflow"].default == "error"
    from rxmarket.aio import OVERFLOW_POLICIES

    assert set(OVERFLOW_POLICIES) == {"error", "drop_oldest", "drop_newest", "latest"}


def test_simulator_and_its_faults_are_importable() -> None:
    """``rxmarket.sim.UpbitSimulator`` exists with the contract's faults and URLs."""
    sim = rxmarket.sim.UpbitSimulator(markets=3, seed=7, port=0)
    assert isinstance(inspect.getattr_static(type(sim), "rest_url"), property)
    assert isinstance(inspect.getattr_static(type(sim), "ws_url"), property)
    for fault in ("disconnect", "silence", "refuse", "rate_limit", "corrupt"):
        assert callable(getattr(sim.faults, fault)), fault


def test_protocol_decoders_exist() -> None:
    """``rxmarket.exchanges.upbit.protocol.decode_ws`` / ``decode_rest`` decode real Upbit payloads."""
    tickers = protocol.decode_rest("ticker", (DATA / "rest_ticker.json").read_bytes())
    assert tickers
    assert all(isinstance(t, rxmarket.Ticker) and t.source == "rest" for t in tickers)
    frame = (DATA / "ws_stream_default.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert isinstance(protocol.decode_ws(frame), rxmarket.Ticker | rxmarket.Trade | rxmarket.Orderbook)
    with pytest.raises(rxmarket.ProtocolError):
        protocol.decode_ws(b"not json")


CONTRACT_FIELDS = {
    rxmarket.Ticker: ("symbol", "price", "open", "high", "low", "prev_close", "change", "change_price",
                      "change_rate", "volume_24h", "value_24h", "timestamp", "source"),
    rxmarket.Orderbook: ("symbol", "timestamp", "total_ask_size", "total_bid_size", "source"),
    rxmarket.Trade: ("symbol", "price", "volume", "timestamp", "sequential_id", "source"),
    rxmarket.Candle: ("symbol", "unit", "start", "open", "high", "low", "close", "volume", "value", "source"),
    rxmarket.OrderbookLevel: ("price", "size"),
}
CONTRACT_PROPERTIES = {
    rxmarket.Orderbook: ("asks", "bids", "best_bid", "best_ask", "spread", "mid"),
    rxmarket.Trade: ("side",),
}


@pytest.mark.parametrize("model", list(CONTRACT_FIELDS), ids=lambda m: m.__name__)
def test_models_have_their_contract_fields(model: type[msgspec.Struct]) -> None:
    """Each model is a frozen Struct with DESIGN.md's fields (and derived properties)."""
    assert set(CONTRACT_FIELDS[model]) <= set(model.__struct_fields__)
    assert model.__struct_config__.frozen
    for name in CONTRACT_PROPERTIES.get(model, ()):
        assert isinstance(inspect.getattr_static(model, name), property), name


ERRORS = ("RxMarketError", "ProtocolError", "ExchangeRejected", "NotFound", "RateLimited", "Banned",
          "ServerError", "TransportError", "GaveUp", "CircuitOpen", "ValidationError", "StaleFeed",
          "BufferOverflow", "ConfigError")


@pytest.mark.parametrize("name", ERRORS)
def test_error_classes_are_exported_under_one_root(name: str) -> None:
    """The error tree is public and rooted at ``RxMarketError``."""
    cls = getattr(rxmarket, name)
    assert issubclass(cls, rxmarket.RxMarketError)
    assert name in rxmarket.__all__


def test_errors_carry_their_contract_attributes() -> None:
    """``RateLimited.retry_after``, ``Banned.until``/``duration``; ``ConfigError`` is a ``ValueError``."""
    assert rxmarket.RateLimited(1.5).retry_after == 1.5
    banned = rxmarket.Banned(until=100.0, duration=30.0)
    assert (banned.until, banned.duration) == (100.0, 30.0)
    assert issubclass(rxmarket.ConfigError, ValueError)

"""rxmarket: live exchange market data (Upbit first) as ReactiveX streams of typed models."""

from rxmarket.errors import (
    Banned,
    BufferOverflow,
    CircuitOpen,
    ConfigError,
    ExchangeError,
    ExchangeRejected,
    GaveUp,
    NotFound,
    ProtocolError,
    RateLimited,
    RxMarketError,
    ServerError,
    StaleFeed,
    TransportError,
    ValidationError,
)
from rxmarket.models import Candle, Market, Orderbook, OrderbookLevel, OrderbookUnit, Status, Ticker, Trade

__version__ = "0.1.0"

__all__ = [
    "Banned",
    "BufferOverflow",
    "Candle",
    "CircuitOpen",
    "ConfigError",
    "ExchangeError",
    "ExchangeRejected",
    "GaveUp",
    "Market",
    "NotFound",
    "Orderbook",
    "OrderbookLevel",
    "OrderbookUnit",
    "ProtocolError",
    "RateLimited",
    "RxMarketError",
    "ServerError",
    "StaleFeed",
    "Status",
    "Ticker",
    "Trade",
    "TransportError",
    "ValidationError",
    "__version__",
]

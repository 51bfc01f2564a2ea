"""rxmarket: live exchange market data (Upbit first) as ReactiveX streams of typed models.

::

    import rxmarket
    from rxmarket import ops

    async with rxmarket.upbit() as market:
        market.ticker(["KRW-BTC"]).subscribe(print)
        print(await market.get_ticker("KRW-ETH"))
"""

from rxmarket import operators, ops
from rxmarket.aio import from_async_iter, to_async_iter
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
    StorageError,
    TransportError,
    ValidationError,
)
from rxmarket.market import MarketConfig, MarketData, MarketStats, upbit
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
    "MarketConfig",
    "MarketData",
    "MarketStats",
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
    "StorageError",
    "Ticker",
    "Trade",
    "TransportError",
    "ValidationError",
    "__version__",
    "from_async_iter",
    "operators",
    "ops",
    "to_async_iter",
    "upbit",
]

"""The Upbit adapter.

Streaming: :class:`UpbitSource` (hot shared Observables per channel and market, reconnects, gap fill,
status) and :mod:`~rxmarket.exchanges.upbit.history` (REST history with paging).

Sans-I/O parts:

* :mod:`~rxmarket.exchanges.upbit.protocol`: WebSocket frames and REST bodies -> models; subscribe
  frames; ``Remaining-Req``; HTTP errors -> typed errors.
* :mod:`~rxmarket.exchanges.upbit.endpoints`: REST paths, queries and rate-limit groups.

Usage::

    from rxmarket.exchanges.upbit import protocol
    ticker = protocol.decode_ws(frame)
"""

from rxmarket.exchanges.upbit import endpoints, history, protocol
from rxmarket.exchanges.upbit.endpoints import REST_URL, WS_URL, RestRequest
from rxmarket.exchanges.upbit.protocol import (
    DEFAULT_CONFIG,
    KEEPALIVE,
    KeepAlive,
    OrderbookInstrument,
    RemainingReq,
    Subscription,
    SubscriptionInfo,
    SubscriptionList,
    UpbitProtocolConfig,
    WsMessage,
    build_list_subscriptions,
    build_subscribe,
    decode_rest,
    decode_ws,
    decode_ws_many,
    decoder_for,
    error_from_response,
    parse_remaining_req,
)
from rxmarket.exchanges.upbit.source import SourceConfig, SourceStats, UpbitSource

__all__ = [
    "DEFAULT_CONFIG",
    "KEEPALIVE",
    "REST_URL",
    "WS_URL",
    "KeepAlive",
    "OrderbookInstrument",
    "RemainingReq",
    "RestRequest",
    "SourceConfig",
    "SourceStats",
    "Subscription",
    "SubscriptionInfo",
    "SubscriptionList",
    "UpbitProtocolConfig",
    "UpbitSource",
    "WsMessage",
    "build_list_subscriptions",
    "build_subscribe",
    "decode_rest",
    "decode_ws",
    "decode_ws_many",
    "decoder_for",
    "endpoints",
    "error_from_response",
    "history",
    "parse_remaining_req",
    "protocol",
]

"""Exchange-agnostic I/O: WebSocket connections that stay up, and paced HTTP GETs.

This layer moves bytes and reports events. It knows no exchange and no Rx: decoding frames and bodies is
the protocol layer's job, and turning frames into Observables is the sources' job.

* :class:`ReconnectingWebSocket`: one logical connection that reconnects with backoff, re-sends its
  subscription, pings, replaces idle links, paces its messages and reports :class:`WsEvent`.
* :class:`WsClient` / :class:`WsConn`: the seam to a WebSocket library, with two implementations,
  :class:`AiohttpWsClient` (default) and :class:`WebsocketsWsClient`.
* :class:`HttpClient`: GET on one aiohttp session, paced per rate-limit group, errors mapped by a
  caller-supplied ``error_mapper``.
"""

from rxmarket.transport._ws_aiohttp import AiohttpWsClient, AiohttpWsConn
from rxmarket.transport._ws_websockets import WebsocketsWsClient, WebsocketsWsConn
from rxmarket.transport.http import ErrorMapper, HttpClient, HttpResponse, RemainingReader, status_error
from rxmarket.transport.ws import (
    UPBIT_MESSAGE_LIMITS,
    ReconnectingWebSocket,
    WsClient,
    WsConn,
    WsData,
    WsEvent,
    WsEventKind,
    WsStats,
)

__all__ = [
    "UPBIT_MESSAGE_LIMITS",
    "AiohttpWsClient",
    "AiohttpWsConn",
    "ErrorMapper",
    "HttpClient",
    "HttpResponse",
    "ReconnectingWebSocket",
    "RemainingReader",
    "WebsocketsWsClient",
    "WebsocketsWsConn",
    "WsClient",
    "WsConn",
    "WsData",
    "WsEvent",
    "WsEventKind",
    "WsStats",
    "status_error",
]

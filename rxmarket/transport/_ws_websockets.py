"""The WebSocket client on the ``websockets`` library (its asyncio implementation).

An alternative to the aiohttp client with the same behaviour; both pass the same test suite. Every
``websockets`` error becomes a :class:`~rxmarket.errors.TransportError` here (``raise ... from exc``); a
refused upgrade carries its HTTP ``status`` and ``headers`` on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.protocol import State

from rxmarket.errors import ConfigError, TransportError

__all__ = ["WebsocketsWsClient", "WebsocketsWsConn"]

_MAX_MESSAGE = 4 * 1024 * 1024
_MAX_QUEUE = 64  # frames buffered before websockets stops reading the socket (TCP backpressure)


def _closed_error(url: str, exc: ConnectionClosed) -> TransportError:
    error = TransportError(f"WebSocket {url} closed: {exc}")
    error.__cause__ = exc
    return error


class WebsocketsWsConn:
    """One open WebSocket connection made by :class:`WebsocketsWsClient`."""

    __slots__ = ("_ws", "url")

    def __init__(self, ws: ClientConnection, url: str) -> None:
        self._ws = ws
        self.url = url

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed."""
        return self._ws.state is not State.OPEN

    async def recv(self) -> bytes | str:
        """The next data frame (``bytes`` for binary frames, ``str`` for text frames).

        Raises:
            TransportError: when the connection closed (cleanly or not) or failed.
        """
        try:
            return await self._ws.recv()
        except ConnectionClosed as exc:
            raise _closed_error(self.url, exc) from exc

    async def send(self, data: bytes | str) -> None:
        """Send one text (``str``) or binary (``bytes``) frame.

        Raises:
            TransportError: when the connection is closed or the write fails.
        """
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise _closed_error(self.url, exc) from exc
        except OSError as exc:
            raise TransportError(f"cannot send on WebSocket {self.url}: {exc!r}") from exc

    async def ping(self) -> None:
        """Send a protocol ping (its pong is awaited by the library's keepalive, not here).

        Raises:
            TransportError: when the connection is closed.
        """
        try:
            await self._ws.ping()
        except ConnectionClosed as exc:
            raise _closed_error(self.url, exc) from exc

    async def close(self) -> None:
        """Close with code 1000, waiting at most the client's ``close_timeout`` for the peer's answer."""
        try:
            await self._ws.close()
        except OSError as exc:  # a broken link is as closed as it gets
            del exc
        except asyncio.CancelledError:
            # websockets leaves the socket open when its close handshake is cut short (the owner shutting
            # down while the peer is silent): drop it here, as aiohttp does, or it leaks.
            self._ws.transport.abort()
            raise


class WebsocketsWsClient:
    """Opens WebSocket connections with ``websockets.asyncio.client.connect``.

    Args:
        max_message: the largest frame accepted, in bytes.
        proxy: passed to ``websockets`` (``None``: connect directly, like the aiohttp client does by
            default; ``True``: follow the proxy environment variables).
    """

    def __init__(self, *, max_message: int = _MAX_MESSAGE, proxy: str | bool | None = None) -> None:
        self._max_message = max_message
        self._proxy: str | bool | None = proxy

    async def connect(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        ping_interval: float | None = 20.0,
        compress: bool = True,
        open_timeout: float | None = 10.0,
        close_timeout: float = 2.0,
    ) -> WebsocketsWsConn:
        """Open a WebSocket connection; arguments as :meth:`AiohttpWsClient.connect`.

        A pong missing for half of ``ping_interval`` drops the link, as with aiohttp's heartbeat.

        Raises:
            TransportError: refused, reset, timed out, or an upgrade answered with another status (then
                with that ``status`` and the answer's ``headers``).
            ConfigError: a URL that cannot be a WebSocket URL.
        """
        try:
            ws = await ws_connect(
                url,
                additional_headers=dict(headers) if headers else None,
                compression="deflate" if compress else None,
                open_timeout=open_timeout,
                ping_interval=ping_interval,
                ping_timeout=ping_interval / 2 if ping_interval is not None else None,
                close_timeout=close_timeout,
                max_size=self._max_message,
                max_queue=_MAX_QUEUE,
                proxy=True if self._proxy is True else (self._proxy or None),
            )
        except (InvalidURI, ValueError) as exc:  # urllib's ValueError: a port out of range, a bad IPv6 host
            raise ConfigError(f"not a WebSocket URL: {url!r} ({exc})") from exc
        except InvalidStatus as exc:
            # InvalidStatus is raised for any status but 101: the server refused (429, 418, 5xx ...).
            response = exc.response
            status = response.status_code
            raise TransportError(
                f"{url} did not accept the WebSocket upgrade: HTTP {status} {response.reason_phrase}",
                status=status,
                headers=response.headers,
            ) from exc
        except TimeoutError as exc:
            raise TransportError(f"no WebSocket connection to {url} within {open_timeout}s") from exc
        except (WebSocketException, OSError) as exc:
            raise TransportError(f"cannot connect to {url}: {exc!r}") from exc
        return WebsocketsWsConn(ws, url)

    async def close(self) -> None:
        """Nothing to release: each connection owns its socket. Present for the :class:`WsClient` shape."""

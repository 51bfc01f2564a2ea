"""The WebSocket client on aiohttp (``ClientSession.ws_connect``): the default implementation.

Every aiohttp error becomes a :class:`~rxmarket.errors.TransportError` here (``raise ... from exc``), so the
layers above see one error type whichever library moves the bytes; a refused upgrade carries its HTTP
``status`` and ``headers`` on it. Frames come back as aiohttp hands them over: ``bytes`` for binary frames
(Upbit sends only those), ``str`` for text frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
from aiohttp import ClientWSTimeout, WSMsgType

from rxmarket.errors import ConfigError, TransportError

__all__ = ["AiohttpWsClient", "AiohttpWsConn"]

_BINARY = WSMsgType.BINARY
_TEXT = WSMsgType.TEXT
_DEFLATE_WINDOW_BITS = 15  # aiohttp's "compress" is the deflate window size; 0 turns it off
_MAX_MESSAGE = 4 * 1024 * 1024


class AiohttpWsConn:
    """One open WebSocket connection made by :class:`AiohttpWsClient`."""

    __slots__ = ("_ws", "url")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, url: str) -> None:
        self._ws = ws
        self.url = url

    @property
    def closed(self) -> bool:
        """True once the connection is closed or closing."""
        return self._ws.closed

    async def recv(self) -> bytes | str:
        """The next data frame.

        Raises:
            TransportError: when the connection closed (cleanly or not) or failed.
        """
        msg = await self._ws.receive()
        kind = msg.type
        if kind is _BINARY or kind is _TEXT:
            return msg.data  # type: ignore[no-any-return]  # bytes for BINARY, str for TEXT
        raise self._closed_error(msg)

    def _closed_error(self, msg: aiohttp.WSMessage) -> TransportError:
        ws = self._ws
        if msg.type is WSMsgType.ERROR:
            cause = msg.data if isinstance(msg.data, BaseException) else None
            error = TransportError(f"WebSocket {self.url} failed: {msg.data!r}")
            error.__cause__ = cause
            return error
        cause = ws.exception()
        detail = f" ({cause!r})" if cause is not None else ""
        reason = f": {msg.extra}" if msg.type is WSMsgType.CLOSE and msg.extra else ""
        error = TransportError(f"WebSocket {self.url} closed with code {ws.close_code}{reason}{detail}")
        error.__cause__ = cause
        return error

    async def send(self, data: bytes | str) -> None:
        """Send one text (``str``) or binary (``bytes``) frame.

        Raises:
            TransportError: when the connection is closed or the write fails.
        """
        try:
            if isinstance(data, str):
                await self._ws.send_str(data)
            else:
                await self._ws.send_bytes(data)
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            raise TransportError(f"cannot send on WebSocket {self.url}: {exc!r}") from exc

    async def ping(self) -> None:
        """Send a protocol ping (aiohttp answers pongs and watches the heartbeat itself).

        Raises:
            TransportError: when the connection is closed or the write fails.
        """
        try:
            await self._ws.ping()
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            raise TransportError(f"cannot ping WebSocket {self.url}: {exc!r}") from exc

    async def close(self) -> None:
        """Close with code 1000, waiting at most the client's ``close_timeout`` for the peer's answer.

        Never raises for a link that is already broken: closing it is then already done.
        """
        try:
            await self._ws.close()
        except (aiohttp.ClientError, OSError) as exc:  # a broken link is as closed as it gets
            del exc


class AiohttpWsClient:
    """Opens WebSocket connections on one shared :class:`aiohttp.ClientSession`.

    One client can serve many connections (and many :class:`~rxmarket.transport.ReconnectingWebSocket`).

    Args:
        session: a session to use (then owned by the caller); by default one is created at the first
            connect and closed by :meth:`close`.
        max_message: the largest frame accepted, in bytes.
    """

    def __init__(
        self, session: aiohttp.ClientSession | None = None, *, max_message: int = _MAX_MESSAGE
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._max_message = max_message

    @property
    def closed(self) -> bool:
        """True when the client holds no open session (none made yet, or closed)."""
        return self._session is None or self._session.closed

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            if not self._owns_session:
                raise TransportError("the aiohttp session given to AiohttpWsClient is closed")
            # No total timeout: a WebSocket lives as long as it lives; connects are bounded per call.
            session = self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return session

    async def connect(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        ping_interval: float | None = 20.0,
        compress: bool = True,
        open_timeout: float | None = 10.0,
        close_timeout: float = 2.0,
    ) -> AiohttpWsConn:
        """Open a WebSocket connection.

        Args:
            url: ``ws://`` or ``wss://`` URL.
            headers: extra request headers for the upgrade request.
            ping_interval: seconds between protocol pings (aiohttp ``heartbeat``); a pong missing for half
                of that drops the link. ``None`` turns pings off.
            compress: offer permessage-deflate.
            open_timeout: the most seconds to wait for the upgrade to complete.
            close_timeout: the most seconds :meth:`AiohttpWsConn.close` waits for the peer.

        Returns:
            The open connection.

        Raises:
            TransportError: refused, reset, timed out, or an upgrade answered with another status (then
                with that ``status`` and the answer's ``headers``).
            ConfigError: a URL that cannot be a WebSocket URL.
        """
        session = self._get_session()
        try:
            async with asyncio.timeout(open_timeout):
                ws = await session.ws_connect(
                    url,
                    headers=dict(headers) if headers else None,
                    heartbeat=ping_interval,
                    compress=_DEFLATE_WINDOW_BITS if compress else 0,
                    timeout=ClientWSTimeout(ws_receive=None, ws_close=close_timeout),
                    autoping=True,
                    max_msg_size=self._max_message,
                )
        except TimeoutError as exc:
            raise TransportError(f"no WebSocket connection to {url} within {open_timeout}s") from exc
        except aiohttp.WSServerHandshakeError as exc:
            # A status other than 101 is the server refusing (429, 418, 5xx ...): carry it and its headers.
            # A 101 with a broken handshake (bad Upgrade/Accept header) is a protocol failure, not a refusal.
            refused = exc.status != 101
            raise TransportError(
                f"{url} did not accept the WebSocket upgrade: HTTP {exc.status} {exc.message}",
                status=exc.status if refused else None,
                headers=exc.headers if refused and exc.headers is not None else None,
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise ConfigError(f"not a WebSocket URL: {url!r}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"cannot connect to {url}: {exc!r}") from exc
        return AiohttpWsConn(ws, url)

    async def close(self) -> None:
        """Close the session if this client created it. Idempotent."""
        session = self._session
        if session is not None and self._owns_session:
            self._session = None
            await session.close()

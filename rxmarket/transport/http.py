"""HTTP transport: GET requests on one aiohttp session, paced per rate-limit group.

:class:`HttpClient` knows no exchange. What an answer *means* is the caller's business, given as two
callbacks:

* ``error_mapper(status, body, headers) -> Exception | None``: the error an answer stands for (the Upbit
  layer passes ``protocol.error_from_response``); the client raises it. The default,
  :func:`status_error`, maps statuses generically (429, 404, other 4xx, 5xx).
* ``remaining(headers) -> int | None``: how many requests the server says are left in its current window
  for the request's group (Upbit: ``sec=`` of ``Remaining-Req``), fed to the limiter.

Pacing: before each request the client books a slot of the request's group in a
:class:`~rxmarket.policy.ratelimit.RateLimiter` and sleeps until then (with the injectable ``sleep``). The
server counts a request when it arrives, the client when it sends, so the limiter spaces windows by a
small ``margin`` and, when the server says nothing is left (``remaining == 0``), holds the group back
until that server window has surely passed. A :class:`~rxmarket.errors.RateLimited` answer holds the
group back for its ``retry_after``; a :class:`~rxmarket.errors.Banned` answer holds every group back for
the ban's length.

Errors: refused or reset connections and timeouts become :class:`~rxmarket.errors.TransportError`
(``raise ... from exc``); nothing from aiohttp leaks out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

import aiohttp

from rxmarket.errors import (
    Banned,
    ConfigError,
    ExchangeRejected,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    excerpt,
)
from rxmarket.policy.ratelimit import RateLimiter

__all__ = ["ErrorMapper", "HttpClient", "HttpResponse", "RemainingReader", "status_error"]

ErrorMapper = Callable[[int, bytes, Mapping[str, str]], Exception | None]
"""``(status, body, headers) -> error or None``: the error an answer stands for."""

RemainingReader = Callable[[Mapping[str, str]], int | None]
"""``headers -> requests left in the server's current window for this group, or None if unknown``."""

Params = Mapping[str, str | int | float]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP answer, fully read.

    Attributes:
        status: the HTTP status code.
        headers: the response headers (case-insensitive lookups).
        body: the raw body.
        url: the URL that was requested, query included.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


def status_error(status: int, body: bytes, headers: Mapping[str, str]) -> Exception | None:
    """The default error mapper: generic HTTP semantics, no exchange knowledge.

    * 2xx/3xx: no error;
    * 429: :class:`RateLimited` with ``retry_after`` from a numeric ``Retry-After`` header (else 1 s);
    * 404: :class:`NotFound`; other 4xx: :class:`ExchangeRejected`;
    * 5xx: :class:`ServerError`.
    """
    if status < 400:
        return None
    detail = excerpt(body)
    if status == 429:
        retry_after = 1.0
        raw = headers.get("Retry-After")
        if raw is not None:
            with contextlib.suppress(ValueError):  # an HTTP date: too rare on APIs to be worth parsing
                retry_after = max(float(raw), 0.0)
        return RateLimited(retry_after, detail=detail)
    if status >= 500:
        return ServerError(status, detail)
    if status == 404:
        return NotFound(status, detail, status)
    return ExchangeRejected(status, detail, status)


class HttpClient:
    """GET requests on one lazily created :class:`aiohttp.ClientSession`, paced per group.

    Args:
        base_url: prefixed to every path (e.g. ``"https://api.upbit.com/v1"``).
        timeout: seconds for a whole request, and for each read.
        connect_timeout: seconds to establish a connection.
        limiter: the per-group rate limiter (default: 10 requests per second per group, 50 ms margin).
        error_mapper: turns an answer into an error to raise (default :func:`status_error`; ``None``
            returns every answer as it is).
        remaining: reads the server's remaining-requests count from the headers, or ``None``.
        headers: headers sent with every request.
        sleep: awaited for pacing waits (inject a fake to test pacing without waiting).
        clock: the time source of the limiter (default: the running loop's ``time``).
        session: a session to use (owned by the caller; ``timeout`` and ``headers`` still apply to each
            request); by default one is created on first use and closed by :meth:`close`.

    Raises:
        ConfigError: on a non-positive timeout.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        limiter: RateLimiter | None = None,
        error_mapper: ErrorMapper | None = status_error,
        remaining: RemainingReader | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {value!r}")
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter if limiter is not None else RateLimiter()
        self._timeout = aiohttp.ClientTimeout(
            total=timeout, connect=connect_timeout, sock_connect=connect_timeout, sock_read=timeout
        )
        self._error_mapper = error_mapper
        self._remaining = remaining
        self._headers = dict(headers) if headers else None
        self._sleep = sleep
        self._clock = clock
        self._session = session
        self._owns_session = session is None
        self._closed = False

    def _now(self) -> float:
        clock = self._clock
        return clock() if clock is not None else asyncio.get_running_loop().time()

    @property
    def closed(self) -> bool:
        """Whether requests can no longer be sent: :meth:`close` ran, or the caller closed its session."""
        return self._closed or (self._session is not None and self._session.closed)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise TransportError("HttpClient is closed")
        session = self._session
        if session is None:
            # Timeout and headers go with each request (in get()), so that a caller's session gets them too.
            session = self._session = aiohttp.ClientSession()
        elif session.closed:  # the caller closed its own session
            raise TransportError("the aiohttp session given to HttpClient is closed")
        return session

    def url_for(self, path: str) -> str:
        """The absolute URL of ``path`` (an absolute URL is returned unchanged)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    async def get(self, path: str, params: Params | None = None, *, group: str = "default") -> HttpResponse:
        """GET ``path`` with query ``params``, after waiting for a slot of ``group``.

        Args:
            path: relative to ``base_url`` (or an absolute URL).
            params: query parameters; values are sent as given (join lists yourself, e.g. ``"A,B"``).
            group: the rate-limit group the request counts against.

        Returns:
            The answer, when the error mapper found no error in it.

        Raises:
            TransportError: the connection failed, was reset or timed out, or the client (or the caller's
                session) is closed.
            ConfigError: a query parameter of another type (e.g. ``bool``).
            Exception: whatever ``error_mapper`` returns for the answer (e.g. ``RateLimited``).
        """
        self._get_session()  # a closed client fails before it books a slot
        await self._pace(group)
        # Taken again after the wait: close() may have run meanwhile, and a closed aiohttp session would
        # raise its own RuntimeError instead of our TransportError.
        session = self._get_session()
        sent = self._now()
        url = self.url_for(path)
        try:
            async with session.get(url, params=params, headers=self._headers, timeout=self._timeout) as resp:
                body = await resp.read()
                response = HttpResponse(resp.status, resp.headers, body, str(resp.url))
        except TimeoutError as exc:
            raise TransportError(f"GET {url}: no complete answer within the timeout ({exc!r})") from exc
        except TypeError as exc:  # aiohttp refuses query values other than str, int and float
            raise ConfigError(f"GET {url}: query parameters must be str, int or float: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"GET {url} failed: {exc!r}") from exc
        self._after(group, response, sent)
        return response

    async def _pace(self, group: str) -> None:
        wait = self.limiter.acquire(group, self._now())
        if wait > 0:
            await self._sleep(wait)
            # A hold (a 429, or a full server window) may have come for the group while this request
            # slept on its slot, and another while it waited that one out.
            while (extra := self.limiter.blocked_for(group, self._now())) > 0:
                await self._sleep(extra)

    def _after(self, group: str, response: HttpResponse, sent: float) -> None:
        mapper = self._error_mapper
        error = mapper(response.status, response.body, response.headers) if mapper is not None else None
        if self._remaining is not None:
            left = self._remaining(response.headers)
            if left is not None:
                # A refused request does not count in the server's window: only counted ones say when
                # the window's requests arrived.
                counted = not isinstance(error, RateLimited | Banned)
                self.limiter.observe(group, left, self._now(), sent=sent if counted else None)
        if error is None:
            return
        if isinstance(error, RateLimited):
            self.limiter.penalise(group, error.retry_after, self._now())
        elif isinstance(error, Banned):
            self.limiter.penalise(None, error.duration, self._now())  # a ban covers every group
        raise error

    async def close(self) -> None:
        """Close the session if this client created it; later requests fail. Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

"""The one exception tree of rxmarket.

Everything the library raises on purpose derives from :class:`RxMarketError`. Faults of the exchange or
the network (things a retry may cure) and faults of the caller (a bad argument: fix the call) are different
branches, so ``retry_if`` predicates and ``except`` clauses can tell them apart::

    RxMarketError
    ├── ExchangeError                 the exchange or the link misbehaved
    │   ├── ProtocolError             bytes we could not decode (.excerpt)
    │   ├── ExchangeRejected          an error frame / error body (.name, .status)
    │   │   └── NotFound              404: unknown market or path
    │   ├── RateLimited               429 / "too many requests" (.retry_after, s)
    │   ├── Banned                    418: blocked until .until (epoch s)
    │   ├── ServerError               5xx
    │   └── TransportError            connect/read failure, timeout, dropped socket, refused
    │       │                         WebSocket upgrade (.status, .headers)
    │       └── GaveUp                too many failures in a window; terminal
    ├── CircuitOpen                   a breaker is open (.retry_at, epoch s or scheduler time)
    ├── ValidationError               an item failed a check (.reason, .item)
    ├── StaleFeed                     a stream went silent (.symbol, .silent_for)
    ├── BufferOverflow                a bounded buffer was full under overflow="error"
    ├── StorageError (also OSError)   the file system refused part of a recording (.errno)
    └── ConfigError (also ValueError) a bad argument: the caller must change the call

Every message says what was received and what was expected, so a person can act on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "Banned",
    "BufferOverflow",
    "CircuitOpen",
    "ConfigError",
    "ExchangeError",
    "ExchangeRejected",
    "GaveUp",
    "NotFound",
    "ProtocolError",
    "RateLimited",
    "RxMarketError",
    "ServerError",
    "StaleFeed",
    "StorageError",
    "TransportError",
    "ValidationError",
    "excerpt",
]

_EXCERPT = 120
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def excerpt(data: bytes | str | memoryview | Any, limit: int = _EXCERPT) -> str:
    """A short, printable excerpt of ``data`` for error messages (never raises)."""
    try:
        if isinstance(data, memoryview):
            data = data.tobytes()
        if isinstance(data, bytes | bytearray):
            text = bytes(data[: limit + 1]).decode("utf-8", "replace")
        else:
            text = str(data)[: limit + 1]
    except Exception:  # an excerpt must never hide the original error
        return "<unprintable>"
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "…"


class RxMarketError(Exception):
    """Base of every error rxmarket raises on purpose."""


class ExchangeError(RxMarketError):
    """The exchange, or the link to it, did something we did not ask for."""


class ProtocolError(ExchangeError):
    """A frame or body that does not decode to a known message.

    Attributes:
        excerpt: the first ~120 characters of what was received.
    """

    def __init__(self, message: str, data: Any = None) -> None:
        self.excerpt = "" if data is None else excerpt(data)
        super().__init__(f"{message} (received: {self.excerpt!r})" if data is not None else message)


class ExchangeRejected(ExchangeError):
    """The exchange answered with an error frame or error body.

    Attributes:
        name: Upbit's error name (``"NO_TICKET"``, ``"INVALID_PARAM"``, ``404`` ...), as sent.
        status: the HTTP status, or ``None`` for a WebSocket error frame.
        error_message: the exchange's own message (language varies; never match on it).
    """

    def __init__(self, name: str | int, error_message: str, status: int | None = None) -> None:
        self.name = name
        self.status = status
        self.error_message = error_message
        where = f"HTTP {status}" if status is not None else "WebSocket error frame"
        super().__init__(f"exchange rejected the request ({where}): {name}: {error_message}")


class NotFound(ExchangeRejected):
    """404: an unknown market code (Upbit fails the whole call if one code is unknown) or path."""


class RateLimited(ExchangeError):
    """The exchange said "too many requests" (HTTP 429 or the WebSocket equivalent).

    Attributes:
        retry_after: seconds to wait before the next request (a floor for any retry).
        group: the rate-limit group, when known (``"ticker"``, ``"candles"``, ...).
    """

    def __init__(self, retry_after: float, group: str | None = None, detail: str = "") -> None:
        self.retry_after = float(retry_after)
        self.group = group
        where = f" for group {group!r}" if group else ""
        more = f": {detail}" if detail else ""
        super().__init__(f"rate limited{where}; retry after {self.retry_after:.3g}s{more}")


class Banned(ExchangeError):
    """HTTP 418: the exchange blocked this client until ``until`` (seconds since the epoch).

    Attributes:
        until: when the block ends (epoch seconds).
        duration: the block's length in seconds, as stated by the exchange or assumed.
    """

    def __init__(self, until: float, duration: float, detail: str = "") -> None:
        self.until = float(until)
        self.duration = float(duration)
        more = f": {detail}" if detail else ""
        super().__init__(f"blocked by the exchange for {self.duration:.3g}s (HTTP 418){more}")


class ServerError(ExchangeError):
    """A 5xx answer. Attributes: ``status``."""

    def __init__(self, status: int, detail: str = "") -> None:
        self.status = status
        super().__init__(f"server error HTTP {status}" + (f": {detail}" if detail else ""))


class TransportError(ExchangeError):
    """Connecting, reading or writing failed: refused, reset, timed out, dropped.

    A WebSocket upgrade the server answered with an HTTP status instead of ``101 Switching Protocols``
    carries that answer, so the layer above can tell "come back later" (429), "blocked" (418) and "down"
    (5xx) apart without knowing which WebSocket library was used.

    Args:
        message: what failed, for people.
        status: the HTTP status of a refused WebSocket upgrade.
        headers: the headers of that answer.

    Attributes:
        status: the HTTP status of a refused WebSocket upgrade (e.g. 429, 418, 503); ``None`` for every
            other failure (refused TCP connection, timeout, dropped link ...).
        headers: the headers of that answer (case-insensitive lookups, e.g. ``Retry-After``,
            ``Remaining-Req``); empty when ``status`` is ``None``.
    """

    status: int | None = None
    headers: Mapping[str, str] = _NO_HEADERS

    def __init__(
        self, message: str = "", *, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        # Set on the instance only when given: subclasses (GaveUp) keep the class defaults.
        if status is not None:
            self.status = status
        if headers is not None:
            self.headers = headers


class GaveUp(TransportError):
    """A connection failed too often within its window and will not be retried.

    Attributes:
        failures: how many failures were counted in the window.
        last_error: the last underlying error.
    """

    def __init__(self, failures: int, window: float, last_error: BaseException | None) -> None:
        self.failures = failures
        self.window = window
        self.last_error = last_error
        super().__init__(
            f"gave up after {failures} failures within {window:.3g}s; last error: {last_error!r}"
        )


class CircuitOpen(RxMarketError):
    """A circuit breaker is open and failing fast.

    Attributes:
        retry_at: when the breaker will let a trial through (scheduler time, seconds).
    """

    def __init__(self, retry_at: float, detail: str = "") -> None:
        self.retry_at = retry_at
        more = f": {detail}" if detail else ""
        super().__init__(f"circuit open until t={retry_at:.6g}s{more}")


class ValidationError(RxMarketError):
    """An item failed a consistency check.

    Attributes:
        reason: which check failed and why.
        item: the rejected item.
    """

    def __init__(self, reason: str, item: Any = None) -> None:
        self.reason = reason
        self.item = item
        shown = f" ({excerpt(repr(item))})" if item is not None else ""
        super().__init__(f"invalid item: {reason}{shown}")


class StaleFeed(RxMarketError):
    """A stream sent nothing for longer than its staleness limit.

    Attributes:
        symbol: the silent market (or ``None`` for a whole connection).
        silent_for: seconds without data.
    """

    def __init__(self, symbol: str | None, silent_for: float, limit: float) -> None:
        self.symbol = symbol
        self.silent_for = silent_for
        self.limit = limit
        what = symbol or "connection"
        super().__init__(f"{what} silent for {silent_for:.3g}s (limit {limit:.3g}s)")


class BufferOverflow(RxMarketError):
    """A bounded buffer was full and its policy was ``overflow="error"``.

    Attributes:
        maxsize: the buffer's capacity.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        super().__init__(
            f"consumer too slow: buffer of {maxsize} items is full; raise maxsize or choose "
            "overflow='drop_oldest' | 'drop_newest' | 'latest'"
        )


class StorageError(RxMarketError, OSError):
    """The file system refused part of a recording: disk full, quota, file too large, read-only, I/O error.

    It is also an ``OSError`` carrying the cause's ``errno`` and ``strerror`` (``except OSError`` still
    catches it, as it did the bare error before). The message says what failed and what became of the
    records: a writer that is still open keeps whatever it could not write and writes it with its next
    flush that succeeds, and leaves no half-written segment behind, so it (or a new writer) goes on once
    the cause is gone.

    Args:
        message: what failed, and what became of the records.
        cause: the ``OSError`` behind it (its ``errno`` and ``strerror`` are copied).
        filename: the file or directory concerned.

    Attributes:
        errno: the cause's error number (e.g. ``errno.ENOSPC``), or ``None``.
        strerror: the cause's description, or ``None``.
        filename: the file or directory concerned (``str``), or ``None``.
    """

    def __init__(
        self, message: str, cause: OSError | None = None, filename: str | Path | None = None
    ) -> None:
        super().__init__(message)
        if cause is not None:
            self.errno = cause.errno
            self.strerror = cause.strerror
        self.filename = None if filename is None else str(filename)

    def __str__(self) -> str:
        # OSError.__str__ would rebuild "[Errno N] strerror: filename" from the attributes set above.
        return str(self.args[0])


class ConfigError(RxMarketError, ValueError):
    """A bad argument: what was given and what is accepted. Fix the call; retrying will not help."""

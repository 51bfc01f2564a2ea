"""What the rest of rxmarket needs from an exchange adapter's sans-I/O half.

Kept minimal on purpose: the facade and the sources grow their own needs, and this Protocol grows with
them. :mod:`rxmarket.exchanges.upbit.protocol` (the module itself) satisfies it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Exchange"]


@runtime_checkable
class Exchange(Protocol):
    """Bytes in, models out: the decoding contract an exchange's protocol module fulfils."""

    def decode_ws(self, frame: bytes | str) -> Any:
        """One WebSocket frame -> one model or control message; ``ProtocolError`` otherwise."""
        ...

    def decode_rest(self, kind: str, body: bytes | str, *, status: int = 200, unit: str | None = None) -> Any:
        """One REST body -> a list of models; typed errors for error statuses and bodies."""
        ...

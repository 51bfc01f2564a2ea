"""Which connection carries which market: a pure placement plan.

Upbit allows few connections per IP (we use at most 5) and serves hundreds of codes on one of them, so
markets are *packed*: a market goes to the lowest-numbered connection that has room (fewer than
``codes_per_connection`` markets), a new connection is opened only when every open one is full, and once
``max_connections`` are open the least loaded one takes the overflow. All channels of one market share its
connection, so a market's ticker, trades and book arrive in one ordered stream and one reconnect (and one
gap fill) covers all of them.

Connections are numbered from 0 upwards over the plan's life and never reuse a number, so a status event's
``connection`` names one connection unambiguously.
"""

from __future__ import annotations

from rxmarket.errors import ConfigError

__all__ = ["ShardPlan"]


class ShardPlan:
    """Places markets on connections; counts the streams of each market so it knows when one leaves.

    Args:
        max_connections: the most connections open at once (>= 1).
        codes_per_connection: markets a connection takes before another one is opened (>= 1).

    Raises:
        ConfigError: either number below 1.
    """

    __slots__ = ("_conn_of", "_load", "_next_id", "_streams", "codes_per_connection", "max_connections")

    def __init__(self, max_connections: int, codes_per_connection: int) -> None:
        for name, value in (
            ("max_connections", max_connections),
            ("codes_per_connection", codes_per_connection),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        self.max_connections = max_connections
        self.codes_per_connection = codes_per_connection
        self._conn_of: dict[str, int] = {}  # market -> connection id
        self._streams: dict[str, int] = {}  # market -> streams placed
        self._load: dict[int, int] = {}  # open connection id -> markets on it (insertion order = id order)
        self._next_id = 0

    def place(self, symbol: str) -> tuple[int, bool]:
        """Place one more stream of ``symbol``.

        Returns:
            ``(connection id, opened)``: ``opened`` is ``True`` when the id is a new connection.
        """
        conn = self._conn_of.get(symbol)
        if conn is not None:
            self._streams[symbol] += 1
            return conn, False
        opened = False
        conn = self._pick()
        if conn is None:
            conn = self._next_id
            self._next_id += 1
            self._load[conn] = 0
            opened = True
        self._load[conn] += 1
        self._conn_of[symbol] = conn
        self._streams[symbol] = 1
        return conn, opened

    def release(self, symbol: str) -> tuple[int, bool]:
        """Remove one stream of ``symbol``.

        Returns:
            ``(connection id, emptied)``: ``emptied`` is ``True`` when the connection carries nothing more
            (the plan has forgotten it; the owner should close it).

        Raises:
            KeyError: ``symbol`` has no stream placed.
        """
        conn = self._conn_of[symbol]
        left = self._streams[symbol] - 1
        if left > 0:
            self._streams[symbol] = left
            return conn, False
        del self._streams[symbol]
        del self._conn_of[symbol]
        self._load[conn] -= 1
        if self._load[conn] == 0:
            del self._load[conn]
            return conn, True
        return conn, False

    def forget_connection(self, conn: int) -> list[str]:
        """Drop a connection and every market on it (it failed for good); return those markets."""
        symbols = [s for s, c in self._conn_of.items() if c == conn]
        for symbol in symbols:
            del self._conn_of[symbol]
            del self._streams[symbol]
        self._load.pop(conn, None)
        return symbols

    def connection_of(self, symbol: str) -> int | None:
        """The connection carrying ``symbol``, or ``None``."""
        return self._conn_of.get(symbol)

    def connections(self) -> dict[int, int]:
        """Open connection ids -> number of markets on each."""
        return dict(self._load)

    def _pick(self) -> int | None:
        """An open connection with room; the least loaded one when all are full and no more may open."""
        for conn, load in self._load.items():
            if load < self.codes_per_connection:
                return conn
        if len(self._load) < self.max_connections:
            return None
        return min(self._load, key=lambda c: (self._load[c], c))

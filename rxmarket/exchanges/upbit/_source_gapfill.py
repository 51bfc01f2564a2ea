"""Trade continuity across reconnects, as pure bookkeeping: dedupe by ``sequential_id``, hold, merge.

A trade stream remembers the ``sequential_id`` of its last few trades (a bounded window) and the newest
trade time it delivered. When its connection comes back after a drop, the stream *holds* live trades in a
buffer while the trades missed during the drop are fetched over REST; then :meth:`TradeLog.finish_fill`
gives the one sequence to deliver, oldest first::

    drop ........ reconnect ...... REST answer arrives
    live: t1 t2 |   (down)   | t5 t6 (held) ....... | t7 ...
    REST (newest first):         t6 t5 t4 t3 t2 ...
    delivered:  t1 t2                               t3 t4 t5 t6 | t7 ...
                                                    ^ missed (source="rest"), then held live ones

Rules, all by ``sequential_id`` (Upbit: unique per trade, *not* an ordering key, so order comes from the
exchange's own REST order, newest first, reversed):

* a trade whose id is in the window was delivered already: dropped and counted (this also drops the
  SNAPSHOT frame Upbit resends for each code after every (re)subscription);
* REST trades older than the newest trade delivered before the drop are not missed (they were delivered,
  or belong to a time before the stream started);
* held live trades that the REST answer also contained are delivered once, from REST.

Nothing here does I/O or reads a clock: the source calls :meth:`TradeLog.admit` for each live trade and
:meth:`TradeLog.finish_fill` with what REST returned.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rxmarket.errors import ConfigError
from rxmarket.models import Trade

__all__ = ["TradeLog", "missed_trades"]


def missed_trades(newest_first: Iterable[Trade], since: int, known: set[int]) -> list[Trade]:
    """The trades of a REST answer that a stream has not delivered, oldest first.

    Args:
        newest_first: REST trades as Upbit orders them, newest first (pages concatenated in order).
        since: the newest trade time (ms) the stream delivered before its link dropped; older trades are
            not missed. Trades *at* ``since`` are kept unless their id is known (several trades can share
            one millisecond).
        known: ids already delivered.

    Returns:
        The missed trades, oldest first, each once.
    """
    seen: set[int] = set()
    out: list[Trade] = []
    for trade in newest_first:
        sid = trade.sequential_id
        if trade.timestamp < since or sid in known or sid in seen:
            continue
        seen.add(sid)
        out.append(trade)
    out.reverse()
    return out


class TradeLog:
    """The memory of one trade stream: recent ids, the newest trade time, and the hold during a fill.

    Args:
        window: how many recent ``sequential_id`` values are remembered for dedupe (>= 1).
        hold_limit: the most live trades held during a fill; one more ends the hold (see
            :meth:`admit`).

    Raises:
        ConfigError: a window or hold limit below 1.
    """

    __slots__ = ("_ids", "duplicates", "held", "hold_limit", "holding", "ids", "last_ts", "window")

    def __init__(self, window: int = 64, hold_limit: int = 10_000) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"the trade dedupe window must be an integer >= 1, got {window!r}")
        if isinstance(hold_limit, bool) or not isinstance(hold_limit, int) or hold_limit < 1:
            raise ConfigError(f"the gap-fill hold limit must be an integer >= 1, got {hold_limit!r}")
        self.window = window
        self.hold_limit = hold_limit
        self._ids: deque[int] = deque()
        self.ids: set[int] = set()
        self.last_ts: int | None = None
        self.holding = False
        self.held: list[Trade] = []
        self.duplicates = 0

    def admit(self, trade: Trade) -> bool:
        """Decide about one live trade: ``True`` means deliver it now.

        Returns ``False`` for a duplicate (counted in :attr:`duplicates`) and for a trade held during a
        fill. When the hold is full (:attr:`hold_limit`), the trade is held anyway and ``False`` is
        returned; :attr:`overflowing` then tells the owner to finish the fill with what it has.
        """
        sid = trade.sequential_id
        ids = self.ids
        if sid in ids:
            self.duplicates += 1
            return False
        if self.holding:
            self.held.append(trade)
            return False
        self._remember(sid, trade.timestamp)
        return True

    @property
    def overflowing(self) -> bool:
        """Whether the hold reached its limit (the fill should end now)."""
        return len(self.held) >= self.hold_limit

    def begin_fill(self) -> int | None:
        """Start holding live trades; return the time REST must reach back to (``None``: nothing to fill).

        A stream that never delivered a trade has no point to fill from: it does not hold, and ``None``
        is returned. Calling it again while holding keeps the hold and returns the same time.
        """
        if self.last_ts is None:
            return None
        self.holding = True
        return self.last_ts

    def finish_fill(self, rest_newest_first: Iterable[Trade]) -> list[Trade]:
        """End the hold: the missed trades (oldest first) followed by the held live ones, each once.

        Args:
            rest_newest_first: what REST returned (may be empty when the fill failed: then only the
                held live trades come out).

        Returns:
            The trades to deliver, in order; every id is remembered as delivered.
        """
        since = self.last_ts if self.last_ts is not None else -1
        missed = missed_trades(rest_newest_first, since, self.ids)
        fetched = {t.sequential_id for t in missed}
        out: list[Trade] = []
        for trade in missed:
            self._remember(trade.sequential_id, trade.timestamp)
            out.append(trade)
        held, self.held = self.held, []
        self.holding = False
        for trade in held:
            sid = trade.sequential_id
            if sid in fetched or sid in self.ids:
                self.duplicates += 1
                continue
            self._remember(sid, trade.timestamp)
            out.append(trade)
        return out

    def _remember(self, sid: int, ts: int) -> None:
        ring = self._ids
        if len(ring) >= self.window:
            self.ids.discard(ring.popleft())
        ring.append(sid)
        self.ids.add(sid)
        last = self.last_ts
        if last is None or ts > last:
            self.last_ts = ts

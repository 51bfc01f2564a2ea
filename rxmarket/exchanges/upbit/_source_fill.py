"""Gap fills of the source's trade streams: after a reconnect, fetch what was missed, then go on.

The bookkeeping (which ids were delivered, what is held) is :class:`~._source_gapfill.TradeLog`'s; this
module runs the REST side. On a connection's ``reconnected`` event, each of its trade streams that has
delivered a trade starts holding live trades, and one task per stream pages ``/trades/ticks`` back to the
newest trade delivered before the drop (:func:`~.history.fetch_trades_since`). When it returns, the missed
trades (``source="rest"``), then the held live ones, are delivered, each once, and
``Status(kind="gap_filled", symbol, count)`` is published.

If the link drops again while a fill runs, the fill fetches again before delivering (the second gap lies
behind the first one's answer). REST failures are retried inside the rate limit (``gap_fill_retries``);
after that, and when ``gap_fill_max_pages`` pages did not reach back far enough, or more than
``gap_fill_hold`` live trades piled up, the fill ends with what it has and its status says
``incomplete: <why>``. A fill never sends an error to a subscriber.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from rxmarket.exchanges.upbit import history
from rxmarket.exchanges.upbit._source_config import SourceConfig
from rxmarket.exchanges.upbit._source_registry import Stream, TradeStream
from rxmarket.models import Status, Trade
from rxmarket.transport.http import HttpClient

__all__ = ["GapFiller"]


class GapFiller:
    """Runs and finishes the gap fills of one source.

    Args:
        config: the source's configuration (pages, page size, retries, hold limit).
        http: the REST client.
        publish: where ``gap_filled`` status events go.
        tasks: the source's task set (each fill task is kept there while it runs).

    Attributes:
        fills: fills finished.
        trades: trades recovered over REST.
        failures: fills that ended incomplete.
    """

    __slots__ = (
        "_config", "_http", "_publish", "_refill", "_running", "_tasks", "failures", "fills", "trades",
    )

    def __init__(
        self,
        *,
        config: SourceConfig,
        http: HttpClient,
        publish: Callable[[Status], None],
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self._config = config
        self._http = http
        self._publish = publish
        self._tasks = tasks
        self._running: dict[Stream, asyncio.Task[None]] = {}
        self._refill: set[Stream] = set()
        self.fills = 0
        self.trades = 0
        self.failures = 0

    def start(self, streams: Iterable[Stream]) -> None:
        """A connection is back: start a fill for each of ``streams`` that is a trade stream with a past."""
        loop = asyncio.get_running_loop()
        for stream in streams:
            if not isinstance(stream, TradeStream):
                continue
            since = stream.log.begin_fill()
            if since is None:
                continue  # never delivered a trade: no point to fill from
            running = self._running.get(stream)
            if running is not None and not running.done():
                self._refill.add(stream)  # dropped again while filling: fetch again before delivering
                continue
            task = loop.create_task(self._fill(stream, since), name=f"rxmarket-upbit-gapfill {stream.symbol}")
            self._running[stream] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def cancel(self, stream: Stream) -> None:
        """Forget ``stream``'s fill (it stopped): the task is cancelled, nothing is delivered."""
        task = self._running.pop(stream, None)
        if task is not None:
            task.cancel()
        self._refill.discard(stream)

    def overflow(self, stream: TradeStream) -> None:
        """Too many live trades held during a fill: stop waiting for REST and deliver what is held."""
        self.cancel(stream)
        self._finish(stream, [], f"incomplete: more than {self._config.gap_fill_hold} live trades held")

    async def _fill(self, stream: TradeStream, since: int) -> None:
        cfg = self._config
        error: BaseException | None = None
        complete = False
        found: list[Trade] = []
        while True:
            self._refill.discard(stream)
            try:
                found, complete = await history.fetch_trades_since(
                    self._http,
                    stream.symbol,
                    since,
                    max_pages=cfg.gap_fill_max_pages,
                    page_size=cfg.gap_fill_page_size,
                    retries=cfg.gap_fill_retries,
                    config=cfg.protocol,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # REST failed for good: deliver what is held, report the hole
                error, found, complete = exc, [], False
            if stream in self._refill and error is None:
                continue
            break
        if self._running.get(stream) is asyncio.current_task():
            del self._running[stream]
        if error is not None:
            detail = f"incomplete: {error}"
        elif not complete:
            detail = f"incomplete: {cfg.gap_fill_max_pages} pages did not reach back to the drop"
        else:
            detail = ""
        self._finish(stream, found, detail)

    def _finish(self, stream: TradeStream, found: list[Trade], detail: str) -> None:
        out = stream.log.finish_fill(found)
        recovered = sum(1 for t in out if t.source == "rest")
        self.fills += 1
        self.trades += recovered
        if detail:
            self.failures += 1
        stream.deliver(out)
        self._publish(
            Status(
                kind="gap_filled",
                timestamp=time.time(),
                connection=stream.conn,
                channel="trade",
                symbol=stream.symbol,
                count=recovered,
                detail=detail,
            )
        )

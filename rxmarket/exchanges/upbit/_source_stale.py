"""Per-stream staleness for the source: a periodic check that costs the hot path nothing.

Each stream counts the items it delivers (it has to, for ``stats()``). Every ``interval`` seconds the
watch compares each stream's count with the count it saw last time; a stream that moved is *touched* in a
:class:`~rxmarket.policy.liveness.StalenessTracker` (one per channel family, each with its own limit).
Then the trackers say which streams went quiet: ``Status(kind="stale", channel, symbol, delay=silent
seconds)``, once per episode, and ``Status(kind="live", channel, symbol, detail="moving again")`` when one
moves again. Resolution is one interval, which is plenty for limits of minutes.

The timer runs on the source's scheduler (an ``AsyncIOScheduler`` normally, a ``TestScheduler`` in tests)
only while there are streams to watch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from reactivex import abc

from rxmarket.exchanges.upbit._source_config import DEFAULT_STALENESS, SourceConfig
from rxmarket.exchanges.upbit._source_registry import Stream
from rxmarket.models import Status
from rxmarket.policy.liveness import StalenessTracker

__all__ = ["StaleWatch"]


class StaleWatch:
    """Watches streams for silence.

    Args:
        config: limits per channel and the check interval.
        scheduler: runs the periodic check.
        clock: the time, in seconds, on the scheduler's clock.
        publish: where status events go.
        streams: the streams to check (called at each check).

    Attributes:
        reported: stale episodes reported so far.
    """

    __slots__ = (
        "_clock", "_interval", "_publish", "_scheduler", "_streams", "_timer", "_trackers", "reported",
    )

    def __init__(
        self,
        *,
        config: SourceConfig,
        scheduler: abc.SchedulerBase,
        clock: Callable[[], float],
        publish: Callable[[Status], None],
        streams: Callable[[], Iterable[Stream]],
    ) -> None:
        self._trackers: dict[str, StalenessTracker[Stream]] = {
            family: StalenessTracker(limit)
            for family in DEFAULT_STALENESS
            if (limit := config.staleness_limit(family)) is not None
        }
        interval = config.stale_check_interval
        if interval is None and self._trackers:
            smallest = min(t.limit for t in self._trackers.values())
            interval = min(max(smallest / 4, 0.05), 5.0)
        self._interval = interval or 1.0
        self._scheduler = scheduler
        self._clock = clock
        self._publish = publish
        self._streams = streams
        self._timer: abc.DisposableBase | None = None
        self.reported = 0

    def add(self, stream: Stream) -> None:
        """Start watching ``stream`` (its silence counts from now)."""
        tracker = self._tracker(stream.channel)
        if tracker is None:
            return
        tracker.touch(stream, self._clock())
        if self._timer is None:
            self._timer = self._scheduler.schedule_relative(self._interval, self._check)

    def forget(self, stream: Stream) -> None:
        """Stop watching ``stream``."""
        tracker = self._tracker(stream.channel)
        if tracker is not None:
            tracker.forget(stream)

    def close(self) -> None:
        """Cancel the timer; the watch does nothing more."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.dispose()
        self._trackers.clear()

    def _tracker(self, channel: str) -> StalenessTracker[Stream] | None:
        return self._trackers.get("candle" if channel.startswith("candle.") else channel)

    def _check(self, _scheduler: abc.SchedulerBase, _state: Any = None) -> None:
        self._timer = None
        now = self._clock()
        for stream in self._streams():
            if stream.count == stream.seen:
                continue
            stream.seen = stream.count
            tracker = self._tracker(stream.channel)
            if tracker is not None and tracker.touch(stream, now):
                self._publish(
                    Status(
                        kind="live", timestamp=time.time(), connection=stream.conn, channel=stream.channel,
                        symbol=stream.symbol, detail="moving again",
                    )
                )
        watched = False
        for tracker in self._trackers.values():
            for stream, silent_for in tracker.stale(now):
                self.reported += 1
                self._publish(
                    Status(
                        kind="stale", timestamp=time.time(), connection=stream.conn, channel=stream.channel,
                        symbol=stream.symbol, delay=silent_for,
                    )
                )
            watched = watched or len(tracker) > 0
        if watched:
            self._timer = self._scheduler.schedule_relative(self._interval, self._check)

"""``record(observable, path)``: subscribe to a stream and append everything it emits to a recording."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable

from rxmarket._scheduler import default_scheduler
from rxmarket.errors import ConfigError, excerpt
from rxmarket.models import Status
from rxmarket.storage._format import KINDS, Marker
from rxmarket.storage._writer import RecordingWriter

__all__ = ["Recorder", "record"]

log = logging.getLogger("rxmarket.storage")


class Recorder:
    """A running recording: the subscription to the stream(s) and the writer behind it.

    Returned by :func:`record`; already subscribed. Stop it with :meth:`close` (also ``dispose()``,
    ``with`` or ``async with``). It stops by itself when the recorded stream completes or fails, after
    writing a ``"completed"`` or ``"error"`` marker.
    """

    def __init__(
        self,
        writer: RecordingWriter,
        observable: Observable[Any],
        status: Observable[Status] | None,
        scheduler: abc.SchedulerBase,
        flush_interval: float,
    ) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self._subscriptions = CompositeDisposable()
        self._closed = False
        self._done = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.error: BaseException | None = None
        """What ended the recording abnormally: the stream's error, or the write that failed (a
        :class:`~rxmarket.storage.StorageError` when the file system refused it)."""
        self.rejected = 0
        """Items of a type a recording cannot hold (each one is stored as an ``"unrecordable"`` marker)."""
        if flush_interval > 0 and isinstance(scheduler, abc.PeriodicSchedulerBase):
            self._subscriptions.add(scheduler.schedule_periodic(flush_interval, self._on_timer))
        if status is not None:
            self._subscriptions.add(status.subscribe(self._on_item, self._on_status_error))
        self._subscriptions.add(observable.subscribe(self._on_item, self._on_error, self._on_completed))

    # -- public surface ---------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The recording directory."""
        return self._writer.path

    @property
    def count(self) -> int:
        """Models written so far (markers not included)."""
        return self._writer.records

    @property
    def markers(self) -> int:
        """Markers written so far."""
        return self._writer.markers

    @property
    def segments(self) -> list[Path]:
        """The segment files this recorder created, in order."""
        return list(self._writer.segments)

    @property
    def closed(self) -> bool:
        """Whether the recording has stopped (closed by its owner, or its stream ended)."""
        return self._closed

    def mark(self, kind: str, detail: str = "") -> Marker:
        """Write a :class:`Marker` now (e.g. ``"disconnected"``) and flush it.

        Raises:
            ConfigError: the recorder is closed.
        """
        return self._writer.mark(kind, detail)

    def flush(self) -> None:
        """Write buffered records to the file now."""
        self._writer.flush()

    def close(self) -> None:
        """Unsubscribe, flush and close the segment. Idempotent."""
        self._finish(None, None)

    dispose = close

    async def wait_closed(self) -> None:
        """Wait until the recording stops: closed by its owner, or the recorded stream ended."""
        if self._done.is_set():
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._done.is_set():
                return
            self._waiters.append((loop, fut))
        try:
            await fut
        finally:  # a waiter given up on (cancelled, timed out) is forgotten, not kept until close
            with self._lock:
                if (loop, fut) in self._waiters:
                    self._waiters.remove((loop, fut))

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "recording"
        return f"<Recorder {state} {self.path} records={self.count} markers={self.markers}>"

    # -- observer side ----------------------------------------------------------------------------

    def _on_item(self, item: Any) -> None:
        if self._closed:
            return
        try:
            if type(item) in KINDS or isinstance(item, Status):
                self._writer.write(item)
            else:
                self.rejected += 1
                log.warning("recording %s: cannot store %s, wrote a marker instead", self.path,
                            type(item).__name__)
                self._writer.mark("unrecordable", f"{type(item).__name__}: {excerpt(repr(item))}")
        except Exception as exc:  # a write failed (disk full, ...): stop rather than drop silently
            log.error("recording %s stopped: %r", self.path, exc)
            self._finish(exc, None)

    def _on_timer(self, _state: Any = None) -> None:
        try:
            self._writer.flush_if_due()
        except Exception as exc:
            log.error("recording %s stopped: %r", self.path, exc)
            self._finish(exc, None)

    def _on_status_error(self, exc: Exception) -> None:
        # The status stream is secondary: note its end, keep recording the data.
        if not self._closed:
            self._safe_mark("status_error", repr(exc))

    def _on_error(self, exc: Exception) -> None:
        self._finish(exc, ("error", f"{type(exc).__name__}: {exc}"))

    def _on_completed(self) -> None:
        self._finish(None, ("completed", ""))

    def _safe_mark(self, kind: str, detail: str) -> None:
        try:
            self._writer.mark(kind, detail)
        except Exception as exc:
            log.error("recording %s: could not write marker %r: %r", self.path, kind, exc)

    def _finish(self, error: BaseException | None, marker: tuple[str, str] | None) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if error is not None:
                self.error = error
        if marker is not None:
            self._safe_mark(*marker)
        try:
            self._subscriptions.dispose()
        finally:
            try:
                self._writer.close()
            except Exception as exc:
                log.error("recording %s: closing failed: %r", self.path, exc)
                if self.error is None:
                    self.error = exc
            with self._lock:
                self._done.set()
                waiters, self._waiters = self._waiters, []
            for loop, fut in waiters:
                with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is waiting any more
                    loop.call_soon_threadsafe(_resolve, fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def record(
    observable: Observable[Any],
    path: str | Path,
    *,
    status: Observable[Status] | None = None,
    max_segment_bytes: int = 64 * 1024 * 1024,
    max_segment_seconds: float = 3600.0,
    flush_every: int = 256,
    flush_interval: float = 0.5,
    fsync: bool = False,
    metadata: Mapping[str, Any] | None = None,
    clock: Callable[[], int] = time.time_ns,
    scheduler: abc.SchedulerBase | None = None,
) -> Recorder:
    """Record a stream of models into an append-only recording directory. Returns at once.

    Every ``Ticker``, ``Orderbook``, ``Trade`` and ``Candle`` is stored as it is, with its receipt time;
    ``Status`` events (from ``status=`` or mixed into ``observable``) become :class:`Marker` records, so
    disconnects, reconnects and filled gaps are part of the recording. Recording into an existing
    recording appends a new segment after the last one.

    Args:
        observable: the stream to record.
        path: the recording directory (created if missing).
        status: a stream of ``Status`` events to record as markers (e.g. ``market.status``); its end or
            failure does not stop the recording.
        max_segment_bytes: rotate to a new segment before one grows past this size.
        max_segment_seconds: rotate to a new segment once the current one is this old.
        flush_every: write buffered records to the file after this many.
        flush_interval: ... and at least this often, in seconds (on writes and on a timer).
        fsync: force each flush to the disk.
        metadata: extra keys for each segment header, e.g. ``{"symbol": "KRW-BTC"}``.
        clock: wall-clock time in ns (receipt times, rotation, flush intervals); inject one in tests.
        scheduler: runs the flush timer (default: the running loop's, see ``default_scheduler``).

    Returns:
        The running :class:`Recorder`.

    Raises:
        ConfigError: a bad argument, or the recording is in use by another writer.
        StorageError: the recording directory or its lock file cannot be created. (A write refused
            later stops the recording instead, with the error in :attr:`Recorder.error`.)
    """
    if not isinstance(observable, Observable):
        raise ConfigError(f"record() needs an Observable, got {type(observable).__name__}")
    writer = RecordingWriter(
        path,
        max_segment_bytes=max_segment_bytes,
        max_segment_seconds=max_segment_seconds,
        flush_every=flush_every,
        flush_interval=flush_interval,
        fsync=fsync,
        metadata=metadata,
        clock=clock,
    )
    try:
        return Recorder(writer, observable, status, default_scheduler(scheduler), flush_interval)
    except BaseException:
        writer.close()
        raise

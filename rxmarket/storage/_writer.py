"""Append records to a recording: framing, buffered flushes, rotation by size and by time.

The writer is synchronous and owns no thread or timer: :func:`rxmarket.storage.record` drives it from an
Observable and adds a periodic flush; a backfill can drive it directly to append history to the same
store. Appending never reopens an old segment: each writer starts a new one after the highest present,
so a torn tail left by a crash stays where it is (readers skip it) and new data starts clean.

Durability: records are framed into an in-memory buffer and written to the file (the OS page cache)
every ``flush_every`` records, when ``flush_interval`` seconds have passed since the last flush (checked
on each write; the recorder also flushes on a timer), on every marker, on rotation and on close. A killed
process therefore loses at most the records still in the buffer; with ``fsync=True`` every flush is also
forced to the disk, so a power cut loses no more than that either.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from importlib import metadata as _metadata
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any

from rxmarket.errors import ConfigError, excerpt
from rxmarket.models import Status
from rxmarket.storage._format import KINDS, SEGMENT_SUFFIX, Item, Marker, frame, pack_header
from rxmarket.storage._reader import segment_paths

_fcntl: ModuleType | None
try:  # advisory locks: POSIX only; elsewhere two writers on one directory are the caller's problem
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None

__all__ = ["LOCK_NAME", "RecordingWriter"]

LOCK_NAME = ".lock"
_DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_DEFAULT_MAX_SECONDS = 3600.0

try:
    _WRITER = f"rxmarket {_metadata.version('rxmarket')}"
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    _WRITER = "rxmarket"


class RecordingWriter:
    """An append-only writer of one recording directory.

    Use it as a context manager, or call :meth:`close`. Thread-safe: every method takes one lock.

    Args:
        path: the recording directory (created if missing).
        max_segment_bytes: start a new segment before one would grow past this size (a single larger
            record still gets a segment of its own).
        max_segment_seconds: start a new segment once the current one is this old (by ``clock``).
        flush_every: write the buffer to the file after this many records.
        flush_interval: ... or when this many seconds have passed since the last flush.
        fsync: force every flush to the disk (slower; survives a power cut, not only a killed process).
        metadata: extra keys for every segment header (e.g. ``{"symbol": "KRW-BTC", "kind": "trade"}``);
            must be MessagePack-encodable.
        clock: wall-clock time in ns since the epoch; receipt times, segment age and flush intervals all
            come from it (inject one in tests).

    Raises:
        ConfigError: a bad argument, or another writer holds the recording.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_segment_bytes: int = _DEFAULT_MAX_BYTES,
        max_segment_seconds: float = _DEFAULT_MAX_SECONDS,
        flush_every: int = 256,
        flush_interval: float = 0.5,
        fsync: bool = False,
        metadata: Mapping[str, Any] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_segment_bytes < 1024:
            raise ConfigError(f"max_segment_bytes must be >= 1024, got {max_segment_bytes!r}")
        if max_segment_seconds <= 0:
            raise ConfigError(f"max_segment_seconds must be > 0, got {max_segment_seconds!r}")
        if flush_every < 1:
            raise ConfigError(f"flush_every must be >= 1 record, got {flush_every!r}")
        if flush_interval < 0:
            raise ConfigError(f"flush_interval must be >= 0 seconds, got {flush_interval!r}")
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"cannot record into {self.path}: it exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_segment_bytes
        self._max_age_ns = int(max_segment_seconds * 1e9)
        self._flush_every = flush_every
        self._flush_ns = int(flush_interval * 1e9)
        self._fsync = fsync
        self._metadata = dict(metadata or {})
        self._clock = clock
        self._lock = threading.RLock()
        self._lock_file = self._acquire()
        existing = segment_paths(self.path)
        self._next_index = int(existing[-1].name[: -len(SEGMENT_SUFFIX)]) + 1 if existing else 0
        self._file: IO[bytes] | None = None
        self._segment_path: Path | None = None
        self._segment_bytes = 0
        self._segment_records = 0
        self._segment_created = 0
        self._pending = bytearray()
        self._pending_records = 0
        self._last_flush = clock()
        self._closed = False
        self.segments: list[Path] = []
        """The segments this writer created, in order."""
        self.records = 0
        """Models written (markers not included)."""
        self.markers = 0
        """Markers written."""

    # -- lifetime ---------------------------------------------------------------------------------

    def _acquire(self) -> IO[bytes] | None:
        if _fcntl is None:  # pragma: no cover - Windows
            return None
        handle = open(self.path / LOCK_NAME, "ab")  # noqa: SIM115 - held open for the writer's lifetime
        try:
            _fcntl.flock(handle.fileno(), _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise ConfigError(
                f"recording {self.path} is in use by another writer; record into another directory"
            ) from exc
        return handle

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def close(self) -> None:
        """Flush what is buffered, close the segment and release the recording. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._close_segment()
            finally:
                if self._lock_file is not None:
                    self._lock_file.close()  # closing the descriptor releases the flock
                    self._lock_file = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------------

    def write(self, item: Item | Status, recv_ns: int | None = None) -> None:
        """Append one model, :class:`Marker` or ``Status`` (stored as a marker).

        Args:
            item: what to store.
            recv_ns: its receipt time (ns since the epoch); ``None`` for now, by ``clock``.

        Raises:
            ConfigError: ``item`` is not something a recording can hold, or the writer is closed.
            OSError: the file system refused the write (the records stay buffered).
        """
        with self._lock:
            if self._closed:
                raise ConfigError(f"recording writer for {self.path} is closed")
            now = self._clock()
            recv = now if recv_ns is None else recv_ns
            if isinstance(item, Status):
                item = Marker(kind=item.kind, timestamp=recv // 1_000_000, detail=item.detail, status=item)
            elif type(item) not in KINDS:
                raise ConfigError(
                    f"cannot record {type(item).__name__} ({excerpt(repr(item))}); a recording holds "
                    "Ticker, Orderbook, Trade, Candle, Marker or Status items"
                )
            record = frame(recv, item)
            if self._file is None:
                self._open_segment(now)
            elif self._segment_records and (
                self._segment_bytes + len(self._pending) + len(record) > self._max_bytes
                or now - self._segment_created >= self._max_age_ns
            ):
                self._close_segment()
                self._open_segment(now)
            self._pending += record
            self._pending_records += 1
            self._segment_records += 1
            if type(item) is Marker:
                self.markers += 1
                self._flush()  # connection events are rare and matter most after a crash
            else:
                self.records += 1
                if self._pending_records >= self._flush_every or now - self._last_flush >= self._flush_ns:
                    self._flush()

    def mark(self, kind: str, detail: str = "", status: Status | None = None) -> Marker:
        """Append a :class:`Marker` stamped now (by ``clock``) and flush it.

        Args:
            kind: what happened (``"disconnected"``, ``"gap_filled"``, ...).
            detail: free text.
            status: the ``Status`` event behind it, if any.

        Returns:
            The marker written.
        """
        with self._lock:
            now = self._clock()
            marker = Marker(kind=kind, timestamp=now // 1_000_000, detail=detail, status=status)
            self.write(marker, now)
            return marker

    def flush(self) -> None:
        """Write the buffered records to the file now (and to the disk with ``fsync=True``)."""
        with self._lock:
            self._flush()

    def flush_if_due(self) -> None:
        """Flush when ``flush_interval`` has passed since the last flush (called by a timer)."""
        with self._lock:
            if self._pending and self._clock() - self._last_flush >= self._flush_ns:
                self._flush()

    @property
    def pending(self) -> int:
        """Records buffered but not yet written to the file (what a kill now would lose)."""
        return self._pending_records

    @property
    def current_segment(self) -> Path | None:
        """The segment being written, or ``None`` before the first record and after close."""
        return self._segment_path

    # -- internals (lock held) -----------------------------------------------------------------------

    def _flush(self) -> None:
        self._last_flush = self._clock()
        if not self._pending or self._file is None:
            return
        buf = self._pending
        done = 0
        try:
            done = self._file.write(buf) or 0
            while done < len(buf):  # a short write: rare on regular files, but allowed by POSIX
                done += self._file.write(buf[done:]) or 0
        finally:
            self._segment_bytes += done
            del buf[:done]
            if not buf:
                self._pending_records = 0
        if self._fsync:
            os.fsync(self._file.fileno())

    def _open_segment(self, now: int) -> None:
        index = self._next_index
        seg = self.path / f"{index:06d}{SEGMENT_SUFFIX}"
        header = pack_header({"created_ns": now, "segment": index, "writer": _WRITER, **self._metadata})
        handle = open(seg, "xb", buffering=0)  # noqa: SIM115 - the segment stays open until rotation
        try:
            handle.write(header)
            if self._fsync:
                os.fsync(handle.fileno())
                self._fsync_dir()
        except BaseException:
            handle.close()
            raise
        self._next_index = index + 1
        self._file = handle
        self._segment_path = seg
        self._segment_bytes = len(header)
        self._segment_records = 0
        self._segment_created = now
        self.segments.append(seg)

    def _close_segment(self) -> None:
        if self._file is None:
            return
        try:
            self._flush()
        finally:
            handle, self._file, self._segment_path = self._file, None, None
            handle.close()

    def _fsync_dir(self) -> None:
        """Make a new segment's directory entry durable too (POSIX; a no-op where unsupported)."""
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

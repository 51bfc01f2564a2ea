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

Failures of the file system (disk full, quota, file too large, a directory made read-only, an I/O error)
raise :class:`StorageError` (an ``OSError``) and leave the recording as it was before the failed step, so
this writer, or a new one, carries on once the cause is gone:

* a segment whose header could not be written whole is removed: it holds no record, and left in place it
  would read as a torn tail (and a writer still trying to create it again would fail on its name);
* a flush that reached the file only in part is cut back to the last whole record (shrinking a file needs
  no space); what was not written stays buffered, in order, for the next flush that succeeds;
* a write that fails still takes its item into that buffer: nothing handed to :meth:`RecordingWriter.write`
  is dropped, except by a :meth:`~RecordingWriter.close` that cannot flush, whose error says how many
  records it could not write.

If even the clean-up is refused (say the file system became read-only between creating a segment and
writing its header), the stub keeps its name until a new writer opens the recording: a new writer removes
any segment cut inside its header (a crash while creating one leaves the same), since such a file holds
no record.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from importlib import metadata as _metadata
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any

from rxmarket.errors import ConfigError, StorageError, excerpt
from rxmarket.models import Status
from rxmarket.storage._format import (
    FORMAT_VERSION,
    HEADER,
    KINDS,
    MAGIC,
    RECORD_HEADER,
    SEGMENT_SUFFIX,
    Item,
    Marker,
    frame,
    pack_header,
)
from rxmarket.storage._reader import segment_paths

_fcntl: ModuleType | None
try:  # advisory locks: POSIX only; elsewhere two writers on one directory are the caller's problem
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None

__all__ = ["LOCK_NAME", "RecordingWriter"]

log = logging.getLogger("rxmarket.storage")

LOCK_NAME = ".lock"
_DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_DEFAULT_MAX_SECONDS = 3600.0
# A segment cut inside its header is at most this long (the header plus a metadata map we would write);
# only files this small are opened to look for such stubs when a writer starts.
_STUB_MAX_BYTES = 64 * 1024

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
        StorageError: the directory or its lock file cannot be created (e.g. a read-only parent).
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
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the recording directory {self.path}: {exc}", exc,
                               self.path) from exc
        self._max_bytes = max_segment_bytes
        self._max_age_ns = int(max_segment_seconds * 1e9)
        self._flush_every = flush_every
        self._flush_ns = int(flush_interval * 1e9)
        self._fsync = fsync
        self._metadata = dict(metadata or {})
        self._clock = clock
        self._lock = threading.RLock()
        self._lock_file = self._acquire()
        try:
            existing = _remove_stubs(segment_paths(self.path))
        except BaseException:
            self._release()  # a writer that failed to start must not keep the recording locked
            raise
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
        lock = self.path / LOCK_NAME
        try:
            handle = open(lock, "ab")  # noqa: SIM115 - held open for the writer's lifetime
        except OSError as exc:
            raise StorageError(f"cannot open the lock file {lock} of recording {self.path}: {exc}", exc,
                               lock) from exc
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

    def _release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    def close(self) -> None:
        """Flush what is buffered, close the segment and release the recording. Idempotent.

        Raises:
            StorageError: the last flush failed; the writer is closed all the same (the recording is
                released) and the error says how many buffered records were not written.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._close_segment()
            finally:
                self._pending.clear()  # written, or reported as lost by the error
                self._pending_records = 0
                self._release()

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
            StorageError: the file system refused to start a segment or to flush (an ``OSError``). The
                item was taken all the same: it and every record not yet written stay buffered, in
                order, for the next flush that succeeds (a later write, :meth:`flush` or :meth:`close`);
                do not write it again.
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
            failed: StorageError | None = None
            if self._file is None or (
                self._segment_records
                and (
                    self._segment_bytes + len(self._pending) + len(record) > self._max_bytes
                    or now - self._segment_created >= self._max_age_ns
                )
            ):
                try:
                    if self._file is not None:
                        self._close_segment()
                    self._open_segment(now)
                except StorageError as exc:
                    failed = exc  # the item is taken all the same: it goes out with the next flush
            self._pending += record
            self._pending_records += 1
            self._segment_records += 1
            if type(item) is Marker:
                self.markers += 1
                due = True  # connection events are rare and matter most after a crash
            else:
                self.records += 1
                due = self._pending_records >= self._flush_every or now - self._last_flush >= self._flush_ns
            if failed is not None:
                raise failed
            if due:
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
        """Write the buffered records to the file now (and to the disk with ``fsync=True``).

        Raises:
            StorageError: the file system refused; what was not written stays buffered.
        """
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
        if not self._pending:
            return
        # No segment open: a failed step ended the last one, so these records start the next one.
        file = self._file if self._file is not None else self._open_segment(self._last_flush)
        buf = self._pending
        done = 0
        try:
            done = file.write(buf) or 0
            while done < len(buf):  # a short write: rare, but a full disk or a size limit makes one
                done += file.write(buf[done:]) or 0
        except OSError as exc:
            seg = self._segment_path
            self._keep_unwritten(file, done)
            raise self._error(f"cannot write records to segment {_name(seg)}", exc, seg) from exc
        self._segment_bytes += done
        buf.clear()
        self._pending_records = 0
        if self._fsync:
            try:
                os.fsync(file.fileno())
            except OSError as exc:
                seg = self._segment_path
                fate = "the records reached the file but maybe not the disk"
                raise self._error(f"cannot force segment {_name(seg)} to the disk", exc, seg, fate) from exc

    def _keep_unwritten(self, file: IO[bytes], done: int) -> None:
        """After a flush that failed having written ``done`` bytes: end the file on a whole record.

        The records written whole leave the buffer; the rest stays, in order. A record written in part is
        cut off the file (shrinking needs no free space), to be written whole by the next flush.
        """
        whole, count = _whole_records(self._pending, done)
        if whole < done:
            end = self._segment_bytes + whole
            try:
                os.ftruncate(file.fileno(), end)
                file.seek(end)
            except OSError:
                # Even that is refused: the segment keeps a torn tail (readers drop it) and takes no more
                # records, so the next flush starts a new segment with the cut record whole.
                self._drop_segment()
        self._segment_bytes += whole
        del self._pending[:whole]
        self._pending_records -= count

    def _open_segment(self, now: int) -> IO[bytes]:
        index = self._next_index
        seg = self.path / f"{index:06d}{SEGMENT_SUFFIX}"
        header = pack_header({"created_ns": now, "segment": index, "writer": _WRITER, **self._metadata})
        try:
            handle = open(seg, "xb", buffering=0)  # noqa: SIM115 - the segment stays open until rotation
        except OSError as exc:
            raise self._error(f"cannot create segment {seg.name}", exc, seg) from exc
        try:
            done = 0
            while done < len(header):  # unbuffered: a short write must not go unnoticed
                done += handle.write(header[done:]) or 0
            if self._fsync:
                os.fsync(handle.fileno())
                self._fsync_dir()
        except BaseException as exc:
            with contextlib.suppress(OSError):
                handle.close()
            # A segment without its whole header holds no record: remove it, or it reads as a torn tail
            # and the next attempt at this name fails.
            try:
                seg.unlink()
                fate = "removed"
            except OSError as gone:
                self._next_index = index + 1  # the stub keeps its name until a new writer removes it
                fate = f"could not be removed ({gone.strerror}); a new writer removes it"
            if isinstance(exc, OSError):
                step = f"cannot write the header of segment {seg.name} ({fate})"
                raise self._error(step, exc, seg) from exc
            raise
        self._next_index = index + 1
        self._file = handle
        self._segment_path = seg
        self._segment_bytes = len(header)
        self._segment_records = self._pending_records  # records left buffered by a failure belong here
        self._segment_created = now
        self.segments.append(seg)
        return handle

    def _close_segment(self) -> None:
        """Flush (starting a segment if records wait and none is open) and close the segment."""
        try:
            self._flush()
        except BaseException:
            self._drop_segment()
            raise
        seg = self._segment_path
        handle, self._file, self._segment_path = self._file, None, None
        if handle is not None:
            try:
                handle.close()
            except OSError as exc:  # e.g. a network file system reporting a failed write at close
                raise self._error(f"cannot close segment {_name(seg)}", exc, seg) from exc

    def _drop_segment(self) -> None:
        """Stop writing to the current segment after a failure (closing it as far as the system allows)."""
        handle, self._file, self._segment_path = self._file, None, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()

    def _error(self, step: str, exc: OSError, path: Path | None, fate: str = "") -> StorageError:
        """The :class:`StorageError` of a failed step, saying what became of the records."""
        code = errno.errorcode.get(exc.errno or 0)
        cause = f"{exc.strerror} ({code})" if exc.strerror and code else str(exc)
        if not fate:
            fate = self._fate()
        return StorageError(f"recording {self.path}: {step}: {cause}; {fate}", exc, path)

    def _fate(self) -> str:
        """What became of the records, for the message of a failed step."""
        if not self._closed:
            return "nothing written is lost; what is not written stays buffered for the next flush"
        if self._pending_records:
            return f"the writer is closed: {self._pending_records} buffered record(s) were not written"
        return "the writer is closed; every record was written"

    def _fsync_dir(self) -> None:
        """Make a new segment's directory entry durable too (POSIX; a no-op where unsupported)."""
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _name(seg: Path | None) -> str:
    return "?" if seg is None else seg.name


def _whole_records(buf: bytearray, limit: int) -> tuple[int, int]:
    """The length and number of the whole records among the first ``limit`` bytes of ``buf``."""
    size = RECORD_HEADER.size
    pos = count = 0
    while pos + size <= limit:
        end = pos + size + RECORD_HEADER.unpack_from(buf, pos)[0]
        if end > limit:
            break
        pos, count = end, count + 1
    return pos, count


def _cut_in_header(seg: Path) -> bool:
    """Whether ``seg`` is one of our segments cut inside its header (so it holds no record)."""
    try:
        size = seg.stat().st_size
        if size >= _STUB_MAX_BYTES:
            return False
        with seg.open("rb") as f:
            head = f.read(HEADER.size)
    except OSError:
        return False
    if len(head) < HEADER.size:
        return MAGIC.startswith(head[: len(MAGIC)])  # an empty file too: created, nothing written
    magic, version, _flags, meta_len, _crc = HEADER.unpack(head)
    return bool(magic == MAGIC and version == FORMAT_VERSION and size < HEADER.size + meta_len)


def _remove_stubs(segments: list[Path]) -> list[Path]:
    """``segments`` less those cut inside their header, which are deleted (a crash or a failure left them)."""
    kept: list[Path] = []
    for seg in segments:
        if _cut_in_header(seg):
            try:
                seg.unlink()
            except OSError as exc:  # kept, and its number is not reused; readers report it as before
                log.warning("recording %s: cannot remove %s, a segment cut inside its header: %s",
                            seg.parent, seg.name, exc)
            else:
                log.warning("recording %s: removed %s, a segment cut inside its header (it held no record)",
                            seg.parent, seg.name)
                continue
        kept.append(seg)
    return kept

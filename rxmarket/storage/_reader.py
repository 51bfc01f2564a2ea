"""Read recordings back: segments in order, records checked by length and CRC, damage reported, never raised.

Damage is classified by what follows it, which is the only thing a reader can know:

* **torn tail**: a bad record (cut short, wrong CRC, zero-filled) with no valid record after it in the
  segment. This is what a killed process or a power cut leaves. The segment ends there.
* **corrupt**: a bad record with valid records after it. The reader resyncs by scanning forward for the
  next offset where a whole record checks out (lead byte ``0x92``, a length that fits, a matching
  CRC-32; a false match needs a 1-in-2**32 CRC collision) and reports the bytes it skipped.
* **undecodable**: a record whose CRC matches but whose payload is not a known item (e.g. written by a
  newer rxmarket). Skipped.
* **bad segment**: not a segment at all (wrong magic) or a format version this reader does not know.
  Skipped whole.

Every problem goes to the caller's ``on_issue`` callback as a :class:`ReadIssue`; reading continues.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import msgspec

from rxmarket.errors import ConfigError
from rxmarket.storage._format import (
    FORMAT_VERSION,
    HEADER,
    MAGIC,
    MAX_RECORD_BYTES,
    PAYLOAD_LEAD,
    RECORD_HEADER,
    SEGMENT_SUFFIX,
    Marker,
    Record,
    kind_of,
)

__all__ = [
    "IssueKind",
    "ReadIssue",
    "iter_records",
    "last_record",
    "read_metadata",
    "read_segment",
    "recordings",
    "segment_paths",
]

IssueKind = Literal["torn_tail", "corrupt", "undecodable", "bad_segment"]

_SEGMENT_NAME = re.compile(r"^\d{6,}" + re.escape(SEGMENT_SUFFIX) + "$")
_decoder = msgspec.msgpack.Decoder(Record)
_meta_decoder = msgspec.msgpack.Decoder(dict[str, Any])
_unpack_record = RECORD_HEADER.unpack_from
_crc32 = zlib.crc32
_LEAD = bytes([PAYLOAD_LEAD])
_RH = RECORD_HEADER.size
_WINDOW = 1 << 20  # bytes read at a time


class ReadIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem found while reading a segment.

    Attributes:
        kind: ``"torn_tail"``, ``"corrupt"``, ``"undecodable"`` or ``"bad_segment"`` (see the module doc).
        segment: the segment file.
        offset: where the bad bytes start, from the start of the file.
        size: how many bytes were lost (torn tail) or skipped (corrupt, undecodable, bad segment).
        reason: what was wrong, for a person.
    """

    kind: IssueKind
    segment: str
    offset: int
    size: int
    reason: str


OnIssue = Callable[[ReadIssue], None]


def _ignore(_issue: ReadIssue) -> None:
    """The default ``on_issue``: reading goes on either way."""


def segment_paths(path: str | Path) -> list[Path]:
    """The segment files of a recording, in write order.

    Args:
        path: a recording directory or one segment file.

    Returns:
        The segment files (``NNNNNN.rxm``) sorted by number; empty for a directory without segments.

    Raises:
        ConfigError: ``path`` does not exist, or is a file that is not named like a segment.
    """
    p = Path(path)
    if p.is_dir():
        found = [c for c in p.iterdir() if _SEGMENT_NAME.match(c.name) and c.is_file()]
        return sorted(found, key=lambda c: int(c.name[: -len(SEGMENT_SUFFIX)]))
    if p.is_file():
        if p.suffix != SEGMENT_SUFFIX:
            raise ConfigError(f"{p} is not a recording segment (expected a directory or a *.rxm file)")
        return [p]
    raise ConfigError(f"no recording at {p}: the path does not exist")


def recordings(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Normalise one path or many into a list of paths, each checked to be a recording or a segment.

    Raises:
        ConfigError: no path, a path that does not exist, or a file that is not a segment.
    """
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out = [Path(p) for p in items]
    if not out:
        raise ConfigError("no recording given: pass a recording directory, a segment file, or several")
    for p in out:
        segment_paths(p)  # exists, and is a directory or a segment file
    return out


def _describe(data: bytes, pos: int) -> str:
    """Why the record at ``pos`` is not valid (called only on the slow path)."""
    n = len(data)
    if pos + _RH > n:
        return f"record header cut short ({n - pos} of {_RH} bytes)"
    length, _crc = _unpack_record(data, pos)
    if length == 0 or length > MAX_RECORD_BYTES:
        return f"implausible record length {length}"
    if pos + _RH + length > n:
        return f"record of {length} bytes runs past the end of the file ({n - pos - _RH} there)"
    if data[pos + _RH] != PAYLOAD_LEAD:
        return f"payload does not start with 0x{PAYLOAD_LEAD:02x}"
    return "CRC-32 mismatch"


def _resync(data: bytes, view: memoryview, pos: int) -> int | None:
    """The first offset >= ``pos`` where a whole, CRC-valid record starts, or ``None``."""
    n = len(data)
    p = pos
    while True:
        lead = data.find(_LEAD, p + _RH)
        if lead < 0:
            return None
        p = lead - _RH
        length, crc = _unpack_record(data, p)
        end = p + _RH + length
        if 0 < length <= MAX_RECORD_BYTES and end <= n and _crc32(view[p + _RH : end]) == crc:
            return p
        p += 1


def _header_end(seg: Path, head: bytes, size: int, on_issue: OnIssue) -> int | None:
    """Check a segment's header (``head``: its first bytes, metadata included when the file has them).

    Returns:
        The offset of the first record, or ``None`` to skip the segment.
    """
    name = str(seg)
    n = len(head)
    if n < HEADER.size:
        if MAGIC.startswith(head[: len(MAGIC)]):
            on_issue(ReadIssue(kind="torn_tail", segment=name, offset=0, size=size,
                               reason=f"segment header cut short ({n} of {HEADER.size} bytes)"))
        else:
            on_issue(ReadIssue(kind="bad_segment", segment=name, offset=0, size=size,
                               reason="not an rxmarket segment (bad magic)"))
        return None
    magic, version, _flags, meta_len, meta_crc = HEADER.unpack_from(head, 0)
    if magic != MAGIC:
        on_issue(ReadIssue(kind="bad_segment", segment=name, offset=0, size=size,
                           reason="not an rxmarket segment (bad magic)"))
        return None
    if version != FORMAT_VERSION:
        on_issue(ReadIssue(kind="bad_segment", segment=name, offset=0, size=size,
                           reason=f"format version {version}; this rxmarket reads {FORMAT_VERSION}"))
        return None
    end: int = HEADER.size + meta_len
    if end > n:
        on_issue(ReadIssue(kind="torn_tail", segment=name, offset=0, size=size,
                           reason=f"segment metadata cut short ({n - HEADER.size} of {meta_len} bytes)"))
        return None
    if _crc32(head[HEADER.size : end]) != meta_crc:
        # The metadata is only informative; the records after it carry their own CRCs.
        on_issue(ReadIssue(kind="corrupt", segment=name, offset=HEADER.size, size=meta_len,
                           reason="segment metadata CRC-32 mismatch"))
    return end


def read_segment(
    segment: str | Path, on_issue: OnIssue | None = None, *, window: int = _WINDOW
) -> Iterator[Record]:
    """Yield the valid records of one segment file, in write order.

    The file is read ``window`` bytes at a time (a record never straddles two windows: the window grows
    to hold it), so memory stays flat whatever the segment size. The segment's size is taken when it is
    opened: records appended after that (by a writer still at work) are not seen, and a record being
    written at that moment reads as a torn tail.

    Args:
        segment: the segment file.
        on_issue: called with each :class:`ReadIssue` found; reading continues after it.
        window: bytes read at a time (default 1 MiB).

    Yields:
        Each record whose framing, CRC and payload check out.

    Raises:
        ConfigError: ``window`` is not positive.
    """
    if window < 1:
        raise ConfigError(f"window must be >= 1 byte, got {window!r}")
    seg = Path(segment)
    report = on_issue or _ignore
    with seg.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(HEADER.size)
        if len(head) == HEADER.size:
            meta_len = HEADER.unpack_from(head, 0)[3]
            head += f.read(min(meta_len, size - HEADER.size))
        first = _header_end(seg, head, size, report)
        if first is None:
            return
        f.seek(first)
        yield from _records(seg, f, first, size, report, window)


def _records(
    seg: Path, f: BinaryIO, base: int, size: int, report: OnIssue, window: int
) -> Iterator[Record]:
    """The record loop of :func:`read_segment`, from file offset ``base`` to ``size``."""
    decode = _decoder.decode
    unpack = _unpack_record
    crc32 = _crc32
    data = f.read(min(window, size - base))
    view = memoryview(data)
    pos = 0  # in `data`, whose first byte is at file offset `base`
    while True:
        n = len(data)
        if pos + _RH <= n:
            length, crc = unpack(data, pos)
            start = pos + _RH
            end = start + length
            if end <= n:
                if (0 < length <= MAX_RECORD_BYTES and data[start] == PAYLOAD_LEAD
                        and crc32(view[start:end]) == crc):
                    try:
                        record = decode(view[start:end])
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        report(ReadIssue(kind="undecodable", segment=str(seg), offset=base + pos,
                                         size=end - pos, reason=str(exc)))
                    else:
                        yield record
                    pos = end
                    continue
            elif length <= MAX_RECORD_BYTES and base + end <= size:
                # The record runs past the window, not past the file: slide the window on.
                more = f.read(min(size - base - n, max(window, end - n)))
                if not more:  # the file shrank under us: what we have is all there is
                    size = base + n
                data, base, pos = data[pos:] + more, base + pos, 0
                view = memoryview(data)
                continue
        elif base + n < size:
            more = f.read(min(size - base - n, window))
            if not more:
                size = base + n
            data, base, pos = data[pos:] + more, base + pos, 0
            view = memoryview(data)
            continue
        elif pos == n:
            return  # a clean end, between two records
        # Damage at `pos`. Take the rest of the file, then resync or call it a torn tail.
        data, base, pos = data[pos:] + f.read(max(0, size - base - n)), base + pos, 0
        view = memoryview(data)
        reason = _describe(data, 0)
        nxt = _resync(data, view, 1)
        if nxt is None:
            report(ReadIssue(kind="torn_tail", segment=str(seg), offset=base, size=len(data), reason=reason))
            return
        report(ReadIssue(kind="corrupt", segment=str(seg), offset=base, size=nxt, reason=reason))
        pos = nxt


def iter_records(path: str | Path, on_issue: OnIssue | None = None) -> Iterator[Record]:
    """Yield every valid record of a recording (all its segments, in write order).

    Args:
        path: a recording directory or one segment file.
        on_issue: called with each :class:`ReadIssue` found; reading continues after it.

    Raises:
        ConfigError: ``path`` does not exist.
    """
    for seg in segment_paths(path):
        yield from read_segment(seg, on_issue)


def read_metadata(segment: str | Path) -> dict[str, Any] | None:
    """The metadata map in a segment's header, or ``None`` when the header is damaged or absent."""
    with Path(segment).open("rb") as f:
        data = f.read(_WINDOW)
    if len(data) < HEADER.size:
        return None
    magic, version, _flags, meta_len, meta_crc = HEADER.unpack_from(data, 0)
    meta = data[HEADER.size : HEADER.size + meta_len]
    if magic != MAGIC or version != FORMAT_VERSION or len(meta) != meta_len or _crc32(meta) != meta_crc:
        return None
    try:
        return _meta_decoder.decode(meta)
    except msgspec.DecodeError:
        return None


def last_record(
    path: str | Path, *, kind: str | None = None, symbol: str | None = None, unit: str | None = None
) -> Record | None:
    """The last record written to a recording that matches the filters: where an append should resume.

    Reads segments from the newest backwards and stops at the first one holding a match, so it costs
    about one segment on a recording that is being appended to. Damage is skipped as on any read.

    Args:
        path: a recording directory or one segment file.
        kind: ``"ticker"``, ``"orderbook"``, ``"trade"``, ``"candle"`` or ``"marker"``; ``None`` for any.
        symbol: only items of this market (markers have none, so they never match a symbol).
        unit: only candles of this unit (implies ``kind="candle"`` when given).

    Returns:
        The matching record written last, or ``None`` if there is none.

    Raises:
        ConfigError: ``path`` does not exist.
    """
    if unit is not None:
        kind = "candle"
    for seg in reversed(segment_paths(path)):
        found: Record | None = None
        for rec in read_segment(seg):
            item = rec.item
            if kind is not None and kind_of(item) != kind:
                continue
            if symbol is not None and (isinstance(item, Marker) or item.symbol != symbol):
                continue
            if unit is not None and getattr(item, "unit", None) != unit:
                continue
            found = rec
        if found is not None:
            return found
    return None

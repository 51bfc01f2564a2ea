"""Storage: record any stream to disk, verify a recording, replay it as an Observable, export it.

::

    from rxmarket.storage import record, replay, verify

    async with record(market.trades(["KRW-BTC"]), "rec/btc", status=market.status) as rec:
        await asyncio.sleep(3600)                 # rec.count models so far; rec.mark("note") any time
    print(verify("rec/btc"))                      # gaps, duplicates, out-of-order, torn tails, checks
    replay("rec/btc", speed=10.0).pipe(...)       # the same operators as live, at 10x

**Format** (version 1; details in ``_format``). A recording is a directory of segment files
``000000.rxm``, ``000001.rxm``, ... Each segment starts with a header: an 8-byte magic
``\\x89RXM\\r\\n\\x1a\\n``, a u16 format version, u16 flags, a u32 metadata length and CRC-32, then the
metadata as a MessagePack map (``created_ns``, ``segment``, ``writer`` and the recorder's ``metadata=``,
e.g. symbol/kind/unit). Records follow back to back, each ``[u32 length][u32 CRC-32][payload]``
(little-endian), the payload being the MessagePack array ``[recv_ns, item]``: the receipt time (ns,
wall clock) and the model exactly as msgspec encodes it (tagged on ``type``; the exchange timestamp is
inside) or a :class:`Marker` (``kind``, ``timestamp``, ``detail``, optional ``Status``).

**Writing**: append-only; records are buffered and written every ``flush_every`` records, every
``flush_interval`` seconds, on each marker, on rotation and on close (``fsync`` optional); segments
rotate by size (``max_segment_bytes``) and age (``max_segment_seconds``); a new writer starts a new
segment, so an append never touches old data. A killed process loses at most the unflushed records.
A file system that refuses a write (disk full, read-only, size limit) raises :class:`StorageError` (an
``OSError``) and leaves no half-written segment: the unwritten records stay buffered, and writing goes on
once the cause is gone.

**Reading** never refuses a file for damage: a record cut short or failing its CRC with nothing valid
after it is a *torn tail* (the segment ends there); damage with valid records after it is skipped by
scanning forward to the next record whose length and CRC check out (*corrupt*); both are reported
(``ReadIssue``) to ``verify`` and to ``replay(on_issue=...)``.

**Appending later** (e.g. a backfill resuming where a recording ends): :class:`RecordingWriter` appends to
the same store and :func:`last_record` finds the newest record of a kind/symbol.
"""

from rxmarket.errors import StorageError
from rxmarket.storage._backfill import BackfillProgress, backfill
from rxmarket.storage._checks import book_not_crossed, default_checks, positive_prices, within_range
from rxmarket.storage._format import FORMAT_VERSION, MAGIC, Marker, Record, event_ms, kind_of
from rxmarket.storage._parquet import export_parquet
from rxmarket.storage._reader import (
    ReadIssue,
    iter_records,
    last_record,
    read_metadata,
    read_segment,
    segment_paths,
)
from rxmarket.storage._recorder import Recorder, record
from rxmarket.storage._replay import historical_scheduler, replay
from rxmarket.storage._verify import CandleGap, Finding, IntegrityReport, verify
from rxmarket.storage._writer import RecordingWriter

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "BackfillProgress",
    "CandleGap",
    "Finding",
    "IntegrityReport",
    "Marker",
    "ReadIssue",
    "Record",
    "Recorder",
    "RecordingWriter",
    "StorageError",
    "backfill",
    "book_not_crossed",
    "default_checks",
    "event_ms",
    "export_parquet",
    "historical_scheduler",
    "iter_records",
    "kind_of",
    "last_record",
    "positive_prices",
    "read_metadata",
    "read_segment",
    "record",
    "replay",
    "segment_paths",
    "verify",
    "within_range",
]

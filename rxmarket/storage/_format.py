"""The on-disk format of a recording: segment header, record framing, the record envelope.

A recording is a directory of segment files ``000000.rxm``, ``000001.rxm``, ... Each segment is::

    offset  size  field
    0       8     magic  b"\\x89RXM\\r\\n\\x1a\\n"  (PNG-style: catches text-mode and 7-bit transfers)
    8       2     format version, u16 little-endian (1)
    10      2     flags, u16 (0; reserved)
    12      4     metadata length M, u32
    16      4     CRC-32 of the metadata, u32
    20      M     metadata: a MessagePack map (created_ns, segment, writer, plus the caller's keys)
    20+M    ...   records, back to back

and each record is::

    [u32 length][u32 CRC-32 of the payload][payload: `length` bytes]

where the payload is the MessagePack array ``[recv_ns, item]``: the receipt time (ns since the epoch,
wall clock) and the item, one of the tagged models ``Ticker | Orderbook | Trade | Candle`` (tagged on
``type`` already) or a :class:`Marker`. The exchange timestamp lives inside the model. Because the
envelope is a 2-array, every valid payload starts with the byte ``0x92``; the reader uses that to reject
zero-filled tails (``length == 0`` with ``crc32(b"") == 0`` would otherwise look valid) and to resync.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

import msgspec

from rxmarket.models import Candle, Orderbook, Status, Ticker, Trade

__all__ = [
    "FORMAT_VERSION",
    "HEADER",
    "KINDS",
    "MAGIC",
    "MAX_RECORD_BYTES",
    "PAYLOAD_LEAD",
    "RECORD_HEADER",
    "SEGMENT_SUFFIX",
    "Item",
    "Marker",
    "Record",
    "event_ms",
    "frame",
    "kind_of",
    "pack_header",
]

MAGIC: Final = b"\x89RXM\r\n\x1a\n"
FORMAT_VERSION: Final = 1
SEGMENT_SUFFIX: Final = ".rxm"
HEADER: Final = struct.Struct("<8sHHII")  # magic, version, flags, meta length, meta crc
RECORD_HEADER: Final = struct.Struct("<II")  # payload length, payload crc32
PAYLOAD_LEAD: Final = 0x92  # msgpack fixarray of 2: every envelope starts with it
# A record larger than this is not something we wrote (the deepest Upbit book is ~3 KiB): a length
# field above it is damage, not a reason to allocate or skip gigabytes.
MAX_RECORD_BYTES: Final = 16 * 1024 * 1024


class Marker(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="marker"):
    """An event about the recording rather than the market: a disconnect, a reconnect, a filled gap.

    Attributes:
        kind: what happened: a ``Status`` kind (``"reconnected"``, ``"gap_filled"``, ``"stale"``, ...), a
            name given to ``Recorder.mark``, or one the recorder writes itself (``"completed"`` when the
            recorded stream ends, ``"error"`` when it fails, ``"unrecordable"`` for an item of a type that
            cannot be stored).
        timestamp: when it was recorded, ms since the epoch (wall clock), so markers sort among models.
        detail: free text.
        status: the ``Status`` event this marker was made from, kept whole, or ``None``.
    """

    kind: str
    timestamp: int
    detail: str = ""
    status: Status | None = None


Item = Ticker | Orderbook | Trade | Candle | Marker


class Record(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One stored record: the receipt time and the item.

    Attributes:
        recv_ns: when the recorder received the item, ns since the epoch (wall clock).
        item: the model (with the ``source`` it had when recorded) or a :class:`Marker`.
    """

    recv_ns: int
    item: Item


KINDS: Final[dict[type[Any], str]] = {
    Ticker: "ticker",
    Orderbook: "orderbook",
    Trade: "trade",
    Candle: "candle",
    Marker: "marker",
}

_encoder = msgspec.msgpack.Encoder()
_pack_record = RECORD_HEADER.pack
_crc32 = zlib.crc32


def kind_of(item: Item) -> str:
    """The tag of an item: ``"ticker"``, ``"orderbook"``, ``"trade"``, ``"candle"`` or ``"marker"``."""
    return KINDS[type(item)]


def event_ms(item: Item) -> int:
    """The time an item happened, ms since the epoch: what replay orders and paces by.

    The exchange ``timestamp`` for tickers, books and trades; for a candle its ``timestamp`` (the last
    tick in it, which also orders the several versions Upbit sends of an open candle) or its ``start``
    when the candle carries none; for a marker the time it was recorded.
    """
    if isinstance(item, Candle):
        return item.start if item.timestamp is None else item.timestamp
    return item.timestamp


def frame(recv_ns: int, item: Item) -> bytes:
    """One record, framed: length, CRC-32, MessagePack payload."""
    payload = _encoder.encode((recv_ns, item))
    return _pack_record(len(payload), _crc32(payload)) + payload


def pack_header(metadata: dict[str, Any]) -> bytes:
    """A segment header carrying ``metadata`` (any MessagePack-encodable map)."""
    meta = _encoder.encode(metadata)
    return HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(meta), _crc32(meta)) + meta

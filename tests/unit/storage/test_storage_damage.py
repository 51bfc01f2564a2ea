"""Damaged recordings still read: torn tails at every offset, CRC damage in the middle, bad headers."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rxmarket.storage import FORMAT_VERSION, MAGIC, ReadIssue, iter_records, read_segment, replay, verify
from rxmarket.storage._format import RECORD_HEADER, frame


def _offsets(segment: Path) -> list[int]:
    """Start offsets of the records of a clean segment, and the end of the file last."""
    data = segment.read_bytes()
    meta_len = struct.unpack_from("<I", data, 12)[0]
    pos, out = 20 + meta_len, []
    while pos < len(data):
        out.append(pos)
        pos += RECORD_HEADER.size + RECORD_HEADER.unpack_from(data, pos)[0]
    return [*out, len(data)]


def _items(n: int, models: Any) -> list[Any]:
    return [models.trade(ts=models.T0 + i, seq=i) if i % 2 else models.book(ts=models.T0 + i)
            for i in range(n)]


WINDOWS = [pytest.param(1 << 20, id="whole-file-window"), pytest.param(64, id="64-byte-window"),
           pytest.param(1, id="1-byte-window")]


@pytest.mark.parametrize("window", WINDOWS)
def test_tail_cut_at_every_byte_of_the_last_record_still_reads(write: Any, models: Any, window: int) -> None:
    """Cut anywhere inside the last record: every earlier record reads, and verify reports the tear
    (whatever the read window, so records and tears that straddle windows are covered too)."""
    items = _items(6, models)
    path = write(items)
    seg = next(path.glob("*.rxm"))
    whole = seg.read_bytes()
    last_start = _offsets(seg)[-2]
    for cut in range(last_start, len(whole)):
        seg.write_bytes(whole[:cut])
        issues: list[ReadIssue] = []
        got = [r.item for r in read_segment(seg, issues.append, window=window)]
        assert got == items[:-1], cut
        report = verify(path)
        if cut == last_start:  # the file ends exactly between records: nothing is torn
            assert issues == [], cut
            assert report.torn_tails == []
            assert report.ok
        else:
            lost = cut - last_start
            assert [(i.kind, i.offset, i.size) for i in issues] == [("torn_tail", last_start, lost)]
            assert [(t.offset, t.size) for t in report.torn_tails] == [(last_start, cut - last_start)], cut
            assert not report.ok
            assert report.records == len(items) - 1


def test_replay_of_a_torn_recording_emits_the_rest_and_completes(write: Any, models: Any) -> None:
    """Replay skips a torn tail (reported to on_issue), emits the whole records and completes."""
    items = _items(4, models)
    path = write(items)
    seg = next(path.glob("*.rxm"))
    seg.write_bytes(seg.read_bytes()[:-3])
    out: list[Any] = []
    done: list[bool] = []
    issues: list[ReadIssue] = []
    replay(path, on_issue=issues.append, kinds=["trade", "orderbook"]).subscribe(
        out.append, on_completed=lambda: done.append(True))
    assert [o.timestamp for o in out] == [i.timestamp for i in items[:-1]]
    assert done == [True]
    assert [i.kind for i in issues] == ["torn_tail"]


@pytest.mark.parametrize("window", WINDOWS)
def test_crc_damage_in_the_middle_skips_one_record_and_resyncs(write: Any, models: Any, window: int) -> None:
    """A flipped payload byte in a middle record loses that record only; it is reported as corrupt."""
    items = _items(7, models)
    path = write(items)
    seg = next(path.glob("*.rxm"))
    offs = _offsets(seg)
    data = bytearray(seg.read_bytes())
    data[offs[3] + 20] ^= 0xFF
    seg.write_bytes(bytes(data))
    issues: list[ReadIssue] = []
    got = [r.item for r in read_segment(seg, issues.append, window=window)]
    assert got == items[:3] + items[4:]
    assert [(i.kind, i.offset, i.size, i.reason) for i in issues] == [
        ("corrupt", offs[3], offs[4] - offs[3], "CRC-32 mismatch")]


@pytest.mark.parametrize("window", WINDOWS)
def test_damaged_length_field_in_the_middle_resyncs_by_scanning(write: Any, models: Any, window: int) -> None:
    """A length field overwritten with garbage is skipped by scanning to the next valid record."""
    items = _items(6, models)
    path = write(items)
    seg = next(path.glob("*.rxm"))
    offs = _offsets(seg)
    data = bytearray(seg.read_bytes())
    struct.pack_into("<I", data, offs[2], 0x7FFF_FFFF)
    seg.write_bytes(bytes(data))
    issues: list[ReadIssue] = []
    assert [r.item for r in read_segment(seg, issues.append, window=window)] == items[:2] + items[3:]
    assert [(i.kind, i.offset, i.size) for i in issues] == [("corrupt", offs[2], offs[3] - offs[2])]
    assert "implausible record length" in issues[0].reason


def test_zero_filled_tail_is_a_torn_tail_not_empty_records(write: Any, models: Any) -> None:
    """Zeros after the last record (a crash on some file systems) are a torn tail, never records."""
    items = _items(3, models)
    path = write(items)
    seg = next(path.glob("*.rxm"))
    size = seg.stat().st_size
    with seg.open("ab") as f:
        f.write(bytes(4096))
    issues: list[ReadIssue] = []
    assert [r.item for r in read_segment(seg, issues.append)] == items
    assert [(i.kind, i.offset, i.size) for i in issues] == [("torn_tail", size, 4096)]


def test_segment_cut_inside_its_header_is_a_torn_tail(write: Any, models: Any) -> None:
    """A segment whose header was cut short yields nothing and is reported, other segments still read."""
    path = write([models.trade(seq=1)], name="r")
    write([models.trade(seq=2)], name="r")  # a second writer appends segment 000001
    seg1 = path / "000001.rxm"
    seg1.write_bytes(seg1.read_bytes()[:15])
    issues: list[ReadIssue] = []
    assert [r.item.sequential_id for r in iter_records(path, issues.append)] == [1]
    assert [(i.kind, i.segment, i.offset, i.size) for i in issues] == [("torn_tail", str(seg1), 0, 15)]


def test_foreign_file_and_future_version_are_bad_segments(tmp_path: Path, write: Any, models: Any) -> None:
    """A *.rxm file with the wrong magic or an unknown version is skipped and reported, not raised."""
    path = write([models.trade(seq=1)])
    (path / "000007.rxm").write_bytes(b"hello, not a segment at all")
    future = MAGIC + struct.pack("<HHII", FORMAT_VERSION + 1, 0, 0, 0)
    (path / "000008.rxm").write_bytes(future)
    issues: list[ReadIssue] = []
    assert [r.item.sequential_id for r in iter_records(path, issues.append)] == [1]
    assert [(i.kind, Path(i.segment).name) for i in issues] == [
        ("bad_segment", "000007.rxm"), ("bad_segment", "000008.rxm")]
    assert "version 2" in issues[1].reason
    report = verify(path)
    assert not report.ok
    assert len(report.damaged) == 2


def test_undecodable_payload_with_valid_crc_is_skipped(write: Any, models: Any) -> None:
    """A record whose CRC matches but whose payload is no known item is reported and skipped."""
    path = write([models.trade(seq=1)])
    seg = next(path.glob("*.rxm"))
    payload = msgspec.msgpack.encode((1, {"type": "from_the_future", "x": 1}))
    with seg.open("ab") as f:
        f.write(RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
    with seg.open("ab") as f:  # and a valid record after it
        f.write(frame(2, models.trade(seq=2)))
    issues: list[ReadIssue] = []
    assert [r.item.sequential_id for r in read_segment(seg, issues.append)] == [1, 2]
    assert [i.kind for i in issues] == ["undecodable"]


@pytest.mark.parametrize("window", [1, 100, 1 << 20])
def test_records_larger_than_the_window_read_whole(write: Any, models: Any, window: int) -> None:
    """Many records, each larger than a small window, read back complete and in order."""
    items = [models.book(ts=models.T0 + i) for i in range(50)]
    path = write(items)
    seg = next(path.glob("*.rxm"))
    issues: list[ReadIssue] = []
    assert [r.item for r in read_segment(seg, issues.append, window=window)] == items
    assert issues == []

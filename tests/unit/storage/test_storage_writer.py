"""RecordingWriter: rotation by size and by time, the flush policy, appends, locking, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rxmarket.errors import ConfigError
from rxmarket.models import Market
from rxmarket.storage import RecordingWriter, iter_records, last_record, read_metadata, segment_paths


def test_rotates_by_size_without_splitting_records(tmp_path: Path, models: Any) -> None:
    """Segments stay under max_segment_bytes, and every record is read back in order across them."""
    items = [models.book(ts=models.T0 + i) for i in range(60)]
    with RecordingWriter(tmp_path / "r", max_segment_bytes=4096) as w:
        for item in items:
            w.write(item)
    segs = segment_paths(tmp_path / "r")
    assert len(segs) > 3
    assert all(s.stat().st_size <= 4096 for s in segs)
    assert [s.name for s in segs] == [f"{i:06d}.rxm" for i in range(len(segs))]
    assert [r.item for r in iter_records(tmp_path / "r")] == items


def test_rotates_by_time_using_the_injected_clock(tmp_path: Path, models: Any) -> None:
    """A record written once the segment is max_segment_seconds old starts a new segment."""
    clock = models.Clock()
    with RecordingWriter(tmp_path / "r", max_segment_seconds=60, clock=clock) as w:
        w.write(models.trade(seq=1))
        clock.advance(59.9)
        w.write(models.trade(seq=2))
        clock.advance(0.1)
        w.write(models.trade(seq=3))
        segments = list(w.segments)
    assert [[r.item.sequential_id for r in iter_records(s)] for s in segments] == [[1, 2], [3]]
    meta = read_metadata(segments[1])
    assert meta is not None
    assert meta["created_ns"] == clock.ns


def test_records_wait_in_the_buffer_until_flush_every(tmp_path: Path, models: Any) -> None:
    """Nothing reaches the file before flush_every records; then all of them do."""
    clock = models.Clock()
    with RecordingWriter(tmp_path / "r", flush_every=3, flush_interval=10, clock=clock) as w:
        w.write(models.trade(seq=1))
        w.write(models.trade(seq=2))
        on_disk_before = [r.item.sequential_id for r in iter_records(tmp_path / "r")]
        pending_before = w.pending
        w.write(models.trade(seq=3))
        on_disk_after = [r.item.sequential_id for r in iter_records(tmp_path / "r")]
        assert (on_disk_before, pending_before, on_disk_after, w.pending) == ([], 2, [1, 2, 3], 0)


def test_flush_interval_is_checked_on_write_and_by_flush_if_due(tmp_path: Path, models: Any) -> None:
    """After flush_interval a write flushes; a silent stream is flushed by flush_if_due (the timer)."""
    clock = models.Clock()
    path = tmp_path / "r"
    with RecordingWriter(path, flush_every=1000, flush_interval=1.0, clock=clock) as w:
        w.write(models.trade(seq=1))
        clock.advance(1.0)
        w.write(models.trade(seq=2))
        after_write = len(list(iter_records(path)))
        w.write(models.trade(seq=3))
        w.flush_if_due()
        not_due = len(list(iter_records(path)))
        clock.advance(1.0)
        w.flush_if_due()
        due = len(list(iter_records(path)))
    assert (after_write, not_due, due) == (2, 2, 3)


def test_markers_are_flushed_at_once(tmp_path: Path, models: Any) -> None:
    """A marker (a connection event) is written to the file immediately, with what was buffered."""
    clock = models.Clock()
    with RecordingWriter(tmp_path / "r", flush_every=1000, flush_interval=60, clock=clock) as w:
        w.write(models.trade(seq=1))
        marker = w.mark("disconnected", "socket closed")
        on_disk = [r.item for r in iter_records(tmp_path / "r")]
        assert on_disk == [models.trade(seq=1), marker]
        assert (marker.kind, marker.detail, marker.timestamp) == ("disconnected", "socket closed", models.T0)
        assert (w.records, w.markers) == (1, 1)


def test_a_second_writer_appends_a_new_segment(tmp_path: Path, models: Any) -> None:
    """Reopening a recording never touches old segments: it continues with the next number."""
    path = tmp_path / "r"
    with RecordingWriter(path) as w:
        w.write(models.trade(seq=1))
    first = (path / "000000.rxm").read_bytes()
    with RecordingWriter(path) as w:
        w.write(models.trade(seq=2))
    assert [s.name for s in segment_paths(path)] == ["000000.rxm", "000001.rxm"]
    assert (path / "000000.rxm").read_bytes() == first
    assert [r.item.sequential_id for r in iter_records(path)] == [1, 2]


def test_two_writers_on_one_recording_are_refused(tmp_path: Path) -> None:
    """While one writer holds a recording, another gets a ConfigError; after close it may open."""
    with RecordingWriter(tmp_path / "r"), pytest.raises(ConfigError, match="in use by another writer"):
        RecordingWriter(tmp_path / "r")
    with RecordingWriter(tmp_path / "r") as again:
        assert not again.closed


def test_unrecordable_items_and_closed_writers_raise_config_error(tmp_path: Path, models: Any) -> None:
    """Writing a type a recording cannot hold, or writing after close, is a ConfigError."""
    w = RecordingWriter(tmp_path / "r")
    with pytest.raises(ConfigError, match="cannot record Market"):
        w.write(Market(symbol="KRW-BTC"))  # type: ignore[arg-type]
    w.close()
    with pytest.raises(ConfigError, match="closed"):
        w.write(models.trade())
    assert w.closed


@pytest.mark.parametrize(
    ("opts", "message"),
    [({"max_segment_bytes": 10}, "max_segment_bytes"), ({"max_segment_seconds": 0}, "max_segment_seconds"),
     ({"flush_every": 0}, "flush_every"), ({"flush_interval": -1}, "flush_interval")],
)
def test_bad_options_are_config_errors(tmp_path: Path, opts: dict[str, Any], message: str) -> None:
    """Out-of-range writer options are refused with a message naming the option."""
    with pytest.raises(ConfigError, match=message):
        RecordingWriter(tmp_path / "r", **opts)


def test_a_file_path_is_not_a_recording_directory(tmp_path: Path) -> None:
    """Recording into an existing plain file is a ConfigError."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        RecordingWriter(tmp_path / "f")


def test_last_record_finds_where_an_append_should_resume(tmp_path: Path, models: Any) -> None:
    """last_record returns the newest record matching kind/symbol/unit, looking back across segments."""
    path = tmp_path / "r"
    with RecordingWriter(path) as w:
        w.write(models.trade("KRW-BTC", seq=1))
        w.write(models.candle("KRW-BTC", start=60_000, unit="1m"))
        w.write(models.candle("KRW-BTC", start=3_600_000, unit="60m"))
        w.write(models.trade("KRW-ETH", seq=2))
    with RecordingWriter(path) as w:
        w.write(models.trade("KRW-ETH", seq=3))
        w.mark("note")
    btc = last_record(path, kind="trade", symbol="KRW-BTC")
    eth = last_record(path, kind="trade", symbol="KRW-ETH")
    minute = last_record(path, symbol="KRW-BTC", unit="1m")
    anything = last_record(path)
    assert btc is not None
    assert eth is not None
    assert minute is not None
    assert anything is not None
    assert (btc.item.sequential_id, eth.item.sequential_id, minute.item.start) == (1, 3, 60_000)
    assert anything.item.kind == "note"
    assert last_record(path, kind="ticker") is None

"""record(observable, path): what a Recorder writes, when it flushes, how it stops."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import reactivex
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

from rxmarket.errors import ConfigError, TransportError
from rxmarket.models import Market, Status
from rxmarket.storage import Marker, iter_records, record


def _kinds(path: Path) -> list[str]:
    return [r.item.kind if isinstance(r.item, Marker) else type(r.item).__name__ for r in iter_records(path)]


def test_records_items_and_status_markers_in_arrival_order(tmp_path: Path, models: Any) -> None:
    """Models and Status events (from status=) are stored in the order they arrived."""
    data: Subject[Any] = Subject()
    status: Subject[Status] = Subject()
    rec = record(data, tmp_path / "r", status=status, scheduler=TestScheduler(), clock=models.Clock())
    data.on_next(models.trade(seq=1))
    status.on_next(Status(kind="stale", timestamp=1.0, symbol="KRW-BTC", delay=5.0))
    status.on_next(Status(kind="reconnected", timestamp=2.0, downtime=1.5))
    data.on_next(models.trade(seq=2))
    rec.close()
    assert _kinds(tmp_path / "r") == ["Trade", "stale", "reconnected", "Trade"]
    assert (rec.count, rec.markers, rec.closed) == (2, 2, True)


def test_close_unsubscribes_from_every_stream(tmp_path: Path, models: Any) -> None:
    """After close (here via ``with``) nothing more is recorded and the subjects have no observers."""
    data: Subject[Any] = Subject()
    status: Subject[Status] = Subject()
    with record(data, tmp_path / "r", status=status, scheduler=TestScheduler()) as rec:
        data.on_next(models.trade(seq=1))
    data.on_next(models.trade(seq=2))
    assert [r.item.sequential_id for r in iter_records(tmp_path / "r")] == [1]
    assert (data.observers, status.observers, rec.count) == ([], [], 1)


def test_completion_writes_a_marker_and_stops(tmp_path: Path, models: Any) -> None:
    """When the recorded stream completes, a "completed" marker is written and the recorder closes."""
    rec = record(reactivex.of(models.trade(seq=1), models.trade(seq=2)), tmp_path / "r",
                 scheduler=TestScheduler())
    assert _kinds(tmp_path / "r") == ["Trade", "Trade", "completed"]
    assert rec.closed
    assert rec.error is None


def test_an_error_is_recorded_as_a_marker_and_kept(tmp_path: Path, models: Any) -> None:
    """A failing stream leaves an "error" marker naming the error, and the recorder keeps the error."""
    data: Subject[Any] = Subject()
    rec = record(data, tmp_path / "r", scheduler=TestScheduler())
    data.on_next(models.trade(seq=1))
    boom = TransportError("connection reset")
    data.on_error(boom)
    last = list(iter_records(tmp_path / "r"))[-1].item
    assert isinstance(last, Marker)
    assert (last.kind, last.detail) == ("error", "TransportError: connection reset")
    assert rec.error is boom
    assert rec.closed


def test_status_stream_failure_is_noted_and_recording_goes_on(tmp_path: Path, models: Any) -> None:
    """The status stream failing writes a "status_error" marker; data keeps being recorded."""
    data: Subject[Any] = Subject()
    status: Subject[Status] = Subject()
    rec = record(data, tmp_path / "r", status=status, scheduler=TestScheduler())
    status.on_error(RuntimeError("status gone"))
    data.on_next(models.trade(seq=1))
    rec.close()
    assert _kinds(tmp_path / "r") == ["status_error", "Trade"]


def test_unrecordable_items_become_markers_and_do_not_stop_the_recording(tmp_path: Path, models: Any) -> None:
    """An item of a type a recording cannot hold is counted and noted as a marker; the rest goes on."""
    data: Subject[Any] = Subject()
    rec = record(data, tmp_path / "r", scheduler=TestScheduler())
    data.on_next(Market(symbol="KRW-BTC"))
    data.on_next(models.trade(seq=1))
    rec.close()
    recs = [r.item for r in iter_records(tmp_path / "r")]
    assert isinstance(recs[0], Marker)
    assert recs[0].kind == "unrecordable"
    assert recs[0].detail.startswith("Market: ")
    assert recs[1] == models.trade(seq=1)
    assert (rec.rejected, rec.count) == (1, 1)


def test_the_flush_timer_writes_a_silent_streams_buffer(tmp_path: Path, models: Any) -> None:
    """Buffered records reach the file when the flush timer fires after flush_interval, not before."""
    scheduler = TestScheduler()
    clock = models.Clock()
    data: Subject[Any] = Subject()
    rec = record(data, tmp_path / "r", scheduler=scheduler, clock=clock, flush_every=1000, flush_interval=2.0)
    data.on_next(models.trade(seq=1))
    scheduler.advance_by(1.0)
    clock.advance(1.0)
    before = len(list(iter_records(tmp_path / "r")))
    clock.advance(1.0)
    scheduler.advance_by(1.0)
    after = len(list(iter_records(tmp_path / "r")))
    rec.close()
    assert (before, after) == (0, 1)


def test_record_needs_an_observable(tmp_path: Path) -> None:
    """Passing something that is not an Observable is a ConfigError, and nothing is left locked."""
    with pytest.raises(ConfigError, match="needs an Observable"):
        record([1, 2, 3], tmp_path / "r")  # type: ignore[arg-type]
    with record(reactivex.empty(), tmp_path / "r", scheduler=TestScheduler()) as rec:
        assert rec.closed  # empty() completed at once


async def test_async_with_on_the_loop_scheduler(tmp_path: Path, models: Any) -> None:
    """On a running loop the recorder uses the loop's timer; ``async with`` closes it cleanly."""
    data: Subject[Any] = Subject()
    async with record(data, tmp_path / "r", flush_interval=0.01) as rec:
        data.on_next(models.trade(seq=1))
        data.on_next(models.trade(seq=2))
    assert rec.closed
    assert [r.item.sequential_id for r in iter_records(tmp_path / "r")] == [1, 2]


async def test_wait_closed_returns_when_the_stream_ends(tmp_path: Path, models: Any) -> None:
    """wait_closed() wakes up when the recorded stream completes on the loop."""
    data: Subject[Any] = Subject()
    rec = record(data, tmp_path / "r")
    waiter = asyncio.ensure_future(rec.wait_closed())  # its first step runs before the callback below
    asyncio.get_running_loop().call_soon(data.on_completed)
    assert not waiter.done()
    await asyncio.wait_for(waiter, timeout=5)
    assert rec.closed
    assert _kinds(tmp_path / "r") == ["completed"]


def test_an_abandoned_wait_closed_does_not_break_close(tmp_path: Path, models: Any) -> None:
    """A ``wait_closed()`` cancelled in a loop that has since ended is forgotten: ``close()`` still works."""
    data: Subject[Any] = Subject()
    rec = record(data, tmp_path / "r", scheduler=TestScheduler(), clock=models.Clock())

    async def give_up_waiting() -> None:
        waiter = asyncio.ensure_future(rec.wait_closed())
        await asyncio.sleep(0)  # let it register, then cancel it (as asyncio.wait_for does on a timeout)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(give_up_waiting())
    rec.close()
    assert rec.closed
    assert _kinds(tmp_path / "r") == []

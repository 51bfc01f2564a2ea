"""replay(): order, pacing in virtual time, equivalence with live operators, disposal, filters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from reactivex import operators as ops
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler

from rxmarket.errors import ConfigError
from rxmarket.models import Orderbook, Status, Ticker, Trade
from rxmarket.storage import Marker, RecordingWriter, historical_scheduler, record, replay

on_next = ReactiveTest.on_next
STREAM = Path(__file__).resolve().parents[2] / "data" / "upbit" / "ws_stream_default.jsonl"
_DECODER = msgspec.json.Decoder(Ticker | Orderbook | Trade)


def _collect(observable: Any) -> list[Any]:
    out: list[Any] = []
    observable.subscribe(out.append)
    return out


def test_several_recordings_merge_by_timestamp_ties_to_the_first_listed(write: Any, models: Any) -> None:
    """Two recordings interleave by exchange time; on equal times the recording listed first wins."""
    t = models.T0
    a = write([models.trade(ts=t + 1, seq=1), models.trade(ts=t + 3, seq=3), models.trade(ts=t + 5, seq=5)],
              name="a")
    b = write([models.trade(ts=t + 2, seq=2), models.trade(ts=t + 3, seq=33), models.trade(ts=t + 4, seq=4)],
              name="b")
    assert [x.sequential_id for x in _collect(replay([a, b]))] == [1, 2, 3, 33, 4, 5]
    assert [x.sequential_id for x in _collect(replay([b, a]))] == [1, 2, 33, 3, 4, 5]


def test_one_recording_keeps_its_recorded_order(write: Any, models: Any) -> None:
    """Within a recording, a late item with an older timestamp stays where it was recorded."""
    t = models.T0
    path = write([models.trade(ts=t + 10, seq=1), models.trade(ts=t + 5, seq=2),
                  models.trade(ts=t + 20, seq=3)])
    assert [x.sequential_id for x in _collect(replay(path))] == [1, 2, 3]


def test_speed_n_paces_items_at_exact_virtual_ticks(write: Any, models: Any) -> None:
    """At speed=2 an item t ms after the first is emitted (t / 2) ms after subscription, exactly;
    items at the same time, or going back in time, follow at once."""
    t = models.T0
    path = write([models.trade(ts=t, seq=1), models.trade(ts=t + 1000, seq=2),
                  models.trade(ts=t + 2500, seq=3), models.trade(ts=t + 2500, seq=4),
                  models.trade(ts=t + 2000, seq=5), models.trade(ts=t + 4000, seq=6)])
    scheduler = TestScheduler()
    result = scheduler.start(lambda: replay(path, speed=2.0, scheduler=scheduler).pipe(
        ops.map(lambda x: x.sequential_id)))
    assert result.messages == [
        on_next(200.0, 1), on_next(200.5, 2), on_next(201.25, 3), on_next(201.25, 4), on_next(201.25, 5),
        on_next(202.0, 6), ReactiveTest.on_completed(202.0),
    ]


def test_speed_n_uses_the_subscribers_scheduler_when_none_given(write: Any, models: Any) -> None:
    """Without scheduler=, a paced replay runs on the scheduler given at subscribe time."""
    path = write([models.trade(ts=models.T0, seq=1), models.trade(ts=models.T0 + 3000, seq=2)])
    scheduler = TestScheduler()
    result = scheduler.start(lambda: replay(path, speed=1.0).pipe(ops.map(lambda x: x.sequential_id)))
    assert result.messages == [on_next(200.0, 1), on_next(203.0, 2), ReactiveTest.on_completed(203.0)]


# Irregular times, none on an operator's own timer tick: an item and a timer at the very same instant
# are simultaneous, and which goes first is not something a recording can say.
TIMES_MS = [0, 100, 250, 1310, 1350, 1420, 3030, 3050, 5210, 5330, 5331, 7010]


@pytest.mark.parametrize(
    "operator",
    [
        pytest.param(lambda s: ops.debounce(0.2, scheduler=s), id="debounce"),
        pytest.param(lambda s: ops.throttle_first(1.0, scheduler=s), id="throttle_first"),
        pytest.param(lambda s: ops.buffer_with_time(1.0, scheduler=s), id="buffer_with_time"),
        pytest.param(lambda s: ops.sample(0.7, scheduler=s), id="sample"),
    ],
)
def test_virtual_time_replay_behaves_as_live(write: Any, models: Any, operator: Any) -> None:
    """A time-based operator over a replay on a HistoricalScheduler emits what it emits over the same
    items at the same times on a TestScheduler (the "live" reference), at the same offsets."""
    path = write([models.trade(ts=models.T0 + ms, seq=i) for i, ms in enumerate(TIMES_MS)])

    historical = historical_scheduler(path)
    origin = historical.now
    replayed: list[tuple[float, Any]] = []

    def keep(x: Any) -> Any:
        return [y.sequential_id for y in x] if isinstance(x, list) else x.sequential_id

    replay(path, speed=1.0, scheduler=historical).pipe(operator(historical)).subscribe(
        lambda x: replayed.append((round((historical.now - origin).total_seconds(), 6), keep(x))))
    historical.start()

    live = TestScheduler()
    source = live.create_cold_observable(  # times relative to the subscription at 300
        *(on_next(ms / 1000, models.trade(ts=models.T0 + ms, seq=i)) for i, ms in enumerate(TIMES_MS)),
        ReactiveTest.on_completed(TIMES_MS[-1] / 1000),
    )
    reference: list[tuple[float, Any]] = []
    live.schedule_absolute(300.0, lambda *_: source.pipe(operator(live)).subscribe(
        lambda x: reference.append((round(live.clock - 300.0, 6), keep(x)))))
    live.start()

    assert origin == datetime.fromtimestamp(models.T0 / 1000, tz=UTC)
    assert len(reference) > 2
    assert replayed == reference


def test_fast_replay_stops_reading_when_disposed_downstream(write: Any, models: Any) -> None:
    """With take(3) downstream, a full-speed replay emits 3 items and stops, not the whole file."""
    path = write([models.trade(ts=models.T0 + i, seq=i) for i in range(500)])
    emitted: list[int] = []
    taken = _collect(replay(path).pipe(ops.do_action(lambda x: emitted.append(x.sequential_id)), ops.take(3)))
    assert [x.sequential_id for x in taken] == [0, 1, 2]
    assert emitted == [0, 1, 2]


def test_chunked_replay_on_a_scheduler_stops_between_chunks(write: Any, models: Any) -> None:
    """On a given scheduler a full-speed replay emits in chunks; disposing after one chunk stops it."""
    path = write([models.trade(ts=models.T0 + i, seq=i) for i in range(3000)])
    scheduler = TestScheduler()
    out: list[Any] = []
    subscription = replay(path, scheduler=scheduler).subscribe(out.append)
    scheduler.schedule(lambda *_: subscription.dispose())  # queued after the first chunk
    scheduler.start()
    assert len(out) == 1024
    assert [x.sequential_id for x in out[:3]] == [0, 1, 2]


def test_paced_replay_disposed_mid_way_emits_nothing_more(write: Any, models: Any) -> None:
    """Disposing a paced replay at a virtual instant cancels everything due after it."""
    path = write([models.trade(ts=models.T0 + 500 * i, seq=i) for i in range(10)])
    scheduler = TestScheduler()
    result = scheduler.start(lambda: replay(path, speed=1.0, scheduler=scheduler).pipe(
        ops.map(lambda x: x.sequential_id)), disposed=201.2)
    assert result.messages == [on_next(200.0, 0), on_next(200.5, 1), on_next(201.0, 2)]
    # The clock stops at the one item that was pending (cancelled): nothing was scheduled after it.
    assert scheduler.clock == 201.5


def test_filters_select_symbols_kinds_and_a_time_window(tmp_path: Path, models: Any) -> None:
    """symbols, kinds, start and end select what is emitted; markers only when asked for."""
    t = models.T0
    clock = models.Clock(t + 2)
    path = tmp_path / "r"
    with RecordingWriter(path, clock=clock) as w:
        w.write(models.trade("KRW-BTC", ts=t, seq=1))
        w.write(models.ticker("KRW-ETH", ts=t + 1))
        w.mark("note")
        w.write(Status(kind="stale", timestamp=0.0, symbol="KRW-XRP"))
        w.write(models.trade("KRW-ETH", ts=t + 3, seq=2))
        w.write(models.trade("KRW-BTC", ts=t + 4, seq=3))

    def names(**kw: Any) -> list[str]:
        return [x.kind if isinstance(x, Marker) else f"{type(x).__name__}:{x.symbol}:{x.timestamp - t}"
                for x in _collect(replay(path, **kw))]

    assert names() == ["Trade:KRW-BTC:0", "Ticker:KRW-ETH:1", "Trade:KRW-ETH:3", "Trade:KRW-BTC:4"]
    assert names(symbols=["KRW-ETH"]) == ["Ticker:KRW-ETH:1", "Trade:KRW-ETH:3"]
    assert names(kinds=["trade", "marker"], symbols="KRW-BTC") == [
        "Trade:KRW-BTC:0", "note", "Trade:KRW-BTC:4"]
    assert names(kinds="marker") == ["note", "stale"]
    assert names(start=t + 1, end=t + 4) == ["Ticker:KRW-ETH:1", "Trade:KRW-ETH:3"]
    assert names(start=datetime.fromtimestamp(t / 1000, tz=UTC) + timedelta(milliseconds=3)) == [
        "Trade:KRW-ETH:3", "Trade:KRW-BTC:4"]


def test_received_timeline_orders_and_paces_by_receipt_time(tmp_path: Path, models: Any) -> None:
    """timeline="received" paces by when the recorder got each item, not by the exchange's time."""
    t = models.T0
    path = tmp_path / "r"
    with RecordingWriter(path) as w:
        w.write(models.trade(ts=t, seq=1), recv_ns=(t + 100) * 1_000_000)
        w.write(models.trade(ts=t + 1, seq=2), recv_ns=(t + 2100) * 1_000_000)
    scheduler = TestScheduler()
    result = scheduler.start(lambda: replay(path, speed=1.0, scheduler=scheduler, timeline="received").pipe(
        ops.map(lambda x: x.sequential_id)))
    assert result.messages == [on_next(200.0, 1), on_next(202.0, 2), ReactiveTest.on_completed(202.0)]


def test_each_subscription_reads_the_recording_anew(write: Any, models: Any) -> None:
    """A replay is cold: two subscriptions each get every item."""
    source = replay(write([models.trade(seq=1), models.trade(seq=2)]))
    assert [len(_collect(source)), len(_collect(source))] == [2, 2]


async def test_paced_replay_on_the_running_loop(write: Any, models: Any) -> None:
    """With no scheduler on a running loop, a fast-forwarded replay emits everything and completes."""
    path = write([models.trade(ts=models.T0 + 10 * i, seq=i) for i in range(50)])
    done: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
    got: list[int] = []
    replay(path, speed=1000.0).subscribe(
        lambda x: got.append(x.sequential_id), done.set_exception, lambda: done.set_result(got))
    assert await asyncio.wait_for(done, timeout=10) == list(range(50))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"speed": 0}, "speed"), ({"speed": -1.0}, "speed"), ({"kinds": ["tickers"]}, "unknown kinds"),
     ({"start": datetime(2026, 1, 1)}, "timezone-aware"), ({"timeline": "wall"}, "timeline")],
)
def test_bad_arguments_are_config_errors(
    write: Any, models: Any, kwargs: dict[str, Any], message: str
) -> None:
    """Out-of-range arguments are refused at once, naming the argument."""
    path = write([models.trade()])
    with pytest.raises(ConfigError, match=message):
        replay(path, **kwargs)


def test_a_missing_recording_is_a_config_error(tmp_path: Path) -> None:
    """Replaying a path that does not exist fails at the call, not later on subscribe."""
    with pytest.raises(ConfigError, match="does not exist"):
        replay(tmp_path / "nope")


def test_historical_scheduler_of_an_empty_selection_is_a_config_error(write: Any, models: Any) -> None:
    """There is no first instant to start a virtual clock at when nothing matches."""
    path = write([models.trade()])
    with pytest.raises(ConfigError, match="nothing to replay"):
        historical_scheduler(path, kinds=["candle"])


async def test_a_recorded_stream_replays_equal_field_for_field(tmp_path: Path, models: Any) -> None:
    """Done-when of the issue: record a live-like stream (real Upbit frames among generated models,
    status events between), then replay it: the same models in the same order, equal except source."""
    captured = [_DECODER.decode(line) for line in STREAM.read_bytes().splitlines()]
    stream: Subject[Any] = Subject()
    status: Subject[Status] = Subject()
    sent: list[Any] = []
    async with record(stream, tmp_path / "r", status=status, max_segment_bytes=64 * 1024) as rec:
        for i, item in enumerate(captured + [models.candle(start=60_000 * k) for k in range(30)]):
            stream.on_next(item)
            sent.append(item)
            if i % 100 == 99:
                status.on_next(Status(kind="reconnected", timestamp=float(i), downtime=0.5))
    assert len(rec.segments) > 1
    replayed = _collect(replay(tmp_path / "r"))
    assert {x.source for x in replayed} == {"replay"}
    assert [msgspec.structs.replace(x, source="-") for x in replayed] == [
        msgspec.structs.replace(x, source="-") for x in sent]
    assert len(_collect(replay(tmp_path / "r", kinds="marker"))) == 3


def test_a_file_that_is_not_a_segment_or_no_path_at_all_is_a_config_error(tmp_path: Path) -> None:
    """replay() refuses a plain file and an empty list of recordings up front."""
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a recording segment"):
        replay(tmp_path / "notes.txt")
    with pytest.raises(ConfigError, match="no recording given"):
        replay([])

"""Round trips: what is written is read back field for field, for every model type and for markers."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import inspect as mi

from rxmarket.models import Candle, Orderbook, Status, Ticker, Trade
from rxmarket.storage import Marker, RecordingWriter, iter_records, read_metadata, replay


def _strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    """A hypothesis strategy for any value of a msgspec field type (NaN excluded: NaN != NaN)."""
    if isinstance(t, mi.UnionType):
        return st.one_of(*(_strategy(x) for x in t.types))
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.IntType):
        return st.integers(-(2**63), 2**63 - 1)
    if isinstance(t, mi.FloatType):
        return st.floats(allow_nan=False)
    if isinstance(t, mi.StrType):
        return st.text(max_size=12)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.VarTupleType):
        return st.lists(_strategy(t.item_type), max_size=4).map(tuple)
    if isinstance(t, mi.StructType):
        return st.builds(t.cls, **{f.name: _strategy(f.type) for f in t.fields})
    if isinstance(t, mi.AnyType):
        return st.one_of(st.none(), st.text(max_size=8), st.integers(-1000, 1000))
    raise AssertionError(f"no strategy for {t!r}")


def _models_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return _strategy(info)


ANY_ITEM = st.one_of(*(_models_of(c) for c in (Ticker, Orderbook, Trade, Candle, Marker)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(ANY_ITEM, min_size=1, max_size=12), recv=st.integers(0, 2**62))
def test_every_item_type_reads_back_equal(items: list[Any], recv: int) -> None:
    """Any mix of models and markers, with any field values, is read back equal and in order."""
    with tempfile.TemporaryDirectory() as tmp:
        with RecordingWriter(Path(tmp) / "r") as w:
            for i, item in enumerate(items):
                w.write(item, recv_ns=recv + i)
        got = list(iter_records(Path(tmp) / "r"))
    assert [r.item for r in got] == items
    assert [r.recv_ns for r in got] == [recv + i for i in range(len(items))]


@settings(max_examples=40, deadline=None)
@given(items=st.lists(st.one_of(*(_models_of(c) for c in (Ticker, Orderbook, Trade, Candle))),
                      min_size=1, max_size=10))
def test_replay_equals_recorded_except_source(items: list[Any]) -> None:
    """Replayed models equal the recorded ones field for field, except ``source``, which is "replay"."""
    with tempfile.TemporaryDirectory() as tmp:
        with RecordingWriter(Path(tmp) / "r") as w:
            for item in items:
                w.write(item)
        out: list[Any] = []
        replay(Path(tmp) / "r").subscribe(out.append)
    assert [o.source for o in out] == ["replay"] * len(items)
    assert [msgspec.structs.replace(o, source="x") for o in out] == [
        msgspec.structs.replace(i, source="x") for i in items
    ]


def test_status_is_stored_as_a_marker_keeping_the_event(write: Any, models: Any) -> None:
    """A ``Status`` written to a recording comes back as a ``Marker`` of its kind holding the event."""
    status = Status(kind="reconnected", timestamp=12.5, connection=1, downtime=3.0, detail="after drop")
    path = write([models.ticker(), status], clock=models.Clock())
    recs = list(iter_records(path))
    marker = recs[1].item
    assert isinstance(marker, Marker)
    assert (marker.kind, marker.detail, marker.status) == ("reconnected", "after drop", status)
    assert marker.timestamp == recs[1].recv_ns // 1_000_000 == models.T0


def test_segment_header_keeps_metadata(write: Any, models: Any) -> None:
    """The caller's metadata and the segment number are in each segment's header."""
    path = write([models.trade()], metadata={"symbol": "KRW-BTC", "kind": "trade"}, clock=models.Clock())
    meta = read_metadata(next(path.glob("*.rxm")))
    assert meta is not None
    assert (meta["symbol"], meta["kind"], meta["segment"], meta["created_ns"]) == (
        "KRW-BTC", "trade", 0, models.T0 * 1_000_000)
    assert meta["writer"].startswith("rxmarket")


def test_real_upbit_frames_round_trip(write: Any) -> None:
    """Models decoded from real Upbit DEFAULT frames (bundled captures) survive a recording unchanged."""
    data = Path(__file__).resolve().parents[2] / "data" / "upbit"
    decoder = msgspec.json.Decoder(Ticker | Orderbook | Trade)
    items = [decoder.decode((data / name).read_bytes()) for name in
             ("ws_ticker_default.json", "ws_orderbook_default_docs2025.json", "ws_trade_default_2026.json")]
    path = write(items)
    assert [r.item for r in iter_records(path)] == items

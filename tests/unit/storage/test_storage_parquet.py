"""export_parquet(): one file per kind, one column per field, values as recorded (optional extra)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rxmarket.errors import ConfigError
from rxmarket.models import Status
from rxmarket.storage import RecordingWriter, export_parquet


def _recording(tmp_path: Path, models: Any) -> tuple[Path, list[Any]]:
    items = [models.trade(seq=1), models.book(), models.trade("KRW-ETH", seq=2, prev_close=None),
             models.ticker(delisting_date={"date": "2026-01-01"})]
    path = tmp_path / "r"
    with RecordingWriter(path) as w:
        for i, item in enumerate(items):
            w.write(item, recv_ns=1000 + i)
        w.write(Status(kind="reconnected", timestamp=1.0, downtime=2.0), recv_ns=2_000_000)
    return path, items


def test_one_file_per_kind_with_python_field_names(tmp_path: Path, models: Any) -> None:
    """Each kind gets <kind>.parquet whose columns are recv_ns then the model's Python field names."""
    pq = pytest.importorskip("pyarrow.parquet")
    path, _items = _recording(tmp_path, models)
    files = export_parquet(path, tmp_path / "out")
    assert sorted(files) == ["marker", "orderbook", "ticker", "trade"]
    trades = pq.read_table(files["trade"])
    fields = [f.name for f in msgspec.structs.fields(type(models.trade()))]
    assert trades.column_names == ["recv_ns", *fields]
    assert trades.column("sequential_id").to_pylist() == [1, 2]
    assert trades.column("prev_close").to_pylist() == [99.0, None]
    assert trades.column("recv_ns").to_pylist() == [1000, 1002]


def test_nested_and_any_fields_are_kept(tmp_path: Path, models: Any) -> None:
    """Book units become a list of structs, a marker's Status a struct, an Any field JSON text."""
    pq = pytest.importorskip("pyarrow.parquet")
    path, items = _recording(tmp_path, models)
    files = export_parquet(path, tmp_path / "out")
    units = pq.read_table(files["orderbook"]).column("units").to_pylist()[0]
    assert units == [msgspec.structs.asdict(u) for u in items[1].units]
    marker = pq.read_table(files["marker"]).to_pylist()[0]
    assert (marker["kind"], marker["status"]["downtime"], marker["timestamp"]) == ("reconnected", 2.0, 2)
    assert pq.read_table(files["ticker"]).column("delisting_date").to_pylist() == ['{"date":"2026-01-01"}']


def test_a_kind_asked_for_gets_a_file_even_when_empty(tmp_path: Path, models: Any) -> None:
    """kind="candle" on a recording without candles writes an empty table with the candle schema."""
    pq = pytest.importorskip("pyarrow.parquet")
    path, _items = _recording(tmp_path, models)
    files = export_parquet(path, tmp_path / "out", kind="candle")
    table = pq.read_table(files["candle"])
    assert list(files) == ["candle"]
    assert (table.num_rows, table.column_names[:4]) == (0, ["recv_ns", "symbol", "unit", "start"])


def test_small_row_groups_hold_every_row(tmp_path: Path, models: Any) -> None:
    """batch_rows bounds each row group; all rows are still written, in order."""
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "r"
    with RecordingWriter(path) as w:
        for i in range(25):
            w.write(models.trade(seq=i))
    files = export_parquet(path, tmp_path / "out", kind=["trade"], batch_rows=10)
    meta = pq.ParquetFile(files["trade"]).metadata
    assert (meta.num_row_groups, meta.num_rows) == (3, 25)
    assert pq.read_table(files["trade"]).column("sequential_id").to_pylist() == list(range(25))


def test_missing_pyarrow_names_the_extra(
    tmp_path: Path, models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pyarrow the error says to install rxmarket[parquet]."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail, as when not installed
    path, _items = _recording(tmp_path, models)
    with pytest.raises(ConfigError, match=r"rxmarket\[parquet\]"):
        export_parquet(path, tmp_path / "out")


def test_unknown_kind_is_a_config_error(tmp_path: Path, models: Any) -> None:
    """Asking for a kind that does not exist is refused before anything is read."""
    path, _items = _recording(tmp_path, models)
    with pytest.raises(ConfigError, match="unknown kinds"):
        export_parquet(path, tmp_path / "out", kind="tickers")

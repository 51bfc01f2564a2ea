"""``export_parquet``: a recording as Parquet files, one per kind, for pandas / polars / DuckDB users.

Optional: needs ``pyarrow`` (``pip install 'rxmarket[parquet]'``), imported only when called.

Each file has a ``recv_ns`` column (receipt time, ns) followed by one column per model field under its
Python name (``symbol``, ``price``, ... not Upbit's wire keys), typed from the model: ``int`` -> int64,
``float`` -> float64, ``str`` -> string, ``bool`` -> bool, optional fields nullable; an order book's
``units`` is a list of structs; a marker's ``status`` a struct; a field typed ``Any`` is stored as JSON
text. Values are exported as recorded (``source`` included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
from msgspec import inspect as mi

from rxmarket.errors import ConfigError
from rxmarket.storage._format import KINDS, Item
from rxmarket.storage._reader import ReadIssue, read_segment, segment_paths

__all__ = ["export_parquet"]

_CLASSES = {kind: cls for cls, kind in KINDS.items()}
_json = msgspec.json.encode


def _pyarrow() -> tuple[Any, Any]:
    try:
        # An optional extra, imported only when an export is asked for.
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError(
            "export_parquet needs pyarrow, which is an optional extra: pip install 'rxmarket[parquet]'"
        ) from exc
    return pa, pq


def _arrow_type(pa: Any, t: mi.Type) -> tuple[Any, Callable[[Any], Any]]:
    """The Arrow type for a msgspec type, and how to convert a value of it."""
    if isinstance(t, mi.UnionType):
        inner = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(inner) == 1:
            arrow, conv = _arrow_type(pa, inner[0])
            return arrow, (lambda v: None if v is None else conv(v))
    elif isinstance(t, mi.IntType):
        return pa.int64(), _same
    elif isinstance(t, mi.FloatType):
        return pa.float64(), _same
    elif isinstance(t, mi.StrType):
        return pa.string(), _same
    elif isinstance(t, mi.BoolType):
        return pa.bool_(), _same
    elif isinstance(t, mi.StructType):
        parts = [(f.name, *_arrow_type(pa, f.type)) for f in t.fields]
        arrow = pa.struct([(name, typ) for name, typ, _ in parts])

        def struct_value(v: Any) -> dict[str, Any]:
            return {name: conv(getattr(v, name)) for name, _typ, conv in parts}

        return arrow, struct_value
    elif isinstance(t, mi.VarTupleType | mi.ListType):
        arrow, conv = _arrow_type(pa, t.item_type)
        return pa.list_(arrow), (lambda v: [conv(x) for x in v])
    # Anything else (Any, literals, mixed unions): JSON text keeps it whole.
    return pa.string(), (lambda v: None if v is None else _json(v).decode())


def _same(v: Any) -> Any:
    return v


class _KindWriter:
    """Buffers the rows of one kind and writes them in row groups."""

    def __init__(self, pa: Any, pq: Any, kind: str, target: Path, batch_rows: int) -> None:
        info = mi.type_info(_CLASSES[kind])
        assert isinstance(info, mi.StructType)
        self.columns = [("recv_ns", pa.int64(), _same)] + [(f.name, *_arrow_type(pa, f.type))
                                                           for f in info.fields]
        self.schema = pa.schema([(name, typ) for name, typ, _ in self.columns])
        self.pa = pa
        self.target = target
        self.writer = pq.ParquetWriter(str(target), self.schema)
        self.batch_rows = batch_rows
        self.rows: dict[str, list[Any]] = {name: [] for name, _t, _c in self.columns}
        self.count = 0

    def add(self, recv_ns: int, item: Item) -> None:
        rows = self.rows
        rows["recv_ns"].append(recv_ns)
        for name, _typ, conv in self.columns[1:]:
            rows[name].append(conv(getattr(item, name)))
        self.count += 1
        if len(rows["recv_ns"]) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self.rows["recv_ns"]:
            self.writer.write_table(self.pa.Table.from_pydict(self.rows, schema=self.schema))
            self.rows = {name: [] for name in self.rows}

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.writer.close()


def export_parquet(
    path: str | Path,
    out_dir: str | Path,
    kind: str | Iterable[str] | None = None,
    *,
    batch_rows: int = 65_536,
    on_issue: Callable[[ReadIssue], None] | None = None,
) -> dict[str, Path]:
    """Export a recording to ``out_dir/<kind>.parquet``, one file per kind (existing files are replaced).

    Args:
        path: a recording directory or one segment file.
        out_dir: where to write (created if missing).
        kind: one kind or several (``"ticker"``, ``"orderbook"``, ``"trade"``, ``"candle"``,
            ``"marker"``); ``None`` for every kind present. A kind asked for by name gets a file even
            when the recording holds none of it (an empty table with the full schema).
        batch_rows: rows per Parquet row group (bounds memory).
        on_issue: called with each damage found while reading (damaged records are skipped).

    Returns:
        The files written, by kind.

    Raises:
        ConfigError: pyarrow is missing (install ``rxmarket[parquet]``), a path does not exist, or an
            unknown kind was asked for.
    """
    wanted: frozenset[str] | None = None
    if kind is not None:
        wanted = frozenset([kind] if isinstance(kind, str) else kind)
        unknown = wanted - set(_CLASSES)
        if unknown:
            raise ConfigError(f"unknown kinds {sorted(unknown)}; choose from {sorted(_CLASSES)}")
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be >= 1, got {batch_rows!r}")
    pa, pq = _pyarrow()
    segments = segment_paths(path)  # a missing recording fails before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, _KindWriter] = {}
    try:
        for k in sorted(wanted or ()):
            writers[k] = _KindWriter(pa, pq, k, out / f"{k}.parquet", batch_rows)
        for rec in (r for seg in segments for r in read_segment(seg, on_issue)):
            k = KINDS[type(rec.item)]
            w = writers.get(k)
            if w is None:
                if wanted is not None:
                    continue
                w = writers[k] = _KindWriter(pa, pq, k, out / f"{k}.parquet", batch_rows)
            w.add(rec.recv_ns, rec.item)
    finally:
        for w in writers.values():
            w.close()
    return {k: w.target for k, w in sorted(writers.items())}

"""``verify(path)``: an integrity report of a recording, for people and for machines.

What is looked for, per ``(kind, symbol)``:

* damage: torn tails, corrupt stretches, undecodable records, bad segments (see ``_reader``);
* duplicates: a trade whose ``(symbol, sequential_id)`` was seen before (within the last
  ``dedupe_window`` trades); a candle whose ``(symbol, unit, start)`` was seen with the same
  ``timestamp`` (a newer ``timestamp`` is an update of an open candle, counted apart, not a problem);
* out-of-order: an exchange timestamp lower than one seen before for the same market (for candles, a
  ``start`` lower than one seen before, or an older version of the same candle);
* candle gaps: starts missing between the first and the last candle of a ``(symbol, unit)``, by fixed
  length for seconds/minutes/days/weeks and by calendar for months/years. Upbit makes a candle only when
  something traded, so an illiquid market has gaps that lose nothing: ``allow_gaps=True`` reports them
  without failing;
* check failures: items for which a check returns a reason (by default the built-in checks of
  ``ops.validate``: prices, ranges, sizes, side, unit, timestamps, change fields, book order and crossing).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from rxmarket.errors import ConfigError
from rxmarket.models import CANDLE_UNITS, Candle, Trade
from rxmarket.storage._backfill import FIXED_MS, next_period
from rxmarket.storage._checks import Check, default_checks
from rxmarket.storage._format import Marker, event_ms, kind_of
from rxmarket.storage._reader import ReadIssue, read_segment, segment_paths

__all__ = ["CandleGap", "Finding", "IntegrityReport", "verify"]

class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One record that something is wrong with.

    Attributes:
        kind: the item's kind (``"trade"``, ``"candle"``, ...).
        symbol: its market.
        timestamp: its exchange time (ms).
        segment: the segment file it is in.
        index: its position among the valid records of the recording (0-based).
        reason: what is wrong.
    """

    kind: str
    symbol: str
    timestamp: int
    segment: str
    index: int
    reason: str


class CandleGap(msgspec.Struct, frozen=True, kw_only=True):
    """Candle starts missing between two candles that are there.

    Attributes:
        symbol: the market.
        unit: the candle unit (``"1m"``, ``"1d"``, ...).
        after: the start of the candle before the gap (ms).
        before: the start of the candle after the gap (ms).
        missing: how many starts are missing in between.
    """

    symbol: str
    unit: str
    after: int
    before: int
    missing: int


class IntegrityReport(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`verify` found. ``msgspec.json.encode(report)`` gives the machine-readable form;
    ``str(report)`` the human one.

    Attributes:
        path: the recording.
        ok: ``True`` when nothing below is a problem (gaps count unless ``allow_gaps``).
        segments: segment files read.
        records: valid records read (models and markers).
        counts: records per kind, then per symbol (markers: per marker kind).
        first: the earliest exchange time among the models (ms), or ``None``.
        last: the latest, or ``None``.
        torn_tails: segments whose end was cut (a crash), with the bytes lost.
        damaged: corrupt stretches, undecodable records and unreadable segments.
        duplicates: how many duplicates were found.
        out_of_order: how many records went back in time.
        candle_updates: later versions of an open candle (normal for live candles; not a problem).
        gaps_missing: candle starts missing, in total.
        gaps: the gaps (the first ``max_samples``).
        check_failures: how many items failed a check.
        samples: the first ``max_samples`` findings of each sort (duplicates, out-of-order, checks).
        allow_gaps: whether gaps were allowed.
    """

    path: str
    ok: bool
    segments: int
    records: int
    counts: dict[str, dict[str, int]]
    first: int | None
    last: int | None
    torn_tails: list[ReadIssue]
    damaged: list[ReadIssue]
    duplicates: int
    out_of_order: int
    candle_updates: int
    gaps_missing: int
    gaps: list[CandleGap]
    check_failures: int
    samples: dict[str, list[Finding]]
    allow_gaps: bool = False

    @property
    def lost_bytes(self) -> int:
        """Bytes lost to torn tails and skipped as damaged."""
        return sum(i.size for i in self.torn_tails) + sum(i.size for i in self.damaged)

    def __str__(self) -> str:
        lines = [f"recording {self.path}: {'OK' if self.ok else 'PROBLEMS FOUND'}"]
        span = ""
        if self.first is not None and self.last is not None:
            span = f", {_iso(self.first)} .. {_iso(self.last)}"
        lines.append(f"  {self.segments} segment(s), {self.records} record(s){span}")
        for kind in sorted(self.counts):
            per = self.counts[kind]
            top = ", ".join(f"{s or '-'} {n}" for s, n in sorted(per.items())[:8])
            more = f", ... ({len(per)} in all)" if len(per) > 8 else ""
            lines.append(f"  {kind}: {sum(per.values())} ({top}{more})")
        for issue in self.torn_tails:
            lines.append(f"  torn tail: {issue.segment} at offset {issue.offset}, {issue.size} bytes lost "
                         f"({issue.reason})")
        for issue in self.damaged:
            lines.append(f"  {issue.kind}: {issue.segment} at offset {issue.offset}, {issue.size} bytes "
                         f"({issue.reason})")
        for label, count, key in (("duplicates", self.duplicates, "duplicate"),
                                  ("out of order", self.out_of_order, "out_of_order"),
                                  ("check failures", self.check_failures, "check")):
            if count:
                lines.append(f"  {label}: {count}")
                for f in self.samples.get(key, []):
                    lines.append(f"    #{f.index} {f.kind} {f.symbol} {_iso(f.timestamp)}: {f.reason}")
        if self.gaps_missing:
            note = " (allowed)" if self.allow_gaps else ""
            lines.append(f"  candle gaps: {self.gaps_missing} start(s) missing{note}")
            for g in self.gaps:
                lines.append(f"    {g.symbol} {g.unit}: {g.missing} missing after {_iso(g.after)}, "
                             f"before {_iso(g.before)}")
        if self.candle_updates:
            lines.append(f"  candle updates (open candles resent): {self.candle_updates}")
        return "\n".join(lines)


def _iso(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return str(ms)


def _gaps(symbol: str, unit: str, starts: set[int]) -> list[CandleGap]:
    ordered = sorted(starts)
    out: list[CandleGap] = []
    step = FIXED_MS.get(unit)
    for a, b in itertools.pairwise(ordered):
        if step is not None:
            missing = (b - a) // step - 1 if b - a > step else 0
        else:
            missing, t = 0, next_period(unit, a)
            while t < b:
                missing += 1
                t = next_period(unit, t)
        if missing > 0:
            out.append(CandleGap(symbol=symbol, unit=unit, after=a, before=b, missing=missing))
    return out


class _Scan:
    """The running state of one verify pass."""

    def __init__(self, checks: tuple[Check, ...], unit: str | None, max_samples: int, window: int) -> None:
        self.checks = checks
        self.unit = unit
        self.max_samples = max_samples
        self.counts: dict[str, dict[str, int]] = {}
        self.samples: dict[str, list[Finding]] = {"duplicate": [], "out_of_order": [], "check": []}
        self.duplicates = self.out_of_order = self.check_failures = self.updates = 0
        self.first: int | None = None
        self.last: int | None = None
        self.latest: dict[tuple[str, str], int] = {}  # (kind, symbol) -> newest time seen
        self.trade_ids: set[tuple[str, int]] = set()
        self.trade_order: deque[tuple[str, int]] = deque()
        self.window = window
        self.candle_versions: dict[tuple[str, str, int], int] = {}  # (symbol, unit, start) -> timestamp
        self.candle_latest: dict[tuple[str, str], int] = {}  # (symbol, unit) -> newest start seen
        self.candle_starts: dict[tuple[str, str], set[int]] = {}

    def finding(self, sort: str, item: Any, t: int, seg: str, index: int, reason: str) -> None:
        bucket = self.samples[sort]
        if len(bucket) < self.max_samples:
            bucket.append(Finding(kind=kind_of(item), symbol=getattr(item, "symbol", ""), timestamp=t,
                                  segment=seg, index=index, reason=reason))

    def add(self, item: Any, seg: str, index: int) -> None:
        kind = kind_of(item)
        if isinstance(item, Marker):
            per = self.counts.setdefault(kind, {})
            per[item.kind] = per.get(item.kind, 0) + 1
            return
        symbol: str = item.symbol
        per = self.counts.setdefault(kind, {})
        per[symbol] = per.get(symbol, 0) + 1
        t = event_ms(item)
        self.first = t if self.first is None or t < self.first else self.first
        self.last = t if self.last is None or t > self.last else self.last
        if isinstance(item, Candle):
            self.add_candle(item, t, seg, index)
        else:
            key = (kind, symbol)
            newest = self.latest.get(key)
            if newest is not None and t < newest:
                self.out_of_order += 1
                self.finding("out_of_order", item, t, seg, index, f"timestamp goes back {newest - t} ms")
            else:
                self.latest[key] = t
            if isinstance(item, Trade):
                tid = (symbol, item.sequential_id)
                if tid in self.trade_ids:
                    self.duplicates += 1
                    self.finding("duplicate", item, t, seg, index,
                                 f"sequential_id {item.sequential_id} seen before")
                else:
                    self.trade_ids.add(tid)
                    self.trade_order.append(tid)
                    if len(self.trade_order) > self.window:
                        self.trade_ids.discard(self.trade_order.popleft())
        for check in self.checks:
            try:
                reason = check(item)
            except Exception as exc:  # a faulty check is a finding, not the end of the report
                reason = f"check {getattr(check, '__name__', check)!r} raised {exc!r}"
            if reason is not None:
                self.check_failures += 1
                self.finding("check", item, t, seg, index, reason)

    def add_candle(self, c: Candle, t: int, seg: str, index: int) -> None:
        series = (c.symbol, c.unit)
        newest = self.candle_latest.get(series)
        version = -1 if c.timestamp is None else c.timestamp
        key = (c.symbol, c.unit, c.start)
        seen = self.candle_versions.get(key)
        if newest is not None and c.start < newest:
            self.out_of_order += 1
            self.finding("out_of_order", c, t, seg, index,
                         f"start {_iso(c.start)} after a candle starting {_iso(newest)}")
        elif seen is not None and version == seen:
            self.duplicates += 1
            self.finding("duplicate", c, t, seg, index, f"candle starting {_iso(c.start)} seen before")
        elif seen is not None and version < seen:
            self.out_of_order += 1
            self.finding("out_of_order", c, t, seg, index,
                         f"older version ({version}) of a candle already seen at {seen}")
        elif seen is not None:
            self.updates += 1
        if newest is None or c.start > newest:
            self.candle_latest[series] = c.start
        if seen is None or version > seen:
            self.candle_versions[key] = version
        if self.unit is None or c.unit == self.unit:
            self.candle_starts.setdefault(series, set()).add(c.start)


def verify(
    path: str | Path,
    checks: Iterable[Check] | None = None,
    candle_unit: str | None = None,
    *,
    allow_gaps: bool = False,
    max_samples: int = 20,
    dedupe_window: int = 1_000_000,
) -> IntegrityReport:
    """Read a whole recording and report on its integrity. Never raises for damage: it reports it.

    Args:
        path: a recording directory or one segment file.
        checks: callables ``item -> reason or None`` run on every model (default:
            :func:`default_checks`, the built-in checks of ``ops.validate`` from
            ``rxmarket.policy.checks``, so a recording is judged as a live stream is).
        candle_unit: look for candle gaps only in this unit (default: every unit found).
        allow_gaps: report candle gaps without failing (an illiquid market has gaps by nature).
        max_samples: how many findings of each sort to keep as samples.
        dedupe_window: how many recent trade ids to remember when looking for duplicates.

    Returns:
        The :class:`IntegrityReport`.

    Raises:
        ConfigError: ``path`` does not exist, or an argument is out of range.
    """
    if candle_unit is not None and candle_unit not in CANDLE_UNITS:
        raise ConfigError(f"unknown candle unit {candle_unit!r}; choose from {', '.join(CANDLE_UNITS)}")
    if max_samples < 0 or dedupe_window < 1:
        raise ConfigError("max_samples must be >= 0 and dedupe_window >= 1")
    segments = segment_paths(path)
    scan = _Scan(tuple(default_checks() if checks is None else checks), candle_unit, max_samples,
                 dedupe_window)
    issues: list[ReadIssue] = []
    index = 0
    for seg in segments:
        name = str(seg)
        for rec in read_segment(seg, issues.append):
            scan.add(rec.item, name, index)
            index += 1
    gaps: list[CandleGap] = []
    for (symbol, unit), starts in sorted(scan.candle_starts.items()):
        if unit in FIXED_MS or unit in ("1mo", "1y"):
            gaps.extend(_gaps(symbol, unit, starts))
    missing = sum(g.missing for g in gaps)
    torn = [i for i in issues if i.kind == "torn_tail"]
    damaged = [i for i in issues if i.kind != "torn_tail"]
    ok = not (torn or damaged or scan.duplicates or scan.out_of_order or scan.check_failures
              or (missing and not allow_gaps))
    return IntegrityReport(
        path=str(path),
        ok=ok,
        segments=len(segments),
        records=index,
        counts=scan.counts,
        first=scan.first,
        last=scan.last,
        torn_tails=torn,
        damaged=damaged,
        duplicates=scan.duplicates,
        out_of_order=scan.out_of_order,
        candle_updates=scan.updates,
        gaps_missing=missing,
        gaps=gaps[:max_samples],
        check_failures=scan.check_failures,
        samples=scan.samples,
        allow_gaps=allow_gaps,
    )

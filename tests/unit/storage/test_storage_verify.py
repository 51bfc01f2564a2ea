"""verify(): gaps, duplicates, out-of-order, checks, and a report for machines and for people."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rxmarket.errors import ConfigError
from rxmarket.storage import IntegrityReport, verify

MIN = 60_000


def _ms(*args: int) -> int:
    return round(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def test_a_clean_recording_is_ok(write: Any, models: Any) -> None:
    """Consecutive candles, increasing trades and sane books: ok, with counts per kind and symbol."""
    t = models.T0
    base = t - t % MIN
    items = [models.candle(start=base + i * MIN, ts=base + i * MIN + 5) for i in range(5)]
    items += [models.trade("KRW-ETH", ts=t + i, seq=i) for i in range(3)] + [models.book(ts=t)]
    report = verify(write(items))
    assert report.ok
    assert report.counts == {"candle": {"KRW-BTC": 5}, "trade": {"KRW-ETH": 3}, "orderbook": {"KRW-BTC": 1}}
    assert (report.records, report.segments) == (9, 1)
    assert (report.first, report.last) == (base + 5, base + 4 * MIN + 5)


def test_missing_minute_candles_are_gaps(write: Any, models: Any) -> None:
    """Starts missing between the first and last candle of a series are reported with where they are."""
    base = models.T0 - models.T0 % MIN
    starts = [0, 1, 4, 5, 7]
    report = verify(write([models.candle(start=base + i * MIN) for i in starts]))
    assert not report.ok
    assert report.gaps_missing == 3
    assert [(g.after - base, g.before - base, g.missing) for g in report.gaps] == [
        (1 * MIN, 4 * MIN, 2), (5 * MIN, 7 * MIN, 1)]
    assert report.gaps[0].unit == "1m"


def test_allow_gaps_reports_them_without_failing(write: Any, models: Any) -> None:
    """With allow_gaps=True gaps are still counted, but the recording is ok."""
    base = models.T0 - models.T0 % MIN
    report = verify(write([models.candle(start=base), models.candle(start=base + 3 * MIN)]), allow_gaps=True)
    assert (report.ok, report.gaps_missing) == (True, 2)


def test_month_and_year_gaps_follow_the_calendar(write: Any, models: Any) -> None:
    """Months of different lengths are consecutive; a missing month or year is a gap of one."""
    months = [_ms(2024, m, 1) for m in (1, 2, 3, 5, 12)] + [_ms(2025, 1, 1)]
    years = [_ms(2019, 1, 1), _ms(2021, 1, 1)]
    items = [models.candle(start=s, unit="1mo", ts=s + 1) for s in months]
    items += [models.candle(start=s, unit="1y", ts=s + 1) for s in years]
    report = verify(write(items))
    assert [(g.unit, g.after, g.before, g.missing) for g in report.gaps] == [
        ("1mo", _ms(2024, 3, 1), _ms(2024, 5, 1), 1), ("1mo", _ms(2024, 5, 1), _ms(2024, 12, 1), 6),
        ("1y", _ms(2019, 1, 1), _ms(2021, 1, 1), 1)]


def test_candle_unit_limits_the_gap_search(write: Any, models: Any) -> None:
    """candle_unit="1d" looks for gaps only among day candles."""
    base = models.T0 - models.T0 % MIN
    day = _ms(2024, 1, 1)
    items = [models.candle(start=base), models.candle(start=base + 5 * MIN),
             models.candle(start=day, unit="1d"), models.candle(start=day + 86_400_000, unit="1d")]
    assert verify(write(items), candle_unit="1d").gaps_missing == 0
    assert verify(write(items, name="again"), candle_unit="1m").gaps_missing == 4


def test_duplicate_trades_and_candles_are_found_but_candle_updates_are_not(write: Any, models: Any) -> None:
    """A repeated trade id or identical candle version is a duplicate; a newer candle version is an update."""
    t = models.T0
    base = t - t % MIN
    items = [
        models.trade(ts=t, seq=7), models.trade(ts=t + 1, seq=8), models.trade(ts=t + 2, seq=7),
        models.trade("KRW-ETH", ts=t + 2, seq=7),  # same id, other market: not a duplicate
        models.candle(start=base, ts=base + 10), models.candle(start=base, ts=base + 20, close=101.0),
        models.candle(start=base, ts=base + 20, close=101.0),
    ]
    report = verify(write(items))
    assert (report.duplicates, report.candle_updates, report.out_of_order) == (2, 1, 0)
    assert [(f.kind, f.index) for f in report.samples["duplicate"]] == [("trade", 2), ("candle", 6)]


def test_time_going_back_is_out_of_order_per_market(write: Any, models: Any) -> None:
    """A timestamp lower than one already seen for the same market and kind is out of order."""
    t = models.T0
    base = t - t % MIN
    items = [
        models.ticker("KRW-BTC", ts=t + 10), models.ticker("KRW-ETH", ts=t + 5),  # other market: fine
        models.ticker("KRW-BTC", ts=t + 9),
        models.trade(ts=t + 10, seq=1), models.trade(ts=t + 10, seq=2),  # equal time: fine
        models.candle(start=base + MIN), models.candle(start=base, ts=base + 59_000),
    ]
    report = verify(write(items), allow_gaps=True)
    assert report.out_of_order == 2
    assert [(f.kind, f.symbol, f.index) for f in report.samples["out_of_order"]] == [
        ("ticker", "KRW-BTC", 2), ("candle", "KRW-BTC", 6)]
    assert report.samples["out_of_order"][0].reason == "timestamp goes back 1 ms"


def test_default_checks_catch_bad_prices_ranges_and_crossed_books(write: Any, models: Any) -> None:
    """Price <= 0, a close outside [low, high] and a crossed book fail the default checks."""
    items = [models.trade(price=0.0), models.candle(close=200.0, high=150.0),
             models.book(bid=102.0, ask=101.0), models.ticker()]
    report = verify(write(items))
    reasons = [f.reason for f in report.samples["check"]]
    assert report.check_failures == 3
    assert reasons == ["positive_prices: trade price 0.0 is not a finite price > 0",
                       "price_range: candle open 100.0 / close 200.0 outside [low 95.0, high 150.0]",
                       "crossed: book crossed: best bid 102.0 >= best ask 101.0"]


def test_custom_checks_replace_the_defaults_and_a_raising_check_is_a_finding(write: Any, models: Any) -> None:
    """checks= runs the given callables only; one that raises is reported, not propagated."""
    def no_eth(item: Any) -> str | None:
        return "no ETH here" if item.symbol == "KRW-ETH" else None

    def broken(item: Any) -> str | None:
        raise ValueError("oops")

    items = [models.trade(price=0.0), models.trade("KRW-ETH", seq=2)]
    report = verify(write(items), checks=[no_eth])
    assert [f.reason for f in report.samples["check"]] == ["no ETH here"]
    report = verify(write(items, name="again"), checks=[broken])
    assert report.check_failures == 2
    assert report.samples["check"][0].reason == "check 'broken' raised ValueError('oops')"


def test_report_is_json_and_readable_text(write: Any, models: Any) -> None:
    """The report encodes to JSON (ok included) and prints a summary naming what was found."""
    path = write([models.trade(seq=1), models.trade(seq=2)])
    seg = next(path.glob("*.rxm"))
    seg.write_bytes(seg.read_bytes()[:-2])
    report = verify(path)
    data = json.loads(msgspec.json.encode(report))
    assert data["ok"] is False
    assert data["torn_tails"][0]["kind"] == "torn_tail"
    text = str(report)
    assert "PROBLEMS FOUND" in text
    assert "torn tail:" in text
    assert msgspec.json.decode(msgspec.json.encode(report), type=IntegrityReport) == report


def test_text_lists_duplicates_and_gaps(write: Any, models: Any) -> None:
    """The printed report shows counts and samples for duplicates and gaps."""
    t = models.T0
    base = t - t % MIN
    report = verify(write([models.trade(ts=t, seq=1), models.trade(ts=t, seq=1),
                           models.candle(start=base), models.candle(start=base + 2 * MIN)]))
    text = str(report)
    assert "duplicates: 1" in text
    assert "sequential_id 1 seen before" in text
    assert "candle gaps: 1 start(s) missing" in text
    assert report.lost_bytes == 0


def test_bad_arguments_and_missing_paths_are_config_errors(tmp_path: Path) -> None:
    """An unknown candle unit or a missing recording is refused."""
    with pytest.raises(ConfigError, match="unknown candle unit"):
        verify(tmp_path, candle_unit="2m")
    with pytest.raises(ConfigError, match="does not exist"):
        verify(tmp_path / "nope")

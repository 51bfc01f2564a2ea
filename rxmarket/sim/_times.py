"""Upbit's date and time spellings, candle period arithmetic, and parsing of ``to`` parameters.

Upbit spells one instant several ways (``upbit-protocol.md`` section 6): tickers use ``yyyyMMdd`` and
``HHmmss``, trades ``yyyy-MM-dd`` and ``HH:mm:ss``, candles ``yyyy-MM-dd'T'HH:mm:ss``, all in UTC, with KST
(UTC+9) twins on the Korean host. Days start at 00:00 UTC, weeks on Monday.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

__all__ = [
    "CANDLE_SECONDS",
    "KST_MS",
    "candle_start",
    "candle_time",
    "date_compact",
    "date_dash",
    "next_start",
    "parse_candle_to",
    "parse_trade_to",
    "period_first_day",
    "prev_start",
    "time_colon",
    "time_compact",
    "ymd",
]

KST_MS: Final = 9 * 3600 * 1000
DAY_MS: Final = 86_400_000

#: Fixed-length candle units in seconds; ``1d`` is fixed too (UTC days). Weeks, months, years are not.
CANDLE_SECONDS: Final[dict[str, int]] = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "10m": 600, "15m": 900, "30m": 1800, "60m": 3600,
    "240m": 14_400, "1d": 86_400,
}


@lru_cache(maxsize=4096)
def _gm(second: int) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(second)
    return t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec


def ymd(ms: int) -> tuple[int, int, int, int, int, int]:
    """``(year, month, day, hour, minute, second)`` in UTC of a millisecond timestamp."""
    return _gm(ms // 1000)


def date_compact(ms: int) -> str:
    """``yyyyMMdd`` (ticker ``trade_date``)."""
    y, mo, d, _, _, _ = _gm(ms // 1000)
    return f"{y:04d}{mo:02d}{d:02d}"


def time_compact(ms: int) -> str:
    """``HHmmss`` (ticker ``trade_time``)."""
    _, _, _, h, mi, s = _gm(ms // 1000)
    return f"{h:02d}{mi:02d}{s:02d}"


def date_dash(ms: int) -> str:
    """``yyyy-MM-dd`` (trade ``trade_date``, REST ``trade_date_utc``, 52-week dates)."""
    y, mo, d, _, _, _ = _gm(ms // 1000)
    return f"{y:04d}-{mo:02d}-{d:02d}"


def time_colon(ms: int) -> str:
    """``HH:mm:ss`` (trade ``trade_time``, REST ``trade_time_utc``)."""
    _, _, _, h, mi, s = _gm(ms // 1000)
    return f"{h:02d}:{mi:02d}:{s:02d}"


def candle_time(ms: int) -> str:
    """``yyyy-MM-ddTHH:mm:ss`` (``candle_date_time_utc``; add :data:`KST_MS` for the KST twin)."""
    y, mo, d, h, mi, s = _gm(ms // 1000)
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"


def candle_start(unit: str, ms: int) -> int:
    """Start (ms, UTC) of the ``unit`` candle that contains ``ms``.

    Args:
        unit: ``1s`` ... ``240m``, ``1d``, ``1w`` (Monday), ``1mo``, ``1y``.
        ms: any instant, ms since the epoch.

    Returns:
        The period start in ms.
    """
    seconds = CANDLE_SECONDS.get(unit)
    if seconds is not None:
        span = seconds * 1000
        return ms - ms % span
    day = ms - ms % DAY_MS
    if unit == "1w":
        # 1970-01-01 was a Thursday: shift so that Mondays are multiples of 7 days.
        days = day // DAY_MS
        return (days - (days + 3) % 7) * DAY_MS
    y, mo, _, _, _, _ = _gm(ms // 1000)
    if unit == "1mo":
        return calendar.timegm((y, mo, 1, 0, 0, 0)) * 1000
    if unit == "1y":
        return calendar.timegm((y, 1, 1, 0, 0, 0)) * 1000
    raise ValueError(f"unknown candle unit {unit!r}")


def next_start(unit: str, start: int) -> int:
    """Start of the period after the one starting at ``start``."""
    seconds = CANDLE_SECONDS.get(unit)
    if seconds is not None:
        return start + seconds * 1000
    if unit == "1w":
        return start + 7 * DAY_MS
    y, mo, _, _, _, _ = _gm(start // 1000)
    if unit == "1mo":
        y, mo = (y + 1, 1) if mo == 12 else (y, mo + 1)
        return calendar.timegm((y, mo, 1, 0, 0, 0)) * 1000
    return calendar.timegm((y + 1, 1, 1, 0, 0, 0)) * 1000


def prev_start(unit: str, start: int) -> int:
    """Start of the period before the one starting at ``start``."""
    return candle_start(unit, start - 1)


def period_first_day(start: int) -> str:
    """``first_day_of_period`` of weekly/monthly/yearly candles: the start as ``yyyy-MM-dd``."""
    return date_dash(start)


def parse_candle_to(text: str) -> int:
    """Parse a candle ``to`` parameter (ISO 8601; no offset means UTC) into ms.

    Accepted: ``2025-06-24T04:56:53Z``, ``2025-06-24 04:56:53``, ``2025-06-24T13:56:53+09:00``,
    ``2025-06-24``.

    Raises:
        ValueError: not an ISO 8601 date or date-time.
    """
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


_TRADE_TO = re.compile(r"^(\d{2}):?(\d{2}):?(\d{2})$")


def parse_trade_to(text: str) -> int:
    """Parse a ``/trades/ticks`` ``to`` (``HHmmss`` or ``HH:mm:ss``) into ms since 00:00 UTC.

    Raises:
        ValueError: any other spelling, or an hour/minute/second out of range.
    """
    match = _TRADE_TO.match(text.strip())
    if match is None:
        raise ValueError(f"bad time {text!r}")
    h, mi, s = (int(g) for g in match.groups())
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"bad time {text!r}")
    return ((h * 60 + mi) * 60 + s) * 1000

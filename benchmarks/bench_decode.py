"""Decode throughput: ``protocol.decode_ws`` against a raw msgspec typed decode of the same frames.

The baseline is the fastest honest way to get typed objects out of the same bytes: one
``msgspec.json.Decoder`` per shape, into plain ``msgspec.Struct`` classes that mirror the frames key for
key and in the same order (a tagged union on ``type``/``ty`` for the mixed streams). ``decode_ws`` does
more: it returns our models (renamed, signed fields chosen, ``source`` set), recognises the format, and
turns anything else into a typed error. The figure to hold (DESIGN.md) is **mixed DEFAULT >= 0.9x**.

Each row is the best of ``REPEATS`` timed passes over the frames, raw and ``decode_ws`` alternating in the
same run, garbage collector paused during the passes, so the ratio is machine-independent.

Run: ``python benchmarks/bench_decode.py`` (about 30 s); writes the ``decode`` section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # the benchmarks folder is not a package

from rxmarket.exchanges.upbit import protocol

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "upbit"
REPEATS = 9
MIN_MESSAGES = 40_000  # per timed pass, so one pass lasts tens of milliseconds
TARGET = 0.9


# --- mirrors of the frames: every key, in wire order, plain Structs -------------------------------------


class DTicker(msgspec.Struct, tag_field="type", tag="ticker"):
    code: str
    opening_price: float
    high_price: float
    low_price: float
    trade_price: float
    prev_closing_price: float
    acc_trade_price: float
    change: str
    change_price: float
    signed_change_price: float
    change_rate: float
    signed_change_rate: float
    ask_bid: str
    trade_volume: float
    acc_trade_volume: float
    trade_date: str
    trade_time: str
    trade_timestamp: int
    acc_ask_volume: float
    acc_bid_volume: float
    highest_52_week_price: float
    highest_52_week_date: str
    lowest_52_week_price: float
    lowest_52_week_date: str
    market_state: str
    is_trading_suspended: bool
    delisting_date: Any
    market_warning: str
    timestamp: int
    acc_trade_price_24h: float
    acc_trade_volume_24h: float
    stream_type: str


class DTrade(msgspec.Struct, tag_field="type", tag="trade"):
    code: str
    timestamp: int
    trade_date: str
    trade_time: str
    trade_timestamp: int
    trade_price: float
    trade_volume: float
    ask_bid: str
    prev_closing_price: float
    change: str
    change_price: float
    sequential_id: int
    stream_type: str


class DUnit(msgspec.Struct):
    ask_price: float
    bid_price: float
    ask_size: float
    bid_size: float


class DOrderbook(msgspec.Struct, tag_field="type", tag="orderbook"):
    code: str
    timestamp: int
    total_ask_size: float
    total_bid_size: float
    orderbook_units: list[DUnit]
    stream_type: str
    level: float


class DCandle(msgspec.Struct):
    type: str
    code: str
    candle_date_time_utc: str
    candle_date_time_kst: str
    opening_price: float
    high_price: float
    low_price: float
    trade_price: float
    candle_acc_trade_volume: float
    candle_acc_trade_price: float
    timestamp: int
    stream_type: str


class STicker(msgspec.Struct, tag_field="ty", tag="ticker"):
    cd: str
    op: float
    hp: float
    lp: float
    tp: float
    pcp: float
    atp: float
    c: str
    cp: float
    scp: float
    cr: float
    scr: float
    ab: str
    tv: float
    atv: float
    tdt: str
    ttm: str
    ttms: int
    aav: float
    abv: float
    h52wp: float
    h52wdt: str
    l52wp: float
    l52wdt: str
    ms: str
    its: bool
    dd: Any
    mw: str
    tms: int
    atp24h: float
    atv24h: float
    st: str


class STrade(msgspec.Struct, tag_field="ty", tag="trade"):
    cd: str
    tms: int
    td: str
    ttm: str
    ttms: int
    tp: float
    tv: float
    ab: str
    pcp: float
    c: str
    cp: float
    sid: int
    st: str


class SUnit(msgspec.Struct):
    ap: float
    bp: float
    as_: float = msgspec.field(name="as")
    bs: float


class SOrderbook(msgspec.Struct, tag_field="ty", tag="orderbook"):
    cd: str
    tms: int
    tas: float
    tbs: float
    obu: list[SUnit]
    st: str
    lv: float


# --- frames -----------------------------------------------------------------------------------------------


def lines(name: str) -> list[bytes]:
    return [ln for ln in (DATA / name).read_bytes().splitlines() if ln.strip()]


def kind(frame: bytes) -> str:
    obj = json.loads(frame)
    return str(obj.get("type") or obj.get("ty"))


def by_kind(frames: list[bytes], wanted: str) -> list[bytes]:
    return [f for f in frames if kind(f) == wanted]


def candle_frames() -> list[bytes]:
    """The captured DEFAULT candle frames, re-serialised compactly (one is pretty-printed on disk)."""
    raw = [*lines("ws_candle_default_2026.jsonl"), (DATA / "ws_candle_default_2025.json").read_bytes()]
    return [json.dumps(json.loads(f), separators=(",", ":")).encode() for f in raw]


# --- timing -----------------------------------------------------------------------------------------------


def one_pass(fn: Callable[[bytes], object], frames: Sequence[bytes], reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        for frame in frames:
            fn(frame)
    return time.perf_counter() - start


def compare(
    raw: Callable[[bytes], object], ours: Callable[[bytes], object], frames: Sequence[bytes]
) -> tuple[float, float]:
    """Best-of-REPEATS msgs/s of ``raw`` and ``ours``, alternating which goes first."""
    reps = max(1, MIN_MESSAGES // len(frames))
    for fn in (raw, ours):  # warm-up, and proof both accept every frame
        for frame in frames:
            fn(frame)
    best_raw = best_ours = float("inf")
    gc.collect()
    gc.disable()
    try:
        for i in range(REPEATS):
            pair = (raw, ours) if i % 2 == 0 else (ours, raw)
            for fn in pair:
                elapsed = one_pass(fn, frames, reps)
                if fn is raw:
                    best_raw = min(best_raw, elapsed)
                else:
                    best_ours = min(best_ours, elapsed)
    finally:
        gc.enable()
    n = reps * len(frames)
    return n / best_raw, n / best_ours


def main() -> None:
    default = lines("ws_stream_default.jsonl")
    simple = lines("ws_stream_simple.jsonl")
    ws = protocol.decode_ws
    simple_first = protocol.decoder_for("SIMPLE")
    dec = msgspec.json.Decoder
    # (label, raw baseline, ours, frames, is the DESIGN.md target)
    rows: list[tuple[str, Callable[[bytes], object], Callable[[bytes], object], Sequence[bytes], bool]] = [
        ("ticker, DEFAULT", dec(DTicker).decode, ws, by_kind(default, "ticker"), False),
        ("trade, DEFAULT", dec(DTrade).decode, ws, by_kind(default, "trade"), False),
        ("orderbook, DEFAULT", dec(DOrderbook).decode, ws, by_kind(default, "orderbook"), False),
        ("candle.1m/1s, DEFAULT", dec(DCandle).decode, ws, candle_frames(), False),
        ("**mixed DEFAULT** (`ws_stream_default.jsonl`)", dec(DTicker | DTrade | DOrderbook).decode, ws,
         default, True),
        ("ticker, SIMPLE", dec(STicker).decode, ws, by_kind(simple, "ticker"), False),
        ("trade, SIMPLE", dec(STrade).decode, ws, by_kind(simple, "trade"), False),
        ("orderbook, SIMPLE", dec(SOrderbook).decode, ws, by_kind(simple, "orderbook"), False),
        ("mixed SIMPLE (`ws_stream_simple.jsonl`)", dec(STicker | STrade | SOrderbook).decode, ws, simple,
         False),
        ("mixed SIMPLE, with `decoder_for(\"SIMPLE\")`", dec(STicker | STrade | SOrderbook).decode,
         simple_first, simple, False),
    ]
    table = [
        "| frames | n | raw typed decode (msgs/s) | ours (msgs/s) | ratio | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    print(f"{'frames':48} {'n':>4} {'raw msgs/s':>12} {'ours':>12} {'ratio':>6}")
    verdicts = []
    for label, raw, ours, frames, is_target in rows:
        raw_rate, our_rate = compare(raw, ours, frames)
        ratio = our_rate / raw_rate
        if is_target:
            note = f"target >= {TARGET}x: {'met' if ratio >= TARGET else '**NOT met**'}"
            verdicts.append(ratio >= TARGET)
        else:
            note = f"below {TARGET}x" if ratio < TARGET else ""
        print(f"{label:48} {len(frames):4d} {raw_rate:12,.0f} {our_rate:12,.0f} {ratio:6.3f} {note}")
        table.append(
            f"| {label} | {len(frames)} | {raw_rate:,.0f} | {our_rate:,.0f} | {ratio:.2f}x | {note} |"
        )
    body = "\n".join(
        [
            "## decode: `protocol.decode_ws` vs raw msgspec typed decode",
            "",
            "Same frames, same run. Raw = `msgspec.json.Decoder` into plain Structs that mirror the frames "
            "key for key, in wire order (a tagged union for the mixed rows); ours = `decode_ws` unless the "
            "row says otherwise, returning our models. Best of "
            f"{REPEATS} passes of >= {MIN_MESSAGES:,} messages each, alternating, GC paused while timing.",
            "",
            *table,
            "",
            "Why some rows are below 0.9x:",
            "",
            "- DEFAULT trade (and ticker, when it dips): the models declare their fields in the wire's "
            "order, as msgspec matches keys fastest that way; what is left is a fixed cost of some tens of "
            "ns per frame (the model's optional fields absent from the frame, such as a trade's `best_*` "
            "quotes in these synthetic frames, are filled with their defaults), which weighs most on the "
            "smallest frames. Orderbook is faster than raw (its rows are frozen, `gc=False` Structs in a "
            "tuple), which lifts the mixed figure.",
            "- candle: frames of type `candle.*` cannot be a msgspec tag, so they miss the typed pass and "
            "are decoded generically (three parses and a date parse); Upbit sends at most one per second "
            "per code.",
            "- SIMPLE: the models carry the DEFAULT key names, so a SIMPLE frame is decoded into a SIMPLE "
            "wire shape and then copied into the model (about one raw decode's worth of work), after "
            "missing the DEFAULT pass; `decoder_for(\"SIMPLE\")` skips that miss.",
        ]
    )
    write_section("decode", body)
    if not all(verdicts):
        print(f"mixed DEFAULT below the {TARGET}x target", file=sys.stderr)


if __name__ == "__main__":
    main()

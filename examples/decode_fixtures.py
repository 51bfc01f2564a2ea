"""Decode a few real Upbit payloads bundled with the tests and print one line per model.

Run from anywhere (the fixtures are found relative to this file)::

    python examples/decode_fixtures.py

Everything here is sans I/O: bytes captured from Upbit go through the same decoder the live streams use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rxmarket import Candle, ExchangeRejected, Orderbook, ProtocolError, Ticker, Trade
from rxmarket.exchanges.upbit import protocol

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "upbit"


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def px(value: float) -> str:
    """Prices: thousands separators for KRW-sized numbers, significant digits for BTC-quoted ones."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.8g}"


def describe(model: object) -> str:
    """One readable line for a model."""
    if isinstance(model, Ticker):
        return (
            f"ticker    {model.symbol:9} {px(model.price):>14}  {model.change:4} {model.change_rate:+.2%}"
            f"  24h vol {model.volume_24h:,.2f}  [{model.source}] {when(model.timestamp)}"
        )
    if isinstance(model, Orderbook):
        bid, ask = model.best_bid, model.best_ask
        if bid is None or ask is None:
            return f"orderbook {model.symbol:9} one side empty"
        return (
            f"orderbook {model.symbol:9} bid {px(bid.price)} x {bid.size:g}"
            f" | ask {px(ask.price)} x {ask.size:g}  spread {px(model.spread)}"
            f"  depth {len(model.asks)}/{len(model.bids)}  [{model.source}]"
        )
    if isinstance(model, Trade):
        return (
            f"trade     {model.symbol:9} {model.side:4} {model.volume:g} @ {px(model.price)}"
            f"  id {model.sequential_id}  [{model.source}] {when(model.timestamp)}"
        )
    if isinstance(model, Candle):
        return (
            f"candle    {model.symbol:9} {model.unit:>4} {when(model.start)}"
            f"  O {px(model.open)} H {px(model.high)} L {px(model.low)} C {px(model.close)}"
            f"  vol {model.volume:g}  [{model.source}]"
        )
    return repr(model)


def main() -> None:
    print("WebSocket frames (DEFAULT and SIMPLE):")
    for name in (
        "ws_ticker_default.json",
        "ws_ticker_simple_2021.json",
        "ws_orderbook_default_2026.jsonl",
        "ws_orderbook_simple_2026.json",
        "ws_trade_default_2026.json",
        "ws_candle_default_2026.jsonl",
    ):
        data = (DATA / name).read_bytes()
        frames = data.splitlines()[:1] if name.endswith(".jsonl") else [data]
        for frame in frames:
            print("  " + describe(protocol.decode_ws(frame)))

    print("REST answers:")
    for kind, name, unit in (
        ("ticker", "rest_ticker_2026.json", None),
        ("orderbook", "rest_orderbook_2023.json", None),
        ("trades", "rest_trade_paired_with_ws_2026.json", None),
        ("candles", "rest_candles_days_2021.json", "1d"),
    ):
        for model in protocol.decode_rest(kind, (DATA / name).read_bytes(), unit=unit):
            print("  " + describe(model))

    print("Errors are typed:")
    try:
        protocol.decode_ws((DATA / "ws_errors.jsonl").read_bytes().splitlines()[0])
    except ExchangeRejected as exc:
        print(f"  {type(exc).__name__}: {exc.name}")
    try:
        protocol.decode_ws(b'{"type":"trade","code":"KRW-BTC"')
    except ProtocolError as exc:
        print(f"  {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()

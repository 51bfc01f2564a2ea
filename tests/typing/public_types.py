"""Static expectations about the public API, checked by mypy (see test_public_types.py); never run."""

from __future__ import annotations

from typing import Literal, assert_type

from reactivex import Observable

from rxmarket import Orderbook, Ticker, Trade, ops
from rxmarket.exchanges.upbit import protocol


def pipelines(ws: Observable[Ticker], rest: Observable[Ticker], books: Observable[Orderbook]) -> None:
    unified = ws.pipe(ops.merge_unify(rest), ops.dedupe(), ops.validate())
    assert_type(unified, Observable[Ticker])
    assert_type(books.pipe(ops.validate(on_invalid="correct")), Observable[Orderbook])
    assert_type(ws.pipe(ops.retry_with_backoff(initial=0.5, max_delay=30.0)), Observable[Ticker])
    assert_type(ws.pipe(ops.circuit_break(failure_threshold=3, reset_timeout=10.0, fallback=rest)),
                Observable[Ticker])


def decoding(frame: bytes) -> None:
    message = protocol.decode_ws(frame)
    if isinstance(message, Trade):
        assert_type(message.side, Literal["buy", "sell"])
    assert_type(protocol.decode_rest("ticker", b"[]"), list[Ticker])

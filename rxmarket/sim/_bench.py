"""Bench mode: pre-encoded WebSocket frames written as fast as the socket takes them.

A pool of market events is generated once (from its own :class:`Exchange`, so the live market is not
disturbed), and for each subscribed connection the frames it asked for are laid out as *raw WebSocket
frames* (header and payload) in large chunks. Streaming is then one ``transport.write`` per chunk, so the
server's cost per frame is close to nothing and a client benchmark measures the client.

Flow control: asyncio transports expose no public "drain" to a server handler, so the writer checks the
write buffer after each chunk and, above ``high_water``, polls it every millisecond until it drains. A
millisecond is far shorter than the time a client needs to read ``high_water`` bytes, so the socket never
runs dry.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Final

from rxmarket.sim._catalog import MarketInfo
from rxmarket.sim._config import BenchConfig, SimOptions
from rxmarket.sim._faults import Faults
from rxmarket.sim._market import BOOK_DEPTH, Event, Exchange, MarketState, TradeRecord, Variant

__all__ = ["BenchPool", "Chunk", "stream", "ws_frame_header"]

_BINARY: Final = 0x82  # FIN + opcode 2
_LEN2: Final = struct.Struct("!BBH").pack
_LEN8: Final = struct.Struct("!BBQ").pack

#: A chunk of whole frames and the byte offset where each frame starts.
Chunk = tuple[bytes, list[int]]


def ws_frame_header(length: int) -> bytes:
    """The header of an unmasked binary WebSocket frame carrying ``length`` bytes (RFC 6455 5.2)."""
    if length < 126:
        return bytes((_BINARY, length))
    if length < 65_536:
        return _LEN2(_BINARY, 126, length)
    return _LEN8(_BINARY, 127, length)


def _noop() -> None:
    return None


class BenchPool:
    """The pre-generated events bench connections stream.

    Args:
        catalog: the markets.
        seed: the simulator seed (the pool is the same for the same seed).
        options: history sizes.
        clock: timestamps of the pool's events.
        config: pool size, chunk size.
    """

    def __init__(
        self,
        catalog: list[MarketInfo],
        seed: int,
        options: SimOptions,
        clock: Callable[[], float],
        config: BenchConfig,
    ) -> None:
        self._catalog = catalog
        self._seed = seed
        self._options = options
        self._clock = clock
        self.config = config
        self._events: list[Event] | None = None

    def events(self) -> list[Event]:
        """The pool, generated on first use: per step a trade, its ticker and its book."""
        if self._events is None:
            # The pool's own exchange: no fault ever applies to it (bench frames are pristine).
            ignore = _ignore_seconds
            faults = Faults(on_change=_noop, on_disconnect=lambda: 0, on_hard_refuse=ignore, on_ban=ignore)
            exchange = Exchange(self._catalog, self._seed, self._options, self._clock, faults)
            events: list[Event] = []
            for rec in exchange.step(self.config.pool):
                events.extend(_pool_events(exchange.market(rec.code), rec))
            self._events = events
        return self._events

    def chunks(
        self, routes: dict[tuple[str, str], tuple[Variant, ...]], simple: bool, as_list: bool
    ) -> list[Chunk]:
        """The frames ``routes`` select, as raw WebSocket frames in chunks of about ``chunk_bytes``."""
        limit = self.config.chunk_bytes
        out: list[Chunk] = []
        buf = bytearray()
        offsets: list[int] = []
        for event in self.events():
            variants = routes.get((event.kind, event.code))
            if not variants:
                continue
            for variant in variants:
                payload = event.frame(simple, variant)
                if as_list:
                    payload = b"[" + payload + b"]"
                offsets.append(len(buf))
                buf += ws_frame_header(len(payload))
                buf += payload
                if len(buf) >= limit:
                    out.append((bytes(buf), offsets))
                    buf, offsets = bytearray(), []
        if offsets:
            out.append((bytes(buf), offsets))
        return out


def _ignore_seconds(_seconds: float) -> None:
    return None


def _pool_events(state: MarketState, rec: TradeRecord) -> list[Event]:
    """The trade, ticker and book events of one pool step (the ticker encoded now: it reads live state)."""
    tickers = {simple: state.ws_ticker(simple, "REALTIME", rec.frame_ts) for simple in (False, True)}
    book = state.book

    def trade(simple: bool, _variant: Variant) -> bytes:
        return state.ws_trade(rec, simple, "REALTIME")

    def ticker(simple: bool, _variant: Variant) -> bytes:
        return tickers[simple]

    def orderbook(simple: bool, variant: Variant) -> bytes:
        depth, level = variant or (BOOK_DEPTH, 0.0)
        return state.ws_orderbook(book, simple, "REALTIME", depth, level)

    code = rec.code
    return [Event("trade", code, trade), Event("ticker", code, ticker), Event("orderbook", code, orderbook)]


async def stream(
    transport: asyncio.BaseTransport,
    chunks: list[Chunk],
    config: BenchConfig,
    faults: Faults,
    on_sent: Callable[[int], None],
) -> int:
    """Write ``chunks`` in a cycle until ``config.frames`` frames or ``config.seconds`` are done, or the
    socket closes.

    Args:
        transport: the connection's transport (after the WebSocket upgrade).
        chunks: from :meth:`BenchPool.chunks`.
        config: frame budget and high-water mark.
        faults: ``silence`` pauses the stream; ``disconnect`` ends it (the transport closes).
        on_sent: told how many frames each write carried.

    Returns:
        Frames written.
    """
    if not chunks or not isinstance(transport, asyncio.WriteTransport):
        return 0
    budget = config.frames
    high = config.high_water
    loop = asyncio.get_running_loop()
    deadline = None if config.seconds is None else loop.time() + config.seconds
    sent = 0
    while budget is None or sent < budget:
        for data, offsets in chunks:
            if deadline is not None and loop.time() >= deadline:
                return sent
            n = len(offsets)
            if budget is not None and sent + n > budget:
                n = budget - sent
                data = data[: offsets[n]] if n < len(offsets) else data
            while faults.silenced and not transport.is_closing():  # noqa: ASYNC110 - faults expose no event
                await asyncio.sleep(0.01)
            if transport.is_closing():
                return sent
            transport.write(data)
            sent += n
            on_sent(n)
            if budget is not None and sent >= budget:
                return sent
            if transport.get_write_buffer_size() > high:
                # No public drain for a server handler: poll the buffer each millisecond (module docstring).
                while transport.get_write_buffer_size() > high // 2:
                    if transport.is_closing() or (deadline is not None and loop.time() >= deadline):
                        return sent
                    await asyncio.sleep(0.001)
            else:
                # A fast reader never fills the buffer: still let the loop breathe between chunks.
                await asyncio.sleep(0)
    return sent

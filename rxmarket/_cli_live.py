"""The live subcommands of the command line: ``demo`` and ``stream``.

Each command is an ``add_<name>(sub)`` that declares its arguments and a ``cmd_<name>(args)`` that runs it
and returns the exit status, in the style of :mod:`rxmarket.cli`, which registers the ``add_`` functions.
``python -m rxmarket._cli_live COMMAND ...`` runs these two alone.

* ``rxmarket demo [--seconds N]`` starts the embedded Upbit simulator, streams tickers of a few markets and
  one orderbook through the default pipeline of :func:`rxmarket.upbit`, injects faults on a schedule (a
  dropped connection, a silent one, a burst of HTTP 429) and shows them being healed. On a terminal the
  view is a live ``rich`` table; otherwise (a pipe, a test, CI) it prints plain lines once a second.
* ``rxmarket stream ticker|orderbook|trade MARKET...`` prints live data from Upbit (or any Upbit-compatible
  URL) as a table or as JSON lines for piping, until ``--seconds``, ``--count`` or Ctrl-C.

Exit status: 0 done (also after Ctrl-C, the normal way to stop a stream), 1 the feed failed (no data
within ``--connect-timeout``, the connection gave up, an unknown market), 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeAlias

import msgspec
from reactivex import Observable
from reactivex.disposable import CompositeDisposable

from rxmarket.errors import ConfigError, GaveUp, NotFound, RxMarketError
from rxmarket.exchanges.upbit.endpoints import REST_URL, WS_URL
from rxmarket.exchanges.upbit.protocol import ORDERBOOK_DEPTHS
from rxmarket.exchanges.upbit.source import SourceConfig
from rxmarket.market import MarketData, MarketStats, upbit
from rxmarket.models import Orderbook, Status, Ticker, Trade
from rxmarket.policy.backoff import BackoffPolicy

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FAULT_SCHEDULE",
    "DemoBoard",
    "FaultStep",
    "add_demo",
    "add_stream",
    "cmd_demo",
    "cmd_stream",
    "demo_market",
    "fault_steps",
    "json_line",
    "plain_lines",
    "table_header",
    "table_line",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STREAM_KINDS: Final = ("ticker", "orderbook", "trade")

if TYPE_CHECKING:
    from rxmarket.sim import UpbitSimulator

    _SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _err(command: str, message: object) -> None:
    print(f"rxmarket {command}: {message}", file=sys.stderr, flush=True)


def _num(x: float | None) -> str:
    """A price or size for people: thousands separators, no float noise (144,068,000 / 0.00123)."""
    if x is None:
        return "-"
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 1000:
        return f"{x:,.2f}"
    return f"{x:.8g}"


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]


# -- demo: the fault schedule -------------------------------------------------------------------------------


class FaultStep(msgspec.Struct, frozen=True):
    """One fault the demo injects.

    Attributes:
        at: seconds after the start of the demo.
        name: ``"drop"`` (every WebSocket closed abruptly), ``"silence"`` (sockets open, nothing sent) or
            ``"429"`` (REST and WebSocket upgrades answer HTTP 429, after a drop that makes clients
            reconnect into it).
        seconds: how long a timed fault lasts (0 for ``drop``).
    """

    at: float
    name: str
    seconds: float = 0.0


FAULT_SCHEDULE: Final = (
    FaultStep(1.5, "drop"),
    FaultStep(4.0, "silence", 1.5),
    FaultStep(8.0, "429", 2.0),
)
"""The first cycle of faults; it repeats every :data:`FAULT_PERIOD` seconds after its first step."""

FAULT_PERIOD: Final = 10.0

_FAULT_LABELS: Final = {
    "drop": "connection dropped",
    "silence": "feed went silent",
    "429": "HTTP 429 burst",
}


def fault_steps() -> Iterator[FaultStep]:
    """The fault schedule, cycled for ever: ``FaultStep`` s with ``at`` in seconds from the start."""
    cycle = 0
    while True:
        for step in FAULT_SCHEDULE:
            yield FaultStep(step.at + cycle * FAULT_PERIOD, step.name, step.seconds)
        cycle += 1


class _Fault:
    """A fault the demo injected, and how it healed."""

    __slots__ = ("at", "healed_at", "name", "reconnected_at", "seconds")

    def __init__(self, step: FaultStep, at: float) -> None:
        self.name = step.name
        self.seconds = step.seconds
        self.at = at
        self.reconnected_at: float | None = None
        self.healed_at: float | None = None

    @property
    def until(self) -> float:
        return self.at + self.seconds

    def describe(self, start: float) -> str:
        """One line for the fault log: what, when, and how it healed."""
        label = _FAULT_LABELS.get(self.name, self.name)
        extra = f" for {self.seconds:g}s" if self.seconds else ""
        what = f"{self.name} at {self.at - start:.1f}s ({label}{extra})"
        if self.healed_at is None:
            return what
        after = f", {self.healed_at - self.until:.1f}s after it ended" if self.seconds else ""
        return f"{what}: WebSocket data again {self.healed_at - self.at:.1f}s later{after}"


# -- demo: the board (what the view shows) ------------------------------------------------------------------


class DemoBoard:
    """Everything the demo's view shows, updated by the streams' callbacks on the loop thread.

    A fault counts as *healed* once the feed has reconnected after it and WebSocket data arrives again
    after the fault's own window ended.

    Args:
        symbols: the ticker markets, in display order.
        clock: seconds, monotonic (the loop's clock).
    """

    def __init__(self, symbols: Sequence[str], clock: Callable[[], float]) -> None:
        self.symbols = list(symbols)
        self.clock = clock
        self.start = clock()
        self.tickers: dict[str, Ticker] = {}
        self.book: Orderbook | None = None
        self.items = 0
        self.by_source: dict[str, int] = {}
        self._recent: deque[float] = deque()
        self.link = "connecting"
        self.circuits: dict[str, str] = {}
        self.last_event = "starting"
        self.faults: list[_Fault] = []  # injected and not healed yet; a healed one is only counted
        self.injected_count = 0  # faults injected so far
        self.healed = 0  # faults healed so far
        self.log: deque[str] = deque(maxlen=6)
        self.logged = 0  # lines ever written to ``log`` (it keeps the last few)

    # -- updates ------------------------------------------------------------------------------------------

    def on_ticker(self, ticker: Ticker) -> None:
        """A ticker from the pipeline."""
        self.tickers[ticker.symbol] = ticker
        self._item(ticker.source)

    def on_book(self, book: Orderbook) -> None:
        """A book from the pipeline."""
        self.book = book
        self._item(book.source)

    def _item(self, source: str) -> None:
        now = self.clock()
        self.items += 1
        self.by_source[source] = self.by_source.get(source, 0) + 1
        self._recent.append(now)
        if source != "websocket":
            return
        healed = [f for f in self.faults
                  if f.reconnected_at is not None and now >= f.until and now > f.reconnected_at]
        if not healed:
            return
        for fault in healed:
            fault.healed_at = now
            self.healed += 1
            self.note(f"healed:   {fault.describe(self.start)}")
        self.faults = [f for f in self.faults if f.healed_at is None]

    def on_status(self, event: Status) -> None:
        """A status event of the market."""
        kind = event.kind
        if kind == "circuit" and event.connection is None:
            # An "auto" chain's breaker: open = on REST, half_open = trying the WebSocket, closed = on it.
            self.circuits[f"{event.channel} {event.symbol}"] = event.detail
        elif event.connection is not None and event.symbol is None:
            if kind == "reconnected":
                self.link = "live"
                now = self.clock()
                for fault in self.faults:
                    if fault.reconnected_at is None and now >= fault.at:
                        fault.reconnected_at = now
            elif kind == "backoff" and event.delay is not None:
                self.link = f"backoff {event.delay:.1f}s"
            elif kind in ("connecting", "live", "stale", "gave_up", "rate_limited"):
                self.link = kind
        if kind == "circuit" and event.connection is None:
            self.last_event = f"circuit of the {event.channel} chain: {event.detail}"
            return
        where = event.symbol or (f"#{event.connection}" if event.connection is not None else "")
        detail = f" ({event.detail})" if event.detail else ""
        self.last_event = _shorten(f"{kind} {where}".strip() + detail, 90)

    def injected(self, step: FaultStep) -> None:
        """The fault schedule just injected ``step``."""
        fault = _Fault(step, self.clock())
        self.faults.append(fault)
        self.injected_count += 1
        self.note(f"injected: {fault.describe(self.start)}")

    def note(self, line: str) -> None:
        """Add a line to the fault log, stamped with the demo's time."""
        self.log.append(f"[{self.clock() - self.start:5.1f}s] {line}")
        self.logged += 1

    # -- reads --------------------------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return self.clock() - self.start

    def rate(self) -> float:
        """Items per second over the last two seconds."""
        now = self.clock()
        while self._recent and self._recent[0] < now - 2.0:
            self._recent.popleft()
        return len(self._recent) / min(2.0, max(now - self.start, 1e-3))

    def circuit(self) -> str:
        """The worst breaker state of the chains: ``open`` > ``half_open`` > ``closed``."""
        states = set(self.circuits.values())
        return next((s for s in ("open", "half_open") if s in states), "closed")

    def ticker_source(self) -> str:
        """Where the newest ticker came from (``websocket``, ``rest`` or ``cache``)."""
        newest = max(self.tickers.values(), key=lambda t: t.timestamp, default=None)
        return newest.source if newest is not None else "-"

    def status_line(self, stats: MarketStats) -> str:
        """Connection, channel, rate, counters, breaker and the last event, on one line."""
        return (
            f"link {self.link} | via {self.ticker_source()} | {self.rate():.0f} msg/s"
            f" | reconnects {stats.reconnects} | link drops {stats.disconnects}"
            f" | REST polls {stats.polls} | circuit {self.circuit()} | last: {self.last_event}"
        )


def _ticker_cells(t: Ticker) -> tuple[str, str, str, str]:
    return _num(t.price), f"{t.change_rate * 100:+.2f}%", _num(round(t.volume_24h, 3)), t.source


def _book_line(book: Orderbook | None) -> str:
    if book is None:
        return "book    (waiting)"
    bid, ask = book.best_bid, book.best_ask
    bid_text = f"{_num(bid.price)} x {_num(bid.size)}" if bid is not None else "-"
    ask_text = f"{_num(ask.price)} x {_num(ask.size)}" if ask is not None else "-"
    spread = _num(book.spread)
    return f"book    {book.symbol:9} bid {bid_text} | ask {ask_text} | spread {spread} [{book.source}]"


def plain_lines(board: DemoBoard, stats: MarketStats) -> list[str]:
    """The view as plain text lines (no terminal): one per ticker, the book, the status line."""
    head = f"[{board.elapsed:5.1f}s]"
    lines = []
    for symbol in board.symbols:
        t = board.tickers.get(symbol)
        if t is None:
            lines.append(f"{head} ticker  {symbol:9} (waiting)")
            continue
        price, change, volume, source = _ticker_cells(t)
        lines.append(f"{head} ticker  {symbol:9} {price:>15} {change:>8}  vol24h {volume:>14}  [{source}]")
    lines.append(f"{head} {_book_line(board.book)}")
    lines.append(f"{head} status  {board.status_line(stats)}")
    return lines


def _rich_view(board: DemoBoard, stats: MarketStats) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"rxmarket demo: a simulated Upbit, {board.elapsed:4.1f}s", title_justify="left")
    table.add_column("market")
    for name in ("price", "vs close", "volume 24h"):
        table.add_column(name, justify="right")
    table.add_column("via")
    for symbol in board.symbols:
        t = board.tickers.get(symbol)
        if t is None:
            table.add_row(symbol, "...", "", "", "")
            continue
        price, change, volume, source = _ticker_cells(t)
        colour = "green" if t.change_rate > 0 else "red" if t.change_rate < 0 else ""
        table.add_row(symbol, price, Text(change, style=colour), volume, source)
    faults = "\n".join(board.log) or f"(the first fault comes at {FAULT_SCHEDULE[0].at:g}s)"
    return Group(
        table,
        Text(_book_line(board.book)),
        Panel(Text(board.status_line(stats)), title="status"),
        Panel(Text(faults), title="faults"),
        Text("Ctrl-C to stop", style="dim"),
    )


# -- demo: the command --------------------------------------------------------------------------------------


def add_demo(sub: _SubParsers) -> None:
    """Declare ``rxmarket demo``."""
    p = sub.add_parser(
        "demo",
        help="live tickers and a book from a built-in simulator, with faults injected and healed",
        description="Start an Upbit simulator on 127.0.0.1, stream tickers of a few markets and one "
        "orderbook through the default pipeline, and inject faults now and then (a dropped connection, a "
        "silent feed, a burst of HTTP 429) to show them being healed. Runs until Ctrl-C or --seconds.",
    )
    p.add_argument("--seconds", type=float, default=None,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--markets", type=int, default=5, help="ticker markets to show, 1-10 (default 5)")
    p.add_argument("--no-faults", action="store_true", help="inject no faults")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``rxmarket demo``: 0 when it ran and stopped (after ``--seconds``, Ctrl-C or when its reader
    went away), 2 on bad input."""
    if args.seconds is not None and not args.seconds > 0:
        _err("demo", f"--seconds must be > 0, got {args.seconds}")
        return EXIT_USAGE
    if not 1 <= args.markets <= 10:
        _err("demo", f"--markets must be 1-10, got {args.markets}")
        return EXIT_USAGE
    plain = args.plain or not sys.stdout.isatty()
    try:
        return asyncio.run(_demo(args.seconds, args.markets, faults=not args.no_faults, plain=plain))
    except BrokenPipeError:  # the reader went away (`rxmarket demo | head`): a normal end
        _quiet_stdout(sys.stdout)
        return EXIT_OK
    except OSError as exc:
        _err("demo", f"cannot start the simulator on 127.0.0.1: {exc}")
        return EXIT_FAILED


def demo_market(rest_url: str, ws_url: str) -> MarketData:
    """The demo's market: the defaults, with timeouts short enough to see each fault healed in seconds.

    A dead link is noticed within a second (pings every 0.5 s, replaced after 0.75 s of silence), the
    reconnect backs off from 0.1 s, an ``"auto"`` chain tries the WebSocket again after 1 s on REST, and
    it never gives up (the demo injects faults for as long as it runs).
    """
    return upbit(
        rest_url=rest_url,
        ws_url=ws_url,
        ping_interval=0.5,
        idle_timeout=0.75,
        open_timeout=2.0,
        backoff=BackoffPolicy(initial=0.1, multiplier=2.0, max_delay=1.0, jitter=0.2, immediate_first=True),
        max_failures=1_000,
        failure_window=60.0,
        grace=5.0,
        poll_interval=0.5,
        failover_retry=1.0,
        source=SourceConfig(keepalive_interval=0.5, healthy_after=1.0),
    )


async def _demo(seconds: float | None, markets: int, *, faults: bool, plain: bool) -> int:
    from rxmarket.sim import UpbitSimulator  # imported here: the other commands do not need the server

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:  # Ctrl-C is the normal way to end the demo: stop cleanly, exit 0
        loop.add_signal_handler(sig, stop.set)
    timer: asyncio.TimerHandle | None = None
    try:
        async with UpbitSimulator(markets=10, seed=7, rate=50.0) as sim:
            symbols = sim.markets[:markets]
            board = DemoBoard(symbols, loop.time)
            if seconds is not None:  # timed from the board's start, which the view and the faults use
                timer = loop.call_later(seconds, stop.set)
            if plain:
                print(_banner(sim.rest_url, faults), flush=True)
            async with demo_market(sim.rest_url, sim.ws_url) as market:
                subscriptions = CompositeDisposable(
                    market.status.subscribe(board.on_status),
                    market.ticker(symbols).subscribe(board.on_ticker, _ended(board, "ticker")),
                    market.orderbook(symbols[:1], depth=15).subscribe(board.on_book, _ended(board, "book")),
                )
                show = _show_plain(board, market, stop) if plain else _show_rich(board, market, stop)
                tasks = [asyncio.ensure_future(show)]
                if faults:
                    tasks.append(asyncio.ensure_future(_inject(sim, board, stop)))
                try:
                    await stop.wait()
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    subscriptions.dispose()
                stats = market.stats()
    finally:
        if timer is not None:
            timer.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
    via = ", ".join(f"{n} via {source}" for source, n in sorted(board.by_source.items())) or "none"
    print(
        f"demo stopped after {board.elapsed:.1f}s: {board.items} items ({via}); "
        f"faults injected {board.injected_count}, healed {board.healed}; "
        f"reconnects {stats.reconnects}, link drops {stats.disconnects}, REST polls {stats.polls}",
        flush=True,
    )
    return EXIT_OK


def _quiet_stdout(out: TextIO) -> None:
    """Point a closed pipe's descriptor at /dev/null: Python flushes stdout at exit, and on a closed pipe
    that would fail once more, with a traceback."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)


def _banner(rest_url: str, faults: bool) -> str:
    plan = ", ".join(f"{step.name} at {step.at:g}s" for step in FAULT_SCHEDULE)
    when = f"faults: {plan}, then again every {FAULT_PERIOD:g}s" if faults else "no faults"
    return f"rxmarket demo: a simulated Upbit at {rest_url}; {when}. Ctrl-C to stop."


def _ended(board: DemoBoard, what: str) -> Callable[[Exception], None]:
    def on_error(exc: Exception) -> None:
        board.note(f"the {what} stream ended: {exc!r}")

    return on_error


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if the demo stops meanwhile."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def _inject(sim: UpbitSimulator, board: DemoBoard, stop: asyncio.Event) -> None:
    """Inject the scheduled faults until the demo stops."""
    for step in fault_steps():
        await _pause(stop, board.start + step.at - board.clock())
        if stop.is_set():
            return
        board.injected(step)
        if step.name == "drop":
            sim.faults.disconnect()
        elif step.name == "silence":
            sim.faults.silence(step.seconds)
        elif step.name == "429":
            sim.faults.rate_limit(step.seconds)
            sim.faults.disconnect()  # clients reconnect into the 429s: upgrades are refused until it ends


async def _show_plain(board: DemoBoard, market: MarketData, stop: asyncio.Event) -> None:
    """Print the fault log as it grows and the view once a second (pipes, tests, CI)."""
    printed = 0
    tick = 0
    while not stop.is_set():
        tick += 1
        await _pause(stop, board.start + tick - board.clock())
        new = min(board.logged - printed, len(board.log))
        printed = board.logged
        lines = list(board.log)[len(board.log) - new:]
        lines += plain_lines(board, market.stats())
        try:
            print("\n".join(lines), flush=True)
        except BrokenPipeError:  # the reader went away (`| head`): the demo has no one left to show
            stop.set()
            raise


async def _show_rich(board: DemoBoard, market: MarketData, stop: asyncio.Event) -> None:
    """A live table on the terminal, redrawn four times a second from the loop (no thread of rich's)."""
    from rich.live import Live

    with Live(_rich_view(board, market.stats()), auto_refresh=False, redirect_stdout=False) as live:
        while not stop.is_set():
            await _pause(stop, 0.25)
            live.update(_rich_view(board, market.stats()), refresh=True)


# -- stream -------------------------------------------------------------------------------------------------


def add_stream(sub: _SubParsers) -> None:
    """Declare ``rxmarket stream``."""
    p = sub.add_parser(
        "stream",
        help="print live tickers, orderbooks or trades (a table, or JSON lines for piping)",
        description="Stream KIND for MARKETs from Upbit (or any Upbit-compatible server) through the "
        "default pipeline and print each item, until --seconds pass, --count items arrive, or Ctrl-C.",
    )
    p.add_argument("kind", choices=STREAM_KINDS, help="ticker, orderbook or trade")
    p.add_argument("markets", nargs="+", metavar="MARKET", help="market codes, e.g. KRW-BTC KRW-ETH")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table: aligned lines for people (default); json: one object per line")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--count", type=int, default=None, help="stop after this many items")
    p.add_argument("--depth", type=int, choices=ORDERBOOK_DEPTHS, default=None,
                   help="orderbook levels per side (default 30)")
    p.add_argument("--channel", choices=("auto", "websocket", "rest"), default="auto",
                   help="tickers and books: auto = WebSocket, REST while it is down (default); "
                   "websocket or rest = that one only")
    p.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds to wait for the first item before giving up (default 10)")
    p.add_argument("--rest-url", default=REST_URL, help=f"REST base (default {REST_URL})")
    p.add_argument("--ws-url", default=WS_URL, help=f"WebSocket URL (default {WS_URL})")
    p.set_defaults(func=cmd_stream)


def cmd_stream(args: argparse.Namespace) -> int:
    """Run ``rxmarket stream``: 0 when it ended normally, 1 when the feed failed, 2 on bad input."""
    for name in ("seconds", "connect_timeout"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            _err("stream", f"--{name.replace('_', '-')} must be > 0, got {value}")
            return EXIT_USAGE
    if args.count is not None and args.count < 1:
        _err("stream", f"--count must be >= 1, got {args.count}")
        return EXIT_USAGE
    if args.depth is not None and args.kind != "orderbook":
        _err("stream", "--depth applies to orderbook only")
        return EXIT_USAGE
    if args.channel != "auto" and args.kind == "trade":
        _err("stream", "--channel applies to ticker and orderbook only (trades come over the WebSocket)")
        return EXIT_USAGE
    try:
        market = upbit(
            rest_url=args.rest_url,
            ws_url=args.ws_url,
            open_timeout=min(args.connect_timeout, 10.0),
            # Before the first item, a connection that fails this often ends the command (fail fast with
            # no network); afterwards the chains' own fallback and retries keep a long stream going.
            max_failures=4,
            failure_window=60.0,
        )
        return asyncio.run(_stream(args, market, sys.stdout))
    except ConfigError as exc:
        _err("stream", exc)
        return EXIT_USAGE


class _StreamFailed(Exception):
    """The feed failed: the message says why, for people."""


class _Printer:
    """Writes each item to ``out`` and decides when the stream is done."""

    def __init__(self, args: argparse.Namespace, out: TextIO, done: asyncio.Future[None]) -> None:
        self.kind: str = args.kind
        self.table = args.format == "table"
        self.limit: int | None = args.count
        self.out = out
        self.done = done
        self.count = 0
        self.first = asyncio.Event()
        self.broken = False
        self.problem = ""
        self.line = table_line if self.table else json_line

    def finish(self, exc: BaseException | None = None) -> None:
        if self.done.done():
            return
        if exc is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(exc)

    def on_item(self, item: Any) -> None:
        if self.done.done():
            return
        try:
            if self.table and self.count == 0:
                self.out.write(table_header(self.kind) + "\n")
            self.out.write(self.line(item) + "\n")
            if not self.table:
                self.out.flush()  # JSON lines are for pipes: each line is usable as soon as it is out
        except BrokenPipeError:  # the reader went away (`| head`): a normal end
            self.broken = True
            self.finish()
            return
        self.count += 1
        self.first.set()
        if self.limit is not None and self.count >= self.limit:
            self.finish()

    def on_status(self, event: Status) -> None:
        if event.kind in ("backoff", "gave_up", "rate_limited") and event.detail and (
            # The WebSocket's own words say most (a refused connection, an HTTP status on the upgrade);
            # a REST poll's failure (no ``connection``) only when nothing better is known.
            event.connection is not None or not self.problem
        ):
            self.problem = event.detail
        if event.kind == "gave_up" and not self.first.is_set():
            self.finish(_StreamFailed(_shorten(self.problem or "the connection gave up")))


async def _stream(args: argparse.Namespace, market: MarketData, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    printer = _Printer(args, out, loop.create_future())
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    for sig in stop_signals:  # Ctrl-C is the normal way to end a stream: exit 0
        loop.add_signal_handler(sig, printer.finish)
    cfg = market.config
    try:
        async with market:
            market.status.subscribe(printer.on_status)
            feed: Observable[Any]
            if args.kind == "ticker":
                feed = market.ticker(args.markets, channel=args.channel)
            elif args.kind == "orderbook":
                feed = market.orderbook(args.markets, depth=args.depth, channel=args.channel)
            else:
                feed = market.trades(args.markets)
            subscription = feed.subscribe(printer.on_item, printer.finish, printer.finish)
            try:
                await _run(printer, args.seconds, args.connect_timeout)
            except _StreamFailed as exc:
                raise _StreamFailed(await _diagnose(market, args.markets, str(exc))) from None
            finally:
                subscription.dispose()
    except _StreamFailed as exc:
        _err("stream", f"no data from {cfg.ws_url} (REST {cfg.rest_url}): {exc}")
        return EXIT_FAILED
    except ConfigError as exc:
        _err("stream", exc)
        return EXIT_USAGE
    except RxMarketError as exc:
        _err("stream", _explain(exc, cfg.ws_url))
        return EXIT_FAILED
    finally:
        for sig in stop_signals:
            loop.remove_signal_handler(sig)
        if printer.broken:
            _quiet_stdout(out)
    if not printer.broken:
        with contextlib.suppress(BrokenPipeError):
            out.flush()
    return EXIT_OK


async def _run(printer: _Printer, seconds: float | None, connect_timeout: float) -> None:
    """Until the stream ends, ``seconds`` pass or a signal arrives; fail if nothing comes in time."""
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    done = printer.done
    first: asyncio.Future[Any] = asyncio.ensure_future(printer.first.wait())
    try:
        timeout = connect_timeout if seconds is None else min(connect_timeout, seconds)
        await asyncio.wait([done, first], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        first.cancel()
    if not done.done() and not printer.first.is_set():
        why = f": {_shorten(printer.problem)}" if printer.problem else ""
        raise _StreamFailed(f"nothing within {timeout:g}s{why}")
    if not done.done():
        left = None if deadline is None else max(deadline - loop.time(), 0.0)
        await asyncio.wait([done], timeout=left)
    if done.done():
        done.result()  # the stream's own error, if it ended with one


async def _diagnose(market: MarketData, markets: list[str], reason: str) -> str:
    """Why no data came: REST says which market codes it does not know; else the reason as it is."""
    unknown: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3.0):
            for code in markets:
                try:
                    await market.get_ticker(code)
                except NotFound:
                    unknown.append(code.strip().upper())
                except RxMarketError:
                    break  # REST is down too: the reason already says what failed
    if unknown:
        return f"{reason}; unknown market code(s): {', '.join(unknown)}"
    return f"{reason}. Check the network, the URLs and the market codes."


def _shorten(text: str, limit: int = 300) -> str:
    # aiohttp's connector errors print their whole connection key; the cause after it is what matters.
    text = _CONNECTION_KEY.sub("", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CONNECTION_KEY: Final = re.compile(r"ConnectionKey\([^()]*\),\s*")


def _explain(exc: BaseException, ws_url: str) -> str:
    if isinstance(exc, NotFound):
        return f"unknown market: {exc}"
    if isinstance(exc, GaveUp):
        return f"gave up on {ws_url}: {_shorten(str(exc))}"
    return f"{type(exc).__name__}: {_shorten(str(exc))}"


# -- formats ------------------------------------------------------------------------------------------------

_TYPES: Final = {Ticker: "ticker", Orderbook: "orderbook", Trade: "trade"}
_encode = msgspec.json.encode


def json_line(item: Ticker | Orderbook | Trade) -> str:
    """One JSON object: ``type`` then the model's fields under their Python names (not Upbit's wire keys).

    Books also carry ``asks`` and ``bids`` as ``[price, size]`` pairs, best first; trades their ``side``
    (``"buy"`` or ``"sell"``, the taker's).
    """
    fields: dict[str, Any] = {"type": _TYPES.get(type(item), type(item).__name__.lower())}
    fields.update(msgspec.structs.asdict(item))
    if isinstance(item, Orderbook):
        fields["asks"] = item.asks
        fields["bids"] = item.bids
    elif isinstance(item, Trade):
        fields["side"] = item.side
    return _encode(fields).decode()


def table_header(kind: str) -> str:
    """The column titles of :func:`table_line` for a kind."""
    if kind == "ticker":
        return f"{'TIME (UTC)':12}  {'MARKET':10} {'PRICE':>16} {'CHANGE':>8} {'VOLUME 24H':>16}  SOURCE"
    if kind == "orderbook":
        return (f"{'TIME (UTC)':12}  {'MARKET':10} {'BID':>16} {'BID SIZE':>12} {'ASK':>16} {'ASK SIZE':>12}"
                f" {'SPREAD':>10}  SOURCE")
    return f"{'TIME (UTC)':12}  {'MARKET':10} {'SIDE':4} {'PRICE':>16} {'VOLUME':>14} {'ID':>20}  SOURCE"


def table_line(item: Ticker | Orderbook | Trade) -> str:
    """One aligned line for people (exchange time, market, then what matters for the kind)."""
    if isinstance(item, Ticker):
        return (f"{_clock(item.timestamp):12}  {item.symbol:10} {_num(item.price):>16} "
                f"{item.change_rate * 100:>+7.2f}% {_num(round(item.volume_24h, 4)):>16}  {item.source}")
    if isinstance(item, Orderbook):
        bid, ask = item.best_bid, item.best_ask
        return (f"{_clock(item.timestamp):12}  {item.symbol:10} {_num(bid.price if bid else None):>16} "
                f"{_num(bid.size if bid else None):>12} {_num(ask.price if ask else None):>16} "
                f"{_num(ask.size if ask else None):>12} {_num(item.spread):>10}  {item.source}")
    return (f"{_clock(item.timestamp):12}  {item.symbol:10} {item.side.upper():4} {_num(item.price):>16} "
            f"{_num(item.volume):>14} {item.sequential_id:>20}  {item.source}")

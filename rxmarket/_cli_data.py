"""The data subcommands of the command line: ``record``, ``backfill``, ``verify``, ``replay``.

Each command is an ``add_<name>(sub)`` that declares its arguments and a ``cmd_<name>(args)`` that runs it
and returns the exit status, in the style of :mod:`rxmarket.cli`, which registers the ``add_`` functions.
``python -m rxmarket._cli_data COMMAND ...`` runs these four alone.

Exit status: 0 done (``verify``: the recording is sound), 1 the work failed (``verify``: problems found),
2 bad input (a missing directory, a malformed date, an unknown unit or market), 130 interrupted.

``rxmarket replay DIR --serve`` re-serves a recording over a local WebSocket that speaks Upbit's DEFAULT
format (``ws://127.0.0.1:PORT/websocket/v1``), so that any Upbit client consumes it as if it were live.
The server is this module's own small aiohttp app rather than the simulator's: the simulator is an island
that never sees our models, whereas replaying needs exactly them. Models go back to Upbit's wire keys with
``msgspec`` (the hot models are declared with them), candles through :func:`candle_frame`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec
from aiohttp import WSMsgType, web
from reactivex import operators as rx_ops
from reactivex.scheduler.eventloop import AsyncIOScheduler

from rxmarket.errors import ConfigError, NotFound, RxMarketError, StorageError
from rxmarket.exchanges.upbit import history
from rxmarket.exchanges.upbit.endpoints import REST_URL, WS_URL
from rxmarket.exchanges.upbit.protocol import CHANNELS, ORDERBOOK_DEPTHS, WS_CANDLE_UNITS
from rxmarket.exchanges.upbit.source import SourceConfig, UpbitSource
from rxmarket.models import CANDLE_UNITS, Candle, Orderbook, Ticker, Trade
from rxmarket.storage import (
    BackfillProgress,
    Marker,
    backfill,
    event_ms,
    kind_of,
    record,
    replay,
    segment_paths,
    verify,
)
from rxmarket.storage._replay import MODEL_KINDS as MODEL_KINDS_SET
from rxmarket.storage._replay import log_issue, merged_items

__all__ = [
    "ReplayOptions",
    "ReplayServer",
    "add_backfill",
    "add_record",
    "add_replay",
    "add_verify",
    "candle_frame",
    "cmd_backfill",
    "cmd_record",
    "cmd_replay",
    "cmd_verify",
    "parse_time",
    "wire_frame",
]

WS_PATH: Final = "/websocket/v1"
KST_MS: Final = 9 * 3_600_000
MODEL_KINDS: Final = ("ticker", "orderbook", "trade", "candle")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(command: str, message: object) -> None:
    print(f"rxmarket {command}: {message}", file=sys.stderr, flush=True)


def parse_time(text: str, name: str = "time") -> int:
    """A command-line instant as ms since the epoch.

    Accepted: ``now``; ISO 8601 dates and date-times (``2026-07-30``, ``2026-07-30T07:45``,
    ``2026-07-30T07:45:31Z``, ``...+09:00``; no offset means UTC); epoch milliseconds (digits only).

    Raises:
        ConfigError: anything else.
    """
    value = text.strip()
    if value.lower() == "now":
        return int(datetime.now(tz=UTC).timestamp() * 1000)
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{name} {text!r} is not a date: use ISO 8601 (2026-07-30T07:45:00Z), 'now' or epoch ms"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _until_signalled(work: Awaitable[int]) -> int:
    """Run ``work``; SIGINT or SIGTERM cancels it (so ``finally`` blocks run) and gives status 130."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    interrupted = False

    def stop() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, stop)
    try:
        return await task
    except asyncio.CancelledError:
        if interrupted:
            return EXIT_INTERRUPTED
        raise
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


# -- record ---------------------------------------------------------------------------------------------


def add_record(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``rxmarket record``."""
    p = sub.add_parser(
        "record",
        help="record live streams into a recording directory",
        description="Subscribe to CHANNEL for MARKETs and append every item (and every connection event, "
        "as a marker) to the recording in --out, until --seconds pass, --count items arrive, or Ctrl-C.",
    )
    p.add_argument("channel", choices=CHANNELS, metavar="CHANNEL",
                   help="ticker, orderbook, trade, or candle.1s ... candle.240m")
    p.add_argument("markets", nargs="+", metavar="MARKET", help="market codes, e.g. KRW-BTC KRW-ETH")
    p.add_argument("--out", required=True, type=Path, help="the recording directory (appended to)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--count", type=int, default=None, help="stop after this many items")
    p.add_argument("--depth", type=int, choices=ORDERBOOK_DEPTHS, default=None,
                   help="orderbook levels (default 30)")
    p.add_argument("--rest-url", default=REST_URL, help=f"REST base (default {REST_URL})")
    p.add_argument("--ws-url", default=WS_URL, help=f"WebSocket URL (default {WS_URL})")
    p.set_defaults(func=cmd_record)


def cmd_record(args: argparse.Namespace) -> int:
    """Run ``rxmarket record``: 0 when the recording ended normally, 1 when the stream failed."""
    if args.seconds is not None and not args.seconds > 0:
        _err("record", f"--seconds must be > 0, got {args.seconds}")
        return EXIT_USAGE
    if args.count is not None and args.count < 1:
        _err("record", f"--count must be >= 1, got {args.count}")
        return EXIT_USAGE
    try:
        config = SourceConfig(ws_url=args.ws_url, rest_url=args.rest_url)
        return asyncio.run(_record(args, config))
    except ConfigError as exc:
        _err("record", exc)
        return EXIT_USAGE


async def _record(args: argparse.Namespace, config: SourceConfig) -> int:
    # The facade (rxmarket.upbit) is not used here yet: UpbitSource is the same feed, one level down.
    async with UpbitSource(config) as source:
        feed = source.stream_many(args.channel, args.markets, depth=args.depth)
        if args.count is not None:
            feed = feed.pipe(rx_ops.take(args.count))
        meta = {"kind": args.channel, "symbols": [m.upper() for m in args.markets]}
        rec = record(feed, args.out, status=source.status, metadata=meta)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C is how a recording normally ends
            loop.add_signal_handler(sig, stopped.set)
        try:
            waits = {asyncio.ensure_future(rec.wait_closed()), asyncio.ensure_future(stopped.wait())}
            await asyncio.wait(waits, timeout=args.seconds, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            rec.close()
    print(f"recorded {rec.count} items and {rec.markers} markers into {args.out}", flush=True)
    if rec.error is not None:
        what = "cannot write the recording" if isinstance(rec.error, StorageError) else "the stream failed"
        _err("record", f"{what}: {rec.error!r}")
        return EXIT_FAILED
    return EXIT_OK


# -- backfill -------------------------------------------------------------------------------------------


def add_backfill(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``rxmarket backfill``."""
    p = sub.add_parser(
        "backfill",
        help="fetch history over REST into a recording (resumable)",
        description="Fetch candles or trades of each MARKET with --start <= time < --end over REST, "
        "within the rate limits, into the recording in --out. Interrupted, it leaves a consistent store; "
        "the same command again continues where the store ends.",
    )
    p.add_argument("kind", choices=("candles", "trades"), help="what to fetch")
    p.add_argument("markets", nargs="+", metavar="MARKET", help="market codes, e.g. KRW-BTC")
    p.add_argument("--unit", default="1m", choices=CANDLE_UNITS, metavar="UNIT",
                   help=f"candle unit: {', '.join(CANDLE_UNITS)} (default 1m)")
    p.add_argument("--start", required=True, help="first instant, ISO 8601 (UTC unless an offset is given)")
    p.add_argument("--end", default="now", help="end, exclusive, ISO 8601 (default: now)")
    p.add_argument("--out", required=True, type=Path, help="the recording directory (appended to)")
    p.add_argument("--page-size", type=int, default=None,
                   help="items per request (candles <= 200, trades <= 500; default the maximum)")
    p.add_argument("--rest-url", default=REST_URL, help=f"REST base (default {REST_URL})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_backfill)


def cmd_backfill(args: argparse.Namespace) -> int:
    """Run ``rxmarket backfill``: 0 done, 1 a REST failure stopped it, 2 bad input, 130 interrupted."""
    try:
        start = parse_time(args.start, "--start")
        end = parse_time(args.end, "--end")
        if start >= end:
            raise ConfigError(f"--start ({_iso(start)}) must be before --end ({_iso(end)})")
        if args.out.exists() and not args.out.is_dir():
            raise ConfigError(f"--out {args.out} exists and is not a directory")
    except ConfigError as exc:
        _err("backfill", exc)
        return EXIT_USAGE
    status = asyncio.run(_until_signalled(_backfill_all(args, start, end)))
    if status == EXIT_INTERRUPTED:
        _err("backfill", "interrupted; the store is consistent: run the same command again to resume")
    return status


async def _backfill_all(args: argparse.Namespace, start: int, end: int) -> int:
    http = history.upbit_http_client(args.rest_url)
    try:
        for market in args.markets:
            unit = args.unit if args.kind == "candles" else None
            with _ProgressBar(f"{market.upper()} {args.kind}" + (f" {unit}" if unit else ""),
                              disable=args.quiet) as bar:
                try:
                    done = await backfill(http, market, args.kind, start, end, args.out, unit=unit,
                                          page_size=args.page_size, progress=bar.update)
                except NotFound as exc:
                    _err("backfill", f"{market}: unknown market ({exc})")
                    return EXIT_USAGE
                except ConfigError as exc:
                    _err("backfill", exc)
                    return EXIT_USAGE
                except RxMarketError as exc:
                    _err("backfill", f"{market}: stopped by {type(exc).__name__}: {exc}; the store is "
                         "consistent: run the same command again to resume")
                    return EXIT_FAILED
            resumed = "" if done.resumed_from == start else f", resumed at {_iso(done.resumed_from)}"
            print(f"{done.symbol} {args.kind}: {done.written} records in {done.pages} requests{resumed} "
                  f"-> {args.out}", flush=True)
    finally:
        await http.close()
    return EXIT_OK


class _ProgressBar:
    """A tqdm bar on stderr fed by backfill progress reports (percent of the time range stored)."""

    def __init__(self, desc: str, *, disable: bool) -> None:
        from tqdm import tqdm  # imported here: the other commands do not need it

        self._bar = tqdm(
            total=100, desc=desc, file=sys.stderr, disable=disable, mininterval=0.2, dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix[0]} [{elapsed}]", postfix=["starting"],
        )

    def update(self, p: BackfillProgress) -> None:
        self._bar.n = round(100 * p.fraction, 1)
        # A list, not a string: tqdm would prefix a string postfix with ", ".
        self._bar.postfix = [f"{p.written} records, {p.pages} requests, at {_iso(p.position)}"]
        self._bar.refresh()

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bar.close()


# -- verify ---------------------------------------------------------------------------------------------


def add_verify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``rxmarket verify``."""
    p = sub.add_parser(
        "verify",
        help="check a recording's integrity (exit 1 when problems are found)",
        description="Read a whole recording and report damage, duplicates, records out of order, candle "
        "gaps and failed checks. Exit 0 when sound, 1 when problems are found, 2 on bad input.",
    )
    p.add_argument("path", type=Path, metavar="DIR", help="a recording directory (or one segment file)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--allow-gaps", action="store_true",
                   help="report candle gaps without failing (illiquid markets have them by nature)")
    p.add_argument("--unit", choices=CANDLE_UNITS, default=None, metavar="UNIT",
                   help="look for candle gaps in this unit only")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    """Run ``rxmarket verify``: 0 sound, 1 problems found, 2 bad input."""
    try:
        if not segment_paths(args.path):
            raise ConfigError(f"{args.path} holds no recording (no *.rxm segment files)")
        report = verify(args.path, candle_unit=args.unit, allow_gaps=args.allow_gaps)
    except ConfigError as exc:
        _err("verify", exc)
        return EXIT_USAGE
    except OSError as exc:
        _err("verify", f"cannot read {args.path}: {exc}")
        return EXIT_USAGE
    if args.json:
        print(msgspec.json.encode(report).decode(), flush=True)
    else:
        print(report, flush=True)
    return EXIT_OK if report.ok else EXIT_FAILED


# -- replay ---------------------------------------------------------------------------------------------


def add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``rxmarket replay``."""
    p = sub.add_parser(
        "replay",
        help="print a recording, or re-serve it over a local Upbit-compatible WebSocket",
        description="Replay recordings (several are merged by time) as fast as possible or at --speed "
        "times the recorded pace: print each item, or with --serve stream them to WebSocket clients "
        "that subscribe as they would to Upbit (each connection gets the recording from its start).",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="DIR", help="recording directories or segments")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=None, help="N times the recorded pace (1 = as recorded)")
    pace.add_argument("--fast", action="store_true", help="as fast as possible (the default)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table: one readable line per item; json: one JSON object per line (Upbit's keys)")
    p.add_argument("--symbols", nargs="+", default=None, metavar="MARKET", help="only these markets")
    p.add_argument("--kinds", nargs="+", choices=(*MODEL_KINDS, "marker"), default=None,
                   help="only these kinds (default: every model, no markers)")
    p.add_argument("--start", default=None, help="skip items before this instant (ISO 8601)")
    p.add_argument("--end", default=None, help="stop at this instant, exclusive (ISO 8601)")
    p.add_argument("--limit", type=int, default=None, help="print at most this many items")
    p.add_argument("--serve", action="store_true", help="serve over ws://HOST:PORT/websocket/v1 until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1", help="--serve: loopback address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="--serve: TCP port (default 0: a free one)")
    p.set_defaults(func=cmd_replay)


class ReplayOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What to replay and how: the recordings, the pace (``None``: as fast as possible), the filters."""

    paths: tuple[Path, ...]
    speed: float | None
    symbols: frozenset[str] | None
    kinds: tuple[str, ...] | None
    start: int | None
    end: int | None


def cmd_replay(args: argparse.Namespace) -> int:
    """Run ``rxmarket replay``: 0 done (or served until Ctrl-C), 2 bad input."""
    try:
        for path in args.paths:
            segment_paths(path)  # exists, and is a recording or a segment
        if args.speed is not None and not args.speed > 0:
            raise ConfigError(f"--speed must be > 0, got {args.speed}")
        if args.limit is not None and args.limit < 0:
            raise ConfigError(f"--limit must be >= 0, got {args.limit}")
        if args.serve and args.host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"--serve listens on a loopback address only, not {args.host!r}")
        options = ReplayOptions(
            paths=tuple(args.paths),
            speed=args.speed,
            symbols=None if args.symbols is None else frozenset(s.upper() for s in args.symbols),
            kinds=None if args.kinds is None else tuple(args.kinds),
            start=None if args.start is None else parse_time(args.start, "--start"),
            end=None if args.end is None else parse_time(args.end, "--end"),
        )
    except ConfigError as exc:
        _err("replay", exc)
        return EXIT_USAGE
    if args.serve:
        try:
            asyncio.run(_until_signalled(_serve(options, args.host, args.port)))
        except OSError as exc:
            _err("replay", f"cannot listen on {args.host}:{args.port}: {exc}")
            return EXIT_FAILED
        return EXIT_OK  # Ctrl-C or SIGTERM is how serving ends
    try:
        return asyncio.run(_until_signalled(_print(options, args.format, args.limit, sys.stdout)))
    except BrokenPipeError:
        # The reader went away (`rxmarket replay ... | head`): not an error. Point stdout at /dev/null so
        # that the interpreter's final flush does not complain either.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


async def _print(options: ReplayOptions, fmt: str, limit: int | None, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    source = replay(
        options.paths, options.speed, AsyncIOScheduler(loop), symbols=options.symbols, kinds=options.kinds,
        start=options.start, end=options.end,
    )
    if limit is not None:
        source = source.pipe(rx_ops.take(limit))
    done: asyncio.Future[None] = loop.create_future()
    line = _json_line if fmt == "json" else _table_line

    def on_next(item: Any) -> None:
        out.write(line(item))
        out.write("\n")

    def on_error(exc: Exception) -> None:
        if not done.done():
            done.set_exception(exc)

    def on_completed() -> None:
        if not done.done():
            done.set_result(None)

    subscription = source.subscribe(on_next, on_error, on_completed)
    try:
        await done
        out.flush()
    finally:
        subscription.dispose()
    return EXIT_OK


def _json_line(item: Any) -> str:
    return msgspec.json.encode(item).decode()


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"  # KRW prices: 144,068,000 rather than 1.44068e+08
    return f"{x:,.10g}"


def _table_line(item: Any) -> str:
    """One readable line: exchange time, kind, market, then what matters for the kind."""
    when = _iso(event_ms(item))
    if isinstance(item, Trade):
        what = (f"{item.side.upper():4} {_num(item.volume)} @ {_num(item.price)}  "
                f"#{item.sequential_id}")
    elif isinstance(item, Ticker):
        what = (f"price {_num(item.price)}  {item.change_rate * 100:+.2f}%  "
                f"24h volume {_num(item.volume_24h)}")
    elif isinstance(item, Orderbook):
        bid, ask = item.best_bid, item.best_ask
        what = (f"bid {_num(bid.price if bid else None)} x {_num(bid.size if bid else None)} | "
                f"ask {_num(ask.price if ask else None)} x {_num(ask.size if ask else None)}  "
                f"spread {_num(item.spread)}")
    elif isinstance(item, Candle):
        what = (f"{item.unit} {_iso(item.start)}  O {_num(item.open)} H {_num(item.high)} "
                f"L {_num(item.low)} C {_num(item.close)} V {_num(item.volume)}")
    elif isinstance(item, Marker):
        return f"{when}  {'marker':9} {item.kind}  {item.detail}".rstrip()
    else:  # pragma: no cover - replay yields only the kinds above
        return f"{when}  {item!r}"
    return f"{when}  {kind_of(item):9} {item.symbol:10} {what}"


# -- replay --serve: the recording as an Upbit WebSocket --------------------------------------------------

_to_builtins = msgspec.to_builtins
_encode = msgspec.json.encode


def candle_frame(candle: Candle) -> dict[str, Any]:
    """A candle as Upbit's DEFAULT ``candle.<unit>`` WebSocket frame (a dict, ready to encode).

    Raises:
        ConfigError: a unit Upbit does not stream (days and longer are REST-only).
    """
    if candle.unit not in WS_CANDLE_UNITS:
        raise ConfigError(f"Upbit streams candles of {', '.join(WS_CANDLE_UNITS)} only, not {candle.unit!r}")
    frame: dict[str, Any] = {
        "type": f"candle.{candle.unit}",
        "code": candle.symbol,
        "candle_date_time_utc": _candle_time(candle.start),
        "candle_date_time_kst": _candle_time(candle.start + KST_MS),
        "opening_price": candle.open,
        "high_price": candle.high,
        "low_price": candle.low,
        "trade_price": candle.close,
        "candle_acc_trade_volume": candle.volume,
        "candle_acc_trade_price": candle.value,
    }
    if candle.timestamp is not None:
        frame["timestamp"] = candle.timestamp
    if candle.stream_type is not None:
        frame["stream_type"] = candle.stream_type
    return frame


def _candle_time(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def wire_frame(item: Ticker | Trade | Orderbook | Candle, depth: int | None = None) -> bytes:
    """A model as the DEFAULT WebSocket frame Upbit would have sent for it (UTF-8 JSON).

    Our own fields (``source``) and absent optional fields are left out, as Upbit sends them.

    Args:
        item: the model.
        depth: orderbooks only: keep this many rows.

    Raises:
        ConfigError: a candle of a unit Upbit does not stream.
    """
    if isinstance(item, Candle):
        return _encode(candle_frame(item))
    frame: dict[str, Any] = _to_builtins(item)  # wire keys: the models are declared with them
    out = {k: v for k, v in frame.items() if v is not None and k != "source"}
    if depth is not None and isinstance(item, Orderbook):
        out["orderbook_units"] = out["orderbook_units"][:depth]
    return _encode(out)


def _channel_of(item: Any) -> str | None:
    if isinstance(item, Candle):
        return f"candle.{item.unit}" if item.unit in WS_CANDLE_UNITS else None
    if isinstance(item, Trade):
        return "trade"
    if isinstance(item, Ticker):
        return "ticker"
    if isinstance(item, Orderbook):
        return "orderbook"
    return None


def _items(options: ReplayOptions) -> Iterator[tuple[int, Any]]:
    """``(time ms, item)`` of the recordings, filtered, in replay order (pulled one at a time).

    The reading, filtering and merging of :func:`rxmarket.storage.replay`, damage reported the same way
    (a warning on the ``rxmarket.storage`` logger); markers, if asked for, have no channel and are skipped.
    """
    return merged_items(
        list(options.paths), MODEL_KINDS_SET if options.kinds is None else frozenset(options.kinds),
        options.symbols, options.start, options.end, False, log_issue,
    )


class ReplayServer:
    """A loopback WebSocket server that plays recordings to Upbit clients in the DEFAULT format.

    Each connection gets the recording from its start, from its first subscription on, filtered by what
    it subscribed to (a later subscription frame replaces the set, as on Upbit, without restarting the
    replay). ``PING`` text messages get ``{"status":"UP"}``. Frames are sent as binary, as Upbit does, and
    each send waits for the socket, so a slow client slows its own replay instead of filling memory.
    """

    def __init__(self, options: ReplayOptions, host: str = "127.0.0.1", port: int = 0) -> None:
        self._options = options
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._clients: set[web.WebSocketResponse] = set()
        self.connections = 0
        self.frames = 0

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT/websocket/v1`` (after :meth:`start`)."""
        return f"ws://{self._host}:{self._port}{WS_PATH}"

    async def start(self) -> None:
        """Bind and serve."""
        app = web.Application()
        app.router.add_get(WS_PATH, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Close every connection and the listening socket."""
        for ws in list(self._clients):
            with contextlib.suppress(Exception):  # a socket that is already gone needs no goodbye
                await asyncio.wait_for(ws.close(code=1001, message=b"replay server shutdown"), 1.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, compress=True)
        await ws.prepare(request)
        self._clients.add(ws)
        self.connections += 1
        wanted: dict[tuple[str, str], int | None] = {}
        feeder: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                text = msg.data if isinstance(msg.data, str) else msg.data.decode("utf-8", "replace")
                if text.strip() == "PING":
                    await ws.send_bytes(b'{"status":"UP"}')
                    continue
                error = _parse_subscription(text, wanted)
                if error is not None:
                    await ws.send_bytes(_encode({"error": {"name": error[0], "message": error[1]}}))
                    break  # Upbit closes after an error frame
                if feeder is None:
                    feeder = asyncio.ensure_future(self._feed(ws, wanted))
        finally:
            if feeder is not None:
                feeder.cancel()
                # The connection is over either way; how its feeder ended (cancelled, or the socket
                # went away under a send) changes nothing.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feeder
            self._clients.discard(ws)
            await ws.close()
        return ws

    async def _feed(self, ws: web.WebSocketResponse, wanted: dict[tuple[str, str], int | None]) -> None:
        try:
            await self._play(ws, wanted)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:  # e.g. a recording that cannot be read: say so, end this connection
            _err("replay", f"replay to a client stopped: {exc!r}")
            await ws.close(code=1011, message=b"replay failed")

    async def _play(self, ws: web.WebSocketResponse, wanted: dict[tuple[str, str], int | None]) -> None:
        speed = self._options.speed
        loop = asyncio.get_running_loop()
        origin = loop.time()
        t0: int | None = None
        due = 0.0
        for t, item in _items(self._options):
            if t0 is None:
                t0 = t
            if speed is not None:
                # Paced like rxmarket.storage.replay: due (t - t0) / speed after the start; an item whose
                # time goes back follows its predecessor at once, so the recorded order is kept.
                due = max(due, (t - t0) / 1000 / speed)
                delay = origin + due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            channel = _channel_of(item)
            if channel is None:
                continue
            key = (channel, item.symbol)
            if key not in wanted:
                continue
            await ws.send_bytes(wire_frame(item, wanted[key]))
            self.frames += 1


def _parse_subscription(text: str, wanted: dict[tuple[str, str], int | None]) -> tuple[str, str] | None:
    """Read an Upbit subscription request into ``wanted`` (replacing it); an error frame's name and
    message when the request is not one this server can serve."""
    try:
        request = json.loads(text)
    except ValueError:
        return "WRONG_FORMAT", "the request is not JSON"
    if not isinstance(request, list) or not all(isinstance(part, dict) for part in request):
        return "WRONG_FORMAT", "a request is a JSON array of objects"
    if not any("ticket" in part for part in request):
        return "NO_TICKET", "the request has no ticket"
    fmt = next((part["format"] for part in request if "format" in part), "DEFAULT")
    if fmt != "DEFAULT":
        return "WRONG_FORMAT", f"this replay server speaks the DEFAULT format only, not {fmt!r}"
    chosen: dict[tuple[str, str], int | None] = {}
    for part in request:
        channel = part.get("type")
        if channel is None:
            continue
        if channel not in CHANNELS:
            return "INVALID_PARAM", f"{channel} is not a supported type"
        codes = part.get("codes")
        if not isinstance(codes, list) or not codes:
            return "NO_CODES", "a type without codes"
        for code in codes:
            name, _, suffix = str(code).partition(".")
            depth = int(suffix) if channel == "orderbook" and suffix.isdigit() else None
            chosen[(channel, name)] = depth
    wanted.clear()
    wanted.update(chosen)
    return None


async def _serve(options: ReplayOptions, host: str, port: int) -> int:
    server = ReplayServer(options, host, port)
    await server.start()
    try:
        print(f"replaying {', '.join(map(str, options.paths))}", flush=True)
        print(f"WebSocket {server.ws_url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await asyncio.Event().wait()  # until a signal cancels us
    finally:
        await server.close()
        print(f"replay server stopped after {server.connections} connection(s), {server.frames} frames",
              flush=True)
    return EXIT_OK  # pragma: no cover - only a signal ends serving

"""The ``rxmarket`` command line.

Each subcommand is one ``_add_<name>`` function that declares its arguments and one ``_cmd_<name>``
function that runs it and returns the exit status; :func:`main` only dispatches. To add a subcommand
(``demo``, ``stream``, ``record``, ``replay``, ``backfill``, ``verify``), write the pair and list the
``_add_`` function in ``_SUBCOMMANDS``.

``rxmarket sim --host 127.0.0.1 --port 8080 --markets 50 --seed 7`` runs the Upbit simulator until
Ctrl-C or SIGTERM, after printing its URLs. ``demo`` and ``stream`` live in ``_cli_live.py``; ``record``,
``backfill``, ``verify`` and ``replay`` in ``_cli_data.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence

from rxmarket._cli_data import add_backfill, add_record, add_replay, add_verify
from rxmarket._cli_live import add_demo, add_stream

__all__ = ["main"]

_Adder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _add_sim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sim",
        help="run the Upbit-compatible simulator (REST + WebSocket) until interrupted",
        description="Serve Upbit's quotation API on a loopback address, with fault injection at /_sim.",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one (default 8080)")
    p.add_argument("--markets", type=int, default=50, help="number of KRW markets (default 50)")
    p.add_argument("--quote-markets", type=int, default=0, help="BTC-/USDT- markets to add (0-6)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the market (default 7)")
    p.add_argument("--rate", type=float, default=20.0, help="trades per second the market makes (default 20)")
    p.add_argument(
        "--bench", action="store_true", help="bench mode: stream pre-encoded frames as fast as clients read"
    )
    p.add_argument("--bench-frames", type=int, default=None, help="frames per bench connection")
    p.add_argument("--upbit-limits", action="store_true", help="enforce Upbit's real rate limits")
    p.set_defaults(func=_cmd_sim)


async def _serve_sim(args: argparse.Namespace) -> int:
    # Imported here so that other subcommands do not pay for the server's imports.
    from rxmarket.sim import BenchConfig, SimLimits, UpbitSimulator

    bench = BenchConfig(frames=args.bench_frames) if args.bench else None
    limits = SimLimits.upbit() if args.upbit_limits else None
    sim = UpbitSimulator(
        markets=args.markets,
        seed=args.seed,
        port=args.port,
        host=args.host,
        rate=0.0 if args.bench else args.rate,
        quote_markets=args.quote_markets,
        limits=limits,
        bench=bench,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with sim:
            print(f"rxmarket simulator: {len(sim.markets)} markets, seed {args.seed}", flush=True)
            print(f"REST      {sim.rest_url}", flush=True)
            print(f"WebSocket {sim.ws_url}", flush=True)
            print(f"Control   {sim.control_url}", flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("simulator stopped", flush=True)
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from rxmarket.sim import SimConfigError

    try:
        return asyncio.run(_serve_sim(args))
    except SimConfigError as exc:
        print(f"rxmarket sim: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"rxmarket sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1


_SUBCOMMANDS: tuple[_Adder, ...] = (
    _add_sim,
    add_demo,
    add_stream,
    add_record,
    add_backfill,
    add_verify,
    add_replay,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="rxmarket", description="Live market data as ReactiveX streams.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 on a usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help (0) and on usage errors (2); report it as a status instead.
        return int(exc.code) if isinstance(exc.code, int) else 2
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return func(args)
    return 130


if __name__ == "__main__":
    sys.exit(main())

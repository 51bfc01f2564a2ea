"""The live commands: ``rxmarket demo`` and ``rxmarket stream``.

Both run as real processes, as a user runs them (``python -m rxmarket.cli``, what the ``rxmarket`` script
runs). ``stream`` reads from a simulator in this test's event loop over 127.0.0.1. Quick argument checks
call :func:`rxmarket.cli.main` in-process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator

import pytest

from rxmarket._cli_live import (
    FAULT_PERIOD,
    FAULT_SCHEDULE,
    DemoBoard,
    FaultStep,
    fault_steps,
    json_line,
    table_header,
    table_line,
)
from rxmarket.cli import main
from rxmarket.exchanges.upbit.source import SourceStats
from rxmarket.market import MarketStats
from rxmarket.models import Orderbook, Status, Ticker, Trade
from rxmarket.sim import UpbitSimulator

DEADLINE = 60.0  # seconds; only reached when a command hangs (a failure in itself)
STAT_FIELDS = [name for name in MarketStats.__struct_fields__ if name != "source"]


# The installed entry point, `rxmarket`, runs this module.
ENTRY = "rxmarket.cli"
PRICE = re.compile(r"KRW-BTC\s+\d{1,3}(,\d{3})+\s+[+-]\d+\.\d\d%")


async def run(*args: str) -> tuple[int, str, str]:
    """Run ``python -m ENTRY ARGS`` to the end; its status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", ENTRY, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def sim() -> AsyncIterator[UpbitSimulator]:
    async with UpbitSimulator(markets=5, seed=7, rate=50.0) as simulator:
        yield simulator


def urls(sim: UpbitSimulator) -> list[str]:
    return ["--rest-url", sim.rest_url, "--ws-url", sim.ws_url]


@pytest.fixture
def unused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- demo --------------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_demo_shows_prices_heals_a_fault_and_exits_0() -> None:
    """``demo --seconds 5`` prints ticker prices, injects a drop that heals, and exits 0 with a summary."""
    status, out, err = await run("demo", "--seconds", "5")
    assert status == 0, err
    assert PRICE.search(out), out
    assert "injected: drop" in out
    assert re.search(r"healed: +drop at 1\.5s .*WebSocket data again", out), out
    summary = out.strip().splitlines()[-1]
    assert re.fullmatch(r"demo stopped after 5\.\ds: \d+ items .*healed [1-9].*", summary), summary
    assert "Traceback" not in err


@pytest.mark.slow
async def test_demo_stops_cleanly_on_ctrl_c() -> None:
    """Ctrl-C (SIGINT) after data arrived ends the demo with status 0, its summary, and no traceback."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", ENTRY, "demo", "--no-faults",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(DEADLINE):
            while not PRICE.search(seen[-1] if seen else ""):
                line = (await proc.stdout.readline()).decode()
                assert line, f"the demo exited early: {''.join(seen)}"
                seen.append(line)
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(DEADLINE):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip().splitlines()[-1].startswith("demo stopped after")
    assert b"Traceback" not in err


@pytest.mark.slow
async def test_demo_ends_when_its_reader_goes_away() -> None:
    """``rxmarket demo | head``: once the pipe closes the demo stops by itself, status 0, no traceback."""
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", ENTRY, "demo", "--no-faults", stdout=write_end, stderr=asyncio.subprocess.PIPE,
    )
    os.close(write_end)
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(DEADLINE):
            first = await asyncio.to_thread(os.read, read_end, 64)  # the banner comes at once
            os.close(read_end)  # what `head -1` does after its line
            err = await proc.stderr.read()
            status = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert first.startswith(b"rxmarket demo:")
    assert status == 0, err.decode()
    assert b"Traceback" not in err
    assert b"cannot start the simulator" not in err


def test_demo_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-positive --seconds or an out-of-range --markets is a usage error (2) with a message."""
    assert main(["demo", "--seconds", "0"]) == 2
    assert main(["demo", "--markets", "11"]) == 2
    err = capsys.readouterr().err
    assert "--seconds must be > 0" in err
    assert "--markets must be 1-10" in err


# -- stream ------------------------------------------------------------------------------------------------


async def test_stream_json_lines_carry_python_field_names(sim: UpbitSimulator) -> None:
    """``--format json`` prints one object per line: ``type`` plus the models' Python names, not wire keys."""
    status, out, err = await run("stream", "ticker", "KRW-BTC", "KRW-ETH", *urls(sim), "--format", "json",
                                 "--count", "3")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    for line in lines:
        item = json.loads(line)
        assert item["type"] == "ticker"
        assert item["symbol"] in ("KRW-BTC", "KRW-ETH")
        assert item["price"] > 0
        assert item["volume_24h"] >= 0
        assert "trade_price" not in item
        assert "code" not in item


async def test_stream_trade_json_has_the_takers_side(sim: UpbitSimulator) -> None:
    """Trades in JSON carry ``side`` ("buy"/"sell") and ``sequential_id``."""
    status, out, err = await run("stream", "trade", "KRW-BTC", *urls(sim), "--format", "json", "--count", "2")
    assert status == 0, err
    items = [json.loads(line) for line in out.splitlines()]
    assert [item["type"] for item in items] == ["trade", "trade"]
    assert all(item["side"] in ("buy", "sell") and item["sequential_id"] > 0 for item in items)


async def test_stream_orderbook_table_has_a_header_and_one_line_per_book(sim: UpbitSimulator) -> None:
    """The table format prints the column titles once, then one aligned line per book."""
    status, out, err = await run("stream", "orderbook", "KRW-ETH", *urls(sim), "--depth", "5", "--count", "2")
    assert status == 0, err
    header, *rows = out.splitlines()
    assert header == table_header("orderbook")
    assert len(rows) == 2
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3}  KRW-ETH ", row) for row in rows), rows


async def test_stream_ends_quietly_when_the_reader_goes_away(sim: UpbitSimulator) -> None:
    """Piped into ``head -n 1``, the stream stops with status 0 and no broken-pipe traceback."""
    command = (f"set -o pipefail; {sys.executable} -m {ENTRY} stream trade KRW-BTC "
               f"--rest-url {sim.rest_url} --ws-url {sim.ws_url} --format json | head -n 1")
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["type"] == "trade"
    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err


async def test_stream_without_a_server_fails_fast_with_a_message(unused_port: int) -> None:
    """Nothing listening: the command gives up on its own (no hang), exits 1 and says what failed."""
    base = f"127.0.0.1:{unused_port}"
    status, out, err = await run("stream", "ticker", "KRW-BTC", "--rest-url", f"http://{base}/v1",
                                 "--ws-url", f"ws://{base}/websocket/v1", "--connect-timeout", "30")
    assert status == 1
    assert out == ""
    assert err.startswith(f"rxmarket stream: no data from ws://{base}/websocket/v1")
    assert "cannot connect" in err
    assert "Connect call failed" in err
    assert "Traceback" not in err


async def test_stream_names_an_unknown_market(sim: UpbitSimulator) -> None:
    """A market the server does not know: no data, exit 1, and the message names the code."""
    status, _, err = await run("stream", "ticker", "KRW-NOPE", *urls(sim), "--connect-timeout", "1")
    assert status == 1
    assert "unknown market code(s): KRW-NOPE" in err


def test_stream_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """Malformed codes, URLs and limits are usage errors (2) with the reason, before any connection."""
    assert main(["stream", "ticker", "BTC", "--seconds", "1"]) == 2
    assert main(["stream", "ticker", "KRW-BTC", "--ws-url", "http://example.com"]) == 2
    assert main(["stream", "ticker", "KRW-BTC", "--count", "0"]) == 2
    assert main(["stream", "trade", "KRW-BTC", "--depth", "5"]) == 2
    assert main(["stream", "trade", "KRW-BTC", "--channel", "rest"]) == 2
    assert main(["stream", "candles", "KRW-BTC"]) == 2
    err = capsys.readouterr().err
    assert "market code 'BTC' is not QUOTE-BASE" in err
    assert "ws_url must start with ws:// or wss://" in err
    assert "--count must be >= 1" in err
    assert "--depth applies to orderbook only" in err
    assert "--channel applies to ticker and orderbook only" in err
    assert "invalid choice: 'candles'" in err


# -- formats -----------------------------------------------------------------------------------------------

TICKER = Ticker(symbol="KRW-BTC", open=100.0, high=110.0, low=90.0, price=105.0, prev_close=100.0,
                change="RISE", change_price=5.0, change_rate=0.05, timestamp=1_785_397_531_885,
                value_24h=1e9, volume_24h=12.5, source="rest")


def test_json_line_round_trips_a_ticker() -> None:
    """A JSON line holds every field of the ticker under its Python name, and nothing else but ``type``."""
    item = json.loads(json_line(TICKER))
    assert item.pop("type") == "ticker"
    assert item == {name: getattr(TICKER, name) for name in TICKER.__struct_fields__}


def test_json_line_gives_books_their_sides() -> None:
    """Books carry ``asks``/``bids`` as [price, size] pairs, best first, beside Upbit's rows."""
    book = Orderbook.from_levels(symbol="KRW-BTC", timestamp=1, asks=[(101.0, 1.0), (102.0, 2.0)],
                                 bids=[(100.0, 3.0)])
    item = json.loads(json_line(book))
    assert (item["asks"], item["bids"]) == ([[101.0, 1.0], [102.0, 2.0]], [[100.0, 3.0]])
    assert len(item["units"]) == 2


def test_table_lines_read_like_the_header() -> None:
    """A table line shows exchange time (UTC), market, formatted price and change, and the source."""
    line, header = table_line(TICKER), table_header("ticker")
    assert line.split() == ["07:45:31.885", "KRW-BTC", "105", "+5.00%", "12.5", "rest"]
    for title, value in (("PRICE", "105"), ("CHANGE", "+5.00%"), ("24H", "12.5")):
        assert line.index(value) + len(value) == header.index(title) + len(title)  # right-aligned columns
    trade = Trade(symbol="KRW-BTC", price=144_068_000.0, volume=0.5, ask_bid="ASK",
                  timestamp=1_785_397_531_885, sequential_id=17)
    assert "SELL      144,068,000" in table_line(trade)


# -- the demo's board ----------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ticker_from(source: str, ts: int = 1) -> Ticker:
    return Ticker(symbol="KRW-BTC", open=100.0, high=110.0, low=90.0, price=105.0, prev_close=100.0,
                  change="RISE", change_price=5.0, change_rate=0.05, timestamp=ts, value_24h=1e9,
                  volume_24h=12.5, source=source)


def test_board_heals_a_fault_only_after_a_reconnect_and_websocket_data() -> None:
    """REST data during a fault does not heal it; a reconnect followed by a WebSocket item does."""
    clock = Clock()
    board = DemoBoard(["KRW-BTC"], clock)
    clock.now += 1.5
    board.injected(FaultStep(1.5, "drop"))
    clock.now += 0.2
    board.on_ticker(ticker_from("rest", 2))  # the failover feeds REST meanwhile
    assert board.healed == 0
    board.on_status(Status(kind="reconnected", timestamp=0.0, connection=0, downtime=0.1))
    assert board.healed == 0
    clock.now += 0.8
    board.on_ticker(ticker_from("websocket", 3))
    assert board.healed == 1
    assert board.log[-1] == (
        "[  2.5s] healed:   drop at 1.5s (connection dropped): WebSocket data again 1.0s later"
    )


def test_board_waits_for_a_timed_fault_to_end() -> None:
    """A WebSocket item during a timed fault's window does not heal it, even after a reconnect."""
    clock = Clock()
    board = DemoBoard(["KRW-BTC"], clock)
    board.injected(FaultStep(0.0, "silence", 1.5))
    clock.now += 1.0
    board.on_status(Status(kind="reconnected", timestamp=0.0, connection=0))
    clock.now += 0.1
    board.on_ticker(ticker_from("websocket"))
    assert board.healed == 0
    clock.now += 0.5
    board.on_ticker(ticker_from("websocket", 2))
    assert board.healed == 1
    assert "0.1s after it ended" in board.log[-1]


def test_board_forgets_healed_faults() -> None:
    """Healed faults leave the board (counted, not kept): a demo that runs for days stays flat."""
    clock = Clock()
    board = DemoBoard(["KRW-BTC"], clock)
    for i in range(500):
        clock.now += 1.0
        board.injected(FaultStep(float(i), "drop"))
        board.on_status(Status(kind="reconnected", timestamp=0.0, connection=0))
        clock.now += 0.1
        board.on_ticker(ticker_from("websocket", i + 1))
    assert (board.injected_count, board.healed) == (500, 500)
    assert board.faults == []


def test_board_status_line_shows_link_channel_and_circuit() -> None:
    """The status line follows the link's events and the worst breaker state of the chains."""
    board = DemoBoard(["KRW-BTC"], Clock())
    board.on_ticker(ticker_from("rest"))
    board.on_status(Status(kind="backoff", timestamp=0.0, connection=0, delay=0.5, detail="closed"))
    board.on_status(Status(kind="circuit", timestamp=0.0, channel="ticker", symbol="KRW-BTC", detail="open"))
    board.on_status(Status(kind="circuit", timestamp=0.0, channel="orderbook", symbol="KRW-BTC",
                           detail="closed"))
    line = board.status_line(MarketStats(**dict.fromkeys(STAT_FIELDS, 0), source=SourceStats()))
    assert line.startswith("link backoff 0.5s | via rest | ")
    assert "| circuit open |" in line
    assert line.endswith("last: circuit of the orderbook chain: closed")


def test_fault_schedule_repeats() -> None:
    """The schedule starts with a drop at 1.5 s and repeats every FAULT_PERIOD seconds."""
    steps = list(itertools.islice(fault_steps(), 2 * len(FAULT_SCHEDULE)))
    assert steps[0] == FaultStep(1.5, "drop")
    assert [s.at - FAULT_PERIOD for s in steps[len(FAULT_SCHEDULE):]] == [s.at for s in FAULT_SCHEDULE]

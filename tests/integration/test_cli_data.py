"""The data commands: ``record``, ``backfill``, ``verify`` and ``replay`` (print and ``--serve``).

Commands that talk to the network run as a real process (``python -m rxmarket.cli``, the same
functions ``rxmarket`` dispatches to) against a simulator in this test's event loop; the others are called
in-process through :func:`rxmarket.cli.main`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from rxmarket._cli_data import ReplayOptions, ReplayServer, parse_time, wire_frame
from rxmarket.cli import main
from rxmarket.errors import ConfigError
from rxmarket.exchanges.upbit import history, protocol
from rxmarket.exchanges.upbit.source import SourceConfig, UpbitSource
from rxmarket.models import Candle, Orderbook, Ticker, Trade
from rxmarket.sim import SimLimits, UpbitSimulator
from rxmarket.storage import RecordingWriter, backfill, iter_records, replay, segment_paths, verify

DATA = Path(__file__).resolve().parents[1] / "data" / "upbit"
T0 = 1_785_397_531.885  # 2026-07-30T07:45:31.885Z, the frozen simulators' "now"
END_ISO = "2026-07-30T07:00:00Z"
END_MS = 1_785_394_800_000
START_ISO = "2026-07-30T02:00:00Z"
START_MS = END_MS - 5 * 3_600_000
DEADLINE = 30.0
Model = Ticker | Trade | Orderbook | Candle


async def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``python -m rxmarket.cli ARGS`` to the end; its status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rxmarket.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def models(path: Path) -> list[Any]:
    items: list[Any] = []
    replay(path).subscribe(items.append)
    return items


@pytest.fixture
async def frozen() -> AsyncIterator[UpbitSimulator]:
    """A simulator on a frozen clock (its history never changes) with tight limits: 3 requests/s."""
    async with UpbitSimulator(markets=3, seed=7, rate=0, clock=lambda: T0,
                              limits=SimLimits(rest_per_sec=3)) as sim:
        yield sim


def real_models() -> list[Model]:
    """One real Upbit frame of each kind, decoded."""
    names = ["ws_ticker_default.json", "ws_trade_default.json", "ws_orderbook_default.json",
             "ws_candle_default_2025.json"]
    return [protocol.decode_ws((DATA / name).read_bytes()) for name in names]  # type: ignore[misc]


def write_store(path: Path, items: list[Any]) -> None:
    with RecordingWriter(path) as writer:
        for item in items:
            writer.write(item)


# -- backfill ---------------------------------------------------------------------------------------------


async def test_backfill_command_fills_the_store_and_shows_progress(
    frozen: UpbitSimulator, tmp_path: Path
) -> None:
    """``backfill candles`` stores what the library call stores, shows a bar on stderr, exits 0."""
    code, out, err = await run_cli(
        "backfill", "candles", "KRW-BTC", "--unit", "1m", "--start", START_ISO, "--end", END_ISO,
        "--out", str(tmp_path / "cli"), "--rest-url", frozen.rest_url, "--page-size", "100",
    )
    assert code == 0, err
    assert "KRW-BTC candles 1m: 100%|" in err
    assert "KRW-BTC candles:" in out
    assert "records in 3 requests" in out
    http = history.upbit_http_client(frozen.rest_url)
    try:
        await backfill(http, "KRW-BTC", "candles", START_MS, END_MS, tmp_path / "lib", page_size=100)
    finally:
        await http.close()
    assert models(tmp_path / "cli") == models(tmp_path / "lib")
    assert len(models(tmp_path / "cli")) > 250


async def test_backfill_command_interrupted_then_rerun_ends_complete(
    frozen: UpbitSimulator, tmp_path: Path
) -> None:
    """Ctrl-C mid-way exits 130 with a consistent store; the same command again completes it, equal to an
    uninterrupted run."""
    args = ("backfill", "candles", "KRW-BTC", "--start", START_ISO, "--end", END_ISO, "--out",
            str(tmp_path / "cli"), "--rest-url", frozen.rest_url, "--page-size", "50", "--quiet")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rxmarket.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    await frozen.wait_requests(3, group="candles")
    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(DEADLINE):
        _out, err = await proc.communicate()
    assert proc.returncode == 130, err.decode()
    assert "run the same command again to resume" in err.decode()
    partial = models(tmp_path / "cli")
    assert verify(tmp_path / "cli", allow_gaps=True).ok

    code, out, err2 = await run_cli(*args)
    assert code == 0, err2
    assert "resumed at" in out
    http = history.upbit_http_client(frozen.rest_url)
    try:
        await backfill(http, "KRW-BTC", "candles", START_MS, END_MS, tmp_path / "lib", page_size=50)
    finally:
        await http.close()
    whole = models(tmp_path / "lib")
    assert partial == whole[: len(partial)]
    assert models(tmp_path / "cli") == whole
    report = verify(tmp_path / "cli", allow_gaps=True)
    assert (report.ok, report.duplicates) == (True, 0)


async def test_backfill_command_unknown_market_exits_2(frozen: UpbitSimulator, tmp_path: Path) -> None:
    """A market the exchange does not know is bad input: status 2 and a message naming it."""
    code, _out, err = await run_cli(
        "backfill", "trades", "KRW-NOPE", "--start", "2026-07-30T06:00:00Z", "--end", END_ISO,
        "--out", str(tmp_path), "--rest-url", frozen.rest_url, "--quiet",
    )
    assert code == 2
    assert "KRW-NOPE: unknown market" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "yesterday"], "--start 'yesterday' is not a date"),
        (["--start", "2026-07-30", "--end", "2026-07-29"], "must be before --end"),
        (["--start", "2026-07-30", "--unit", "2m"], "invalid choice: '2m'"),
        (["--start", "2026-07-30", "--page-size", "x"], "invalid int value"),
    ],
)
def test_backfill_command_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Malformed dates, an inverted range or an unknown unit: status 2 and a clear message, no store."""
    code = main(["backfill", "candles", "KRW-BTC", "--out", str(tmp_path / "s"), "--rest-url",
                 "http://127.0.0.1:9/v1", *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_backfill_command_refuses_a_file_as_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out naming a file: status 2, and the file is untouched."""
    target = tmp_path / "file"
    target.write_text("keep")
    assert main(["backfill", "candles", "KRW-BTC", "--start", "2026-07-30", "--out", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert target.read_text() == "keep"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-07-30T07:00:00Z", END_MS),
        ("2026-07-30T07:00:00", END_MS),
        ("2026-07-30T16:00:00+09:00", END_MS),
        ("2026-07-30", END_MS - 7 * 3_600_000),
        (str(END_MS), END_MS),
    ],
)
def test_parse_time_reads_iso_dates_and_epoch_ms(text: str, ms: int) -> None:
    """ISO 8601 (UTC unless an offset is given) and epoch milliseconds give the same instant."""
    assert parse_time(text) == ms


def test_parse_time_refuses_other_text() -> None:
    """Anything else is a ConfigError naming the value and the accepted forms."""
    with pytest.raises(ConfigError, match="ISO 8601"):
        parse_time("last tuesday", "--start")


# -- verify -----------------------------------------------------------------------------------------------


def test_verify_command_exits_0_when_sound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sound recording: status 0 and the report on stdout."""
    write_store(tmp_path, real_models())
    assert main(["verify", str(tmp_path)]) == 0
    assert f"recording {tmp_path}: OK" in capsys.readouterr().out


def test_verify_command_exits_1_on_damage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A torn tail (a record cut short): status 1, and --json says what and where."""
    write_store(tmp_path, real_models())
    segment = segment_paths(tmp_path)[-1]
    segment.write_bytes(segment.read_bytes()[:-10])
    assert main(["verify", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [t["segment"] for t in report["torn_tails"]] == [str(segment)]


def test_verify_command_exits_1_on_duplicates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trade stored twice is a problem: status 1."""
    trade = real_models()[1]
    write_store(tmp_path, [trade, trade])
    assert main(["verify", str(tmp_path)]) == 1
    assert "duplicates: 1" in capsys.readouterr().out


def test_verify_command_allow_gaps_passes_a_gappy_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Candle gaps fail by default and pass with --allow-gaps."""
    candle = real_models()[3]
    assert isinstance(candle, Candle)
    assert candle.timestamp is not None
    later = msgspec.structs.replace(candle, start=candle.start + 5000, timestamp=candle.timestamp + 5000)
    write_store(tmp_path, [candle, later])
    assert main(["verify", str(tmp_path)]) == 1
    assert main(["verify", str(tmp_path), "--allow-gaps"]) == 0
    assert "4 start(s) missing (allowed)" in capsys.readouterr().out


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_verify_command_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str
) -> None:
    """A missing directory, or one holding no recording: status 2 and a message, not an OK report."""
    path = tmp_path / "rec"
    if make == "empty":
        path.mkdir()
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err if make == "missing" else "holds no recording" in err


# -- replay (print) ---------------------------------------------------------------------------------------


def test_replay_command_prints_one_line_per_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format table: one readable line per model, in recorded order, with its kind and market."""
    items = real_models()
    write_store(tmp_path, items)
    assert main(["replay", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["ticker", "trade", "orderbook", "candle"]
    assert [line.split()[2] for line in lines] == [m.symbol for m in items]
    trade = items[1]
    assert isinstance(trade, Trade)
    assert f"#{trade.sequential_id}" in lines[1]


def test_replay_command_json_lines_decode_to_the_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--format json: each line decodes back to the replayed model."""
    write_store(tmp_path, real_models())
    assert main(["replay", str(tmp_path), "--format", "json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    decoded = [msgspec.json.decode(line, type=Model) for line in lines]
    assert decoded == models(tmp_path)


def test_replay_command_filters_and_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--kinds, --symbols and --limit select what is printed."""
    trade = real_models()[1]
    assert isinstance(trade, Trade)
    other = msgspec.structs.replace(trade, symbol="KRW-ETH", sequential_id=trade.sequential_id + 1)
    write_store(tmp_path, [*real_models(), other, msgspec.structs.replace(other, sequential_id=1)])
    assert main(["replay", str(tmp_path), "--kinds", "trade", "--symbols", "krw-eth", "--limit", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert "KRW-ETH" in lines[0]
    assert f"#{other.sequential_id}" in lines[0]


def test_replay_command_paced_prints_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--speed N paces the items and still prints all of them, in order."""
    trade = real_models()[1]
    assert isinstance(trade, Trade)
    trades = [msgspec.structs.replace(trade, timestamp=trade.timestamp + 2 * i, sequential_id=i)
              for i in range(5)]
    write_store(tmp_path, trades)
    assert main(["replay", str(tmp_path), "--speed", "100"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.rsplit("#", 1)[1] for line in printed] == ["0", "1", "2", "3", "4"]


def test_replay_command_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing recording or a bad option value: status 2 and a message."""
    assert main(["replay", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    write_store(tmp_path / "rec", real_models())
    assert main(["replay", str(tmp_path / "rec"), "--speed", "-1"]) == 2
    assert "--speed must be > 0" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "rec"), "--speed", "2", "--fast"]) == 2


# -- replay --serve ---------------------------------------------------------------------------------------


def test_models_go_back_to_the_frames_upbit_sent() -> None:
    """Encoded for --serve, every model decodes back to itself: the frames are Upbit's DEFAULT format."""
    for model in real_models():
        assert protocol.decode_ws(wire_frame(model)) == model


async def test_replay_serve_feeds_an_upbit_client(tmp_path: Path) -> None:
    """An unmodified UpbitSource pointed at ``replay --serve`` receives the recorded trades and candles,
    in order, field for field; SIGINT stops the server with status 0."""
    trade, candle = real_models()[1], real_models()[3]
    assert isinstance(trade, Trade)
    assert isinstance(candle, Candle)
    assert candle.timestamp is not None
    trades = [msgspec.structs.replace(trade, timestamp=trade.timestamp + i, sequential_id=i + 1)
              for i in range(30)]
    candles = [
        msgspec.structs.replace(candle, start=candle.start + 1000 * i, timestamp=candle.timestamp + 1000 * i)
        for i in range(5)
    ]
    write_store(tmp_path, [*trades, *candles])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rxmarket.cli", "replay", str(tmp_path), "--serve", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        url = ""
        async with asyncio.timeout(DEADLINE):
            while not url:
                line = (await proc.stdout.readline()).decode()
                assert line, "the server exited early"
                if line.startswith("WebSocket "):
                    url = line.split()[1]
        assert url.startswith("ws://127.0.0.1:")
        assert url.endswith("/websocket/v1")
        got_trades: list[Trade] = []
        got_candles: list[Candle] = []
        enough = asyncio.Event()

        def check() -> None:
            if len(got_trades) == len(trades) and len(got_candles) == len(candles):
                enough.set()

        def on_trade(t: Trade) -> None:
            got_trades.append(t)
            check()

        def on_candle(c: Candle) -> None:
            got_candles.append(c)
            check()

        config = SourceConfig(ws_url=url, rest_url="http://127.0.0.1:9/v1", gap_fill=False)
        async with UpbitSource(config) as source:
            source.stream("trade", trade.symbol).subscribe(on_trade)
            source.stream(f"candle.{candle.unit}", candle.symbol).subscribe(on_candle)
            async with asyncio.timeout(DEADLINE):
                await enough.wait()
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(DEADLINE):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "replay server stopped after 1 connection(s)" in out.decode()
    assert [msgspec.structs.replace(t, source="x") for t in got_trades] == [
        msgspec.structs.replace(t, source="x") for t in trades
    ]
    assert [msgspec.structs.replace(c, source="x") for c in got_candles] == [
        msgspec.structs.replace(c, source="x") for c in candles
    ]


# -- record -----------------------------------------------------------------------------------------------


async def test_record_command_records_live_trades(tmp_path: Path) -> None:
    """``record trade`` stores the live trades of the markets asked for, with connection markers."""
    async with UpbitSimulator(markets=3, seed=7, rate=100) as sim:
        code, out, err = await run_cli(
            "record", "trade", "KRW-BTC", "KRW-ETH", "--out", str(tmp_path), "--count", "20",
            "--ws-url", sim.ws_url, "--rest-url", sim.rest_url,
        )
    assert code == 0, err
    assert "recorded 20 items" in out
    trades = [r.item for r in iter_records(tmp_path) if isinstance(r.item, Trade)]
    assert len(trades) == 20
    assert {t.symbol for t in trades} <= {"KRW-BTC", "KRW-ETH"}
    report = verify(tmp_path)
    assert report.ok
    assert {"connecting", "live", "completed"} <= set(report.counts["marker"])


def test_record_command_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown channel, a malformed URL or a non-positive duration: status 2 and a message."""
    assert main(["record", "trades", "KRW-BTC", "--out", str(tmp_path)]) == 2
    assert "invalid choice: 'trades'" in capsys.readouterr().err
    assert main(["record", "trade", "KRW-BTC", "--out", str(tmp_path), "--ws-url", "http://x"]) == 2
    assert "ws_url must start with ws://" in capsys.readouterr().err
    assert main(["record", "trade", "KRW-BTC", "--out", str(tmp_path), "--seconds", "0"]) == 2
    assert "--seconds must be > 0" in capsys.readouterr().err


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ReplayServer]:
    """A replay server for one recording of real frames, in this test's loop."""
    write_store(tmp_path, real_models())
    options = ReplayOptions(paths=(tmp_path,), speed=None, symbols=None, kinds=None, start=None, end=None)
    server = ReplayServer(options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    async with asyncio.timeout(DEADLINE):
        msg = await ws.receive()
    assert msg.type == aiohttp.WSMsgType.BINARY, msg
    return json.loads(msg.data)


async def test_replay_server_answers_ping_and_truncates_books(served: ReplayServer) -> None:
    """A text PING gets {"status":"UP"}; an orderbook asked as CODE.1 gets one row, as on Upbit."""
    book = real_models()[2]
    assert isinstance(book, Orderbook)
    async with aiohttp.ClientSession() as http, http.ws_connect(served.ws_url) as ws:
        await ws.send_str("PING")
        assert await receive_json(ws) == {"status": "UP"}
        await ws.send_str(json.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": [f"{book.symbol}.1"]},
                                      {"format": "DEFAULT"}]))
        frame = await receive_json(ws)
    assert frame["type"] == "orderbook"
    assert frame["code"] == book.symbol
    assert len(frame["orderbook_units"]) == 1 < len(book.units)


class _Noticed(logging.Handler):
    """Sets an event when the ``rxmarket.storage`` logger reports damage (runs on the loop's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = asyncio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.event.set()


async def test_replay_server_reports_damage_in_the_recording(tmp_path: Path) -> None:
    """A torn tail met while serving is reported on the ``rxmarket.storage`` logger, as ``replay`` does."""
    items = real_models()
    write_store(tmp_path, items)
    segment = segment_paths(tmp_path)[-1]
    segment.write_bytes(segment.read_bytes()[:-10])
    options = ReplayOptions(paths=(tmp_path,), speed=None, symbols=None, kinds=None, start=None, end=None)
    server = ReplayServer(options)
    noticed = _Noticed()
    logger = logging.getLogger("rxmarket.storage")
    logger.addHandler(noticed)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
            await ws.send_str(json.dumps([{"ticket": "t"}, {"type": "ticker", "codes": [items[0].symbol]}]))
            assert (await receive_json(ws))["type"] == "ticker"
            async with asyncio.timeout(DEADLINE):
                await noticed.event.wait()
    finally:
        logger.removeHandler(noticed)
        await server.close()
    assert any("torn_tail" in m and str(segment) in m for m in noticed.messages), noticed.messages


@pytest.mark.parametrize(
    ("request_", "name"),
    [
        ([{"ticket": "t"}, {"type": "trade", "codes": ["KRW-BTC"]}, {"format": "SIMPLE"}], "WRONG_FORMAT"),
        ([{"type": "trade", "codes": ["KRW-BTC"]}], "NO_TICKET"),
        ([{"ticket": "t"}, {"type": "nope", "codes": ["KRW-BTC"]}], "INVALID_PARAM"),
        ({"ticket": "t"}, "WRONG_FORMAT"),
    ],
)
async def test_replay_server_refuses_what_it_cannot_serve(
    served: ReplayServer, request_: Any, name: str
) -> None:
    """A request the server cannot serve gets Upbit's error frame, then the connection is closed."""
    async with aiohttp.ClientSession() as http, http.ws_connect(served.ws_url) as ws:
        await ws.send_str(json.dumps(request_))
        assert (await receive_json(ws))["error"]["name"] == name
        async with asyncio.timeout(DEADLINE):
            closing = await ws.receive()
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert served.frames == 0

"""``rxmarket sim``: runs the simulator from the command line until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp
import pytest

from rxmarket.cli import main

from ._helpers import get_json


async def start_cli(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """Start ``python -m rxmarket.cli sim ...`` and read the URLs it prints."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rxmarket.cli", "sim", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    async with asyncio.timeout(30):
        while "Control" not in urls:
            line = (await proc.stdout.readline()).decode()
            assert line, f"the CLI exited early: {(await proc.stderr.read()).decode() if proc.stderr else ''}"
            label, _, url = line.strip().partition(" ")
            if url.strip().startswith(("http://", "ws://")):
                urls[label] = url.strip()
    return proc, urls


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_sim_command_serves_until_signalled(sig: signal.Signals) -> None:
    """The command prints REST/WebSocket/control URLs, serves them, and exits 0 on SIGTERM or Ctrl-C."""
    proc, urls = await start_cli("--markets", "3", "--seed", "7", "--rate", "0")
    try:
        async with aiohttp.ClientSession() as http:
            status, body, _ = await get_json(http, f"{urls['REST']}/market/all")
            async with http.ws_connect(urls["WebSocket"]) as ws:
                assert not ws.closed
        assert urls["WebSocket"].startswith("ws://127.0.0.1:")
        assert urls["WebSocket"].endswith("/websocket/v1")
        assert (status, [m["market"] for m in body]) == (200, ["KRW-BTC", "KRW-ETH", "KRW-XRP"])
    finally:
        proc.send_signal(sig)
        async with asyncio.timeout(30):
            out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert b"simulator stopped" in out


def test_sim_command_refuses_a_public_host(capsys: pytest.CaptureFixture[str]) -> None:
    """--host 0.0.0.0 is refused with exit status 2 and a message, without listening."""
    assert main(["sim", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    """No subcommand or a bad option value is a usage error (status 2), not an exception."""
    assert main([]) == 2
    assert main(["sim", "--port", "eighty"]) == 2
    captured = capsys.readouterr()
    assert "usage: rxmarket" in captured.out
    assert "invalid int value: 'eighty'" in captured.err

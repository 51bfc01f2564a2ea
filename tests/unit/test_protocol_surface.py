"""The protocol's surface: sans-I/O imports, exported names, the example script, fixture coverage."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import rxmarket.exchanges.upbit as upbit
from rxmarket.exchanges.base import Exchange
from rxmarket.exchanges.upbit import endpoints, protocol

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "tests" / "data" / "upbit"


def test_protocol_imports_no_io_or_rx_library() -> None:
    """Importing protocol, _wire and endpoints loads no asyncio, aiohttp, websockets or reactivex.

    Runs in a fresh interpreter. The parent packages are stubbed as bare namespaces so the test measures
    these modules' own import closure, not whatever the package roots import (the facade will pull in
    asyncio there, on purpose).
    """
    code = textwrap.dedent(
        f"""
        import sys, types
        root = {str(ROOT / "rxmarket")!r}
        for name, path in [("rxmarket", root), ("rxmarket.exchanges", root + "/exchanges"),
                           ("rxmarket.exchanges.upbit", root + "/exchanges/upbit")]:
            module = types.ModuleType(name)
            module.__path__ = [path]
            sys.modules[name] = module
        import rxmarket.exchanges.upbit.protocol as protocol
        import rxmarket.exchanges.upbit.endpoints
        assert protocol.__file__.startswith(root), protocol.__file__
        frame = open({str(DATA / "ws_trade_default_2026.json")!r}, "rb").read()
        assert protocol.decode_ws(frame).price == 91361000.0
        banned = {{"asyncio", "aiohttp", "websockets", "reactivex"}}
        print(sorted(m for m in sys.modules if m.split(".")[0] in banned))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_contract_usage() -> None:
    """``from rxmarket.exchanges.upbit import protocol; protocol.decode_ws(frame)`` works (contract)."""
    assert upbit.protocol is protocol
    ticker = protocol.decode_ws((DATA / "ws_ticker_default.json").read_bytes())
    assert ticker.symbol == "BTC-ETH"
    assert protocol.decode_rest("ticker", (DATA / "rest_ticker.json").read_bytes())[0].symbol == "BTC-ETH"


def test_exported_names_exist_and_match() -> None:
    """Every name in the package's ``__all__`` exists and is the object protocol/endpoints define."""
    for name in upbit.__all__:
        value = getattr(upbit, name)
        for module in (protocol, endpoints):
            if name in module.__all__:
                assert getattr(module, name) is value, name
    for module in (protocol, endpoints):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    assert {"decode_ws", "decode_ws_many", "decode_rest", "build_subscribe", "KEEPALIVE",
            "UpbitProtocolConfig", "error_from_response", "parse_remaining_req"} <= set(upbit.__all__)


def test_example_script_runs() -> None:
    """``python examples/decode_fixtures.py`` (the README's command) exits 0 and prints the models."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "decode_fixtures.py")],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(ln.strip().startswith("ticker    KRW-BTC") for ln in lines)
    assert any("spread" in ln for ln in lines)
    assert any(ln.strip().startswith("candle") and "[rest]" in ln for ln in lines)
    assert "ExchangeRejected: NO_TICKET" in result.stdout


def test_every_fixture_is_used_by_a_protocol_test() -> None:
    """Each file under tests/data/upbit (top level, http/, client/) is named in a test_protocol_* file."""
    sources = "".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_protocol_*.py"))
    fixtures = [p for p in DATA.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"]
    assert len(fixtures) >= 40
    unused = [str(p.relative_to(DATA)) for p in fixtures if p.name not in sources]
    assert unused == []


def test_upbit_protocol_module_is_an_exchange() -> None:
    """The Upbit protocol module satisfies the minimal Exchange Protocol of exchanges.base."""
    assert isinstance(protocol, Exchange)
    assert not isinstance(endpoints, Exchange)

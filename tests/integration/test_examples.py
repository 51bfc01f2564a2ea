"""Every example runs as printed (``python examples/NAME.py``), and the runnable code of the docs runs too.

Each example starts its own simulator on 127.0.0.1 and must exit 0 within a few seconds; the assertions
check that it did what its docstring promises, from what it printed. (``ma_crossover.py`` and
``decode_fixtures.py`` have tests of their own.) Doc pages mark runnable blocks with ``<!-- runnable -->``;
the blocks of one page run in order in one namespace, as a reader would paste them.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"
DEADLINE = 60.0  # seconds; only reached when an example hangs (a failure in itself)


async def run_example(name: str, *args: str) -> str:
    """Run ``python examples/NAME ARGS`` from another directory; assert it exits 0; return its stdout."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / name), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT.parent,
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await proc.communicate()
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{out.decode()}\n{err.decode()}"
    assert b"Traceback" not in err
    return out.decode()


def test_every_example_is_tested_here_or_by_its_own_test() -> None:
    """A new example cannot slip in untested: each file is one of the names this module (or another) runs."""
    mine = {"callbacks.py", "async_for.py", "custom_pipeline.py", "failover.py", "spread_monitor.py",
            "cache_warmup.py"}
    elsewhere = {"decode_fixtures.py", "ma_crossover.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == mine | elsewhere


async def test_callbacks_prints_tickers_of_each_market() -> None:
    """The callbacks example prints live tickers and counts some for each of its three markets."""
    out = await run_example("callbacks.py", "--seconds", "2")
    assert re.search(r"^KRW-BTC +\d{1,3}(,\d{3})+ +[+-]\d+\.\d\d%  \[websocket\]$", out, re.M), out
    counts = re.search(r"received (\d+) tickers: KRW-BTC (\d+), KRW-ETH (\d+), KRW-XRP (\d+)", out)
    assert counts is not None, out
    assert all(int(n) > 0 for n in counts.groups())


async def test_async_for_stops_after_ten_tickers_and_counts_replaced_books() -> None:
    """``async for``: exactly ten tickers, then eight books handled by the slow consumer, drops counted."""
    out = await run_example("async_for.py")
    assert [int(n) for n in re.findall(r"^ticker +(\d+):", out, re.M)] == list(range(1, 11))
    books = re.search(r"books: (\d+) received, 8 handled, (\d+) replaced by newer ones", out)
    assert books is not None, out
    received, replaced = map(int, books.groups())
    assert received >= 8 + replaced  # every book received was either handled, replaced, or still waiting


async def test_failover_goes_to_rest_and_back_to_the_websocket() -> None:
    """The failover example sees its ticker stream move WebSocket -> REST -> WebSocket after the fault."""
    out = await run_example("failover.py")
    assert "sources in order: websocket -> rest -> websocket" in out
    assert re.search(r"circuit opened [1-9]\d*x", out), out


async def test_spread_monitor_alerts_and_never_sees_a_crossed_book() -> None:
    """Spread alerts are printed, and the three crossed books injected are rejected before the monitor."""
    out = await run_example("spread_monitor.py", "--seconds", "2")
    assert re.search(r"KRW-\w+ +spread +\d+\.\d\d bps  WIDE  > 4 bps", out), out
    assert out.count("quarantined:") == 3
    assert "3 inconsistent books rejected before the monitor" in out
    assert re.search(r"^KRW-BTC +[1-9]\d* books", out, re.M), out


async def test_custom_pipeline_prints_vwap_windows_and_its_counters() -> None:
    """The custom pipeline prints a VWAP per second and the dedupe/validate counters."""
    out = await run_example("custom_pipeline.py", "--seconds", "2.5")
    assert re.search(r"^second 1: +\d+ trades \( *\d+ over REST\), volume \d+\.\d+, VWAP \d{3},\d{3},\d{3}$",
                     out, re.M), out
    assert re.search(r"dedupe: \d+ passed, \d+ seen twice; validate: \d+ passed, \d+ rejected", out), out


async def test_cache_warmup_answers_from_the_cache_without_requests() -> None:
    """One REST request warms the cache; the next answers and a restarted market's come from it."""
    out = await run_example("cache_warmup.py")
    assert "10 tickers, 1 REST request(s)" in out
    assert "10 cache hits" in out
    assert re.search(r"KRW-ETH +5,\d{3},\d{3}  \[cache\]   0 REST request\(s\)", out), out
    assert out.rstrip().endswith("cache warm-up worked")


# -- runnable code in the docs -------------------------------------------------------------------------------


def runnable_blocks(page: Path) -> list[str]:
    return re.findall(r"<!-- runnable -->\n```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


# The pages whose runnable code this module runs (record-and-replay.md has a test of its own).
DOC_PAGES = ["quickstart.md", "topics/status.md", "howto/failover.md", "howto/custom-operators.md"]


@pytest.mark.parametrize("name", DOC_PAGES)
def test_runnable_doc_blocks_run(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A page's runnable blocks run in order, in one namespace, as a reader would paste them; their own
    asserts hold."""
    page = DOCS / name
    blocks = runnable_blocks(page)
    assert blocks, f"{name} has no <!-- runnable --> block"
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)
    assert capsys.readouterr().err == ""


def test_the_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's example runs offline and prints tickers, a spread and the message count."""
    (block,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert re.search(r"^KRW-BTC \d{1,3}(,\d{3})+ [+-]\d+\.\d\d% \[(websocket|cache)\]$", out, re.M), out
    assert re.search(r"^KRW-BTC spread \d", out, re.M), out
    assert re.search(r"^[1-9]\d* messages$", out, re.M), out

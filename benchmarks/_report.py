"""Write one benchmark's results into its own section of ``docs/benchmarks.md``.

Each benchmark owns a section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; running it
again replaces only that section, so benchmarks can be run one at a time, in any order.
"""

from __future__ import annotations

import platform
import re
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Measured on demand by the scripts in `benchmarks/` (`python benchmarks/bench_NAME.py`); each run rewrites
its own section below. Figures are throughput or latency in one run, with the ratio to the baseline
measured in the same run, so machine speed cancels out of the ratios.
"""


def machine() -> str:
    """One line describing where the numbers were taken."""
    return (
        f"{platform.machine()}, {platform.system()}, Python {sys.version.split()[0]}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``body`` (markdown)."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.rstrip()}\n\n_{machine()}_\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")

"""The runnable code of ``docs/topics/channels-and-failover.md`` runs as printed.

The page marks it with ``<!-- runnable -->`` like the other doc pages; its blocks run in order in one
namespace, as a reader would paste them, and their own asserts must hold.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "topics" / "channels-and-failover.md"


def test_the_page_runnable_blocks_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The hand-composed ticker chain of the page streams three WebSocket tickers and prints its stats."""
    blocks = re.findall(r"<!-- runnable -->\n```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    namespace: dict[str, object] = {"__name__": "docs.channels_and_failover"}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)  # the page's own code, as printed
    out, err = capsys.readouterr()
    assert err == ""
    assert "PipelineStats(" in out
    assert len(namespace["first"]) == 3  # type: ignore[arg-type]

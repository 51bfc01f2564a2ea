"""Runs the example of an operator's reference page, for the operator tests (pytest puts this folder on
``sys.path``, so they import it as ``_docs``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[3] / "docs" / "reference" / "operators"


def run_doc_example(page: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Run the page's example and return (what it printed, the output the page shows)."""
    text = (DOCS / page).read_text(encoding="utf-8")
    code = re.search(r"## Example\n\n```python\n(.*?)```", text, re.S)
    shown = re.search(r"Output:\n\n```text\n(.*?)```", text, re.S)
    assert code is not None
    assert shown is not None
    exec(compile(code.group(1), str(DOCS / page), "exec"), {})
    return capsys.readouterr().out, shown.group(1)

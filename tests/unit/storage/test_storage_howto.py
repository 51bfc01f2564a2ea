"""The runnable example of docs/howto/record-and-replay.md runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "howto" / "record-and-replay.md"


def _runnable_blocks() -> list[str]:
    return re.findall(r"<!-- runnable -->\n```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_howto_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example records, verifies, replays in virtual time and exports without failing an assert."""
    blocks = _runnable_blocks()
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "howto"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    # 20 trades 730 ms apart, counted per whole second since the first:
    expected = [sum(1 for i in range(20) if 730 * i // 1000 == second) for second in range(14)]
    assert namespace["per_second"] == expected
    assert (tmp_path / "recording" / "000000.rxm").is_file()

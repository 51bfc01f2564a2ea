"""A killed process loses at most its unflushed records, and leaves a recording that reads cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from rxmarket.storage import iter_records, verify

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from rxmarket.models import Trade
    from rxmarket.storage import RecordingWriter

    w = RecordingWriter(sys.argv[1], flush_every=10, flush_interval=3600)
    for i in range(25):
        w.write(Trade(symbol="KRW-BTC", price=1.0, volume=1.0, ask_bid="BID", timestamp=1 + i,
                      sequential_id=i))
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush, no atexit: as a crash or `kill -9`
    """
)


def test_sigkill_loses_only_the_unflushed_records(tmp_path: Path) -> None:
    """After 25 writes with flush_every=10 and SIGKILL, the 20 flushed records read and verify is ok."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "r")], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert [r.item.sequential_id for r in iter_records(tmp_path / "r")] == list(range(20))
    report = verify(tmp_path / "r")
    assert report.ok, str(report)

"""The file system refuses a write: a typed error, no half-written segment, nothing lost, writing resumes.

Real failures, no mocks. The writer runs in a child process under an ``RLIMIT_FSIZE`` limit (with
``SIGXFSZ`` ignored, a write past the limit fails with ``EFBIG``, after a real short write when it starts
below the limit), which works as root too; lifting the limit is "the cause is gone". A read-only
directory is tried as well where ``chmod`` is effective (not as root).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rxmarket.errors import RxMarketError
from rxmarket.models import Trade
from rxmarket.storage import RecordingWriter, StorageError, iter_records, segment_paths, verify

resource = pytest.importorskip("resource", reason="RLIMIT_FSIZE is POSIX")

T0 = 1_785_397_531_885

PRELUDE = textwrap.dedent(
    """
    import errno, json, os, resource, signal, sys
    from pathlib import Path
    from rxmarket.models import Trade
    from rxmarket.storage import RecordingWriter, StorageError, read_segment, record

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: EFBIG, not a killed process
    SOFT, HARD = resource.getrlimit(resource.RLIMIT_FSIZE)
    path = Path(sys.argv[1])
    out = {}

    def limit(nbytes):
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, HARD))

    def unlimit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (SOFT, HARD))

    def trade(i):
        return Trade(symbol="KRW-BTC", price=100.0, volume=0.5, ask_bid="BID", timestamp=T0 + i,
                     sequential_id=i)

    def caught(fn, *args):
        try:
            fn(*args)
        except Exception as exc:
            return {"type": type(exc).__name__, "storage": isinstance(exc, StorageError),
                    "oserror": isinstance(exc, OSError), "errno": getattr(exc, "errno", None),
                    "message": str(exc)}
        return None

    def names():
        return sorted(p.name for p in path.iterdir())
    """
)


def _run(path: Path, body: str) -> dict[str, Any]:
    """Run PRELUDE + ``body`` in a child on ``path``; return the ``out`` dict it filled."""
    code = f"T0 = {T0}\n" + PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(out))\n"
    # Output goes through pipes, which RLIMIT_FSIZE does not limit.
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, Any] = json.loads(proc.stdout.decode().splitlines()[-1])
    return result


def _trade(i: int) -> Trade:
    return Trade(symbol="KRW-BTC", price=100.0, volume=0.5, ask_bid="BID", timestamp=T0 + i, sequential_id=i)


@pytest.fixture
def rec(tmp_path: Path) -> Path:
    """A recording of trades 0, 1, 2 in one closed segment: what was written before the failure."""
    path = tmp_path / "rec"
    with RecordingWriter(path) as w:
        for i in range(3):
            w.write(_trade(i))
    return path


def _ids(path: Path) -> list[int]:
    return [r.item.sequential_id for r in iter_records(path) if isinstance(r.item, Trade)]


def _segments(path: Path) -> list[str]:
    return [p.name for p in segment_paths(path)]


# ------------------------------------------------------------------------------ a refused header


@pytest.mark.parametrize("limit", [0, 10], ids=["nothing-written", "half-a-header"])
def test_a_refused_segment_header_is_a_storage_error(rec: Path, limit: int) -> None:
    """The write that cannot start its segment raises StorageError, an OSError with the cause's errno."""
    out = _run(rec, f"""
        w = RecordingWriter(path)
        limit({limit})
        out["error"] = caught(w.write, trade(3))
        """)
    error = out["error"]
    assert (error["type"], error["storage"], error["oserror"], error["errno"]) == (
        "StorageError", True, True, errno.EFBIG)
    assert "cannot write the header of segment 000001.rxm (removed): File too large (EFBIG)" in (
        error["message"])


@pytest.mark.parametrize("limit", [0, 10], ids=["nothing-written", "half-a-header"])
def test_a_refused_header_leaves_no_segment_and_loses_nothing_written_before(rec: Path, limit: int) -> None:
    """While the cause lasts, no half-written segment is left; the recording reads and verifies clean."""
    out = _run(rec, f"""
        w = RecordingWriter(path)
        limit({limit})
        caught(w.write, trade(3))
        out["after"] = names()
        out["close"] = caught(w.close)  # the cause is still there: the buffered trade cannot be written
        """)
    assert out["after"] == [".lock", "000000.rxm"]
    assert "the writer is closed: 1 buffered record(s) were not written" in out["close"]["message"]
    assert _segments(rec) == ["000000.rxm"]
    assert _ids(rec) == [0, 1, 2]
    assert verify(rec).ok


def test_the_same_writer_goes_on_once_the_cause_is_gone(rec: Path) -> None:
    """Writes refused under the limit are kept in order and written, with later ones, after it is lifted."""
    out = _run(rec, """
        w = RecordingWriter(path, flush_every=1)
        limit(10)
        out["errors"] = [caught(w.write, trade(3))["type"], caught(w.write, trade(4))["type"]]
        unlimit()
        w.write(trade(5))
        w.close()
        out["segments"] = [p.name for p in w.segments]
        """)
    assert out["errors"] == ["StorageError", "StorageError"]
    assert out["segments"] == ["000001.rxm"]
    assert _segments(rec) == ["000000.rxm", "000001.rxm"]
    assert _ids(rec) == [0, 1, 2, 3, 4, 5]
    assert verify(rec).ok


def test_a_new_writer_opens_the_recording_after_a_failed_one_closed(rec: Path) -> None:
    """The failed writer's close releases the lock: a new writer in the same process opens and appends."""
    out = _run(rec, """
        w = RecordingWriter(path)
        limit(0)
        caught(w.write, trade(3))
        caught(w.close)
        unlimit()
        with RecordingWriter(path) as again:
            again.write(trade(6))
        out["closed"] = w.closed
        """)
    assert out["closed"] is True
    assert _segments(rec) == ["000000.rxm", "000001.rxm"]
    assert _ids(rec) == [0, 1, 2, 6]
    assert verify(rec).ok


def test_a_refused_header_at_rotation_keeps_the_full_segment_whole(tmp_path: Path) -> None:
    """Rotation (by age) that cannot start the next segment: the full one stays whole, the record waits."""
    path = tmp_path / "rec"
    out = _run(path, """
        now = [T0 * 1_000_000]
        w = RecordingWriter(path, max_segment_seconds=60, flush_every=1, clock=lambda: now[0])
        for i in range(5):
            w.write(trade(i))
        now[0] += 61 * 10**9
        limit(10)
        out["error"] = caught(w.write, trade(5))
        unlimit()
        w.write(trade(6))
        w.close()
        """)
    assert out["error"]["message"].startswith(
        f"recording {path}: cannot write the header of segment 000001.rxm")
    assert _segments(path) == ["000000.rxm", "000001.rxm"]
    assert (_ids(path / "000000.rxm"), _ids(path)) == ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6])
    assert verify(path).ok


def test_a_refused_last_flush_at_rotation_moves_the_records_to_the_next_segment(tmp_path: Path) -> None:
    """Rotation whose final flush is refused: the buffered records go, whole and once, to the next segment."""
    path = tmp_path / "rec"
    out = _run(path, """
        now = [T0 * 1_000_000]
        w = RecordingWriter(path, max_segment_seconds=60, flush_every=1000, clock=lambda: now[0])
        for i in range(5):
            w.write(trade(i))  # buffered; the segment holds its header only
        now[0] += 61 * 10**9
        limit(w.current_segment.stat().st_size + 10)  # the flush gets 10 bytes into the first record
        out["error"] = caught(w.write, trade(5))
        unlimit()
        w.write(trade(6))
        w.close()
        """)
    assert out["error"]["message"].startswith(
        f"recording {path}: cannot write records to segment 000000.rxm")
    assert _segments(path) == ["000000.rxm", "000001.rxm"]
    assert (_ids(path / "000000.rxm"), _ids(path)) == ([], [0, 1, 2, 3, 4, 5, 6])
    assert verify(path).ok


def test_a_recorder_stops_with_the_storage_error_and_the_path_records_again(tmp_path: Path) -> None:
    """record() whose first segment is refused ends with StorageError kept; a later record() works."""
    path = tmp_path / "rec"
    out = _run(path, """
        import reactivex
        from reactivex.testing import TestScheduler

        limit(0)
        rec = record(reactivex.of(trade(0), trade(1)), path, scheduler=TestScheduler())
        out["error"] = type(rec.error).__name__
        out["closed"] = rec.closed
        out["left"] = names()
        unlimit()
        again = record(reactivex.of(trade(2)), path, scheduler=TestScheduler())
        out["again"] = (again.closed, again.error is None, again.count)
        """)
    assert (out["error"], out["closed"], out["left"]) == ("StorageError", True, [".lock"])
    assert out["again"] == [True, True, 1]
    assert _ids(path) == [2]


def test_a_recording_directory_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    """A directory under a plain file cannot exist: StorageError (an OSError) naming it, not a bare error."""
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError, match="cannot create the recording directory") as info:
        RecordingWriter(tmp_path / "file" / "rec")
    assert (isinstance(info.value, OSError), info.value.errno) == (True, errno.ENOTDIR)


# ------------------------------------------------------------------------ a flush cut in a record


def test_a_flush_cut_inside_a_record_is_cut_back_and_completed_later(tmp_path: Path) -> None:
    """A short write ends the file on a whole record; the rest stays buffered and is written once possible."""
    path = tmp_path / "rec"
    out = _run(path, """
        w = RecordingWriter(path, flush_every=1000, flush_interval=3600)
        w.write(trade(0)); w.flush()
        seg = w.current_segment
        one = seg.stat().st_size
        w.write(trade(1)); w.flush()
        size = seg.stat().st_size - one  # every trade here frames to the same size
        for i in range(2, 10):
            w.write(trade(i))
        limit(one + size + size + size // 2)  # room for one more record and half of the next
        out["error"] = caught(w.flush)
        out["pending"] = w.pending
        out["cut_at_a_record"] = (seg.stat().st_size - one) % size == 0
        issues = []
        out["on_disk"] = [r.item.sequential_id for r in read_segment(seg, issues.append)]
        out["issues"] = len(issues)
        unlimit()
        w.close()
        """)
    assert out["error"]["errno"] == errno.EFBIG
    assert (out["on_disk"], out["issues"], out["cut_at_a_record"], out["pending"]) == ([0, 1, 2], 0, True, 7)
    assert _ids(path) == list(range(10))
    assert verify(path).ok


# ---------------------------------------------------------------------------- stubs left behind


def test_a_new_writer_removes_segments_cut_inside_their_header(rec: Path) -> None:
    """Empty and half-header segments (a crash while creating one) hold no record: a new writer drops them."""
    header = (rec / "000000.rxm").read_bytes()[:10]
    (rec / "000001.rxm").write_bytes(header)
    (rec / "000002.rxm").write_bytes(b"")
    with RecordingWriter(rec) as w:
        w.write(_trade(3))
    assert _segments(rec) == ["000000.rxm", "000001.rxm"]
    assert _ids(rec) == [0, 1, 2, 3]
    assert verify(rec).ok


def test_damaged_segments_with_a_whole_header_and_foreign_files_are_kept(rec: Path) -> None:
    """Only stubs go: a segment with a torn record and a file that is not ours stay for readers to report."""
    data = (rec / "000000.rxm").read_bytes()
    (rec / "000001.rxm").write_bytes(data[:-3])  # whole header, torn last record
    (rec / "000002.rxm").write_bytes(b"not ours")
    with RecordingWriter(rec) as w:
        w.write(_trade(3))
    assert _segments(rec) == ["000000.rxm", "000001.rxm", "000002.rxm", "000003.rxm"]
    assert (rec / "000001.rxm").read_bytes() == data[:-3]
    report = verify(rec)
    assert (len(report.torn_tails), len(report.damaged)) == (1, 1)


# --------------------------------------------------------------------------- read-only directory


def _chmod_is_effective(directory: Path) -> bool:
    """Whether a read-only mode stops us writing there (it does not for root)."""
    probe = directory / ".probe"
    try:
        probe.write_bytes(b"")
    except PermissionError:
        return True
    probe.unlink()
    return False


def test_a_read_only_directory_is_a_storage_error_and_writing_resumes(rec: Path) -> None:
    """A directory made read-only refuses the segment (EACCES); made writable again, the write goes out."""
    mode = stat.S_IMODE(rec.stat().st_mode)
    os.chmod(rec, 0o555)
    try:
        effective = _chmod_is_effective(rec)
    finally:
        os.chmod(rec, mode)
    if not effective:
        pytest.skip("chmod does not stop this user (root): the RLIMIT_FSIZE tests cover the failure")
    with RecordingWriter(rec) as w:
        os.chmod(rec, 0o555)
        try:
            with pytest.raises(StorageError) as info:
                w.write(_trade(3))
            names = sorted(p.name for p in rec.iterdir())
        finally:
            os.chmod(rec, mode)
        w.write(_trade(4))
    assert isinstance(info.value, RxMarketError)
    assert info.value.errno == errno.EACCES
    assert names == [".lock", "000000.rxm"]
    assert _ids(rec) == [0, 1, 2, 3, 4]

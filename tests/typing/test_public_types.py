"""The public API keeps its static types: pipes infer the model type, decoders return models."""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is in the [dev] extra")

HERE = Path(__file__).resolve().parent


def test_public_types_check_under_mypy_strict() -> None:
    """mypy --strict accepts every assert_type in public_types.py."""
    cache = str(HERE / ".mypy_cache")
    stdout, stderr, status = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", cache, str(HERE / "public_types.py")]
    )
    assert status == 0, stdout + stderr

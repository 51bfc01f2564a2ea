"""Placeholder: replaced by the operators issue."""

from typing import Any


def dedupe(*args: Any, **kwargs: Any) -> Any:
    """Not built yet."""
    raise NotImplementedError("dedupe")

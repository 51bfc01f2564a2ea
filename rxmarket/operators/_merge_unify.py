"""Placeholder: replaced by the operators issue."""

from typing import Any


def merge_unify(*args: Any, **kwargs: Any) -> Any:
    """Not built yet."""
    raise NotImplementedError("merge_unify")

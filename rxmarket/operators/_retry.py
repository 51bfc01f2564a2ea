"""Placeholder: replaced by the operators issue."""

from typing import Any


def retry_with_backoff(*args: Any, **kwargs: Any) -> Any:
    """Not built yet."""
    raise NotImplementedError("retry_with_backoff")

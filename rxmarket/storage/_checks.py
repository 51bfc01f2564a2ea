"""The consistency checks of ``verify``: item -> reason, or ``None`` when fine.

They are adapters over the built-in checks of ``ops.validate`` (:mod:`rxmarket.policy.checks`), so that a
recording and a live stream are judged by one set of rules: ``verify`` reports exactly the items that
the built-in checks of ``ops.validate`` reject (its timestamp-order check has its counterpart in
``verify``'s own out-of-order findings). A reason reads ``"<check>: <what was wrong>"``, the check being
the name ``ops.validate`` gives it (``positive_prices``, ``price_range``, ``crossed``, ``change`` ...),
as in the message of its ``ValidationError``.

:func:`default_checks` runs the whole built-in check of each model. The three narrower checks are kept for
callers that pick checks one by one; each reports an item only when the *first* built-in check the item
fails is one of its own (the built-in checks stop at the first failure), so an item already failing
``positive_prices`` is reported by :func:`positive_prices`, not by :func:`within_range` too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final

from rxmarket.policy.checks import BUILTIN_CHECKS

__all__ = ["Check", "book_not_crossed", "builtin_check", "default_checks", "positive_prices", "within_range"]

Check = Callable[[Any], "str | None"]

_check_of: Final = BUILTIN_CHECKS.get


def _failed(item: Any, names: Collection[str] | None) -> str | None:
    """The item's first built-in failure as a reason, if its check is one of ``names`` (``None``: any)."""
    check = _check_of(type(item))
    if check is None:  # not a model with built-in checks (user items in a custom pipeline, ...)
        return None
    failure = check(item)
    if failure is None or (names is not None and failure.check not in names):
        return None
    return f"{failure.check}: {failure.reason}"


def builtin_check(item: Any) -> str | None:
    """Every built-in check of the item's model (``ops.validate``'s), the first failure as the reason."""
    return _failed(item, None)


def positive_prices(item: Any) -> str | None:
    """Prices finite and > 0, sizes not below 0 (the built-in ``positive_prices`` and ``sizes`` checks)."""
    return _failed(item, ("positive_prices", "sizes"))


def within_range(item: Any) -> str | None:
    """``low <= price, open <= high`` (ticker), ``low <= open, close <= high`` (candle): ``price_range``."""
    return _failed(item, ("price_range",))


def book_not_crossed(item: Any) -> str | None:
    """The best bid is below the best ask (the built-in ``crossed`` check)."""
    return _failed(item, ("crossed",))


def default_checks() -> tuple[Check, ...]:
    """The checks ``verify`` runs when given none: the built-in checks of every model."""
    return (builtin_check,)

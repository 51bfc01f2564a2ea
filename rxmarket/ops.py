"""``rxmarket.ops``: an alias of :mod:`rxmarket.operators` (``from rxmarket import ops``)."""

from rxmarket.operators import *  # noqa: F403  (re-export the operators' public surface)
from rxmarket.operators import __all__ as __all__

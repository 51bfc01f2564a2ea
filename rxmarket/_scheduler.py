"""The one place that finds the running event loop and makes a scheduler for it.

Every time-based operator takes an optional ``scheduler``; when it is ``None`` the operator calls
:func:`default_scheduler` at *subscribe* time (not at build time), so a pipeline can be built outside a
loop and subscribed inside one. Outside a running loop the fallback is reactivex's ``TimeoutScheduler``.
"""

from __future__ import annotations

import asyncio

from reactivex import abc
from reactivex.scheduler import TimeoutScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler

__all__ = ["default_scheduler"]

_cache: dict[int, AsyncIOScheduler] = {}


def default_scheduler(scheduler: abc.SchedulerBase | None = None) -> abc.SchedulerBase:
    """``scheduler`` if given, else an ``AsyncIOScheduler`` on the running loop (one per loop).

    Args:
        scheduler: an explicit scheduler, returned unchanged.

    Returns:
        A scheduler whose clock and timers are those of the running loop, or a ``TimeoutScheduler``
        when no loop is running in this thread.
    """
    if scheduler is not None:
        return scheduler
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return TimeoutScheduler.singleton()
    key = id(loop)
    cached = _cache.get(key)
    if cached is None or cached._loop is not loop:  # id() reuse after a loop was closed
        if len(_cache) > 16:
            _cache.clear()
        cached = _cache[key] = AsyncIOScheduler(loop)
    return cached

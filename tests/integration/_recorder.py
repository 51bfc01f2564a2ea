"""An observer for the integration tests that keeps what it receives and lets a test await it.

Shared by the source and the market tests (``test_source_support``, ``test_market_support``); pytest puts
this directory on ``sys.path``, so they import it as ``_recorder``. Every wait is on a condition with a
deadline that only a broken test reaches; nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rxmarket.models import Status


class Recorder:
    """An observer that keeps what it receives and lets a test await a condition on it."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.errors: list[Exception] = []
        self.completed = False
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def on_next(self, item: Any) -> None:
        self.items.append(item)
        self._check()

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self._check()

    def on_completed(self) -> None:
        self.completed = True
        self._check()

    def _check(self) -> None:
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    async def wait(self, predicate: Callable[[], bool], seconds: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked after every notification)."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(seconds):
                await future
        finally:
            self._waiters.remove(entry)

    async def wait_count(self, n: int, seconds: float = 10.0) -> None:
        """Wait until at least ``n`` items arrived."""
        await self.wait(lambda: len(self.items) >= n, seconds)

    def kinds(self, kind: str) -> list[Status]:
        """The status events of ``kind`` (for a recorder of ``source.status``)."""
        return [s for s in self.items if isinstance(s, Status) and s.kind == kind]

    async def wait_kind(self, kind: str, n: int = 1, seconds: float = 10.0) -> None:
        """Wait until ``n`` status events of ``kind`` arrived."""
        await self.wait(lambda: len(self.kinds(kind)) >= n, seconds)

    def statuses(self, kind: str, detail: str | None = None) -> list[Status]:
        """The status events of ``kind`` (and ``detail``) received (for a recorder of ``market.status``)."""
        return [
            s for s in self.items
            if isinstance(s, Status) and s.kind == kind and (detail is None or s.detail == detail)
        ]

    async def wait_status(self, kind: str, detail: str | None = None, n: int = 1) -> None:
        """Wait until ``n`` status events of ``kind`` (and ``detail``) arrived."""
        await self.wait(lambda: len(self.statuses(kind, detail)) >= n)

    def sources(self) -> list[str]:
        """The ``source`` of each item, consecutive repeats collapsed: ``["websocket", "rest", ...]``."""
        runs: list[str] = []
        for item in self.items:
            if not runs or runs[-1] != item.source:
                runs.append(item.source)
        return runs

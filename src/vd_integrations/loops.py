"""Event-loop handling: one resource per running event loop.

An ``AsyncMilvusClient`` (like any grpc.aio channel) binds to the loop that first
uses it; reusing it after that loop closes raises "Event loop is closed". The
:class:`PerLoop` registry hands every loop its own instance, so one store object
works across many ``asyncio.run`` calls, pytest-asyncio's per-test loops, threads
that each run their own loop, and Jupyter with ``nest_asyncio`` (one loop, reused).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["PerLoop"]


class PerLoop(Generic[T]):
    """Lazily create one ``T`` per event loop with ``factory``; forget it when the loop dies.

    Thread-safe. Entries are keyed weakly by the loop object, and entries whose
    loop is closed are pruned on access, so nothing bound to a dead loop is reused.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def get(self) -> T:
        """The instance for the running loop (must be called from a coroutine)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            item = self._items.get(loop)
            if item is None:
                self._prune_locked()
                item = self._factory()
                self._items[loop] = item
            return item

    def pop_current(self) -> T | None:
        """Remove and return the running loop's instance, if any."""
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._items.pop(loop, None)

    def pop_all(self) -> list[tuple[asyncio.AbstractEventLoop, T]]:
        """Remove and return every instance with its loop."""
        with self._lock:
            items = list(self._items.items())
            self._items.clear()
            return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _prune_locked(self) -> None:
        for loop in [lp for lp in self._items if lp.is_closed()]:
            del self._items[loop]

"""Event-loop handling: one resource per running event loop.

An ``AsyncMilvusClient`` (like any grpc.aio channel) binds to the loop that first
uses it; reusing it after that loop closes raises "Event loop is closed". The
:class:`PerLoop` registry hands every loop its own instance, so one store object
works across many ``asyncio.run`` calls, pytest-asyncio's per-test loops, threads
that each run their own loop, and Jupyter with ``nest_asyncio`` (one loop, reused).

Only asyncio is supported (anyio works on its asyncio backend). Under trio, or anywhere
without a running asyncio loop, :func:`running_loop` raises
:class:`UnsupportedEventLoopError` saying so, instead of asyncio's bare
"no running event loop".
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

from vd_integrations.core.base_error import VdIntegrationsError

T = TypeVar("T")

__all__ = [
    "PerLoop",
    "SingleFlight",
    "UnsupportedEventLoopError",
    "cancel_requests",
    "finalizes_async_generators",
    "running_loop",
    "unsupported_loop_error",
]


class UnsupportedEventLoopError(VdIntegrationsError, RuntimeError):
    """An async method was awaited outside an asyncio event loop (e.g. under trio)."""


def current_async_library() -> str | None:
    """The async library running this code according to ``sniffio`` (None if unknown)."""
    try:
        import sniffio
    except ImportError:  # pragma: no cover - sniffio ships with anyio/httpx
        return None
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def unsupported_loop_error() -> UnsupportedEventLoopError:
    """The error for an async call made without a running asyncio loop."""
    library = current_async_library()
    where = (
        f"under {library}, which is not supported"
        if library and library != "asyncio"
        else "without a running asyncio event loop"
    )
    return UnsupportedEventLoopError(
        f"The async methods of vd_integrations stores must be awaited on an asyncio event "
        f"loop, but this call runs {where}. trio is unsupported: use asyncio (asyncio.run), "
        f"or anyio with backend='asyncio', or call the sync methods from a worker thread "
        f"(e.g. trio.to_thread.run_sync)."
    )


def running_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.get_running_loop()``, or a clear :class:`UnsupportedEventLoopError`."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise unsupported_loop_error() from None


def cancel_requests(task: asyncio.Task[Any] | None) -> int:
    """Pending cancellation requests of ``task`` (Python 3.11+; 0 before)."""
    cancelling = getattr(task, "cancelling", None)
    return int(cancelling()) if cancelling is not None else 0


def finalizes_async_generators(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` (running now) will finalise the async generators started in it: the
    thread's asyncgen hooks are ``loop``'s own, as ``run_forever`` installs them. Then
    ``loop.shutdown_asyncgens()`` (``asyncio.run``, ``asyncio.Runner``) and garbage
    collection close them on the loop. Without them (``nest_asyncio``'s patched loop), a
    collected generator is closed synchronously, where its ``finally`` cannot await."""
    finalizer = sys.get_asyncgen_hooks().finalizer
    return getattr(finalizer, "__self__", None) is loop


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
        loop = running_loop()
        with self._lock:
            item = self._items.get(loop)
            if item is None:
                self._prune_locked()
                item = self._factory()
                self._items[loop] = item
            return item

    def current(self) -> T | None:
        """The running loop's instance if it has one (never creates it)."""
        loop = running_loop()
        with self._lock:
            return self._items.get(loop)

    def pop_current(self) -> T | None:
        """Remove and return the running loop's instance, if any."""
        loop = running_loop()
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


class SingleFlight:
    """Shielded tasks on one event loop, shared by concurrent callers with the same key.

    :meth:`run` starts ``make()`` as a task (so cancelling a caller never cancels the
    work) unless a task with the same key is still running, in which case the caller
    awaits that one. :meth:`start` does the same without waiting; :meth:`drain` waits
    for every task started here (their errors are the callers' business, not drain's).
    """

    def __init__(self) -> None:
        self._keyed: dict[Hashable, asyncio.Task[Any]] = {}
        self._all: set[asyncio.Task[Any]] = set()

    def start(
        self, key: Hashable | None, make: Callable[[], Coroutine[Any, Any, T]]
    ) -> asyncio.Task[T]:
        """The running task for ``key``, or a new one running ``make()``."""
        task = self._keyed.get(key) if key is not None else None
        if task is not None and not task.done():
            return task
        task = running_loop().create_task(make())
        self._all.add(task)
        task.add_done_callback(self._finished)
        if key is not None:
            self._keyed[key] = task
        return task

    async def run(self, key: Hashable | None, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Await the shared task for ``key`` (see :meth:`start`)."""
        return await asyncio.shield(self.start(key, make))

    async def drain(self) -> None:
        """Wait until every task started here has finished."""
        while self._all:
            await asyncio.gather(*self._all, return_exceptions=True)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._all.discard(task)
        for key in [k for k, t in self._keyed.items() if t is task]:
            del self._keyed[key]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here: whoever awaited the task got the error, and a background
            # task's failure is retried by the next caller that needs its work done.
            logging.getLogger(__name__).debug("task %r failed: %r", task, task.exception())

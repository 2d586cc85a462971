"""The vd clients of one collection: the sync client, one async client per event loop, their
collection handles, and the lock that serializes calls on vd's in-process adapters.

The sync client is ``vd.connect(backend, **kwargs)``, created on first use. The async side
uses the backend's registered native async client (``vd.connect_async``, one per event
loop) when it has one that really is native; otherwise it wraps *the same* sync client in
``vd.AsyncClientWrapper``, so sync and async calls see the same data (essential for the
in-process ``memory`` backend, where a second client is a different, empty store). Calls on
a wrapped sync collection hold one lock, because vd's in-process adapters are not
thread-safe and the wrapper runs them on worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import vd

from vd_integrations.core.errors import StoreClosedError
from vd_integrations.core.loops import PerLoop, SingleFlight
from vd_integrations.vd.inputs import METRICS
from vd_integrations.vd.steps import CLIENT_METHODS, VdCall, acall_collection, call_collection

__all__ = ["LoopResources", "SerializedCollection", "VdConnection", "collection_info"]

# The engine's logger: users configure it by this name, which predates this module.
_log = logging.getLogger("vd_integrations.vd.engine")


class SerializedCollection:
    """A sync vd collection whose calls hold ``lock`` (vd's in-process adapters aren't
    thread-safe, and ``vd.AsyncCollectionWrapper`` runs calls on worker threads)."""

    def __init__(self, collection: Any, lock: threading.RLock) -> None:
        self._col = collection
        self._lock = lock

    def __getattr__(self, name: str) -> Any:  # dimension, metric, native, name, ...
        return getattr(self._col, name)

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self._col[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self._col[key] = value

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._col[key]

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self._col))

    def __len__(self) -> int:
        with self._lock:
            return len(self._col)

    def search(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return iter(list(self._col.search(*args, **kwargs)))

    def add_documents(self, documents: Iterable[Any], **kwargs: Any) -> None:
        with self._lock:
            if hasattr(self._col, "add_documents"):
                self._col.add_documents(documents, **kwargs)
            else:
                for doc in documents:
                    self._col[doc.id] = doc

    def upsert(self, document: Any) -> None:
        with self._lock:
            self._col[document.id] = document


@dataclass
class LoopResources:
    """What one event loop owns: its async client and collection, and the setup lock."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    connect_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    client: Any = None
    collection: Any = None
    generation: int = -1
    #: Setup runs, shared by concurrent callers (see ``Exclusive.key``).
    setup_tasks: SingleFlight = field(default_factory=SingleFlight)


def collection_info(collection: Any) -> tuple[int | None, str | None]:
    """(dimension, metric) of a vd collection handle (sync, async or wrapped)."""
    target = getattr(collection, "sync", collection)
    dim = getattr(target, "dimension", None)
    metric = getattr(target, "metric", None)
    metric = metric.lower() if isinstance(metric, str) and metric.lower() in METRICS else None
    return (int(dim) if dim else None), metric


class VdConnection:
    """One vd collection's clients and handles, sync and per event loop; performs
    :class:`~vd_integrations.vd.steps.VdCall` steps on them.

    Collection handles are cached until :meth:`forget_collection` (after a drop, the
    collection is a new one). Closing refuses new calls with ``StoreClosedError``.
    """

    def __init__(self, backend: str, collection_name: str, connect_kwargs: dict[str, Any]) -> None:
        self.backend = backend
        self.collection_name = collection_name
        self.connect_kwargs = connect_kwargs
        #: Each event loop's resources (closed loops are pruned on access).
        self.loops = PerLoop(LoopResources)
        self._sync_client: Any = None
        self._sync_collection: tuple[int, Any] | None = None
        self._client_lock = threading.Lock()
        self._call_lock = threading.RLock()
        self._generation = 0
        self._closed = False

    def check_open(self) -> None:
        """Raise ``StoreClosedError`` once the store is closed."""
        if self._closed:
            raise StoreClosedError(
                f"The store for vd collection {self.collection_name!r} ({self.backend}) is "
                f"closed; create a new one."
            )

    def forget_collection(self) -> None:
        """Refetch collection handles on next use (the collection was dropped)."""
        self._generation += 1

    # ----- sync ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The sync vd client (created on first use)."""
        self.check_open()
        if self._sync_client is None:
            with self._client_lock:
                if self._sync_client is None:
                    self._sync_client = vd.connect(self.backend, **self.connect_kwargs)
        return self._sync_client

    def collection(self) -> Any:
        """The sync collection handle (serialized), refetched after a drop."""
        cached = self._sync_collection
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        handle = SerializedCollection(
            self.client.get_collection(self.collection_name), self._call_lock
        )
        self._sync_collection = (self._generation, handle)
        return handle

    def call(self, step: VdCall) -> Any:
        """Perform ``step`` with the sync client."""
        if step.method in CLIENT_METHODS:
            return self._client_call(step)
        return call_collection(self.collection(), step)

    def _client_call(self, step: VdCall) -> Any:
        client, name = self.client, self.collection_name
        if step.method == "delete_collection":
            return client.delete_collection(name)
        if step.method == "open_collection":
            collection = client.get_collection(name)
        else:
            collection = client.get_or_create_collection(name, **step.kwargs)
        self._sync_collection = (
            self._generation,
            SerializedCollection(collection, self._call_lock),
        )
        return collection_info(collection)

    # ----- async --------------------------------------------------------------------------

    async def acall(self, step: VdCall) -> Any:
        """Perform ``step`` with the running loop's async client."""
        res = self.loops.get()
        if step.method in CLIENT_METHODS:
            return await self._aclient_call(res, step)
        return await acall_collection(await self._acollection(res), step)

    async def _aclient_call(self, res: LoopResources, step: VdCall) -> Any:
        client, name = await self._aclient(res), self.collection_name
        if step.method == "delete_collection":
            return await client.delete_collection(name)
        if step.method == "open_collection":
            collection = await client.get_collection(name)
        else:
            collection = await client.get_or_create_collection(name, **step.kwargs)
        res.collection, res.generation = self._wrap_async(collection), self._generation
        return collection_info(collection)

    async def _aclient(self, res: LoopResources) -> Any:
        if res.client is None:
            async with res.connect_lock:
                if res.client is None:
                    res.client = await self._connect_async()
        return res.client

    async def _connect_async(self) -> Any:
        if self.backend in vd.list_async_backends():
            try:
                client = await vd.connect_async(self.backend, **self.connect_kwargs)
            except Exception as exc:  # e.g. an embedded store locked by our sync client
                _log.warning(
                    "vd backend %r: the native async client failed (%s: %s); using the sync "
                    "client on worker threads instead.",
                    self.backend,
                    type(exc).__name__,
                    exc,
                )
            else:
                if getattr(client, "native_async", False):
                    return client
                # The factory fell back to a wrapper around a *new* sync client (embedded
                # qdrant does): use ours instead, so both sides see the same store.
                await client.close()
        sync_client = await asyncio.to_thread(lambda: self.client)
        return vd.AsyncClientWrapper(sync_client)

    def _wrap_async(self, acol: Any) -> Any:
        if getattr(acol, "native_async", False) or not hasattr(acol, "sync"):
            return acol
        return vd.AsyncCollectionWrapper(SerializedCollection(acol.sync, self._call_lock))

    async def _acollection(self, res: LoopResources) -> Any:
        if res.collection is None or res.generation != self._generation:
            client = await self._aclient(res)
            res.collection = self._wrap_async(await client.get_collection(self.collection_name))
            res.generation = self._generation
        return res.collection

    # ----- lifecycle ----------------------------------------------------------------------

    def _detach_sync_client(self) -> Any:
        """Mark the connection closed (new calls raise StoreClosedError); return the sync
        client."""
        self._closed = True
        client, self._sync_client = self._sync_client, None
        self._sync_collection = None
        return client

    def close(self) -> None:
        """Close the sync client. Each event loop's async client belongs to that loop: calls
        in flight there finish, and ``aclose()`` there releases it."""
        close = getattr(self._detach_sync_client(), "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Close (see :meth:`close`) and release the running loop's native async client.
        Safe to call more than once, from every loop."""
        res = self.loops.pop_current()
        close = getattr(self._detach_sync_client(), "close", None)
        if res is not None and getattr(res.client, "native_async", False):
            await res.client.close()
        if close is not None:
            await asyncio.to_thread(close)

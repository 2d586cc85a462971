"""The Milvus engine: every operation written once, run sync or natively async.

Operations are generators that *describe* I/O instead of doing it (a sans-I/O core in
the spirit of h11): they yield steps, and a driver performs each step and sends the
result back in. The steps are :class:`~.rpc.Rpc` (a pymilvus client call), the embedding
steps, :class:`~vd_integrations.core.ops.Exclusive` (setup under the store's lock) and
:class:`~vd_integrations.core.ops.Background` (setup nobody has to wait for).

:meth:`MilvusEngine.run` drives an operation with the sync client and sync embedding
calls; :meth:`MilvusEngine.arun` awaits the same steps on the running loop's own
``AsyncMilvusClient`` and the embedder's async methods, merging concurrent calls
(:mod:`.coalescing`). Where the rest lives:

- :mod:`.connection`: clients per loop, retries, deadlines, Milvus Lite's one writer;
- :mod:`.collection`: describe, create, index, load, drop;
- :mod:`.reads`, :mod:`.writes` and :mod:`.hybrid_ops`: the data operations (this class
  inherits them);
- :mod:`.rpc`: the step and how it maps to a client call.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vd_integrations.core.coalesce import Coalescer, CoalescingSettings
from vd_integrations.core.deadlines import Deadline, timeout_scope
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import FilterLike
from vd_integrations.core.loops import PerLoop, SingleFlight, cancel_requests, running_loop
from vd_integrations.core.ops import (
    Background,
    Embedder,
    EmbedDocuments,
    EmbedQuery,
    Exclusive,
    Op,
    adrive,
    drive,
    embed_async,
    embed_sync,
    require_embedder,
)
from vd_integrations.core.retry import RetrySettings
from vd_integrations.core.validation import check_positive_int
from vd_integrations.embeddings.batching import QueryEmbeddingCache, batches_query_embeddings
from vd_integrations.milvus import coalescing, faults, log_filters, search_fetch
from vd_integrations.milvus.config import ConnectionConfig
from vd_integrations.milvus.connection import DEFAULT_RPC_RETRY, Connection
from vd_integrations.milvus.hybrid_ops import HybridOps
from vd_integrations.milvus.rpc import Rpc, Step, with_timeout
from vd_integrations.milvus.schema import CollectionSpec
from vd_integrations.milvus.writes import WriteOps

__all__ = [
    "DEFAULT_RPC_RETRY",
    "EmbedDocuments",
    "EmbedQuery",
    "Embedder",
    "Exclusive",
    "FilterLike",
    "MilvusEngine",
    "Op",
    "Rpc",
]

T = TypeVar("T")

# pymilvus' ERROR records (with tracebacks) for failures handled here: the index wait
# milvus-lite 3.x lacks, and filters Milvus cannot parse (raised as our own error).
log_filters.install()


@dataclass
class _LoopResources:
    """What one event loop owns besides its client: the setup lock and the coalescer."""

    lock: asyncio.Lock
    coalescer: Coalescer[Any, Any]
    #: Setup runs (shared by concurrent callers) and background setup work.
    setup_tasks: SingleFlight = field(default_factory=SingleFlight)


class MilvusEngine(WriteOps, HybridOps):
    """One Milvus collection, reachable through a sync client and one async client per loop.

    Framework-free: the LangChain and LlamaIndex stores are thin adapters over it.
    Clients are created lazily and reused; nothing is connected per call.
    """

    def __init__(
        self,
        spec: CollectionSpec,
        config: ConnectionConfig | None = None,
        *,
        embedder: Embedder | None = None,
        drop_old: bool = False,
        timeout: float | None = None,
        coalescing: CoalescingSettings | bool | None = None,
        max_concurrent_rpcs: int = 32,
        query_cache_size: int = 0,
        batch_query_embeddings: bool | None = None,
        retry: RetrySettings | None = None,
    ) -> None:
        """``coalescing`` merges concurrent async calls (see :mod:`vd_integrations.core.coalesce`;
        ``False`` turns it off); ``max_concurrent_rpcs`` caps RPCs in flight per event loop;
        ``query_cache_size`` > 0 keeps an LRU cache of query embeddings;
        ``batch_query_embeddings`` lets concurrent query embeddings go to the embedder as one
        ``aembed_documents`` call (None: only for embedders known to embed queries and
        documents alike, see :func:`~vd_integrations.embeddings.batching.batches_query_embeddings`);
        ``retry`` is the policy for transient RPC failures (default :data:`DEFAULT_RPC_RETRY`;
        ``RetrySettings.disabled()`` turns retries off).
        """
        self.config = config or ConnectionConfig()
        self.embedder = embedder
        if retry is not None and not isinstance(retry, RetrySettings):
            raise TypeError(
                f"retry must be a vd_integrations.RetrySettings, got {type(retry).__name__}."
            )
        self.retry = DEFAULT_RPC_RETRY if retry is None else retry
        self.coalescing = CoalescingSettings.coerce(coalescing)
        check_positive_int(max_concurrent_rpcs, "max_concurrent_rpcs")
        self.max_concurrent_rpcs = max_concurrent_rpcs
        self.query_cache = QueryEmbeddingCache(query_cache_size)
        self.batch_query_embeddings = batch_query_embeddings
        self._batchable_for: tuple[Embedder, bool] | None = None
        super().__init__(spec, timeout=timeout, drop_old=drop_old)
        self.connection = Connection(
            self.config,
            spec.name,
            retry=self.retry,
            max_concurrent_rpcs=max_concurrent_rpcs,
            auto_id=lambda: bool(self.layout and self.layout.auto_id),
        )
        #: RPCs sent to Milvus so far, by pymilvus method (merged calls count once).
        self.rpc_counts = self.connection.rpc_counts
        self._sync_setup_lock = threading.Lock()
        self._async = PerLoop(self._new_loop_resources)

    def __repr__(self) -> str:
        return f"MilvusEngine(collection={self.spec.name!r}, config={self.config!r})"

    # ----- clients (see :class:`.connection.Connection`) -------------------------------

    @property
    def client(self) -> Any:
        """The sync ``MilvusClient`` (created on first use)."""
        return self.connection.client

    @property
    def aclient(self) -> Any:
        """The running loop's ``AsyncMilvusClient`` (call from a coroutine)."""
        return self.connection.aclient

    def _new_loop_resources(self) -> _LoopResources:
        self.connection.check_open()  # a closed store opens no new connections
        self.connection.loops.get()  # the loop's client starts connecting now
        return _LoopResources(asyncio.Lock(), Coalescer(self.coalescing))

    # ----- drivers ------------------------------------------------------------------------

    def run(self, op: Op[T], *, timeout: float | None = None) -> T:
        """Drive ``op`` to completion with blocking I/O; ``timeout`` bounds the whole call
        (lock waits, setup, connecting and every RPC; embedding calls cannot be cut short)."""
        self.connection.check_open()
        return self._drive(op, Deadline.after(timeout))

    def _drive(self, op: Op[T], deadline: Deadline) -> T:
        return drive(op, lambda step: self._perform(step, deadline), self.map_error)

    async def arun(self, op: Op[T], *, timeout: float | None = None) -> T:
        """Drive ``op`` to completion on the running loop, never blocking it.

        A caller cancelled while its request was in flight gets ``CancelledError`` even when
        a layer below (grpc/pymilvus, ``asyncio.wait_for`` before 3.12) returned the reply
        instead; the request itself may have been applied, as with any cancelled write.
        """
        self.connection.check_open()
        task = asyncio.current_task(running_loop())  # a clear error under trio
        requested = cancel_requests(task)
        async with timeout_scope(timeout, f"A call on collection {self.spec.name!r}"):
            result = await adrive(
                op, lambda step: self._aperform(with_timeout(step, timeout)), self.map_error
            )
        if cancel_requests(task) > requested:
            raise asyncio.CancelledError()
        return result

    def map_error(self, exc: Exception, step: Any) -> Exception:
        """A clear, typed error for ``exc`` raised by ``step`` (:func:`.faults.translate_error`)."""
        if self.config.is_embedded and faults.embedded_open_failed(exc):
            return self.connection.embedded_open_error()
        return faults.translate_error(exc, step, self.spec.name)

    def _perform(self, step: Step, deadline: Deadline) -> Any:
        if isinstance(step, Rpc):
            return self.connection.call(step, deadline)
        if isinstance(step, Exclusive):
            what = f"Setting up collection {self.spec.name!r}"
            left = deadline.remaining(what)
            if not self._sync_setup_lock.acquire(timeout=-1 if left is None else left):
                raise deadline.error(what)
            try:
                return self._drive(step.op, deadline)
            finally:
                self._sync_setup_lock.release()
        if isinstance(step, Background):  # yielded under the setup lock: run it now
            return self._drive(step.op, deadline)
        embedder = require_embedder(self.embedder)
        if isinstance(step, EmbedQuery):
            return self.query_cache.get_or_compute(step.text, embedder.embed_query)
        return embed_sync(embedder, step)

    async def _aperform(self, step: Step) -> Any:
        if isinstance(step, Rpc):
            return await self._arpc(step)
        if isinstance(step, Exclusive):
            # Setup (create, index, load) runs in its own task: cancelling the caller that
            # started it must not leave a half-built collection behind.
            tasks = self._async.get().setup_tasks
            return await tasks.run(step.key, lambda: self._aexclusive(step.op))
        if isinstance(step, Background):
            tasks = self._async.get().setup_tasks
            tasks.start(step.key, lambda: self._aexclusive(step.op))
            return None
        embedder = require_embedder(self.embedder)
        coalescer = self._async.get().coalescer
        if isinstance(step, EmbedDocuments):
            if not step.texts:
                return []
            return await coalescer.submit(
                ("embed", "documents"), step.texts, self._aembed_documents, len(step.texts)
            )
        cached = self.query_cache.get(step.text)
        if cached is not None:
            return cached
        if self._queries_batchable(embedder):
            vector = await coalescer.submit(("embed", "queries"), step.text, self._aembed_queries)
        else:
            vector = await embed_async(embedder, step)
        self.query_cache.put(step.text, vector)
        return vector

    async def _aexclusive(self, op: Op[T]) -> T:
        async with self._async.get().lock:
            return await self.arun(op)

    def _queries_batchable(self, embedder: Embedder) -> bool:
        """Whether concurrent query embeddings may share one call (decided once per embedder)."""
        cached = self._batchable_for
        if cached is None or cached[0] is not embedder:
            cached = self._batchable_for = (
                embedder,
                batches_query_embeddings(embedder, self.batch_query_embeddings),
            )
        return cached[1]

    async def _aembed_documents(self, parts: list[list[str]]) -> list[list[list[float]]]:
        """One ``aembed_documents`` call for the texts of every caller, split back."""
        flat = [text for texts in parts for text in texts]
        vectors = await require_embedder(self.embedder).aembed_documents(flat)
        if len(vectors) != len(flat):
            raise InvalidInputError(
                f"The embedding function returned {len(vectors)} vectors for {len(flat)} texts."
            )
        out, start = [], 0
        for texts in parts:
            out.append(list(vectors[start : start + len(texts)]))
            start += len(texts)
        return out

    async def _aembed_queries(self, texts: list[str]) -> list[list[float]]:
        """Concurrent queries embedded in one call (for embedders that embed them alike)."""
        return [vectors[0] for vectors in await self._aembed_documents([[t] for t in texts])]

    async def _arpc(self, step: Rpc) -> Any:
        """Await one RPC, merged with concurrent ones where :mod:`.coalescing` allows."""
        key = coalescing.merge_key(step.method, step.kwargs)
        if key is None:
            return await self.connection.acall(step)
        size = coalescing.part_size(step.method, step.kwargs)
        serial = self.connection.merges_one_at_a_time(step.method)
        return await self._async.get().coalescer.submit(
            key, step, self._arun_merged, size, serial=serial
        )

    async def _arun_merged(self, steps: list[Rpc]) -> list[Any]:
        """Run ``steps`` as one merged RPC; if Milvus rejects it, each step on its own, so
        only the callers whose part is bad get an error."""
        if len(steps) == 1:
            return [await self.connection.acall(steps[0])]
        method = steps[0].method
        parts = [step.kwargs for step in steps]
        merged = Rpc(method, coalescing.merge_steps(method, parts))
        try:
            plan = self._fetch_plan(merged, len(steps))
            if plan is not None:
                return await self._asearch_then_fetch(plan, parts, merged)
            result = await self.connection.acall(merged)
        except Exception as exc:
            if not faults.rejected_by_server(exc):
                raise  # the request may have been applied: do not send the parts again
            return await self._arun_each(steps)
        try:
            return coalescing.split_result(method, parts, result)
        except coalescing.IncompleteMerge:  # a read: asking again changes nothing
            return await self._arun_each(steps)

    def _fetch_plan(self, merged: Rpc, parts: int) -> search_fetch.FetchPlan | None:
        """Whether a merged search fetches its rows after searching (:mod:`.search_fetch`)."""
        layout = self.layout
        if merged.method != "search" or layout is None or layout.vectors is not None:
            return None  # typed vector fields (:mod:`.vector_fields`) keep one request
        return search_fetch.plan_fetch(
            merged.kwargs, parts, pk_field=layout.primary_field, vector_field=layout.vector_field
        )

    async def _asearch_then_fetch(
        self, plan: search_fetch.FetchPlan, parts: list[dict[str, Any]], merged: Rpc
    ) -> list[Any]:
        """The merged search as a search for keys, then one query per 4,096 distinct rows;
        sent again as the one search if a row went in between."""
        found = await self.connection.acall(Rpc("search", plan.search))
        queries = search_fetch.row_queries(plan, found)
        answers = await asyncio.gather(
            *(self.connection.acall(Rpc("query_in", query)) for query in queries)
        )
        try:
            return search_fetch.join(plan, parts, found, [row for rows in answers for row in rows])
        except coalescing.IncompleteMerge:
            return coalescing.split_result("search", parts, await self.connection.acall(merged))

    async def _arun_each(self, steps: list[Rpc]) -> list[Any]:
        """Each step as its own RPC, concurrently; a failure is that step's result."""
        parts_sent = (self.connection.acall(s) for s in steps)
        return list(await asyncio.gather(*parts_sent, return_exceptions=True))

    # ----- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the store: new calls raise :class:`StoreClosedError`, and the sync client is
        closed. Each event loop's async client belongs to that loop: calls in flight there
        finish, and ``aclose()`` on that loop (or the loop's end) releases it."""
        client = self.connection.close()
        if client is not None:
            client.close()

    async def asettle(self) -> None:
        """Wait for the background setup started on this loop (the load of a collection
        this store created) to finish. Reads wait for it anyway; this is for code that is
        about to drop the collection behind the store's back."""
        resources = self._async.current()
        if resources is not None:
            await resources.setup_tasks.drain()

    async def aclose(self) -> None:
        """Close the store (see :meth:`close`) and the running loop's async client, once its
        coalesced batches in flight are done. Other loops keep their clients until they
        call ``aclose()`` too or end. Safe to call more than once, from every loop.
        Background setup started on this loop (loading a new collection) finishes first."""
        await self.connection.acancel_connect()  # a connect to a hung server: don't wait
        if not self.connection.closed:
            await self.asettle()
        resources = self._async.pop_current()
        client = self.connection.close()
        if resources is not None:
            await resources.coalescer.aclose()  # batches in flight still use the client
        await self.connection.aclose_loop()
        if client is not None:  # closing may stop an embedded Milvus Lite: not on the loop
            await asyncio.to_thread(client.close)

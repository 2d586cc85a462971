"""The Milvus engine: every operation written once, run sync or natively async.

Operations are generators that *describe* I/O instead of doing it (a sans-I/O
core in the spirit of h11): they yield steps, and a driver performs each step and
sends the result back in.

- :class:`Rpc` -- call a method of the pymilvus client (``MilvusClient`` and
  ``AsyncMilvusClient`` share method names and arguments);
- :class:`EmbedDocuments` / :class:`EmbedQuery` -- ask the store's embedder;
- :class:`Exclusive` -- run a sub-operation while holding the store's setup lock;
- :class:`Background` -- setup work (loading a new collection) callers need not wait for.

:meth:`MilvusEngine.run` drives an operation with the sync client and sync
embedding calls; :meth:`MilvusEngine.arun` awaits the same steps on the running
loop's own ``AsyncMilvusClient`` and the embedder's async methods. Request
building, validation and result parsing therefore cannot drift between the twins.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

from vd_integrations.batching import DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCH_BYTES, split_rows
from vd_integrations.coalesce import Coalescer, CoalescingSettings
from vd_integrations.deadlines import NO_DEADLINE, Deadline, timeout_scope
from vd_integrations.embedding_batching import QueryEmbeddingCache, batches_query_embeddings
from vd_integrations.errors import (
    CollectionNotFoundError,
    InvalidFilterExpressionError,
    InvalidInputError,
    MilvusOperationError,
    OperationTimeoutError,
    StoreClosedError,
)
from vd_integrations.expressions import check_raw_expression
from vd_integrations.filters import (
    and_exprs,
    ids_expr,
    refuse_delete_of_everything,
    translate_filter,
)
from vd_integrations.loops import (
    PerLoop,
    SingleFlight,
    finalizes_async_generators,
    running_loop,
)
from vd_integrations.milvus import coalescing, faults, hybrid, log_filters
from vd_integrations.milvus.config import ConnectionConfig
from vd_integrations.milvus.lite_writes import collection_write_lock
from vd_integrations.milvus.reachability import acheck_reachable, check_reachable
from vd_integrations.milvus.schema import CollectionLayout, CollectionSpec, Record
from vd_integrations.mmr import maximal_marginal_relevance
from vd_integrations.ops import (
    Background,
    Embedder,
    EmbedDocuments,
    EmbedQuery,
    Exclusive,
    Op,
    Sleep,
    adrive,
    drive,
    embed_async,
    embed_sync,
    require_embedder,
)
from vd_integrations.retry import RetrySettings, acall_with_retry, call_with_retry
from vd_integrations.scoring import relevance_fn
from vd_integrations.validation import (
    check_column,
    check_metadata_values,
    check_positive_int,
    check_same_length,
    check_text,
    check_utf8,
    check_vectors,
)

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
_END = object()

#: Retries for transient RPC failures: about 15 s of backoff, enough for a Milvus Lite
#: server or a standalone Milvus to restart, bounded by a per-call ``timeout`` if given.
DEFAULT_RPC_RETRY = RetrySettings(
    max_attempts=8, initial_backoff=0.2, max_backoff=4.0, multiplier=2.0, jitter=0.5, deadline=60.0
)
FilterLike = str | Mapping[str, Any] | None


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rpc:
    """Call ``client.<method>(**kwargs)`` on the pymilvus client."""

    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


Step = Rpc | EmbedDocuments | EmbedQuery | Exclusive | Background


# pymilvus' ERROR records (with tracebacks) for failures handled here: the index wait
# milvus-lite 3.x lacks, and filters Milvus cannot parse (raised as our own error).
log_filters.install()


@dataclass
class _LoopResources:
    """What one event loop owns: its client, setup lock, coalescer and RPC slots."""

    client: Any
    lock: asyncio.Lock
    coalescer: Coalescer[Any, Any]
    rpc_slots: asyncio.Semaphore
    #: Setup runs (shared by concurrent callers), background setup work and the connect.
    setup_tasks: SingleFlight = field(default_factory=SingleFlight)
    #: Whether the client's channel is open (see ``MilvusEngine._aensure_connected``).
    connected: bool = False
    #: The connect in progress or done (see ``MilvusEngine._aensure_connected``).
    connecting: asyncio.Task[None] | None = None
    #: Closes the client when the loop shuts down (see ``MilvusEngine._loop_sentinel``).
    sentinel: AsyncGenerator[None, None] | None = None
    #: The sentinel was started (so the loop knows it).
    armed: bool = False
    #: The client was closed (by ``aclose`` or at the loop's shutdown).
    released: bool = False


# --------------------------------------------------------------------------------------------
# Error classification (pure)
# --------------------------------------------------------------------------------------------


def _is_unimplemented(exc: BaseException) -> bool:
    return faults.grpc_code_name(exc) == "UNIMPLEMENTED" or "UNIMPLEMENTED" in str(exc)


def _already_exists(exc: BaseException) -> bool:
    text = str(exc).lower()
    # real Milvus says "already exist(s)"; milvus-lite 3.x may surface "[Errno 17] File exists"
    return any(
        marker in text for marker in ("already exist", "at most one distinct index", "file exists")
    )


def _is_filter_error(exc: BaseException, step: Step | None) -> bool:
    if not isinstance(step, Rpc) or "filter" not in step.kwargs or not step.kwargs["filter"]:
        return False
    text = str(exc).lower()
    return any(
        marker in text
        for marker in (
            "parse",
            "expression",
            "unexpected",
            "unknown",
            "column",
            "invalid expr",
            "expr plan",  # Milvus 2.3 delete: "failed to create expr plan, expr = ..."
        )
    )


def _translate_error(exc: Exception, step: Step | None, collection: str) -> Exception:
    """A clear, typed error for a failed step (the original stays as ``__cause__``)."""
    if isinstance(exc, (InvalidInputError, CollectionNotFoundError, StoreClosedError)):
        return exc
    if isinstance(exc, RuntimeError) and "no running event loop" in str(exc):
        from vd_integrations.loops import unsupported_loop_error  # e.g. awaited under trio

        return unsupported_loop_error()
    if not _looks_like_milvus_error(exc):
        return exc
    message = getattr(exc, "message", None) or getattr(exc, "details", lambda: None)() or str(exc)
    if _is_filter_error(exc, step):
        assert isinstance(step, Rpc)
        return InvalidFilterExpressionError(
            f"Milvus could not evaluate the filter expression {step.kwargs['filter']!r} on "
            f"collection {collection!r}: {message}. Check field names, quoting and operators "
            f"(see https://milvus.io/docs/boolean.md), or pass a dict filter."
        )
    method = step.method if isinstance(step, Rpc) else type(step).__name__
    return MilvusOperationError(f"Milvus {method} on collection {collection!r} failed: {message}")


def _looks_like_milvus_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("pymilvus", "grpc"))


# --------------------------------------------------------------------------------------------
# Pure validation helpers
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class MilvusEngine:
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
        """``coalescing`` merges concurrent async calls (see :mod:`vd_integrations.coalesce`;
        ``False`` turns it off); ``max_concurrent_rpcs`` caps RPCs in flight per event loop;
        ``query_cache_size`` > 0 keeps an LRU cache of query embeddings;
        ``batch_query_embeddings`` lets concurrent query embeddings go to the embedder as one
        ``aembed_documents`` call (None: only for embedders known to embed queries and
        documents alike, see :func:`~vd_integrations.embedding_batching.batches_query_embeddings`);
        ``retry`` is the policy for transient RPC failures (default :data:`DEFAULT_RPC_RETRY`;
        ``RetrySettings.disabled()`` turns retries off).
        """
        self.spec = spec
        self.config = config or ConnectionConfig()
        self.embedder = embedder
        self.timeout = timeout
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
        self._layout: CollectionLayout | None = None
        self._drop_pending = bool(drop_old)
        #: A collection this engine created is still to be loaded (see :meth:`ready`).
        self._load_pending = False
        self._sync_client: Any = None
        self._sync_setup_lock = threading.Lock()
        self._client_lock = threading.Lock()
        self._async = PerLoop(self._new_loop_resources)
        self._closed = False
        #: Whether writes must be sent one at a time (Milvus Lite); None until known.
        self._serial_writes: bool | None = True if self.config.is_embedded else None
        #: Held by every write when writes go one at a time (see :mod:`.lite_writes`).
        self._write_lock = collection_write_lock(
            self.config.uri,
            embedded=self.config.is_embedded,
            db_name=self.config.db_name,
            collection=spec.name,
        )
        #: RPCs sent to Milvus so far, by pymilvus method (merged calls count once).
        self.rpc_counts: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"MilvusEngine(collection={self.spec.name!r}, config={self.config!r})"

    # ----- clients ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The sync ``MilvusClient`` (created on first use)."""
        return self._sync_client_within(NO_DEADLINE)

    def _sync_client_within(self, deadline: Deadline) -> Any:
        """The sync client; creating it (the first contact) ends by ``deadline``."""
        self._check_open()
        if self._sync_client is None:
            with self._client_lock:
                if self._sync_client is None:
                    from pymilvus import MilvusClient

                    what = f"Connecting to Milvus for collection {self.spec.name!r}"
                    left = deadline.remaining(what)
                    check_reachable(self.config, left)
                    kwargs = self.config.client_kwargs()
                    if left is not None and kwargs.get("timeout") is None:
                        kwargs["timeout"] = left  # pymilvus' connect timeout
                    self._sync_client = MilvusClient(**kwargs)
        return self._sync_client

    @property
    def aclient(self) -> Any:
        """The running loop's ``AsyncMilvusClient`` (call from a coroutine)."""
        self._check_open()
        return self._async.get().client

    def _new_loop_resources(self) -> _LoopResources:
        from pymilvus import AsyncMilvusClient

        self._check_open()  # a closed store opens no new connections

        resources = _LoopResources(
            AsyncMilvusClient(**self.config.client_kwargs()),
            asyncio.Lock(),
            Coalescer(self.coalescing),
            asyncio.Semaphore(self.max_concurrent_rpcs),
        )
        resources.sentinel = self._loop_sentinel(resources)
        # Open the channel (10-25 ms) while the loop's first call is still embedding.
        resources.connecting = resources.setup_tasks.start(
            "connect", lambda: self._aconnect(resources)
        )
        return resources

    async def _aensure_connected(self, resources: _LoopResources) -> None:
        """Wait until the loop's client is connected. One connect at a time per client:
        pymilvus opens a second channel (never closed) for a call racing the first."""
        while not resources.connected:
            task = resources.setup_tasks.start("connect", lambda: self._aconnect(resources))
            resources.connecting = task
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled() and not _cancel_requests(asyncio.current_task()):
                    self._check_open()  # aclose() cancelled the connect: the store is closed
                raise

    async def _aconnect(self, resources: _LoopResources) -> None:
        """Connect the loop's client, learning on the way whether the server is Milvus
        Lite, and arm the sentinel that closes the client when the loop shuts down."""
        if resources.connected:
            return
        loop = asyncio.get_running_loop()
        if not resources.armed and resources.sentinel and finalizes_async_generators(loop):
            resources.armed = True
            await resources.sentinel.__anext__()  # the loop now finalises it at shutdown
        await acheck_reachable(self.config)
        version = str(await resources.client.get_server_version(timeout=_CONNECT_TIMEOUT))
        if self._serial_writes is None:
            self._serial_writes = faults.is_milvus_lite(version)
        resources.connected = True

    async def _loop_sentinel(self, resources: _LoopResources) -> AsyncGenerator[None, None]:
        """An async generator the loop finalises at shutdown (``asyncio.run`` and
        ``asyncio.Runner`` call ``loop.shutdown_asyncgens()``): a loop that ends without
        ``aclose()`` still closes its client, so 1,000 ``asyncio.run`` calls leave no
        connection behind. Started only on loops that finalise it properly (see
        :func:`~vd_integrations.loops.finalizes_async_generators`): closed synchronously,
        its ``finally`` would stop half-way, holding pymilvus' connection lock forever."""
        try:
            yield
        finally:
            await self._arelease(resources)

    @property
    def layout(self) -> CollectionLayout | None:
        """The collection's layout once known (after the first call that touched Milvus)."""
        return self._layout

    def relevance_fn(self) -> Callable[[float], float]:
        """Map a raw Milvus score to [0, 1] in the collection's metric (see ``scoring``)."""
        layout = self._layout
        return relevance_fn(layout.metric if layout else self.spec.index["metric_type"])

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(
                f"The store for collection {self.spec.name!r} is closed; create a new one."
            )

    # ----- drivers ------------------------------------------------------------------------

    def run(self, op: Op[T], *, timeout: float | None = None) -> T:
        """Drive ``op`` to completion with blocking I/O; ``timeout`` bounds the whole call
        (lock waits, setup, connecting and every RPC; embedding calls cannot be cut short)."""
        self._check_open()
        return self._drive(op, Deadline.after(timeout))

    def _drive(self, op: Op[T], deadline: Deadline) -> T:
        return drive(op, lambda step: self._perform(step, deadline), self._map_error)

    async def arun(self, op: Op[T], *, timeout: float | None = None) -> T:
        """Drive ``op`` to completion on the running loop, never blocking it.

        A caller cancelled while its request was in flight gets ``CancelledError`` even when
        a layer below (grpc/pymilvus, ``asyncio.wait_for`` before 3.12) returned the reply
        instead; the request itself may have been applied, as with any cancelled write.
        """
        self._check_open()
        task = asyncio.current_task(running_loop())  # a clear error under trio
        requested = _cancel_requests(task)
        async with timeout_scope(timeout, f"A call on collection {self.spec.name!r}"):
            result = await adrive(
                op, lambda step: self._aperform(_with_timeout(step, timeout)), self._map_error
            )
        if _cancel_requests(task) > requested:
            raise asyncio.CancelledError()
        return result

    def _map_error(self, exc: Exception, step: Any) -> Exception:
        if self.config.is_embedded and faults.embedded_open_failed(exc):
            return self._embedded_open_error()
        return _translate_error(exc, step, self.spec.name)

    def _embedded_open_error(self) -> MilvusOperationError:
        path = self.config.client_kwargs()["uri"]
        if faults.embedded_file_in_use(path):
            return MilvusOperationError(
                f"Another process has the embedded Milvus Lite database {path!r} open, and "
                f"Milvus Lite lets one process open a file. Give each process its own file, "
                f"or share the data through a server (`milvus-lite server --data-dir DIR`, "
                f"or Milvus / Zilliz) with connection_args={{'uri': 'http://HOST:PORT'}}."
            )
        return MilvusOperationError(
            f"milvus-lite could not open the embedded database {path!r}; its log above says "
            f"why. Check that the path is writable and that milvus-lite is installed."
        )

    def _perform(self, step: Step, deadline: Deadline) -> Any:
        if isinstance(step, Rpc):
            return self._call(step, deadline)
        if isinstance(step, Exclusive):
            what = f"Setting up collection {self.spec.name!r}"
            left = _lock_wait(deadline, what)
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
            return await self._acall(step)
        size = coalescing.part_size(step.method, step.kwargs)
        return await self._async.get().coalescer.submit(key, step, self._arun_merged, size)

    # ----- one RPC, retried (sync and async shells over the same policy) -------------------

    def _retry_plan(
        self, step: Rpc, deadline: Deadline = NO_DEADLINE
    ) -> tuple[RetrySettings, Callable[[BaseException], bool]]:
        """The policy for ``step``: its ``timeout`` (or the call's deadline) also bounds the
        retries, and only transient failures of requests safe to send again are retried."""
        settings = self.retry
        timeout = step.kwargs.get("timeout")
        if deadline.at is not None:
            left = max(deadline.at - time.monotonic(), 0.001)
            timeout = left if not isinstance(timeout, (int, float)) else min(timeout, left)
        if isinstance(timeout, (int, float)) and timeout > 0:
            budget = timeout if settings.deadline is None else min(settings.deadline, timeout)
            settings = replace(settings, deadline=budget)
        auto_id = bool(self._layout and self._layout.auto_id)

        def retryable(exc: BaseException) -> bool:
            return faults.is_transient(exc) and faults.safe_to_retry(
                step.method, exc, auto_id=auto_id
            )

        return settings, retryable

    def _resend_as(self, step: Rpc) -> Rpc:
        """What a retry sends: an insert with primary keys becomes an upsert, so a first
        attempt that was applied after all is not duplicated."""
        if step.method == "insert" and not (self._layout and self._layout.auto_id):
            return Rpc("upsert", step.kwargs)
        return step

    def _operation_name(self, step: Rpc) -> str:
        return f"Milvus {step.method} on collection {self.spec.name!r}"

    # Milvus Lite loses acknowledged rows after a crash when one collection receives
    # concurrent writes (see .lite_writes): writes to it go one at a time per collection
    # in this process (coalescing still merges them, so little throughput is lost).

    def _writes_one_at_a_time(self, client: Any) -> bool:
        if self._serial_writes is None:
            try:
                version: str | None = str(client.get_server_version())
            except Exception:
                version = None
            self._serial_writes = faults.is_milvus_lite(version)
        return self._serial_writes is not False  # unknown (server down?): the safe choice

    def _call(self, step: Rpc, deadline: Deadline = NO_DEADLINE) -> Any:
        """One RPC on the sync client, retried per :attr:`retry`, ending by ``deadline``."""
        settings, retryable = self._retry_plan(step, deadline)
        attempts = iter([step])
        what = self._operation_name(step)

        def attempt() -> Any:
            method, kwargs = _client_call(next(attempts, None) or self._resend_as(step))
            client = self._sync_client_within(deadline)
            serial = method in _WRITES and self._writes_one_at_a_time(client)
            if serial and not self._write_lock.green_acquire(timeout=_lock_wait(deadline, what)):
                raise deadline.error(what)
            try:
                kwargs = _bounded(kwargs, deadline, what)
                self.rpc_counts[method] += 1
                try:
                    return getattr(client, method)(**kwargs)
                except Exception as exc:
                    if not _reload_helps(step, exc):
                        raise
                self.rpc_counts["load_collection"] += 1
                client.load_collection(**_load_kwargs(Rpc(method, kwargs)))
                self.rpc_counts[method] += 1
                return getattr(client, method)(**_bounded(kwargs, deadline, what))
            finally:
                if serial:
                    self._write_lock.green_release()

        try:
            return call_with_retry(attempt, settings, retryable, operation=what)
        except Exception as exc:
            if deadline.expired() and not isinstance(exc, OperationTimeoutError):
                raise deadline.error(what) from exc
            raise

    async def _acall(self, step: Rpc) -> Any:
        """One RPC on the running loop's client within its RPC slots, retried per
        :attr:`retry` (the slot is released while backing off)."""
        settings, retryable = self._retry_plan(step)
        attempts = iter([step])

        async def attempt() -> Any:
            resources = self._async.get()
            method, kwargs = _client_call(next(attempts, None) or self._resend_as(step))
            await self._aensure_connected(resources)
            serial = method in _WRITES and self._serial_writes is not False
            async with resources.rpc_slots:
                self.rpc_counts[method] += 1
                try:
                    if step.method == "delete":
                        self.rpc_counts["query"] += 1
                        return await self._adelete_checked(resources, step, kwargs, serial)
                    if serial:
                        async with self._write_lock:
                            return await getattr(resources.client, method)(**kwargs)
                    return await getattr(resources.client, method)(**kwargs)
                except Exception as exc:
                    if not _reload_helps(step, exc):
                        raise
                self.rpc_counts["load_collection"] += 1
                await resources.client.load_collection(**_load_kwargs(step))
                self.rpc_counts[method] += 1
                return await getattr(resources.client, method)(**kwargs)

        return await acall_with_retry(
            attempt, settings, retryable, operation=self._operation_name(step)
        )

    async def _adelete_checked(
        self, resources: _LoopResources, step: Rpc, kwargs: dict[str, Any], serial: bool
    ) -> Any:
        """A delete by expression, with the filter checked by a query sent alongside it.

        AsyncMilvusClient.delete ignores the server's status, so a malformed expression
        would "succeed" silently (having deleted nothing); the probe raises on it. Sent
        together rather than one after the other, the probe costs no extra round trip.
        """
        probe = asyncio.ensure_future(self._acheck_filter(resources.client, step))
        try:
            if serial:
                async with self._write_lock:
                    result = await resources.client.delete(**kwargs)
            else:
                result = await resources.client.delete(**kwargs)
        except BaseException:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
            raise
        await probe
        return result

    @staticmethod
    async def _arelease(resources: _LoopResources) -> None:
        """Close one loop's client once its coalesced batches in flight are done (by
        ``aclose`` or, for a loop that ends without it, by the loop's sentinel)."""
        if resources.released:
            return
        resources.released = True
        await _cancel(resources.connecting)
        await resources.coalescer.aclose()  # batches in flight still use the client
        await resources.client.close()

    @staticmethod
    async def _acheck_filter(client: Any, step: Rpc) -> None:
        """A one-row query with a delete's filter: raises if Milvus cannot parse it."""
        kwargs = step.kwargs
        probe = {"collection_name": kwargs["collection_name"], "filter": kwargs["filter"]}
        probe["limit"] = 1
        probe["output_fields"] = []
        if kwargs.get("partition_name"):
            probe["partition_names"] = [kwargs["partition_name"]]
        if kwargs.get("timeout") is not None:
            probe["timeout"] = kwargs["timeout"]
        await client.query(**probe)

    async def _arun_merged(self, steps: list[Rpc]) -> list[Any]:
        """Run ``steps`` as one merged RPC; if Milvus rejects it, each step on its own, so
        only the callers whose part is bad get an error."""
        if len(steps) == 1:
            return [await self._acall(steps[0])]
        method = steps[0].method
        parts = [step.kwargs for step in steps]
        merged = Rpc(method, coalescing.merge_steps(method, parts))
        try:
            result = await self._acall(merged)
        except Exception as exc:
            if not faults.rejected_by_server(exc):
                raise  # the request may have been applied: do not send the parts again
            return list(
                await asyncio.gather(*(self._acall(s) for s in steps), return_exceptions=True)
            )
        return coalescing.split_result(method, parts, result)

    # ----- lifecycle ----------------------------------------------------------------------

    def _detach_sync_client(self) -> Any:
        """Mark the engine closed (new calls raise StoreClosedError); return the sync client."""
        self._closed = True
        client, self._sync_client = self._sync_client, None
        return client

    def close(self) -> None:
        """Close the store: new calls raise :class:`StoreClosedError`, and the sync client is
        closed. Each event loop's async client belongs to that loop: calls in flight there
        finish, and ``aclose()`` on that loop (or the loop's end) releases it."""
        client = self._detach_sync_client()
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
        resources = self._async.current()
        if resources is not None:
            await _cancel(resources.connecting)  # a connect to a hung server: don't wait
        if not self._closed:
            await self.asettle()
        resources = self._async.pop_current()
        client = self._detach_sync_client()
        if resources is not None:
            await self._arelease(resources)
            if resources.sentinel is not None:
                await resources.sentinel.aclose()
        if client is not None:  # closing may stop an embedded Milvus Lite: not on the loop
            await asyncio.to_thread(client.close)

    # ----- collection setup (ops) ---------------------------------------------------------

    def _rpc(self, method: str, **kwargs: Any) -> Rpc:
        if self.timeout is not None:
            kwargs.setdefault("timeout", self.timeout)
        return Rpc(method, kwargs)

    def ready(self, dim: int | None = None, *, loaded: bool = False) -> Op[CollectionLayout | None]:
        """The collection's layout; with ``dim``, create the collection if it is missing.

        A collection this engine creates is loaded in the background: inserts and upserts
        do not need it loaded, so the first write does not wait for it (seconds on a real
        server). Reads and deletes by filter do: they pass ``loaded=True`` and wait.
        """
        layout = self._layout
        if layout is None or self._drop_pending:
            layout = yield Exclusive(self._setup(dim), key=("setup", dim))
        if loaded:
            yield from self.loaded()
        return layout

    def loaded(self) -> Op[None]:
        """Wait until a collection this engine created is loaded (a no-op otherwise)."""
        if self._load_pending:
            yield Exclusive(self._finish_load(), key="load")

    def _setup(self, dim: int | None) -> Op[CollectionLayout | None]:
        if self._drop_pending:
            yield from self._drop()
            self._drop_pending = False
        if self._layout is not None:
            return self._layout
        layout = yield from self._describe()
        if layout is None and dim is not None:
            layout = yield from self._create(dim)
        elif layout is not None:
            yield from self._ensure_loaded()
        self._layout = layout
        return layout

    def _ensure_loaded(self) -> Op[None]:
        """Load an existing collection that is not loaded, or wait for a load in progress.

        Milvus refuses searches and queries on an unloaded collection (one released, made
        by another tool, or -- on a real server -- still loading because another loop,
        thread or process is creating it right now); langchain-milvus loads it too.
        Failures are left to the read that needs the collection loaded.
        """
        name = self.spec.name
        try:
            state = yield self._rpc("get_load_state", collection_name=name)
            state = state.get("state") if isinstance(state, Mapping) else state
            if getattr(state, "name", str(state)) == "Loaded":  # pymilvus LoadState
                return
            load_kwargs: dict[str, Any] = {"collection_name": name}
            if self.spec.replica_number != 1:
                load_kwargs["replica_number"] = self.spec.replica_number
            yield self._rpc("load_collection", **load_kwargs)
        except Exception as exc:  # e.g. no vector index yet: reads will report it
            logging.getLogger(__name__).debug("could not load %r: %s", name, exc)

    def _describe(self) -> Op[CollectionLayout | None]:
        name = self.spec.name
        if not (yield self._rpc("has_collection", collection_name=name)):
            return None
        description = yield self._rpc("describe_collection", collection_name=name)
        metric = yield from self._vector_metric(description)
        return CollectionLayout.from_description(self.spec, description, metric)

    def _vector_metric(self, description: Mapping[str, Any]) -> Op[str | None]:
        name = self.spec.name
        for index_name in (yield self._rpc("list_indexes", collection_name=name)) or ():
            info = yield self._rpc("describe_index", collection_name=name, index_name=index_name)
            info = info or {}
            vector_fields = {self.spec.vector_field} | {
                f["name"] for f in description.get("fields", []) if "dim" in (f.get("params") or {})
            }
            if info.get("field_name") in vector_fields and info.get("metric_type"):
                metric = str(info["metric_type"]).upper()
                if metric in {"L2", "IP", "COSINE"}:
                    return metric
        return None

    def _create(self, dim: int) -> Op[CollectionLayout]:
        spec = self.spec
        if spec.sparse is not None:  # a clear error on servers without BM25 / sparse fields
            yield from hybrid.check_server(self, spec.sparse)
        try:
            yield self._rpc("create_collection", **spec.create_kwargs(dim))
        except Exception as exc:
            if not _already_exists(exc):
                raise
            yield from self._await_created_elsewhere()
        yield from self._ensure_index()
        if spec.properties:
            yield self._rpc(
                "alter_collection_properties",
                collection_name=spec.name,
                properties=dict(spec.properties),
            )
        layout = yield from self._describe()
        if layout is None:  # pragma: no cover - dropped concurrently
            raise MilvusOperationError(f"Collection {spec.name!r} vanished while being created.")
        self._load_pending = True
        yield Background(self._finish_load(), key="load")
        return layout

    def _finish_load(self) -> Op[None]:
        """Load the collection :meth:`_create` made (a no-op once done). A failure is
        raised to the reader waiting for it; the next one tries again."""
        if not self._load_pending:
            return
        load_kwargs: dict[str, Any] = {"collection_name": self.spec.name}
        if self.spec.replica_number != 1:
            load_kwargs["replica_number"] = self.spec.replica_number
        yield self._rpc("load_collection", **load_kwargs)
        self._load_pending = False

    def _await_created_elsewhere(self, timeout: float = 10.0) -> Op[None]:
        """Another writer (loop, thread or process) is creating the collection: wait until it
        and its index are visible. Past ``timeout`` the caller creates the index itself."""
        name, delay, waited = self.spec.name, 0.02, 0.0
        while waited < timeout:
            if (yield self._rpc("has_collection", collection_name=name)) and (
                yield self._rpc("list_indexes", collection_name=name)
            ):
                return
            yield Sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.5)
        if not (yield self._rpc("has_collection", collection_name=name)):
            raise MilvusOperationError(
                f"Collection {name!r} was reported as existing but did not appear within "
                f"{timeout:.0f}s."
            )

    def _ensure_index(self) -> Op[None]:
        # One create_index call per field (the vector, and a sparse field if any): on
        # milvus-lite the async client's call fails after creating the first index.
        name = self.spec.name
        for field_name, params in self.spec.field_indexes():
            listed = {"collection_name": name, "field_name": field_name}
            if (yield self._rpc("list_indexes", **listed)):
                continue
            try:
                yield self._rpc("create_index", collection_name=name, index_params=params)
            except Exception as exc:
                if _is_unimplemented(exc):
                    # milvus-lite 3.x: the async client's index call creates the index, then
                    # fails waiting for it with UNIMPLEMENTED (pymilvus#3711). Confirm it.
                    if not (yield self._rpc("list_indexes", **listed)):
                        raise
                elif not _already_exists(exc):
                    raise

    def _drop(self) -> Op[None]:
        if (yield self._rpc("has_collection", collection_name=self.spec.name)):
            yield self._rpc("drop_collection", collection_name=self.spec.name)
        self._layout = None
        self._load_pending = False

    def drop(self) -> Op[None]:
        """Drop the collection (a later write creates it again)."""
        yield Exclusive(self._drop())

    # ----- filters ------------------------------------------------------------------------

    def _prospective_layout(self) -> CollectionLayout:
        """The layout a new collection would get: used to validate before it exists."""
        spec = self.spec
        return CollectionLayout(
            name=spec.name,
            primary_field=spec.primary_field,
            pk_is_int=spec.auto_id,
            auto_id=spec.auto_id,
            text_field=spec.text_field,
            vector_field=spec.vector_field,
            dim=0,
            metric=spec.index["metric_type"],
            dynamic=spec.enable_dynamic_field or not spec.metadata_field,
            metadata_field=spec.metadata_field,
            scalar_fields=(spec.partition_key_field,) if spec.partition_key_field else (),
        )

    def compile_filter(self, filter: FilterLike, layout: CollectionLayout | None = None) -> str:
        """A Milvus expression for a string expression or a vd dict filter ('' for none)."""
        if filter is None or filter == "":
            return ""
        if isinstance(filter, str):
            if not filter.strip():
                return ""
            return check_raw_expression(filter)  # one unit, safe to combine with others
        if not isinstance(filter, Mapping):
            raise InvalidFilterExpressionError(
                f"filter must be a Milvus expression string or a dict in the vd filter language, "
                f"got {type(filter).__name__}."
            )
        layout = layout or self._layout or self._prospective_layout()
        return translate_filter(filter, resolve=layout.field_ref) or ""

    # ----- writes -------------------------------------------------------------------------

    def add(
        self,
        texts: Iterable[str],
        *,
        vectors: Iterable[Sequence[float]] | None = None,
        metadatas: Iterable[Mapping[str, Any] | None] | None = None,
        ids: Iterable[Any] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_batch: Callable[[int], None] | None = None,
        upsert: bool | None = None,
    ) -> Op[list[str]]:
        """Embed (unless ``vectors``) and write texts. Returns the ids.

        ``upsert=None`` upserts when the caller gave ids (re-adding an id replaces it) and
        inserts otherwise; ``True``/``False`` force one or the other.

        When ``texts`` is a sequence, everything checkable is checked before the first
        write: lengths, ids, text sizes, metadata, vector dimensions (the embedder's too, on
        the first batch). Any other iterable (a generator) is streamed: read, checked,
        embedded and written ``batch_size`` at a time, so memory stays bounded; a bad item
        then fails its batch, and earlier batches stay written.
        """
        check_positive_int(batch_size, "batch_size")
        check_column(texts, "texts", optional=False)
        for name, column in (("vectors", vectors), ("metadatas", metadatas), ("ids", ids)):
            check_column(column, name)
        if isinstance(texts, Sequence) and not isinstance(texts, str):
            return (
                yield from self._add_all(
                    texts, vectors, metadatas, ids, batch_size, on_batch, upsert
                )
            )
        out: list[str] = []
        columns = [iter(c) if c is not None else None for c in (vectors, metadatas, ids)]
        text_iter = iter(texts)
        while True:
            chunk = list(itertools.islice(text_iter, batch_size))
            parts = [
                None if col is None else list(itertools.islice(col, len(chunk))) for col in columns
            ]
            if not chunk:
                for name, col in zip(("vectors", "metadatas", "ids"), columns, strict=True):
                    if col is not None and next(col, _END) is not _END:
                        raise InvalidInputError(f"{name} is longer than texts.")
                return out
            out.extend(
                (
                    yield from self._add_all(
                        chunk, parts[0], parts[1], parts[2], batch_size, on_batch, upsert
                    )
                )
            )

    def _add_all(
        self,
        texts: Sequence[str],
        vectors: Iterable[Sequence[float]] | None,
        metadatas: Iterable[Mapping[str, Any] | None] | None,
        ids: Iterable[Any] | None,
        batch_size: int,
        on_batch: Callable[[int], None] | None,
        upsert: bool | None,
    ) -> Op[list[str]]:
        """Add a materialised batch of texts: check all of it, then embed and write."""
        texts = list(texts)
        vectors = None if vectors is None else list(vectors)  # a generator has no len()
        metadatas = None if metadatas is None else list(metadatas)
        ids = None if ids is None else list(ids)
        n = check_same_length(
            texts=texts, metadatas=metadatas, ids=ids, vectors=None if vectors is None else vectors
        )
        if n == 0:
            return []
        layout = (yield from self.ready()) or self._prospective_layout()
        checked_vectors = (
            None
            if vectors is None
            else check_vectors(vectors, dim=layout.dim or None, what="embedding")
        )
        if upsert is None:
            upsert = ids is not None and any(i is not None for i in ids)
        keys = self._check_ids(layout, ids, n)
        metas = [{} if m is None else m for m in (metadatas or [None] * n)]
        for i, (text, meta) in enumerate(zip(texts, metas, strict=True)):
            self._check_text(layout, i, text)
            layout.check_metadata(i, meta)
            check_metadata_values(i, meta)
        metas = [dict(m) for m in metas]

        out_ids: list[str] = []
        dim = layout.dim or None
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if checked_vectors is not None:
                batch_vectors = checked_vectors[start:stop]
            else:
                embedded = yield EmbedDocuments(texts[start:stop])
                if len(embedded) != stop - start:
                    raise InvalidInputError(
                        f"The embedding function returned {len(embedded)} vectors for "
                        f"{stop - start} texts."
                    )
                batch_vectors = check_vectors(embedded, dim=dim, what="embedding")
            dim = len(batch_vectors[0])
            created = yield from self.ready(dim)
            if created is None:  # pragma: no cover - ready(dim) creates it
                raise CollectionNotFoundError(self.spec.name)
            layout = created
            if layout.dim != dim:
                raise InvalidInputError(
                    f"Vectors have dimension {dim} but collection {layout.name!r} has dimension "
                    f"{layout.dim}; use the embedding model the collection was built with, or a "
                    f"new collection_name (or drop_old=True)."
                )
            rows = [
                layout.build_row(keys[i] if keys else None, texts[i], vec, metas[i])
                for i, vec in zip(range(start, stop), batch_vectors, strict=True)
            ]
            for lo, hi in split_rows(rows, max_rows=batch_size, max_bytes=DEFAULT_MAX_BATCH_BYTES):
                result = yield self._rpc(
                    "upsert" if upsert else "insert",
                    collection_name=layout.name,
                    data=rows[lo:hi],
                    **self._partition_kwargs(single=True),
                )
                if layout.auto_id:
                    out_ids.extend(str(pk) for pk in _result_ids(result))
                else:
                    out_ids.extend(str(k) for k in keys[start + lo : start + hi])
            if on_batch is not None:
                on_batch(stop - start)
        return out_ids

    def _check_ids(self, layout: CollectionLayout, ids: list[Any] | None, n: int) -> list[Any]:
        if layout.auto_id:
            if ids is not None and any(i is not None for i in ids):
                raise InvalidInputError(
                    f"Collection {layout.name!r} uses auto_id, so Milvus assigns ids; drop the "
                    f"ids, or use a store created with auto_id=False to keep your own."
                )
            return []
        if ids is None:
            ids = [None] * n
        keys = [layout.encode_id(i) if i is not None else self._new_id(layout) for i in ids]
        seen: set[Any] = set()
        for key in keys:
            if key in seen:
                raise InvalidInputError(f"Duplicate id {key!r} in one call; ids must be unique.")
            seen.add(key)
            if isinstance(key, str):
                if not key:
                    raise InvalidInputError("ids must be non-empty strings.")
                if check_utf8(key, f"id {key[:40]!r}") > layout.pk_max_length:
                    raise InvalidInputError(
                        f"id {key[:40]!r}... is longer than the primary key's max_length "
                        f"({layout.pk_max_length} bytes)."
                    )
        return keys

    @staticmethod
    def _new_id(layout: CollectionLayout) -> str | int:
        if layout.pk_is_int:
            return uuid.uuid4().int >> 65  # positive int64
        return uuid.uuid4().hex

    @staticmethod
    def _check_text(layout: CollectionLayout, index: int, text: Any) -> None:
        size = check_text(index, text)
        if size > layout.text_max_length:
            raise InvalidInputError(
                f"text #{index} is {size} bytes (UTF-8), over the text field's max_length of "
                f"{layout.text_max_length}; split it into smaller chunks."
            )

    def _partition_kwargs(self, *, single: bool = False) -> dict[str, Any]:
        names = list(self.spec.partition_names or [])
        if not names or self.spec.partition_key_field:
            return {}
        if single:
            return {"partition_name": names[0]}
        return {"partition_names": names}

    def delete(self, ids: Sequence[Any] | None = None, filter: FilterLike = None) -> Op[int | None]:
        """Delete by ids and/or filter; missing ids are not an error.

        Returns the number of ids requested for a delete by ids, Milvus' count for a delete
        by filter, or None when that count is unknown (a delete merged with others).
        """
        if ids is None and (filter is None or filter == ""):
            raise InvalidInputError("delete needs ids or a filter expression (expr=...).")
        self.compile_filter(filter)  # a malformed filter is refused before any I/O
        if ids is None:
            refuse_delete_of_everything(filter, clear=_CLEAR_HINT)
        else:
            ids = list(ids)
            if not ids and filter is None:
                return 0
        layout = yield from self.ready()
        if layout is None:
            return 0
        keys = None if ids is None else [layout.encode_id(i) for i in ids]
        condition = self.compile_filter(filter, layout) or None
        if keys is None:
            refuse_delete_of_everything(condition, clear=_CLEAR_HINT)
        if condition is not None:  # Milvus evaluates the filter on loaded data
            yield from self.loaded()
        partition = self._partition_kwargs(single=True)
        if condition is None:  # by ids only: mergeable with concurrent deletes by ids
            result = yield self._rpc(
                "delete_ids",
                collection_name=layout.name,
                pk_field=layout.primary_field,
                ids=keys,
                **partition,
            )
        else:
            pk_condition = None if keys is None else ids_expr(layout.primary_field, keys)
            result = yield self._rpc(
                "delete",
                collection_name=layout.name,
                filter=and_exprs(pk_condition, condition),
                **partition,
            )
        if keys is not None and condition is None:
            return len(keys)
        count = result.get("delete_count") if isinstance(result, Mapping) else None
        return None if count is None else int(count)

    def delete_matching(self, filter: FilterLike, *, page_size: int = 16_384) -> Op[int]:
        """Delete what ``filter`` matches by looking up the primary keys first, then deleting
        by key (what LlamaIndex's own store does for ``delete(ref_doc_id)``): on Milvus 2.3 a
        delete by keys takes milliseconds where a delete by expression takes hundreds.
        Rows added by others between the lookup and the delete are not deleted. Returns the
        number of rows deleted."""
        deleted: set[Any] = set()
        while True:
            records = yield from self.query(filter, limit=page_size, output_fields=[])
            keys = [r.id for r in records if r.id not in deleted]
            if not keys:
                return len(deleted)
            yield from self.delete(ids=keys)
            deleted.update(keys)
            if len(records) < page_size:
                return len(deleted)

    # ----- reads --------------------------------------------------------------------------

    def search(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        k: int,
        filter: FilterLike = None,
        with_vectors: bool = False,
        search_params: Mapping[str, Any] | None = None,
    ) -> Op[list[list[Record]]]:
        """Nearest neighbours of each vector (``nq = len(vectors)``), with raw Milvus scores."""
        check_positive_int(k)
        layout = yield from self.ready(loaded=True)
        if layout is None:
            self.compile_filter(filter)
            check_vectors(vectors, dim=None, what="query vector")
            return [[] for _ in vectors]
        data = check_vectors(vectors, dim=layout.dim, what="query vector")
        expr = self.compile_filter(filter, layout)
        params: dict[str, Any] = {"metric_type": layout.metric, "params": {}}
        for extra in (self.spec.search_params, search_params):
            if extra:
                params.update({k2: v for k2, v in extra.items() if k2 != "params"})
                params["params"] = {**params["params"], **dict(extra.get("params") or {})}
        results = yield self._rpc(
            "search",
            collection_name=layout.name,
            data=data,
            anns_field=layout.vector_field,
            limit=k,
            filter=expr,
            output_fields=layout.output_fields(with_vector=with_vectors),
            search_params=params,
            **self._partition_kwargs(),
        )
        pk = layout.primary_field
        return [
            [
                layout.record_from_entity(
                    hit[pk] if pk in hit else hit.get("id"),
                    hit.get("entity") or {},
                    float(hit.get("distance", 0.0)),
                )
                for hit in hits
            ]
            for hits in results
        ]

    def search_text(
        self, query: str, *, k: int, filter: FilterLike = None, **kwargs: Any
    ) -> Op[list[Record]]:
        """Embed ``query`` and search."""
        check_positive_int(k)
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a str, got {type(query).__name__}.")
        vector = yield EmbedQuery(query)
        return (yield from self.search([vector], k=k, filter=filter, **kwargs))[0]

    def mmr(
        self,
        vector: Sequence[float] | None = None,
        *,
        query: str | None = None,
        k: int,
        fetch_k: int,
        lambda_mult: float = 0.5,
        filter: FilterLike = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> Op[list[Record]]:
        """Maximal marginal relevance over the ``fetch_k`` nearest, in the index's metric."""
        check_positive_int(k)
        check_positive_int(fetch_k, "fetch_k")
        if not 0.0 <= float(lambda_mult) <= 1.0:
            raise InvalidInputError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}.")
        if vector is None:
            if not isinstance(query, str):
                raise InvalidInputError("mmr needs a query string or a query vector.")
            vector = yield EmbedQuery(query)
        hits = (
            yield from self.search(
                [vector],
                k=max(fetch_k, k),
                filter=filter,
                with_vectors=True,
                search_params=search_params,
            )
        )[0]
        if not hits:
            return []
        layout = self._layout
        assert layout is not None
        # search(with_vectors=True) reads the vector field, so every hit carries its vector
        vectors = cast("list[list[float]]", [h.vector for h in hits])
        order = maximal_marginal_relevance(
            list(vector),
            vectors,
            k=k,
            lambda_mult=lambda_mult,
            metric=layout.metric,
        )
        return [hits[i] for i in order]

    def query(
        self,
        filter: FilterLike = None,
        *,
        ids: Sequence[Any] | None = None,
        limit: int | None = None,
        output_fields: Sequence[str] | None = None,
        with_vectors: bool = False,
    ) -> Op[list[Record]]:
        """Scalar query by filter and/or ids. ``output_fields=[]`` returns ids only."""
        if limit is not None:
            check_positive_int(limit, "limit")
        layout = yield from self.ready(loaded=True)
        if layout is None:
            self.compile_filter(filter)
            return []
        parts = []
        if ids is not None:
            ids = list(ids)
            if not ids:
                return []
            parts.append(ids_expr(layout.primary_field, [layout.encode_id(i) for i in ids]))
        parts.append(self.compile_filter(filter, layout))
        expr = and_exprs(*parts) or ""
        if output_fields is None:
            fields = layout.output_fields(with_vector=with_vectors)
        else:
            fields = [layout.primary_field, *output_fields]
        kwargs: dict[str, Any] = {"collection_name": layout.name, "filter": expr}
        kwargs["output_fields"] = fields
        if limit is not None:
            kwargs["limit"] = limit
        elif not expr:
            kwargs["limit"] = 16_384  # Milvus' query window; an empty filter requires a limit
        rows = yield self._rpc("query", **kwargs, **self._partition_kwargs())
        pk = layout.primary_field
        return [layout.record_from_entity(row[pk], row) for row in rows]

    def hybrid_search(
        self,
        query: str | None = None,
        *,
        k: int,
        vector: Sequence[float] | None = None,
        sparse_vector: Any = None,
        dense_k: int | None = None,
        sparse_k: int | None = None,
        ranker: Any = "rrf",
        ranker_params: Mapping[str, Any] | None = None,
        filter: FilterLike = None,
        search_params: Mapping[str, Any] | None = None,
        sparse_search_params: Mapping[str, Any] | None = None,
    ) -> Op[list[Record]]:
        """Dense + BM25 (sparse) search fused by Milvus (RRF or weighted); see
        :func:`.hybrid.hybrid_search`. Scores are the fused score, higher is better."""
        return hybrid.hybrid_search(
            self,
            query,
            vector=vector,
            sparse_vector=sparse_vector,
            k=k,
            dense_k=dense_k,
            sparse_k=sparse_k,
            ranker=ranker,
            ranker_params=ranker_params,
            filter=filter,
            search_params=search_params,
            sparse_search_params=sparse_search_params,
        )

    def full_text_search(
        self,
        query: str | None = None,
        *,
        k: int,
        sparse_vector: Any = None,
        filter: FilterLike = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> Op[list[Record]]:
        """BM25-only search (or the user-supplied sparse field); scores are BM25 scores,
        higher is better; see :func:`.hybrid.sparse_search`."""
        return hybrid.sparse_search(
            self,
            query,
            sparse_vector=sparse_vector,
            k=k,
            filter=filter,
            search_params=search_params,
        )

    def count(self) -> Op[int]:
        """Number of entities in the collection (0 if it does not exist)."""
        layout = yield from self.ready(loaded=True)
        if layout is None:
            return 0
        rows = yield self._rpc(
            "query", collection_name=layout.name, filter="", output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"]) if rows else 0


def _client_call(step: Rpc) -> tuple[str, dict[str, Any]]:
    """The pymilvus method and arguments for ``step``.

    ``delete_ids`` is a delete by primary keys, sent as our escaped ``pk in [...]`` filter:
    pymilvus' own ``delete(ids=...)`` pastes string ids between quotes unescaped, so an id
    containing a quote could change which rows are deleted.
    """
    if step.method != "delete_ids":
        return step.method, step.kwargs
    kwargs = dict(step.kwargs)
    kwargs["filter"] = ids_expr(kwargs.pop("pk_field"), kwargs.pop("ids"))
    return "delete", kwargs


def _cancel_requests(task: asyncio.Task[Any] | None) -> int:
    """Pending cancellation requests of ``task`` (Python 3.11+; 0 before)."""
    cancelling = getattr(task, "cancelling", None)
    return cancelling() if cancelling is not None else 0


_CLEAR_HINT = "drop() (LangChain) or clear() (LlamaIndex)"
_READS = frozenset({"search", "query", "get", "hybrid_search"})
_WRITES = frozenset({"insert", "upsert", "delete"})
#: Seconds the background connect of a new loop's client may take before it gives up.
_CONNECT_TIMEOUT = 10.0


def _reload_helps(step: Rpc, exc: BaseException) -> bool:
    """A read failed because the collection is not loaded, e.g. after a server restart."""
    return step.method in _READS and faults.collection_not_loaded(exc)


def _load_kwargs(step: Rpc) -> dict[str, Any]:
    kwargs = {"collection_name": step.kwargs["collection_name"]}
    if step.kwargs.get("timeout") is not None:
        kwargs["timeout"] = step.kwargs["timeout"]
    return kwargs


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` if it is still running and wait for it to end."""
    if task is not None and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _lock_wait(deadline: Deadline, what: str) -> float | None:
    """``timeout=`` for an aiologic lock acquired by ``deadline`` (None: no limit)."""
    return deadline.remaining(what)


def _bounded(kwargs: dict[str, Any], deadline: Deadline, what: str) -> dict[str, Any]:
    """``kwargs`` with a gRPC ``timeout`` no later than ``deadline`` (raises past it)."""
    left = deadline.remaining(what)
    if left is None:
        return kwargs
    timeout = kwargs.get("timeout")
    return {**kwargs, "timeout": left if timeout is None else min(float(timeout), left)}


def _with_timeout(step: Step, timeout: float | None) -> Step:
    if timeout is None or not isinstance(step, Rpc) or "timeout" in step.kwargs:
        return step
    return Rpc(step.method, {**step.kwargs, "timeout": timeout})


def _result_ids(result: Any) -> list[Any]:
    if isinstance(result, Mapping):
        return list(result.get("ids", []))
    return list(getattr(result, "primary_keys", []) or [])

"""Connections to one Milvus collection: the sync client, one async client per event loop,
and every RPC sent through them, retried, bounded by its deadline and serialised on Lite.

- **Clients.** The sync ``MilvusClient`` is created on first use; each event loop gets its
  own ``AsyncMilvusClient`` (a grpc.aio channel binds to one loop), connected once in the
  background while the loop's first call is still embedding, and closed when the store is
  closed on that loop or the loop shuts down (:meth:`Connection._loop_sentinel`).
- **First contact.** A server nobody answers at fails at once (:mod:`.reachability`); an
  embedded file another process holds says so.
- **Retries.** :meth:`Connection.call` / :meth:`Connection.acall` retry transient failures of
  requests that are safe to send again (:mod:`.faults`, :class:`RetrySettings`); an insert
  is re-sent as an upsert so a first attempt that landed is not duplicated.
- **Milvus Lite** gets its writes one at a time per collection in the process
  (:mod:`.lite_writes`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from typing import Any

from vd_integrations.core.deadlines import NO_DEADLINE, Deadline
from vd_integrations.core.errors import (
    MilvusOperationError,
    OperationTimeoutError,
    StoreClosedError,
)
from vd_integrations.core.loops import PerLoop, cancel_requests, finalizes_async_generators
from vd_integrations.core.retry import RetrySettings, acall_with_retry, call_with_retry
from vd_integrations.milvus import faults
from vd_integrations.milvus.config import ConnectionConfig
from vd_integrations.milvus.lite_writes import collection_write_lock
from vd_integrations.milvus.reachability import acheck_reachable, check_reachable
from vd_integrations.milvus.rpc import READS, WRITES, Rpc, client_call, is_write, load_kwargs

__all__ = ["CONNECT_TIMEOUT", "DEFAULT_RPC_RETRY", "Connection", "LoopClient"]

#: Retries for transient RPC failures: about 15 s of backoff, enough for a Milvus Lite
#: server or a standalone Milvus to restart, bounded by a per-call ``timeout`` if given.
DEFAULT_RPC_RETRY = RetrySettings(
    max_attempts=8, initial_backoff=0.2, max_backoff=4.0, multiplier=2.0, jitter=0.5, deadline=60.0
)
#: Seconds the connect of a new loop's client may take before it gives up.
CONNECT_TIMEOUT = 10.0


@dataclass
class LoopClient:
    """One event loop's async client and what goes with it."""

    client: Any
    #: Caps the RPCs in flight on this loop.
    rpc_slots: asyncio.Semaphore
    #: Whether the client's channel is open (see :meth:`Connection.aensure_connected`).
    connected: bool = False
    #: The connect in progress or done.
    connecting: asyncio.Task[None] | None = None
    #: Closes the client when the loop shuts down (see ``Connection._loop_sentinel``).
    sentinel: AsyncGenerator[None, None] | None = None
    #: The sentinel was started (so the loop knows it).
    armed: bool = False
    #: The client was closed (by ``aclose`` or at the loop's shutdown).
    released: bool = False


class Connection:
    """The clients of one collection and the RPCs sent through them (see the module doc)."""

    def __init__(
        self,
        config: ConnectionConfig,
        collection: str,
        *,
        retry: RetrySettings,
        max_concurrent_rpcs: int,
        auto_id: Callable[[], bool],
    ) -> None:
        """``auto_id()`` tells whether the collection assigns primary keys (an insert into
        it is re-sent only when it certainly never arrived)."""
        self.config = config
        self.collection = collection
        self.retry = retry
        self.max_concurrent_rpcs = max_concurrent_rpcs
        self._auto_id = auto_id
        self._sync_client: Any = None
        self._client_lock = threading.Lock()
        self.loops: PerLoop[LoopClient] = PerLoop(self._new_loop_client)
        self.closed = False
        #: Whether writes must be sent one at a time (Milvus Lite); None until known.
        self._serial_writes: bool | None = True if config.is_embedded else None
        #: Held by every write when writes go one at a time (see :mod:`.lite_writes`).
        self._write_lock = collection_write_lock(
            config.uri, embedded=config.is_embedded, db_name=config.db_name, collection=collection
        )
        #: RPCs sent to Milvus so far, by pymilvus method (merged calls count once).
        self.rpc_counts: Counter[str] = Counter()

    def check_open(self) -> None:
        """Raise :class:`StoreClosedError` once the store is closed."""
        if self.closed:
            raise StoreClosedError(
                f"The store for collection {self.collection!r} is closed; create a new one."
            )

    # ----- clients ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The sync ``MilvusClient`` (created on first use)."""
        return self.client_within(NO_DEADLINE)

    def client_within(self, deadline: Deadline) -> Any:
        """The sync client; creating it (the first contact) ends by ``deadline``."""
        self.check_open()
        if self._sync_client is None:
            with self._client_lock:
                if self._sync_client is None:
                    from pymilvus import MilvusClient

                    what = f"Connecting to Milvus for collection {self.collection!r}"
                    left = deadline.remaining(what)
                    check_reachable(self.config, left)
                    kwargs = self.config.client_kwargs()
                    if left is None:
                        self._sync_client = MilvusClient(**kwargs)
                    else:
                        if kwargs.get("timeout") is None:
                            kwargs["timeout"] = left  # pymilvus' connect timeout
                        self._sync_client = _within(
                            deadline, left, lambda: MilvusClient(**kwargs), what
                        )
        return self._sync_client

    @property
    def aclient(self) -> Any:
        """The running loop's ``AsyncMilvusClient`` (call from a coroutine)."""
        self.check_open()
        return self.loops.get().client

    def make_async_client(self) -> Any:
        """A new ``AsyncMilvusClient`` for a loop (tests wrap it to count or slow calls)."""
        from pymilvus import AsyncMilvusClient

        return AsyncMilvusClient(**self.config.client_kwargs())

    def _new_loop_client(self) -> LoopClient:
        self.check_open()  # a closed store opens no new connections
        loop_client = LoopClient(
            self.make_async_client(), asyncio.Semaphore(self.max_concurrent_rpcs)
        )
        loop_client.sentinel = self._loop_sentinel(loop_client)
        # Open the channel (10-25 ms) while the loop's first call is still embedding.
        self._start_connect(loop_client)
        return loop_client

    def _start_connect(self, loop_client: LoopClient) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._aconnect(loop_client))
        # A failed background connect is the business of the call that awaits it next.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        loop_client.connecting = task
        return task

    async def aensure_connected(self, loop_client: LoopClient) -> None:
        """Wait until the loop's client is connected. One connect at a time per client:
        pymilvus opens a second channel (never closed) for a call racing the first."""
        while not loop_client.connected:
            task = loop_client.connecting
            if task is None or (task.done() and (task.cancelled() or task.exception())):
                task = self._start_connect(loop_client)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled() and not cancel_requests(asyncio.current_task()):
                    self.check_open()  # aclose() cancelled the connect: the store is closed
                raise

    async def _aconnect(self, loop_client: LoopClient) -> None:
        """Connect the loop's client, learning on the way whether the server is Milvus
        Lite, and arm the sentinel that closes the client when the loop shuts down."""
        if loop_client.connected:
            return
        loop = asyncio.get_running_loop()
        if not loop_client.armed and loop_client.sentinel and finalizes_async_generators(loop):
            loop_client.armed = True
            await loop_client.sentinel.__anext__()  # the loop now finalises it at shutdown
        await acheck_reachable(self.config)
        version = str(await loop_client.client.get_server_version(timeout=CONNECT_TIMEOUT))
        if self._serial_writes is None:
            self._serial_writes = faults.is_milvus_lite(version)
        loop_client.connected = True

    async def _loop_sentinel(self, loop_client: LoopClient) -> AsyncGenerator[None, None]:
        """An async generator the loop finalises at shutdown (``asyncio.run`` and
        ``asyncio.Runner`` call ``loop.shutdown_asyncgens()``): a loop that ends without
        ``aclose()`` still closes its client, so 1,000 ``asyncio.run`` calls leave no
        connection behind. Started only on loops that finalise it properly (see
        :func:`~vd_integrations.core.loops.finalizes_async_generators`): closed synchronously,
        its ``finally`` would stop half-way, holding pymilvus' connection lock forever."""
        try:
            yield
        finally:
            await self._arelease(loop_client)

    @staticmethod
    async def _arelease(loop_client: LoopClient) -> None:
        if loop_client.released:
            return
        loop_client.released = True
        await _cancel(loop_client.connecting)
        await loop_client.client.close()

    async def acancel_connect(self) -> None:
        """Stop the running loop's connect if it is still going (a hung server)."""
        loop_client = self.loops.current()
        if loop_client is not None:
            await _cancel(loop_client.connecting)

    def close(self) -> Any:
        """Mark the connection closed (new calls raise StoreClosedError); return the sync
        client for the caller to close (closing may stop embedded Milvus Lite)."""
        self.closed = True
        client, self._sync_client = self._sync_client, None
        return client

    async def aclose_loop(self) -> None:
        """Close the running loop's async client (its calls in flight are done)."""
        loop_client = self.loops.pop_current()
        if loop_client is not None:
            await self._arelease(loop_client)
            if loop_client.sentinel is not None:
                await loop_client.sentinel.aclose()

    def embedded_open_error(self) -> MilvusOperationError:
        """Why embedded Milvus Lite could not open its database file, and what to do."""
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
        auto_id = self._auto_id()

        def retryable(exc: BaseException) -> bool:
            return faults.is_transient(exc) and faults.safe_to_retry(
                step.method, exc, auto_id=auto_id
            )

        return settings, retryable

    def _resend_as(self, step: Rpc) -> Rpc:
        """What a retry sends: an insert with primary keys becomes an upsert, so a first
        attempt that was applied after all is not duplicated."""
        if step.method == "insert" and not self._auto_id():
            return Rpc("upsert", step.kwargs)
        return step

    def _operation_name(self, step: Rpc) -> str:
        return f"Milvus {step.method} on collection {self.collection!r}"

    def serialises(self, method: str) -> bool:
        """Whether RPCs of ``method`` run one at a time here (writes on Milvus Lite, or on a
        server not asked yet), so concurrent callers gain nothing from overlapping."""
        return is_write(method) and self._serial_writes is not False

    def merges_one_at_a_time(self, method: str) -> bool:
        """Whether merged batches of ``method`` go one at a time, each taking every caller
        that arrived while the one before was in flight: the writes :meth:`serialises`,
        and searches on Milvus Lite. Lite 3 is a Python server: each search pays a fixed
        cost (about 15 ms on 100 rows here, mostly a snapshot of the collection) on one
        interpreter, so four small searches at once cost four fixed costs and finish no
        sooner than one batch of them (50 unsynchronised clients: 40 ms a search instead of
        73, about 10% more searches a second). No lock is taken: this only shapes the batches."""
        return self.serialises(method) or (method == "search" and self._serial_writes is True)

    def _writes_one_at_a_time(self, client: Any) -> bool:
        if self._serial_writes is None:
            try:
                version: str | None = str(client.get_server_version())
            except Exception:
                version = None
            self._serial_writes = faults.is_milvus_lite(version)
        return self._serial_writes is not False  # unknown (server down?): the safe choice

    def call(self, step: Rpc, deadline: Deadline = NO_DEADLINE) -> Any:
        """One RPC on the sync client, retried per :attr:`retry`, ending by ``deadline``."""
        settings, retryable = self._retry_plan(step, deadline)
        attempts = iter([step])
        what = self._operation_name(step)

        def attempt() -> Any:
            method, kwargs = client_call(next(attempts, None) or self._resend_as(step))
            client = self.client_within(deadline)
            serial = method in WRITES and self._writes_one_at_a_time(client)
            if serial and not self._write_lock.green_acquire(timeout=deadline.remaining(what)):
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
                client.load_collection(**load_kwargs(Rpc(method, kwargs)))
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

    async def acall(self, step: Rpc) -> Any:
        """One RPC on the running loop's client within its RPC slots, retried per
        :attr:`retry` (the slot is released while backing off)."""
        settings, retryable = self._retry_plan(step)
        attempts = iter([step])

        async def attempt() -> Any:
            loop_client = self.loops.get()
            method, kwargs = client_call(next(attempts, None) or self._resend_as(step))
            await self.aensure_connected(loop_client)
            serial = self.serialises(method)
            client = loop_client.client
            async with loop_client.rpc_slots:
                self.rpc_counts[method] += 1
                try:
                    if step.method == "delete":
                        self.rpc_counts["query"] += 1
                        return await self._adelete_checked(client, step, kwargs, serial)
                    if serial:
                        async with self._write_lock:
                            return await getattr(client, method)(**kwargs)
                    return await getattr(client, method)(**kwargs)
                except Exception as exc:
                    if not _reload_helps(step, exc):
                        raise
                self.rpc_counts["load_collection"] += 1
                await client.load_collection(**load_kwargs(step))
                self.rpc_counts[method] += 1
                return await getattr(client, method)(**kwargs)

        return await acall_with_retry(
            attempt, settings, retryable, operation=self._operation_name(step)
        )

    async def _adelete_checked(
        self, client: Any, step: Rpc, kwargs: dict[str, Any], serial: bool
    ) -> Any:
        """A delete by expression, with the filter checked by a query sent alongside it.

        AsyncMilvusClient.delete ignores the server's status, so a malformed expression
        would "succeed" silently (having deleted nothing); the probe raises on it. Sent
        together rather than one after the other, the probe costs no extra round trip.
        """
        probe = asyncio.ensure_future(_acheck_filter(client, step))
        try:
            if serial:
                async with self._write_lock:
                    result = await client.delete(**kwargs)
            else:
                result = await client.delete(**kwargs)
        except BaseException:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
            raise
        await probe
        return result


async def _acheck_filter(client: Any, step: Rpc) -> None:
    """A one-row query with a delete's filter: raises if Milvus cannot parse it.

    Only the parse matters, not the rows, so it reads at ``Eventually``: at the collection's
    ``Session`` level a read right after this client's writes waits for the server's time
    tick (about 200 ms on Milvus 2.3, measured), and the delete would wait for its probe."""
    kwargs = step.kwargs
    probe = {"collection_name": kwargs["collection_name"], "filter": kwargs["filter"]}
    probe["limit"] = 1
    probe["output_fields"] = []
    probe["consistency_level"] = "Eventually"
    if kwargs.get("partition_name"):
        probe["partition_names"] = [kwargs["partition_name"]]
    if kwargs.get("timeout") is not None:
        probe["timeout"] = kwargs["timeout"]
    await client.query(**probe)


def _within(deadline: Deadline, seconds: float, make: Callable[[], Any], what: str) -> Any:
    """``make()`` (a new client), or ``deadline``'s error after ``seconds``.

    pymilvus 2.6's ``MilvusClient()`` asks the server for its type without a timeout, so
    against a hung server it blocks for a minute whatever ``timeout=`` says: it runs in a
    daemon thread here, and a client that arrives after the deadline is closed."""
    done = threading.Event()
    guard = threading.Lock()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            client = make()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
            done.set()
            return
        with guard:
            late = box.get("late", False)
            if not late:
                box["client"] = client
        if late:
            client.close()
        done.set()

    threading.Thread(target=run, name="milvus-connect", daemon=True).start()
    if not done.wait(seconds):
        with guard:
            if "client" not in box and "error" not in box:
                box["late"] = True
                raise deadline.error(what)
        done.wait()  # it arrived just now
    if "error" in box:
        raise box["error"]
    return box["client"]


def _reload_helps(step: Rpc, exc: BaseException) -> bool:
    """A read failed because the collection is not loaded, e.g. after a server restart."""
    return step.method in READS and faults.collection_not_loaded(exc)


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` if it is still running and wait for it to end."""
    if task is not None and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _bounded(kwargs: dict[str, Any], deadline: Deadline, what: str) -> dict[str, Any]:
    """``kwargs`` with a gRPC ``timeout`` no later than ``deadline`` (raises past it)."""
    left = deadline.remaining(what)
    if left is None:
        return kwargs
    timeout = kwargs.get("timeout")
    return {**kwargs, "timeout": left if timeout is None else min(float(timeout), left)}

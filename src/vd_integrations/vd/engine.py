"""The generic vd engine: every operation written once, run sync or async, on any vd backend.

Same design as :class:`~vd_integrations.milvus.engine.MilvusEngine`: operations are
generators that yield steps and receive their results. The engine-specific step is
:class:`VdCall` -- one call on the vd collection (or, for setup, on the vd client),
performed on the sync ``vd.Collection`` / the ``vd.AsyncCollection`` like this:

- ``add_documents``: ``col.add_documents(docs)`` / ``await acol.add_documents(docs)``
- ``get``: ``col[key]`` / ``await acol.get(key)``
- ``delete``: ``del col[key]`` / ``await acol.delete(key)``
- ``keys``: ``list(col)`` / ``[k async for k in acol.keys()]``
- ``count``: ``len(col)`` / ``await acol.count()``
- ``search``: ``list(col.search(vector, limit=, filter=))`` /
  ``[h async for h in acol.search(vector, limit=, filter=)]``

plus ``open_collection`` / ``create_collection`` / ``delete_collection`` on the client.

Clients: the sync client is ``vd.connect(backend, **kwargs)``, created on first use. The
async side uses the backend's registered native async client (``vd.connect_async``, one
per event loop) when it has one that really is native; otherwise it wraps *the same* sync
client in ``vd.AsyncClientWrapper``, so sync and async calls see the same data (essential
for the in-process ``memory`` backend, where a second client is a different, empty store).
Calls on a wrapped sync collection hold one lock, because vd's in-process adapters are not
thread-safe and the wrapper runs them on worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import vd
from vd.util import get_backend

from vd_integrations.core.errors import InvalidInputError, StoreClosedError
from vd_integrations.core.filters import refuse_delete_of_everything
from vd_integrations.core.loops import PerLoop, SingleFlight
from vd_integrations.core.mmr import maximal_marginal_relevance
from vd_integrations.core.ops import (
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
from vd_integrations.core.validation import (
    as_float_list,
    check_column,
    check_id_list,
    check_known_kwargs,
    check_metadata_depth,
    check_metadata_values,
    check_positive_int,
    check_same_length,
    check_text,
    check_unit_interval,
    check_utf8,
    check_vectors,
    parameter_names,
)
from vd_integrations.milvus.schema import Record

__all__ = ["VdCall", "VdEngine", "VdFilter", "check_connect_kwargs", "check_filter"]

_log = logging.getLogger(__name__)

T = TypeVar("T")
VdFilter = Mapping[str, Any] | None

METRICS = ("cosine", "dot", "l2")
_MMR_METRIC = {"cosine": "COSINE", "dot": "IP", "l2": "L2"}
_CLIENT_METHODS = frozenset({"open_collection", "create_collection", "delete_collection"})


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VdCall:
    """One call on the vd collection (or the client, for setup); see the module table."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


Step = VdCall | EmbedDocuments | EmbedQuery | Exclusive


def _sync_call(col: Any, step: VdCall) -> Any:
    """Perform a collection step on a sync ``vd.Collection``."""
    method, args, kwargs = step.method, step.args, step.kwargs
    if method == "add_documents":
        (docs,) = args
        if hasattr(col, "add_documents"):
            return col.add_documents(docs, **kwargs)
        for doc in docs:  # the minimal Collection protocol has no batch method
            col[doc.id] = doc
        return None
    if method == "get":
        return col[args[0]]
    if method == "delete":
        del col[args[0]]
        return None
    if method == "keys":
        return list(col)
    if method == "count":
        return len(col)
    if method == "search":
        return list(col.search(*args, **kwargs))
    raise ValueError(f"unknown vd collection call {method!r}")  # pragma: no cover


async def _async_call(acol: Any, step: VdCall) -> Any:
    """Perform a collection step on a ``vd.AsyncCollection``."""
    method, args, kwargs = step.method, step.args, step.kwargs
    if method == "add_documents":
        (docs,) = args
        if hasattr(acol, "add_documents"):
            return await acol.add_documents(docs, **kwargs)
        for doc in docs:
            await acol.set(doc.id, doc)
        return None
    if method == "get":
        return await acol.get(args[0])
    if method == "delete":
        return await acol.delete(args[0])
    if method == "keys":
        return [key async for key in acol.keys()]  # noqa: SIM118 - an async iterator
    if method == "count":
        return await acol.count()
    if method == "search":
        return [hit async for hit in acol.search(*args, **kwargs)]
    raise ValueError(f"unknown vd collection call {method!r}")  # pragma: no cover


class _Serialized:
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
class _LoopResources:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    connect_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    client: Any = None
    collection: Any = None
    generation: int = -1
    #: Setup runs, shared by concurrent callers (see ``Exclusive.key``).
    setup_tasks: SingleFlight = field(default_factory=SingleFlight)


# --------------------------------------------------------------------------------------------
# Pure validation and conversion helpers
# --------------------------------------------------------------------------------------------


#: vd's adapters that hand options they do not name to their native client (``qdrant`` to
#: ``QdrantClient``, ``redis`` to ``redis.Redis``): any name may be valid there.
_FORWARDING_BACKENDS = frozenset({"qdrant", "redis"})


def check_connect_kwargs(
    backend: str, kwargs: Mapping[str, Any], *, where: str, own: Iterable[str] = ()
) -> None:
    """Refuse connection options that vd's adapter for ``backend`` neither takes nor passes on
    (vd stores them and ignores them, so a misspelled option would be silently dropped), with
    a ``TypeError`` naming the closest valid one among the adapter's and ``own`` names.

    Adapters outside vd (a registered third-party backend) and those that forward unknown
    options to their native client are not checked: their valid names are not knowable.
    """
    if not kwargs or backend in _FORWARDING_BACKENDS:
        return
    try:
        client_class = get_backend(backend)
    except (ValueError, vd.BackendNotInstalledError):
        return  # VdEngine reports the backend itself
    if not getattr(client_class, "__module__", "").startswith("vd.backends."):
        return
    known = (parameter_names(client_class.__init__) - {"embedder"}) | set(own)
    check_known_kwargs(kwargs, known, where)


def _check_metric(metric: Any) -> str:
    if not isinstance(metric, str) or metric.strip().lower() not in METRICS:
        raise InvalidInputError(f"metric must be one of {list(METRICS)}, got {metric!r}.")
    return metric.strip().lower()


def _check_ids(ids: list[Any] | None, n: int) -> list[str]:
    """The ids to write: given ones checked, missing ones (``None``) generated."""
    if ids is None:
        ids = [None] * n
    keys: list[str] = []
    seen: set[str] = set()
    for i, key in enumerate(ids):
        if key is None:
            key = uuid.uuid4().hex
        elif not isinstance(key, str):
            raise InvalidInputError(
                f"id #{i} is {key!r} ({type(key).__name__}); ids must be strings, "
                f"convert them with str()."
            )
        elif not key:
            raise InvalidInputError(f"id #{i} is empty; ids must be non-empty strings.")
        else:
            check_utf8(key, f"id #{i}")
        if key in seen:
            raise InvalidInputError(f"Duplicate id {key!r} in one call; ids must be unique.")
        seen.add(key)
        keys.append(key)
    return keys


def _check_lookup_ids(ids: Iterable[Any], what: str) -> list[str]:
    """Ids to read or delete: strings, duplicates dropped, order kept."""
    out = list(dict.fromkeys(check_id_list(ids, f"{what} ids") or ()))
    for key in out:
        if not isinstance(key, str):
            raise InvalidInputError(
                f"{what} ids must be strings, got {key!r} ({type(key).__name__})."
            )
    return out


def _check_metadata(index: int, metadata: Any) -> dict[str, Any]:
    """A JSON-normalised copy of ``metadata``, or :class:`InvalidInputError`."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata #{index} must be a dict, got {type(metadata).__name__}.")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(
                f"metadata #{index} has key {key!r}; metadata keys must be non-empty strings."
            )
        check_metadata_depth(index, {key: value})  # before the recursive encoder below
        try:
            json.dumps(value, allow_nan=False)  # its own message for sets, bytes, objects, NaN
        except (TypeError, ValueError):
            pass
        else:
            check_metadata_values(index, {key: value})
        try:
            out[key] = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"metadata #{index} key {key!r} has a value that cannot be stored "
                f"({type(value).__name__}: {exc}); use str, int, float, bool, None, or "
                f"lists/dicts of those (no NaN or infinity)."
            ) from None
    return out


def check_filter(filter: Any) -> dict[str, Any] | None:
    """A validated vd dict filter (``None`` for no filter); raises ``vd.UnsupportedFilterError``."""
    if filter is None or filter == "":
        return None
    if isinstance(filter, str):
        raise vd.UnsupportedFilterError(
            f"Generic vd stores take dict filters in the vd filter language, e.g. "
            f"{{'year': {{'$gte': 2020}}, 'topic': {{'$in': ['ai', 'ml']}}}}; got the string "
            f"{filter!r}. Milvus boolean expressions only work with langchain_vd.Milvus."
        )
    _check_filter_shape(filter, "filter")
    flt = dict(filter)
    vd.validate_filter(flt)
    return flt or None


def _check_filter_shape(filter: Any, path: str) -> None:
    if not isinstance(filter, Mapping):
        raise vd.UnsupportedFilterError(
            f"{path} must be a dict in the vd filter language, got {type(filter).__name__}."
        )
    for key, condition in filter.items():
        if not isinstance(key, str):
            raise vd.UnsupportedFilterError(f"{path} has key {key!r}; keys must be strings.")
        if key in ("$and", "$or"):
            if not isinstance(condition, (list, tuple)):
                raise vd.UnsupportedFilterError(
                    f"{path}[{key!r}] must be a list of filters, got {type(condition).__name__}."
                )
            for i, sub in enumerate(condition):
                _check_filter_shape(sub, f"{path}[{key!r}][{i}]")
        elif key == "$not":
            _check_filter_shape(condition, f"{path}['$not']")
        elif isinstance(condition, Mapping):
            for op, operand in condition.items():
                if op in ("$in", "$nin") and not isinstance(operand, (list, tuple, set)):
                    raise vd.UnsupportedFilterError(
                        f"{path}[{key!r}][{op!r}] takes a list, got {type(operand).__name__}."
                    )


def _record_from_hit(hit: Mapping[str, Any]) -> Record:
    return Record(
        id=str(hit["id"]),
        text=hit.get("text") or "",
        metadata=copy.deepcopy(dict(hit.get("metadata") or {})),
        score=float(hit["score"]),
    )


def _record_from_doc(doc: Any, *, with_vector: bool = False) -> Record:
    vector = as_float_list(doc.vector) if with_vector and doc.vector is not None else None
    return Record(
        id=str(doc.id),
        text=doc.text or "",
        metadata=copy.deepcopy(dict(doc.metadata or {})),
        vector=vector,
    )


def _collection_info(collection: Any) -> tuple[int | None, str | None]:
    """(dimension, metric) of a vd collection handle (sync, async or wrapped)."""
    target = getattr(collection, "sync", collection)
    dim = getattr(target, "dimension", None)
    metric = getattr(target, "metric", None)
    metric = metric.lower() if isinstance(metric, str) and metric.lower() in METRICS else None
    return (int(dim) if dim else None), metric


def _clamp01(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def _similarity_relevance(score: float) -> float:
    return _clamp01((float(score) + 1.0) / 2.0)


def _l2_relevance(score: float) -> float:
    return _clamp01(score)


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class VdEngine:
    """One collection of any vd backend, reachable sync and async. Framework-free.

    Nothing is connected in the constructor; the collection is created by the first write
    (once, under the setup lock). Scores are vd's: higher is better, cosine in [-1, 1],
    dot the raw inner product, l2 ``1 / (1 + distance)``; :meth:`relevance_fn` maps
    them to [0, 1].
    """

    def __init__(
        self,
        backend: str = "memory",
        collection_name: str = "default",
        metric: str = "cosine",
        embedder: Embedder | None = None,
        **connect_kwargs: Any,
    ) -> None:
        if not isinstance(collection_name, str) or not collection_name:
            raise InvalidInputError("collection_name must be a non-empty string.")
        if not isinstance(backend, str):
            raise InvalidInputError(f"backend must be a vd backend name, got {backend!r}.")
        try:
            get_backend(backend)  # a registry lookup: says how to install a known backend
        except vd.BackendNotInstalledError:
            raise
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        check_connect_kwargs(
            backend, connect_kwargs, where="VdEngine()", own=parameter_names(VdEngine.__init__)
        )
        self.backend = backend
        self.collection_name = collection_name
        self.embedder = embedder
        self.connect_kwargs = dict(connect_kwargs)
        self._metric = _check_metric(metric)
        self._dim: int | None = None
        self._ready = False
        self._generation = 0
        self._sync_client: Any = None
        self._sync_collection: tuple[int, Any] | None = None
        self._client_lock = threading.Lock()
        self._setup_lock = threading.Lock()
        self._call_lock = threading.RLock()
        self._async = PerLoop(_LoopResources)
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"VdEngine(backend={self.backend!r}, collection_name={self.collection_name!r}, "
            f"metric={self._metric!r})"
        )

    # ----- properties ---------------------------------------------------------------------

    @property
    def metric(self) -> str:
        """The collection's metric (an existing collection's own metric once opened)."""
        return self._metric

    @property
    def dimension(self) -> int | None:
        """The collection's vector dimension, once known."""
        return self._dim

    def relevance_fn(self) -> Callable[[float], float]:
        """Map a raw vd score to [0, 1]: cosine/dot ``(s + 1) / 2`` (clamped), l2 ``s``."""
        return _l2_relevance if self._metric == "l2" else _similarity_relevance

    # ----- clients ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The sync vd client (created on first use)."""
        self._check_open()
        if self._sync_client is None:
            with self._client_lock:
                if self._sync_client is None:
                    self._sync_client = vd.connect(self.backend, **self.connect_kwargs)
        return self._sync_client

    def _collection(self) -> Any:
        """The sync collection handle (serialized), refetched after a drop."""
        cached = self._sync_collection
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        handle = _Serialized(self.client.get_collection(self.collection_name), self._call_lock)
        self._sync_collection = (self._generation, handle)
        return handle

    async def _aclient(self, res: _LoopResources) -> Any:
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
        return vd.AsyncCollectionWrapper(_Serialized(acol.sync, self._call_lock))

    async def _acollection(self, res: _LoopResources) -> Any:
        if res.collection is None or res.generation != self._generation:
            client = await self._aclient(res)
            res.collection = self._wrap_async(await client.get_collection(self.collection_name))
            res.generation = self._generation
        return res.collection

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(
                f"The store for vd collection {self.collection_name!r} ({self.backend}) is "
                f"closed; create a new one."
            )

    # ----- drivers ------------------------------------------------------------------------

    def run(self, op: Op[T], *, timeout: float | None = None) -> T:
        """Drive ``op`` to completion with blocking calls (vd has no per-call timeout)."""
        self._check_open()
        return drive(op, self._perform)

    async def arun(self, op: Op[T], *, timeout: float | None = None) -> T:
        """Drive ``op`` to completion on the running loop; ``timeout`` bounds the whole call
        (vd backends take no per-request timeout, so it is enforced here)."""
        self._check_open()
        if timeout is None:
            return await adrive(op, self._aperform)
        return await asyncio.wait_for(adrive(op, self._aperform), timeout)

    def _perform(self, step: Step) -> Any:
        if isinstance(step, VdCall):
            if step.method in _CLIENT_METHODS:
                return self._client_call(step)
            return _sync_call(self._collection(), step)
        if isinstance(step, Exclusive):
            with self._setup_lock:
                return self.run(step.op)
        return embed_sync(require_embedder(self.embedder), step)

    async def _aperform(self, step: Step) -> Any:
        if isinstance(step, VdCall):
            res = self._async.get()
            if step.method in _CLIENT_METHODS:
                return await self._aclient_call(res, step)
            return await _async_call(await self._acollection(res), step)
        if isinstance(step, Exclusive):
            tasks = self._async.get().setup_tasks
            return await tasks.run(step.key, lambda: self._aexclusive(step.op))
        return await embed_async(require_embedder(self.embedder), step)

    async def _aexclusive(self, op: Op[T]) -> T:
        async with self._async.get().lock:
            return await self.arun(op)

    def _client_call(self, step: VdCall) -> Any:
        client, name = self.client, self.collection_name
        if step.method == "delete_collection":
            return client.delete_collection(name)
        if step.method == "open_collection":
            collection = client.get_collection(name)
        else:
            collection = client.get_or_create_collection(name, **step.kwargs)
        self._sync_collection = (self._generation, _Serialized(collection, self._call_lock))
        return _collection_info(collection)

    async def _aclient_call(self, res: _LoopResources, step: VdCall) -> Any:
        client, name = await self._aclient(res), self.collection_name
        if step.method == "delete_collection":
            return await client.delete_collection(name)
        if step.method == "open_collection":
            collection = await client.get_collection(name)
        else:
            collection = await client.get_or_create_collection(name, **step.kwargs)
        res.collection, res.generation = self._wrap_async(collection), self._generation
        return _collection_info(collection)

    # ----- lifecycle ----------------------------------------------------------------------

    def _detach_sync_client(self) -> Any:
        """Mark the engine closed (new calls raise StoreClosedError); return the sync client."""
        self._closed = True
        client, self._sync_client = self._sync_client, None
        self._sync_collection = None
        return client

    def close(self) -> None:
        """Close the store and its sync client. Each event loop's async client belongs to
        that loop: calls in flight there finish, and ``aclose()`` there releases it."""
        close = getattr(self._detach_sync_client(), "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Close the store (see :meth:`close`) and the running loop's native async client.
        Safe to call more than once, from every loop."""
        res = self._async.pop_current()
        close = getattr(self._detach_sync_client(), "close", None)
        if res is not None and getattr(res.client, "native_async", False):
            await res.client.close()
        if close is not None:
            await asyncio.to_thread(close)

    # ----- collection setup (ops) ---------------------------------------------------------

    def ready(self, dim: int | None = None) -> Op[bool]:
        """Whether the collection exists; with ``dim``, create it if it is missing."""
        if self._ready:
            return True
        return (yield Exclusive(self._setup(dim), key=("setup", dim)))

    def _setup(self, dim: int | None) -> Op[bool]:
        if self._ready:
            return True
        try:
            info = yield VdCall("open_collection")
        except KeyError:
            if dim is None:
                return False
            create = VdCall("create_collection", kwargs={"dimension": dim, "metric": self._metric})
            try:
                info = yield create
            except ValueError as exc:  # created concurrently by another client: use it
                try:
                    info = yield VdCall("open_collection")
                except KeyError:
                    raise exc from None
        found_dim, found_metric = info
        if found_dim is None:  # the adapter does not record it: learn it from a document
            keys = yield VdCall("keys")
            for key in keys[:1]:
                with contextlib.suppress(KeyError):
                    doc = yield VdCall("get", (key,))
                    found_dim = len(doc.vector) if doc.vector is not None else None
        self._dim = found_dim or dim
        self._metric = found_metric or self._metric
        self._ready = True
        return True

    def drop(self) -> Op[None]:
        """Drop the collection (a later write creates it again)."""
        yield Exclusive(self._drop())

    def _drop(self) -> Op[None]:
        with contextlib.suppress(KeyError):  # already gone
            yield VdCall("delete_collection")
        self._ready = False
        self._dim = None
        self._generation += 1

    # ----- writes -------------------------------------------------------------------------

    def add(
        self,
        texts: Iterable[str],
        vectors: Sequence[Sequence[float]] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        *,
        batch_size: int = 100,
        on_batch: Callable[[int], None] | None = None,
    ) -> Op[list[str]]:
        """Embed (unless ``vectors``) and write texts; an existing id is replaced. Returns ids.

        Everything is checked before the first write: lengths, ids, texts, metadata, and
        the vectors' dimension (the embedder's output too).
        """
        check_column(texts, "texts", optional=False)
        for name, column in (("vectors", vectors), ("metadatas", metadatas), ("ids", ids)):
            check_column(column, name)
        texts = list(texts)
        metadatas = None if metadatas is None else list(metadatas)
        ids = None if ids is None else list(ids)
        vectors = None if vectors is None else list(vectors)
        n = check_same_length(texts=texts, metadatas=metadatas, ids=ids, vectors=vectors)
        check_positive_int(batch_size, "batch_size")
        for i, text in enumerate(texts):
            check_text(i, text)
        keys = _check_ids(ids, n)
        metas = [_check_metadata(i, m) for i, m in enumerate(metadatas or [None] * n)]
        checked = None if vectors is None else check_vectors(vectors, dim=None, what="embedding")
        if n == 0:
            return []
        exists = yield from self.ready()
        dim = self._dim if exists else None
        if checked is None:
            embedded = yield EmbedDocuments(texts)
            if len(embedded) != n:
                raise InvalidInputError(
                    f"The embedding function returned {len(embedded)} vectors for {n} texts."
                )
            checked = check_vectors(embedded, dim=dim, what="embedding")
        else:
            checked = check_vectors(checked, dim=dim, what="embedding")
        yield from self.ready(len(checked[0]))
        if self._dim is not None and self._dim != len(checked[0]):  # raced with a drop/create
            raise InvalidInputError(
                f"Vectors have dimension {len(checked[0])} but collection "
                f"{self.collection_name!r} has dimension {self._dim}."
            )
        docs = [
            vd.Document(id=key, text=text, vector=vector, metadata=meta)
            for key, text, vector, meta in zip(keys, texts, checked, metas, strict=True)
        ]
        yield VdCall("add_documents", (docs,), {"batch_size": batch_size})
        if on_batch is not None:
            on_batch(n)
        return keys

    def delete(self, ids: Sequence[str] | None = None, filter: VdFilter = None) -> Op[int]:
        """Delete by ids and/or a dict filter (both: the intersection). Missing ids are fine.

        Returns the number of documents deleted.
        """
        flt = check_filter(filter)
        if ids is None and flt is None:
            raise InvalidInputError("delete needs ids or a filter.")
        if ids is None:
            refuse_delete_of_everything(flt, clear="drop() (LangChain) or clear() (LlamaIndex)")
        keys = None if ids is None else _check_lookup_ids(ids, "delete")
        if keys == [] or not (yield from self.ready()):
            return 0
        if flt is not None:
            matches = yield from self.query(flt, ids=keys)
            keys = [record.id for record in matches]
        deleted = 0
        for key in keys or ():
            try:
                yield VdCall("delete", (key,))
            except KeyError:
                continue
            deleted += 1
        return deleted

    # ----- reads --------------------------------------------------------------------------

    def search(
        self, vectors: Sequence[Sequence[float]], *, k: int, filter: VdFilter = None
    ) -> Op[list[list[Record]]]:
        """The ``k`` nearest documents to each vector, with vd scores (higher is better)."""
        check_positive_int(k)
        flt = check_filter(filter)
        queries = check_vectors(vectors, dim=None, what="query vector")
        if not (yield from self.ready()):
            return [[] for _ in queries]
        queries = check_vectors(queries, dim=self._dim, what="query vector")
        out: list[list[Record]] = []
        for query in queries:
            hits = yield VdCall("search", (query,), {"limit": k, "filter": flt})
            out.append([_record_from_hit(hit) for hit in hits])
        return out

    def search_text(self, query: str, *, k: int, filter: VdFilter = None) -> Op[list[Record]]:
        """Embed ``query`` and search."""
        check_positive_int(k)
        check_filter(filter)
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a str, got {type(query).__name__}.")
        vector = yield EmbedQuery(query)
        return (yield from self.search([vector], k=k, filter=filter))[0]

    def mmr(
        self,
        vector: Sequence[float] | None = None,
        *,
        query: str | None = None,
        k: int,
        fetch_k: int,
        lambda_mult: float = 0.5,
        filter: VdFilter = None,
    ) -> Op[list[Record]]:
        """Maximal marginal relevance over the ``fetch_k`` nearest, on the stored vectors."""
        check_positive_int(k)
        check_positive_int(fetch_k, "fetch_k")
        check_unit_interval(lambda_mult, "lambda_mult")
        check_filter(filter)
        if vector is None:
            if not isinstance(query, str):
                raise InvalidInputError("mmr needs a query string or a query vector.")
            vector = yield EmbedQuery(query)
        (query_vector,) = check_vectors([vector], dim=None, what="query vector")
        hits = (yield from self.search([query_vector], k=max(fetch_k, k), filter=filter))[0]
        candidates: list[Record] = []
        vectors: list[list[float]] = []
        for hit in hits:  # vd search results carry no vectors: fetch them by id
            try:
                doc = yield VdCall("get", (hit.id,))
            except KeyError:  # deleted meanwhile
                continue
            if doc.vector is not None:
                vectors.append(as_float_list(doc.vector))
                candidates.append(replace(hit, vector=vectors[-1]))
        if not candidates:
            return []
        order = maximal_marginal_relevance(
            query_vector,
            vectors,
            k=k,
            lambda_mult=float(lambda_mult),
            metric=_MMR_METRIC[self._metric],
        )
        return [candidates[i] for i in order]

    def query(
        self,
        filter: VdFilter = None,
        *,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
        with_vectors: bool = False,
    ) -> Op[list[Record]]:
        """Documents matching a dict filter and/or ids (a metadata scan, no vector search)."""
        if limit is not None:
            check_positive_int(limit, "limit")
        flt = check_filter(filter)
        keys = None if ids is None else _check_lookup_ids(ids, "query")
        if keys == [] or not (yield from self.ready()):
            return []
        if keys is None:
            keys = yield VdCall("keys")
        out: list[Record] = []
        for key in keys:
            try:
                doc = yield VdCall("get", (key,))
            except KeyError:
                continue
            if flt is not None and not vd.matches_filter(doc.metadata or {}, flt):
                continue
            out.append(_record_from_doc(doc, with_vector=with_vectors))
            if limit is not None and len(out) >= limit:
                break
        return out

    def count(self) -> Op[int]:
        """Number of documents (0 if the collection does not exist)."""
        if not (yield from self.ready()):
            return 0
        return int((yield VdCall("count")))

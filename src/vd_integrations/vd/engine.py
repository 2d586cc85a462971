"""The generic vd engine: every operation written once, run sync or async, on any vd backend.

Same design as :class:`~vd_integrations.milvus.engine.MilvusEngine`: operations are
generators that yield steps and receive their results. The engine-specific step is
:class:`~vd_integrations.vd.steps.VdCall` -- one call on the vd collection (or, for setup,
on the vd client); :mod:`.steps` says how each is performed sync and async, and
:class:`~vd_integrations.vd.connection.VdConnection` holds the clients that perform them.
Inputs are checked by :mod:`.inputs`; results become Records in :mod:`.records`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import vd

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import refuse_delete_of_everything
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
    check_positive_int,
    check_unit_interval,
    check_vectors,
    parameter_names,
)
from vd_integrations.milvus.schema import Record
from vd_integrations.vd.connection import VdConnection
from vd_integrations.vd.inputs import (
    VdFilter,
    check_backend,
    check_connect_kwargs,
    check_filter,
    check_lookup_ids,
    check_metric,
    check_rows,
)
from vd_integrations.vd.records import MMR_METRIC, record_from_doc, record_from_hit, relevance_fn
from vd_integrations.vd.steps import Step, VdCall

__all__ = ["VdCall", "VdEngine", "VdFilter", "check_connect_kwargs", "check_filter"]

T = TypeVar("T")


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
        check_backend(backend)
        check_connect_kwargs(
            backend, connect_kwargs, where="VdEngine()", own=parameter_names(VdEngine.__init__)
        )
        self.backend = backend
        self.collection_name = collection_name
        self.embedder = embedder
        self.connect_kwargs = dict(connect_kwargs)
        self._metric = check_metric(metric)
        self._dim: int | None = None
        self._ready = False
        self._setup_lock = threading.Lock()
        #: The clients and collection handles (see :mod:`.connection`).
        self.connection = VdConnection(backend, collection_name, self.connect_kwargs)
        self._async = self.connection.loops

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

    @property
    def client(self) -> Any:
        """The sync vd client (created on first use; see :class:`.connection.VdConnection`)."""
        return self.connection.client

    def relevance_fn(self) -> Callable[[float], float]:
        """Map a raw vd score to [0, 1]: cosine/dot ``(s + 1) / 2`` (clamped), l2 ``s``."""
        return relevance_fn(self._metric)

    # ----- drivers ------------------------------------------------------------------------

    def run(self, op: Op[T], *, timeout: float | None = None) -> T:
        """Drive ``op`` to completion with blocking calls (vd has no per-call timeout)."""
        self.connection.check_open()
        return drive(op, self._perform)

    async def arun(self, op: Op[T], *, timeout: float | None = None) -> T:
        """Drive ``op`` to completion on the running loop; ``timeout`` bounds the whole call
        (vd backends take no per-request timeout, so it is enforced here)."""
        self.connection.check_open()
        if timeout is None:
            return await adrive(op, self._aperform)
        return await asyncio.wait_for(adrive(op, self._aperform), timeout)

    def _perform(self, step: Step) -> Any:
        if isinstance(step, VdCall):
            return self.connection.call(step)
        if isinstance(step, Exclusive):
            with self._setup_lock:
                return self.run(step.op)
        return embed_sync(require_embedder(self.embedder), step)

    async def _aperform(self, step: Step) -> Any:
        if isinstance(step, VdCall):
            return await self.connection.acall(step)
        if isinstance(step, Exclusive):
            tasks = self._async.get().setup_tasks
            return await tasks.run(step.key, lambda: self._aexclusive(step.op))
        return await embed_async(require_embedder(self.embedder), step)

    async def _aexclusive(self, op: Op[T]) -> T:
        async with self._async.get().lock:
            return await self.arun(op)

    # ----- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the store and its sync client. Each event loop's async client belongs to
        that loop: calls in flight there finish, and ``aclose()`` there releases it."""
        self.connection.close()

    async def aclose(self) -> None:
        """Close the store (see :meth:`close`) and the running loop's native async client.
        Safe to call more than once, from every loop."""
        await self.connection.aclose()

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
        self.connection.forget_collection()

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
        rows = check_rows(texts, vectors, metadatas, ids, batch_size=batch_size)
        n = len(rows.ids)
        if n == 0:
            return []
        exists = yield from self.ready()
        dim = self._dim if exists else None
        if rows.vectors is None:
            embedded = yield EmbedDocuments(rows.texts)
            if len(embedded) != n:
                raise InvalidInputError(
                    f"The embedding function returned {len(embedded)} vectors for {n} texts."
                )
            checked = check_vectors(embedded, dim=dim, what="embedding")
        else:
            checked = check_vectors(rows.vectors, dim=dim, what="embedding")
        yield from self.ready(len(checked[0]))
        if self._dim is not None and self._dim != len(checked[0]):  # raced with a drop/create
            raise InvalidInputError(
                f"Vectors have dimension {len(checked[0])} but collection "
                f"{self.collection_name!r} has dimension {self._dim}."
            )
        docs = [
            vd.Document(id=key, text=text, vector=vector, metadata=meta)
            for key, text, vector, meta in zip(
                rows.ids, rows.texts, checked, rows.metadatas, strict=True
            )
        ]
        yield VdCall("add_documents", (docs,), {"batch_size": batch_size})
        if on_batch is not None:
            on_batch(n)
        return rows.ids

    def delete(self, ids: Sequence[str] | None = None, filter: VdFilter = None) -> Op[int]:
        """Delete by ids and/or a dict filter (both: the intersection). Missing ids are fine.

        Returns the number of documents deleted.
        """
        flt = check_filter(filter)
        if ids is None and flt is None:
            raise InvalidInputError("delete needs ids or a filter.")
        if ids is None:
            refuse_delete_of_everything(flt, clear="drop() (LangChain) or clear() (LlamaIndex)")
        keys = None if ids is None else check_lookup_ids(ids, "delete")
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
            out.append([record_from_hit(hit) for hit in hits])
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
            metric=MMR_METRIC[self._metric],
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
        keys = None if ids is None else check_lookup_ids(ids, "query")
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
            out.append(record_from_doc(doc, with_vector=with_vectors))
            if limit is not None and len(out) >= limit:
                break
        return out

    def count(self) -> Op[int]:
        """Number of documents (0 if the collection does not exist)."""
        if not (yield from self.ready()):
            return 0
        return int((yield VdCall("count")))

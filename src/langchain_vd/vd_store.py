"""``langchain_vd.VDVectorStore``: a LangChain vector store over any vd backend, sync and async.

The method surface matches :class:`langchain_vd.Milvus`. Every operation exists as a sync
method and an ``a``-prefixed twin; both run the same operation of the shared
:class:`~vd_integrations.vd_engine.VdEngine`, so they cannot disagree.

- Filters are vd dict filters (``{"year": {"$gte": 2020}}``), passed as ``filter=``
  (``expr=`` is accepted as an alias). Milvus expression strings are rejected.
- Adding with ids replaces (re-adding an id never duplicates).
- Returned documents carry ``Document.id`` and their metadata exactly as stored.
- Scores from ``similarity_search_with_score`` are vd's (higher is better: cosine in
  [-1, 1], dot the inner product, l2 ``1 / (1 + distance)``); relevance scores are in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from vd_integrations.errors import InvalidInputError
from vd_integrations.milvus.schema import Record
from vd_integrations.ops import Op
from vd_integrations.vd_engine import VdEngine, VdFilter

__all__ = ["VDVectorStore"]

_ADD_KWARGS = ("batch_size",)


def _to_document(record: Record) -> Document:
    return Document(page_content=record.text, metadata=record.metadata, id=record.id)


def _pick_filter(filter: Any, expr: Any) -> Any:
    """``filter=`` (LangChain retrievers) and ``expr=`` (langchain-milvus) name the same thing."""
    if filter not in (None, "", {}) and expr not in (None, "", {}):
        raise InvalidInputError("Pass the filter as filter= or expr=, not both.")
    return filter if filter not in (None, "", {}) else expr


class VDVectorStore(VectorStore):
    """LangChain vector store over any vd backend (``memory``, ``faiss``, ``qdrant``, ...).

    Example:
        .. code-block:: python

            from langchain_vd import VDVectorStore

            store = VDVectorStore(embeddings, backend="memory", collection_name="docs")
            await store.aadd_texts(texts, metadatas=metadatas)
            docs = await store.asimilarity_search("query", k=4, filter={"year": {"$gte": 2020}})
    """

    def __init__(
        self,
        embedding: Embeddings | None,
        *,
        backend: str = "memory",
        collection_name: str = "langchain",
        metric: str = "cosine",
        **connect_kwargs: Any,
    ) -> None:
        self.embedding = embedding
        self.collection_name = collection_name
        self._engine = VdEngine(
            backend,
            collection_name=collection_name,
            metric=metric,
            embedder=embedding,
            **connect_kwargs,
        )

    def __repr__(self) -> str:
        engine = self._engine
        return (
            f"VDVectorStore(backend={engine.backend!r}, "
            f"collection_name={self.collection_name!r}, metric={engine.metric!r})"
        )

    # ----- properties ---------------------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings | None:
        return self.embedding

    @property
    def engine(self) -> VdEngine:
        """The framework-free engine behind this store."""
        return self._engine

    @property
    def client(self) -> Any:
        """The sync vd client (escape hatch)."""
        return self._engine.client

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return self._engine.relevance_fn()

    # ----- operations, written once ---------------------------------------------------------

    def _scored_op(
        self,
        *,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        k: int,
        filter: VdFilter,
    ) -> Op[list[tuple[Document, float]]]:
        if vector is None:
            records = yield from self._engine.search_text(query, k=k, filter=filter)  # type: ignore[arg-type]
        else:
            records = (yield from self._engine.search([vector], k=k, filter=filter))[0]
        return [(_to_document(r), float(r.score or 0.0)) for r in records]

    def _docs_op(self, scored: Op[list[tuple[Document, float]]]) -> Op[list[Document]]:
        return [doc for doc, _ in (yield from scored)]

    def _mmr_op(
        self,
        *,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: VdFilter,
    ) -> Op[list[Document]]:
        records = yield from self._engine.mmr(
            vector, query=query, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=filter
        )
        return [_to_document(r) for r in records]

    def _upsert_op(
        self, ids: Sequence[str] | None, documents: Sequence[Document] | None, kwargs: Any
    ) -> Op[list[str]]:
        documents = list(documents or [])
        if ids is None:
            ids = [doc.id for doc in documents] if any(doc.id for doc in documents) else None
        elif len(ids) != len(documents):
            raise InvalidInputError(
                f"upsert got {len(ids)} ids for {len(documents)} documents; pass one id each."
            )
        return self._engine.add(
            [d.page_content for d in documents],
            metadatas=[d.metadata for d in documents],
            ids=ids,
            **_add_kwargs(kwargs),
        )

    def _metadata_op(
        self, filter: VdFilter, fields: list[str] | None, limit: int
    ) -> Op[list[Document]]:
        docs = [_to_document(r) for r in (yield from self._engine.query(filter, limit=limit))]
        if fields is not None:
            keep = set(fields)
            for doc in docs:
                doc.metadata = {k: v for k, v in doc.metadata.items() if k in keep}
        return docs

    def _pks_op(self, filter: VdFilter) -> Op[list[str]]:
        if filter in (None, "", {}):
            raise InvalidInputError("get_pks needs a filter.")
        return [r.id for r in (yield from self._engine.query(filter))]

    def _get_by_ids_op(self, ids: Sequence[str]) -> Op[list[Document]]:
        return [_to_document(r) for r in (yield from self._engine.query(ids=ids))]

    # ----- add ------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts; re-adding an id replaces it. Returns the ids."""
        return self._engine.run(
            self._engine.add(texts, None, metadatas, ids, **_add_kwargs(kwargs))
        )

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        op = self._engine.add(texts, None, metadatas, ids, **_add_kwargs(kwargs))
        return await self._engine.arun(op)

    def add_embeddings(
        self,
        texts: list[str],
        embeddings: list[list[float]],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store texts with precomputed embeddings. Returns the ids."""
        op = self._engine.add(texts, embeddings, metadatas, ids, **_add_kwargs(kwargs))
        return self._engine.run(op)

    async def aadd_embeddings(
        self,
        texts: list[str],
        embeddings: list[list[float]],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        op = self._engine.add(texts, embeddings, metadatas, ids, **_add_kwargs(kwargs))
        return await self._engine.arun(op)

    # ----- similarity search ------------------------------------------------------------------

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(query=query, k=k, filter=_pick_filter(filter, expr))
        return self._engine.run(self._docs_op(op))

    async def asimilarity_search(
        self,
        query: str,
        k: int = 4,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(query=query, k=k, filter=_pick_filter(filter, expr))
        return await self._engine.arun(self._docs_op(op))

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(vector=embedding, k=k, filter=_pick_filter(filter, expr))
        return self._engine.run(self._docs_op(op))

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(vector=embedding, k=k, filter=_pick_filter(filter, expr))
        return await self._engine.arun(self._docs_op(op))

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Documents with vd's raw score (higher is better)."""
        op = self._scored_op(query=query, k=k, filter=_pick_filter(filter, expr))
        return self._engine.run(op)

    async def asimilarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._scored_op(query=query, k=k, filter=_pick_filter(filter, expr))
        return await self._engine.arun(op)

    def similarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._scored_op(vector=embedding, k=k, filter=_pick_filter(filter, expr))
        return self._engine.run(op)

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._scored_op(vector=embedding, k=k, filter=_pick_filter(filter, expr))
        return await self._engine.arun(op)

    # ----- MMR --------------------------------------------------------------------------------

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        flt = _pick_filter(filter, expr)
        op = self._mmr_op(query=query, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=flt)
        return self._engine.run(op)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        flt = _pick_filter(filter, expr)
        op = self._mmr_op(query=query, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=flt)
        return await self._engine.arun(op)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        flt = _pick_filter(filter, expr)
        op = self._mmr_op(
            vector=embedding, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=flt
        )
        return self._engine.run(op)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: VdFilter = None,
        *,
        expr: VdFilter = None,
        **kwargs: Any,
    ) -> list[Document]:
        flt = _pick_filter(filter, expr)
        op = self._mmr_op(
            vector=embedding, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=flt
        )
        return await self._engine.arun(op)

    # ----- delete / upsert / metadata / ids -----------------------------------------------------

    def delete(
        self,
        ids: list[str] | None = None,
        expr: VdFilter = None,
        *,
        filter: VdFilter = None,
        **kwargs: Any,
    ) -> bool | None:
        """Delete by ids and/or a dict filter (both: the intersection). Missing ids are fine."""
        self._engine.run(self._engine.delete(ids, _pick_filter(filter, expr)))
        return True

    async def adelete(
        self,
        ids: list[str] | None = None,
        expr: VdFilter = None,
        *,
        filter: VdFilter = None,
        **kwargs: Any,
    ) -> bool | None:
        await self._engine.arun(self._engine.delete(ids, _pick_filter(filter, expr)))
        return True

    def upsert(  # type: ignore[override]
        self, ids: list[str] | None = None, documents: list[Document] | None = None, **kwargs: Any
    ) -> list[str]:
        """Insert or replace documents by id (``ids`` or each ``Document.id``). Returns ids."""
        return self._engine.run(self._upsert_op(ids, documents, kwargs))

    async def aupsert(  # type: ignore[override]
        self, ids: list[str] | None = None, documents: list[Document] | None = None, **kwargs: Any
    ) -> list[str]:
        return await self._engine.arun(self._upsert_op(ids, documents, kwargs))

    def search_by_metadata(
        self, filter: VdFilter, fields: list[str] | None = None, limit: int = 10
    ) -> list[Document]:
        """Documents matching a dict filter (no vector search); ``fields`` limits metadata keys."""
        return self._engine.run(self._metadata_op(filter, fields, limit))

    async def asearch_by_metadata(
        self, filter: VdFilter, fields: list[str] | None = None, limit: int = 10
    ) -> list[Document]:
        return await self._engine.arun(self._metadata_op(filter, fields, limit))

    def get_pks(self, filter: VdFilter, **kwargs: Any) -> list[str]:
        """Ids of the documents matching a dict filter."""
        return self._engine.run(self._pks_op(filter))

    async def aget_pks(self, filter: VdFilter, **kwargs: Any) -> list[str]:
        return await self._engine.arun(self._pks_op(filter))

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents with these ids, in the order asked; missing ids are skipped."""
        return self._engine.run(self._get_by_ids_op(ids))

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await self._engine.arun(self._get_by_ids_op(ids))

    def count(self) -> int:
        """Number of stored documents."""
        return self._engine.run(self._engine.count())

    async def acount(self) -> int:
        return await self._engine.arun(self._engine.count())

    # ----- lifecycle ----------------------------------------------------------------------------

    def drop(self) -> None:
        """Drop the collection; the next write creates it again."""
        self._engine.run(self._engine.drop())

    async def adrop(self) -> None:
        await self._engine.arun(self._engine.drop())

    def close(self) -> None:
        """Release the clients. The store cannot be used afterwards."""
        self._engine.close()

    async def aclose(self) -> None:
        await self._engine.aclose()

    def __enter__(self) -> VDVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> VDVectorStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ----- constructors -------------------------------------------------------------------------

    @classmethod
    def _new_for_texts(
        cls, embedding: Embeddings, kwargs: dict[str, Any]
    ) -> tuple[VDVectorStore, dict[str, Any]]:
        add_kwargs = {k: kwargs.pop(k) for k in _ADD_KWARGS if k in kwargs}
        return cls(embedding, **kwargs), add_kwargs

    @classmethod
    def from_texts(  # type: ignore[override]
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> VDVectorStore:
        """Create a store (``backend=``, ``collection_name=``, ``metric=``, ...) and add texts."""
        store, add_kwargs = cls._new_for_texts(embedding, kwargs)
        store.add_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store

    @classmethod
    async def afrom_texts(  # type: ignore[override]
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> VDVectorStore:
        """Create a store and add texts, without blocking the event loop."""
        store, add_kwargs = cls._new_for_texts(embedding, kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store


def _add_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The engine ``add`` options among a LangChain call's extra keyword arguments."""
    return {k: kwargs[k] for k in _ADD_KWARGS if k in kwargs}

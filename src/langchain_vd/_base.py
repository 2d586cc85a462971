"""The LangChain method surface, written once over any engine with the core op API.

``langchain_vd.Milvus`` (over :class:`~vd_integrations.milvus.engine.MilvusEngine`) and
``langchain_vd.VDVectorStore`` (over :class:`~vd_integrations.vd.engine.VdEngine`) differ only
in their constructors and a few hooks; every method below is a sync/async pair of one-line
shells around one generator operation, so the twins cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Sized
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever

from vd_integrations.core.batching import DEFAULT_BATCH_SIZE
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import Op
from vd_integrations.core.progress import progress_bar
from vd_integrations.core.validation import check_id_list, check_unit_interval
from vd_integrations.milvus.schema import Record

__all__ = ["Engine", "EngineRetriever", "EngineVectorStore", "pick_filter", "to_document"]

T = TypeVar("T")
S = TypeVar("S", bound="EngineVectorStore[Any]")
E = TypeVar("E", bound="Engine")
FilterLike = Any


class Engine(Protocol):
    """The op API both core engines expose (``MilvusEngine``, ``VdEngine``): the arguments
    the shared surface passes (a subclass's engine-specific options go through its hooks,
    as ``**`` of a ``dict[str, Any]``)."""

    def run(self, op: Op[T], *, timeout: float | None = None) -> T: ...
    async def arun(self, op: Op[T], *, timeout: float | None = None) -> T: ...
    def add(
        self,
        texts: Iterable[str],
        *,
        vectors: Sequence[Sequence[float]] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        batch_size: int = ...,
        on_batch: Callable[[int], None] | None = None,
    ) -> Op[list[str]]: ...
    def search(
        self, vectors: Sequence[Sequence[float]], *, k: int, filter: Any = None
    ) -> Op[list[list[Record]]]: ...
    def search_text(self, query: str, *, k: int, filter: Any = None) -> Op[list[Record]]: ...
    def mmr(
        self,
        vector: Sequence[float] | None = None,
        *,
        query: str | None = None,
        k: int,
        fetch_k: int,
        lambda_mult: float = ...,
        filter: Any = None,
    ) -> Op[list[Record]]: ...
    def delete(self, ids: Sequence[Any] | None = None, filter: Any = None) -> Op[int | None]: ...
    def query(
        self, filter: Any = None, *, ids: Sequence[Any] | None = None, limit: int | None = None
    ) -> Op[list[Record]]: ...
    def count(self) -> Op[int]: ...
    def drop(self) -> Op[None]: ...
    def relevance_fn(self) -> Callable[[float], float]: ...
    def close(self) -> None: ...
    async def aclose(self) -> None: ...


def to_document(record: Record) -> Document:
    return Document(page_content=record.text, metadata=record.metadata, id=record.id)


def pick_filter(expr: FilterLike, kwargs: Mapping[str, Any]) -> FilterLike:
    """``expr=`` (langchain-milvus) and ``filter=`` (LangChain retrievers) name the same thing."""
    other = kwargs.get("filter")
    if expr not in (None, "", {}) and other not in (None, "", {}):
        raise InvalidInputError("Pass the filter as expr= or filter=, not both.")
    return expr if expr not in (None, "", {}) else other


class EngineRetriever(VectorStoreRetriever):
    """``VectorStoreRetriever`` that also knows ``search_type="hybrid"`` (dense + BM25,
    ``hybrid_search``) and ``"full_text"`` (BM25 only, ``full_text_search``)."""

    allowed_search_types: ClassVar[Collection[str]] = (
        "similarity",
        "similarity_score_threshold",
        "mmr",
        "hybrid",
        "full_text",
    )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        store: Any = self.vectorstore
        if self.search_type == "hybrid":
            return store.hybrid_search(query, **(self.search_kwargs | kwargs))
        if self.search_type == "full_text":
            return store.full_text_search(query, **(self.search_kwargs | kwargs))
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        store: Any = self.vectorstore
        if self.search_type == "hybrid":
            return await store.ahybrid_search(query, **(self.search_kwargs | kwargs))
        if self.search_type == "full_text":
            return await store.afull_text_search(query, **(self.search_kwargs | kwargs))
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)


class EngineVectorStore(VectorStore, Generic[E]):
    """LangChain ``VectorStore`` over an :class:`Engine` ``E``; subclasses set
    ``self._engine``."""

    _engine: E

    # ----- hooks ----------------------------------------------------------------------------

    def _search_options(self, param: dict | None) -> dict[str, Any]:
        """Engine-specific search keyword arguments for LangChain's ``param=``."""
        return {}

    def _pk_query_options(self) -> dict[str, Any]:
        """Keyword arguments for the query behind ``get_pks``."""
        return {}

    def _pk_value(self, record: Record) -> str | int:
        """A primary key as ``get_pks`` returns it."""
        return record.id

    def _hybrid_op(
        self,
        query: str,
        *,
        k: int,
        fetch_k: int | None,
        ranker: Any,
        ranker_params: Mapping[str, Any] | None,
        filter: Any,
        param: dict | None = None,
    ) -> Op[list[Record]]:
        """The engine's hybrid search (dense + BM25, fused; higher scores are better)."""
        raise NotImplementedError(f"{type(self).__name__} has no hybrid search.")

    def _full_text_op(self, query: str, *, k: int, filter: Any) -> Op[list[Record]]:
        """The engine's full-text (BM25-only) search."""
        raise NotImplementedError(f"{type(self).__name__} has no full-text search.")

    @property
    def engine(self) -> E:
        """The framework-free engine behind this store."""
        return self._engine

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return self._engine.relevance_fn()

    # ----- operations, written once ---------------------------------------------------------

    def _add_op(
        self,
        texts: Iterable[str],
        embeddings: Sequence[Sequence[float]] | None,
        metadatas: Sequence[dict] | None,
        ids: Sequence[str] | None,
        batch_size: int,
        on_batch: Any,
    ) -> Op[list[str]]:
        return self._engine.add(
            texts,
            vectors=embeddings,
            metadatas=metadatas,
            ids=ids,
            batch_size=batch_size,
            on_batch=on_batch,
        )

    def _scored_op(
        self,
        *,
        query: str = "",  # read only when vector is None (each caller passes one of the two)
        vector: Sequence[float] | None = None,
        k: int,
        param: dict | None,
        expr: FilterLike,
        kwargs: Mapping[str, Any],
    ) -> Op[list[tuple[Document, float]]]:
        filter = pick_filter(expr, kwargs)
        if vector is None:
            records = yield from self._engine.search_text(
                query,
                k=k,
                filter=filter,
                **self._search_options(param),
            )
        else:
            records = (
                yield from self._engine.search(
                    [vector], k=k, filter=filter, **self._search_options(param)
                )
            )[0]
        return [(to_document(r), float(r.score or 0.0)) for r in records]

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
        param: dict | None,
        expr: FilterLike,
        kwargs: Mapping[str, Any],
    ) -> Op[list[Document]]:
        check_unit_interval(lambda_mult, "lambda_mult")
        records = yield from self._engine.mmr(
            vector,
            query=query,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            filter=pick_filter(expr, kwargs),
            **self._search_options(param),
        )
        return [to_document(r) for r in records]

    def _upsert_op(
        self, ids: Sequence[str] | None, documents: Sequence[Document] | None, batch_size: int
    ) -> Op[list[str]]:
        documents = list(documents or [])
        keys: list[str | None] | None = check_id_list(ids)
        if keys is None:  # each Document's own id (None: a new one is made)
            keys = [doc.id for doc in documents] if any(doc.id for doc in documents) else None
        elif len(keys) != len(documents):
            raise InvalidInputError(
                f"upsert got {len(keys)} ids for {len(documents)} documents; pass one id each."
            )
        return self._engine.add(
            [d.page_content for d in documents],
            metadatas=[d.metadata for d in documents],
            ids=keys,
            batch_size=batch_size,
        )

    def _metadata_op(
        self, expr: FilterLike, fields: list[str] | None, limit: int
    ) -> Op[list[Document]]:
        records = yield from self._engine.query(expr, limit=limit)
        docs = [to_document(r) for r in records]
        if fields is not None:
            keep = set(fields)
            for doc in docs:
                doc.metadata = {k: v for k, v in doc.metadata.items() if k in keep}
        return docs

    def _pks_op(self, expr: FilterLike) -> Op[list[str | int]]:
        if expr in (None, ""):
            raise InvalidInputError("get_pks needs a filter expression.")
        records = yield from self._engine.query(expr, **self._pk_query_options())
        return [self._pk_value(r) for r in records]

    def _get_by_ids_op(self, ids: Sequence[str]) -> Op[list[Document]]:
        ids = check_id_list(ids) or []
        records = yield from self._engine.query(ids=list(dict.fromkeys(ids)))
        by_id = {r.id: to_document(r) for r in records}
        return [by_id[str(i)] for i in dict.fromkeys(ids) if str(i) in by_id]

    # ----- add ------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        timeout: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        ids: list[str] | None = None,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts; with ids, re-adding an id replaces it. Returns the ids.

        A generator is streamed ``batch_size`` texts at a time (bounded memory)."""
        with progress_bar(_length(texts), show_progress) as advance:
            return self._engine.run(
                self._add_op(texts, None, metadatas, ids, batch_size, advance), timeout=timeout
            )

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        timeout: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        ids: list[str] | None = None,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        with progress_bar(_length(texts), show_progress) as advance:
            return await self._engine.arun(
                self._add_op(texts, None, metadatas, ids, batch_size, advance), timeout=timeout
            )

    def add_embeddings(
        self,
        texts: list[str],
        embeddings: list[list[float]],
        metadatas: list[dict] | None = None,
        timeout: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store texts with precomputed embeddings. Returns the ids."""
        return self._engine.run(
            self._add_op(texts, embeddings, metadatas, ids, batch_size, None), timeout=timeout
        )

    async def aadd_embeddings(
        self,
        texts: list[str],
        embeddings: list[list[float]],
        metadatas: list[dict] | None = None,
        timeout: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        return await self._engine.arun(
            self._add_op(texts, embeddings, metadatas, ids, batch_size, None), timeout=timeout
        )

    # ----- similarity search ------------------------------------------------------------------

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(query=query, k=k, param=param, expr=expr, kwargs=kwargs)
        return self._engine.run(self._docs_op(op), timeout=timeout)

    async def asimilarity_search(
        self,
        query: str,
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(query=query, k=k, param=param, expr=expr, kwargs=kwargs)
        return await self._engine.arun(self._docs_op(op), timeout=timeout)

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(vector=embedding, k=k, param=param, expr=expr, kwargs=kwargs)
        return self._engine.run(self._docs_op(op), timeout=timeout)

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(vector=embedding, k=k, param=param, expr=expr, kwargs=kwargs)
        return await self._engine.arun(self._docs_op(op), timeout=timeout)

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Documents with the engine's raw score (Milvus: a distance for L2, else a similarity)."""
        op = self._scored_op(query=query, k=k, param=param, expr=expr, kwargs=kwargs)
        return self._engine.run(op, timeout=timeout)

    async def asimilarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._scored_op(query=query, k=k, param=param, expr=expr, kwargs=kwargs)
        return await self._engine.arun(op, timeout=timeout)

    def similarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._scored_op(vector=embedding, k=k, param=param, expr=expr, kwargs=kwargs)
        return self._engine.run(op, timeout=timeout)

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._scored_op(vector=embedding, k=k, param=param, expr=expr, kwargs=kwargs)
        return await self._engine.arun(op, timeout=timeout)

    # ----- MMR --------------------------------------------------------------------------------

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._mmr_op(
            query=query,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            param=param,
            expr=expr,
            kwargs=kwargs,
        )
        return self._engine.run(op, timeout=timeout)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._mmr_op(
            query=query,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            param=param,
            expr=expr,
            kwargs=kwargs,
        )
        return await self._engine.arun(op, timeout=timeout)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._mmr_op(
            vector=embedding,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            param=param,
            expr=expr,
            kwargs=kwargs,
        )
        return self._engine.run(op, timeout=timeout)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._mmr_op(
            vector=embedding,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            param=param,
            expr=expr,
            kwargs=kwargs,
        )
        return await self._engine.arun(op, timeout=timeout)

    # ----- hybrid (dense + BM25) and full-text search --------------------------------------------

    def _hybrid_scored_op(
        self,
        query: str,
        k: int,
        fetch_k: int | None,
        ranker: Any,
        ranker_params: Mapping[str, Any] | None,
        expr: FilterLike,
        kwargs: Mapping[str, Any],
    ) -> Op[list[tuple[Document, float]]]:
        records = yield from self._hybrid_op(
            query,
            k=k,
            fetch_k=fetch_k,
            ranker=ranker,
            ranker_params=ranker_params,
            filter=pick_filter(expr, kwargs),
            param=kwargs.get("param"),
        )
        return [(to_document(r), float(r.score or 0.0)) for r in records]

    def _full_text_scored_op(
        self, query: str, k: int, expr: FilterLike, kwargs: Mapping[str, Any]
    ) -> Op[list[tuple[Document, float]]]:
        records = yield from self._full_text_op(query, k=k, filter=pick_filter(expr, kwargs))
        return [(to_document(r), float(r.score or 0.0)) for r in records]

    def hybrid_search(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int | None = None,
        ranker: str = "rrf",
        ranker_params: dict[str, Any] | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Dense + BM25 search fused by reciprocal rank (``ranker="rrf"``, ``ranker_params=
        {"k": 60}``) or weighted scores (``"weighted"``, ``{"weights": [dense, sparse]}`` or
        ``{"alpha": a}``). Each leg fetches ``fetch_k`` candidates (default ``max(4k, 20)``)
        under the same filter (``expr=`` or ``filter=``)."""
        op = self._hybrid_scored_op(query, k, fetch_k, ranker, ranker_params, expr, kwargs)
        return self._engine.run(self._docs_op(op), timeout=timeout)

    async def ahybrid_search(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int | None = None,
        ranker: str = "rrf",
        ranker_params: dict[str, Any] | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._hybrid_scored_op(query, k, fetch_k, ranker, ranker_params, expr, kwargs)
        return await self._engine.arun(self._docs_op(op), timeout=timeout)

    def hybrid_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int | None = None,
        ranker: str = "rrf",
        ranker_params: dict[str, Any] | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """:meth:`hybrid_search` with each document's fused score (higher is better)."""
        op = self._hybrid_scored_op(query, k, fetch_k, ranker, ranker_params, expr, kwargs)
        return self._engine.run(op, timeout=timeout)

    async def ahybrid_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int | None = None,
        ranker: str = "rrf",
        ranker_params: dict[str, Any] | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._hybrid_scored_op(query, k, fetch_k, ranker, ranker_params, expr, kwargs)
        return await self._engine.arun(op, timeout=timeout)

    def full_text_search(
        self,
        query: str,
        k: int = 4,
        *,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` best BM25 (keyword) matches of ``query``, no embedding involved."""
        op = self._full_text_scored_op(query, k, expr, kwargs)
        return self._engine.run(self._docs_op(op), timeout=timeout)

    async def afull_text_search(
        self,
        query: str,
        k: int = 4,
        *,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._full_text_scored_op(query, k, expr, kwargs)
        return await self._engine.arun(self._docs_op(op), timeout=timeout)

    def full_text_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """:meth:`full_text_search` with each document's BM25 score (higher is better)."""
        op = self._full_text_scored_op(query, k, expr, kwargs)
        return self._engine.run(op, timeout=timeout)

    async def afull_text_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._full_text_scored_op(query, k, expr, kwargs)
        return await self._engine.arun(op, timeout=timeout)

    def as_retriever(self, **kwargs: Any) -> VectorStoreRetriever:
        """A retriever; besides LangChain's search types, ``search_type="hybrid"`` (search
        kwargs of :meth:`hybrid_search`) and ``"full_text"``."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return EngineRetriever(vectorstore=self, tags=tags, **kwargs)

    # ----- delete / upsert / metadata / ids -----------------------------------------------------

    def delete(
        self, ids: list[str] | None = None, expr: FilterLike = None, **kwargs: Any
    ) -> bool | None:
        """Delete by ids and/or filter expression. Missing ids are not an error."""
        op = self._engine.delete(check_id_list(ids), pick_filter(expr, kwargs))
        self._engine.run(op, timeout=kwargs.get("timeout"))
        return True

    async def adelete(
        self, ids: list[str] | None = None, expr: FilterLike = None, **kwargs: Any
    ) -> bool | None:
        op = self._engine.delete(check_id_list(ids), pick_filter(expr, kwargs))
        await self._engine.arun(op, timeout=kwargs.get("timeout"))
        return True

    def upsert(
        self,
        ids: list[str] | None = None,
        documents: list[Document] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Insert or replace documents by id (``ids`` or each ``Document.id``). Returns ids."""
        return self._engine.run(self._upsert_op(ids, documents, batch_size), timeout=timeout)

    async def aupsert(
        self,
        ids: list[str] | None = None,
        documents: list[Document] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[str]:
        op = self._upsert_op(ids, documents, batch_size)
        return await self._engine.arun(op, timeout=timeout)

    def search_by_metadata(
        self, expr: FilterLike, fields: list[str] | None = None, limit: int = 10
    ) -> list[Document]:
        """Documents matching a filter (no vector search); ``fields`` limits the metadata keys."""
        return self._engine.run(self._metadata_op(expr, fields, limit))

    async def asearch_by_metadata(
        self, expr: FilterLike, fields: list[str] | None = None, limit: int = 10
    ) -> list[Document]:
        return await self._engine.arun(self._metadata_op(expr, fields, limit))

    def get_pks(self, expr: FilterLike, **kwargs: Any) -> list[str | int]:
        """Primary keys of the entities matching ``expr``."""
        return self._engine.run(self._pks_op(expr), timeout=kwargs.get("timeout"))

    async def aget_pks(self, expr: FilterLike, **kwargs: Any) -> list[str | int]:
        return await self._engine.arun(self._pks_op(expr), timeout=kwargs.get("timeout"))

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

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _length(items: Iterable[Any]) -> int | None:
    """``len(items)`` when it has one (progress bars); None for a stream."""
    return len(items) if isinstance(items, Sized) else None

"""``langchain_vd.Milvus``: a drop-in for ``langchain_milvus.Milvus`` with native async I/O.

Same constructor arguments and method names as ``langchain_milvus.Milvus``. Every
operation exists as a sync method and an ``a``-prefixed twin; both run the same
operation of the shared :class:`~vd_integrations.milvus.engine.MilvusEngine` (the
sync one on ``MilvusClient``, the async one on the running loop's own
``AsyncMilvusClient``), so they cannot disagree.

Differences from langchain-milvus, all deliberate:

- With no ``connection_args`` it uses an embedded Milvus Lite file (``./milvus_vd.db``).
- Metadata is stored in dynamic fields (any keys, any JSON values, per document);
  collections made by langchain-milvus with static metadata columns are read too.
- Adding with ids upserts (re-adding an id replaces it, never duplicates).
- Returned documents carry ``Document.id``; ``get_by_ids`` exists.
- Nothing touches the network in the constructor: the collection is created (once,
  even under concurrent first writes) by the first write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from vd_integrations.batching import DEFAULT_BATCH_SIZE
from vd_integrations.errors import InvalidInputError
from vd_integrations.milvus.config import DEFAULT_EMBEDDED_URI, ConnectionConfig
from vd_integrations.milvus.engine import FilterLike, MilvusEngine, Op
from vd_integrations.milvus.schema import CollectionSpec, Record
from vd_integrations.progress import progress_bar
from vd_integrations.scoring import relevance_fn

__all__ = ["Milvus"]


def _to_document(record: Record) -> Document:
    return Document(page_content=record.text, metadata=record.metadata, id=record.id)


def _pick_filter(expr: FilterLike, kwargs: Mapping[str, Any]) -> FilterLike:
    """``expr=`` (langchain-milvus) and ``filter=`` (LangChain retrievers) name the same thing."""
    other = kwargs.get("filter")
    if expr not in (None, "") and other not in (None, "", {}):
        raise InvalidInputError("Pass the filter as expr= or filter=, not both.")
    return expr if expr not in (None, "") else other


class Milvus(VectorStore):
    """Milvus vector store for LangChain, sync and natively async.

    Example:
        .. code-block:: python

            from langchain_vd import Milvus

            store = await Milvus.afrom_texts(texts, embeddings)  # embedded Milvus Lite
            docs = await store.asimilarity_search("query", k=4, filter={"year": {"$gte": 2020}})
    """

    def __init__(
        self,
        embedding_function: Embeddings | None,
        collection_name: str = "LangChainCollection",
        collection_description: str = "",
        collection_properties: dict[str, Any] | None = None,
        connection_args: dict[str, Any] | None = None,
        consistency_level: str = "Session",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        drop_old: bool | None = False,
        auto_id: bool = False,
        *,
        primary_field: str = "pk",
        text_field: str = "text",
        vector_field: str = "vector",
        enable_dynamic_field: bool = True,
        metadata_field: str | None = None,
        partition_key_field: str | None = None,
        num_partitions: int | None = None,
        partition_names: list[str] | None = None,
        replica_number: int = 1,
        timeout: float | None = None,
        num_shards: int | None = None,
        vector_schema: Any = None,
        metadata_schema: Any = None,
        builtin_function: Any = None,
    ) -> None:
        if isinstance(embedding_function, list) or isinstance(vector_field, list):
            raise NotImplementedError(
                "Multiple vector fields are not supported yet; pass one embedding_function "
                "and one vector_field."
            )
        if builtin_function is not None:
            raise NotImplementedError(
                "builtin_function (BM25 hybrid search) is not supported yet in langchain_vd."
            )
        del vector_schema, metadata_schema  # accepted for drop-in compatibility; unused
        self.embedding_func = embedding_function
        self.collection_name = collection_name
        self._spec = CollectionSpec(
            name=collection_name,
            description=collection_description,
            properties=collection_properties,
            primary_field=primary_field,
            text_field=text_field,
            vector_field=vector_field,
            metadata_field=metadata_field,
            enable_dynamic_field=enable_dynamic_field or metadata_field is None,
            partition_key_field=partition_key_field,
            num_partitions=num_partitions,
            num_shards=num_shards,
            partition_names=partition_names,
            replica_number=replica_number,
            auto_id=auto_id,
            consistency_level=consistency_level,
            index_params=index_params,
            search_params=search_params,
        )
        self._engine = MilvusEngine(
            self._spec,
            ConnectionConfig.from_connection_args(
                connection_args, default_uri=DEFAULT_EMBEDDED_URI
            ),
            embedder=embedding_function,
            drop_old=bool(drop_old),
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return (
            f"Milvus(collection_name={self.collection_name!r}, connection={self._engine.config!r})"
        )

    # ----- properties ---------------------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings | None:
        return self.embedding_func

    @property
    def engine(self) -> MilvusEngine:
        """The framework-free engine behind this store."""
        return self._engine

    @property
    def client(self) -> Any:
        """The sync ``pymilvus.MilvusClient`` (escape hatch)."""
        return self._engine.client

    @property
    def aclient(self) -> Any:
        """The running loop's ``pymilvus.AsyncMilvusClient`` (escape hatch)."""
        return self._engine.aclient

    def _select_relevance_score_fn(self):
        layout = self._engine.layout
        metric = layout.metric if layout else self._spec.index["metric_type"]
        return relevance_fn(metric)

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
        query: str | None = None,
        vector: Sequence[float] | None = None,
        k: int,
        param: dict | None,
        expr: FilterLike,
        kwargs: Mapping[str, Any],
    ) -> Op[list[tuple[Document, float]]]:
        filter = _pick_filter(expr, kwargs)
        if vector is None:
            records = yield from self._engine.search_text(
                query,
                k=k,
                filter=filter,
                search_params=param,  # type: ignore[arg-type]
            )
        else:
            records = (
                yield from self._engine.search([vector], k=k, filter=filter, search_params=param)
            )[0]
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
        param: dict | None,
        expr: FilterLike,
        kwargs: Mapping[str, Any],
    ) -> Op[list[Document]]:
        records = yield from self._engine.mmr(
            vector,
            query=query,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            filter=_pick_filter(expr, kwargs),
            search_params=param,
        )
        return [_to_document(r) for r in records]

    def _upsert_op(
        self, ids: Sequence[str] | None, documents: Sequence[Document] | None, batch_size: int
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
            batch_size=batch_size,
        )

    def _metadata_op(
        self, expr: FilterLike, fields: list[str] | None, limit: int
    ) -> Op[list[Document]]:
        records = yield from self._engine.query(expr, limit=limit)
        docs = [_to_document(r) for r in records]
        if fields is not None:
            keep = set(fields)
            for doc in docs:
                doc.metadata = {k: v for k, v in doc.metadata.items() if k in keep}
        return docs

    def _pks_op(self, expr: FilterLike) -> Op[list[str | int]]:
        if expr in (None, ""):
            raise InvalidInputError("get_pks needs a filter expression.")
        records = yield from self._engine.query(expr, output_fields=[])
        layout = self._engine.layout
        if layout is not None and layout.pk_is_int:
            return [int(r.id) for r in records]
        return [r.id for r in records]

    def _get_by_ids_op(self, ids: Sequence[str]) -> Op[list[Document]]:
        records = yield from self._engine.query(ids=list(dict.fromkeys(ids)))
        by_id = {r.id: _to_document(r) for r in records}
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
        """Embed and store texts; with ids, re-adding an id replaces it. Returns the ids."""
        texts = list(texts)
        with progress_bar(len(texts), show_progress) as advance:
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
        texts = list(texts)
        with progress_bar(len(texts), show_progress) as advance:
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
        """Documents with the raw Milvus score (a distance for L2, a similarity for IP/COSINE)."""
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

    # ----- delete / upsert / metadata / ids -----------------------------------------------------

    def delete(
        self, ids: list[str] | None = None, expr: FilterLike = None, **kwargs: Any
    ) -> bool | None:
        """Delete by ids and/or filter expression. Missing ids are not an error."""
        op = self._engine.delete(ids, _pick_filter(expr, kwargs))
        self._engine.run(op, timeout=kwargs.get("timeout"))
        return True

    async def adelete(
        self, ids: list[str] | None = None, expr: FilterLike = None, **kwargs: Any
    ) -> bool | None:
        op = self._engine.delete(ids, _pick_filter(expr, kwargs))
        await self._engine.arun(op, timeout=kwargs.get("timeout"))
        return True

    def upsert(  # type: ignore[override]
        self,
        ids: list[str] | None = None,
        documents: list[Document] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Insert or replace documents by id (``ids`` or each ``Document.id``). Returns ids."""
        return self._engine.run(self._upsert_op(ids, documents, batch_size), timeout=timeout)

    async def aupsert(  # type: ignore[override]
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

    def __enter__(self) -> Milvus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Milvus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ----- constructors -------------------------------------------------------------------------

    @classmethod
    def _new_for_texts(
        cls,
        embedding: Embeddings,
        kwargs: dict[str, Any],
    ) -> tuple[Milvus, dict[str, Any]]:
        store_args = {
            k: kwargs.pop(k)
            for k in list(kwargs)
            if k not in ("batch_size", "timeout", "show_progress")
        }
        return cls(embedding_function=embedding, **store_args), kwargs

    @classmethod
    def from_texts(  # type: ignore[override]
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        collection_name: str = "LangChainCollection",
        connection_args: dict[str, Any] | None = None,
        consistency_level: str = "Session",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        drop_old: bool = False,
        *,
        ids: list[str] | None = None,
        auto_id: bool = False,
        **kwargs: Any,
    ) -> Milvus:
        """Create a store and add ``texts`` to it."""
        store, add_kwargs = cls._new_for_texts(
            embedding,
            dict(
                collection_name=collection_name,
                connection_args=connection_args,
                consistency_level=consistency_level,
                index_params=index_params,
                search_params=search_params,
                drop_old=drop_old,
                auto_id=auto_id,
                **kwargs,
            ),
        )
        store.add_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store

    @classmethod
    async def afrom_texts(  # type: ignore[override]
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        collection_name: str = "LangChainCollection",
        connection_args: dict[str, Any] | None = None,
        consistency_level: str = "Session",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        drop_old: bool = False,
        *,
        ids: list[str] | None = None,
        auto_id: bool = False,
        **kwargs: Any,
    ) -> Milvus:
        """Create a store and add ``texts`` to it, without blocking the event loop."""
        store, add_kwargs = cls._new_for_texts(
            embedding,
            dict(
                collection_name=collection_name,
                connection_args=connection_args,
                consistency_level=consistency_level,
                index_params=index_params,
                search_params=search_params,
                drop_old=drop_old,
                auto_id=auto_id,
                **kwargs,
            ),
        )
        await store.aadd_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store

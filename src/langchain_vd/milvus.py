"""``langchain_vd.Milvus``: a drop-in for ``langchain_milvus.Milvus`` with native async I/O.

Same constructor arguments and method names as ``langchain_milvus.Milvus``. Every
operation exists as a sync method and an ``a``-prefixed twin; both run the same
operation of the shared :class:`~vd_integrations.milvus.engine.MilvusEngine` (the
sync one on ``MilvusClient``, the async one on the running loop's own
``AsyncMilvusClient``), so they cannot disagree.

Differences from langchain-milvus, all deliberate:

- With no ``connection_args`` it uses an embedded Milvus Lite file (``./milvus_vd.db``).
- Metadata is stored in dynamic fields by default (any keys, any JSON values, per
  document): ``enable_dynamic_field`` defaults to None, i.e. on unless ``metadata_field``
  is given. ``enable_dynamic_field=False`` behaves as langchain-milvus' default: a typed
  column per key of the first document, keys that are no column dropped, a missing one
  refused. ``metadata_schema`` columns are created with dynamic fields too (there,
  langchain-milvus ignores them). Collections made by langchain-milvus are read too.
- Column values are checked before anything is written (type, range, length): a bad
  document fails the call, with nothing of it stored, not one batch of it.
- Adding with ids upserts (re-adding an id replaces it, never duplicates).
- Returned documents carry ``Document.id``; ``get_by_ids`` exists.
- Nothing touches the network in the constructor: the collection is created (once,
  even under concurrent first writes) by the first write.

Hybrid search: ``builtin_function=BM25BuiltInFunction()`` (ours or langchain-milvus') with
``vector_field=["dense", "sparse"]`` (or just the dense name) adds an analyzed text field,
the BM25 function and its sparse index to a new collection. Then ``hybrid_search`` /
``ahybrid_search`` fuse a dense and a BM25 leg server side, ``full_text_search`` runs BM25
alone, ``as_retriever(search_type="hybrid")`` retrieves with hybrid search, and -- as in
langchain-milvus -- ``similarity_search`` on such a store is a hybrid search too
(``ranker_type`` / ``ranker_params`` / ``fetch_k`` accepted; RRF by default).

Several vector fields, as in langchain-milvus: ``embedding_function=[e1, e2]`` with
``vector_field=[...]`` (unnamed ones get langchain-milvus' names: ``vector``,
``vector_2``; next to a BM25 field, ``vector_1``), ``index_params`` / ``search_params``
as one dict per field, sparse embedding functions (``BaseSparseEmbedding``), and
``vector_schema`` types (FLOAT16, BFLOAT16, BINARY, INT8, SPARSE_FLOAT; a server without
the type is refused, naming its version, before anything is written). ``similarity_search``
then searches every field (``reranker=`` a pymilvus RERANK ``Function``, or
``ranker_type`` / ``ranker_params`` with one weight per field); a search by one vector
needs a store with one vector field. ``embedding_function=[]`` (or None) with a
``builtin_function`` is a BM25-only store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from pymilvus import Function, FunctionType

from langchain_vd._attributes import UpstreamAttributes, metadata_layout
from langchain_vd._base import EngineVectorStore
from langchain_vd._engine import pick_filter, to_document
from langchain_vd._vector_args import vector_args
from vd_integrations.core.coalesce import CoalescingSettings
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import Op
from vd_integrations.core.retry import RetrySettings
from vd_integrations.core.validation import check_known_kwargs, parameter_names
from vd_integrations.milvus.config import DEFAULT_EMBEDDED_URI, ConnectionConfig
from vd_integrations.milvus.engine import MilvusEngine
from vd_integrations.milvus.schema import CollectionSpec, Record

__all__ = ["BM25BuiltInFunction", "Milvus"]


class BM25BuiltInFunction:
    """Milvus' built-in BM25 function: the text field becomes a sparse vector server side.

    The constructor of ``langchain_milvus.BM25BuiltInFunction``; pass it (or theirs) as
    ``Milvus(..., builtin_function=BM25BuiltInFunction())``. Needs Milvus 2.5+ or
    Milvus Lite 3.x.

    Example:
        .. code-block:: python

            BM25BuiltInFunction(analyzer_params={"type": "english"})
    """

    def __init__(
        self,
        *,
        input_field_names: str = "text",
        output_field_names: str = "sparse",
        analyzer_params: dict[Any, Any] | None = None,
        multi_analyzer_params: dict[Any, Any] | None = None,
        enable_match: bool = False,
        function_name: str | None = None,
    ) -> None:
        if analyzer_params is not None and multi_analyzer_params is not None:
            raise InvalidInputError(
                "analyzer_params and multi_analyzer_params cannot both be set; use "
                "analyzer_params for one language or multi_analyzer_params for several."
            )
        self._function = Function(
            name=function_name or f"bm25_function_{uuid.uuid4().hex[:8]}",
            input_field_names=input_field_names,
            output_field_names=output_field_names,
            function_type=FunctionType.BM25,
        )
        self.analyzer_params = analyzer_params
        self.multi_analyzer_params = multi_analyzer_params
        self.enable_match = enable_match

    def __repr__(self) -> str:
        return (
            f"BM25BuiltInFunction(input_field_names={self.input_field_names!r}, "
            f"output_field_names={self.output_field_names!r})"
        )

    @property
    def function(self) -> Function:
        """The pymilvus ``Function``."""
        return self._function

    @property
    def input_field_names(self) -> str | list[str]:
        names = self._function.input_field_names
        return names[0] if len(names) == 1 else names

    @property
    def output_field_names(self) -> str | list[str]:
        names = self._function.output_field_names
        return names[0] if len(names) == 1 else names

    @property
    def type(self) -> FunctionType:
        return self._function.type

    def get_input_field_schema_kwargs(self) -> dict[str, Any]:
        """The text field's analyzer options (as langchain-milvus)."""
        kwargs: dict[str, Any] = {"enable_analyzer": True, "enable_match": self.enable_match}
        if self.multi_analyzer_params is not None:
            kwargs["multi_analyzer_params"] = self.multi_analyzer_params
        elif self.analyzer_params is not None:
            kwargs["analyzer_params"] = self.analyzer_params
        return kwargs


class Milvus(UpstreamAttributes, EngineVectorStore[MilvusEngine]):
    """Milvus vector store for LangChain, sync and natively async.

    Example:
        .. code-block:: python

            from langchain_vd import Milvus

            store = await Milvus.afrom_texts(texts, embeddings)  # embedded Milvus Lite
            docs = await store.asimilarity_search("query", k=4, filter={"year": {"$gte": 2020}})
    """

    def __init__(
        self,
        embedding_function: Embeddings | list[Embeddings] | None,
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
        vector_field: str | list[str] = "vector",
        enable_dynamic_field: bool | None = None,
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
        coalescing: CoalescingSettings | bool | None = None,
        max_concurrent_rpcs: int = 32,
        query_cache_size: int = 0,
        batch_query_embeddings: bool | None = None,
        retry: RetrySettings | None = None,
        **kwargs: Any,
    ) -> None:
        """Arguments as in ``langchain_milvus.Milvus``, plus async tuning (keyword-only):

        ``coalescing`` merges concurrent async calls into batched requests (on by default;
        ``False`` or ``CoalescingSettings(...)``), ``max_concurrent_rpcs`` caps RPCs in
        flight per event loop, ``query_cache_size`` > 0 caches query embeddings (LRU), and
        ``batch_query_embeddings`` lets concurrent queries share one embedding call (None:
        only for embedders known to embed queries like documents); ``retry`` is the policy
        for transient Milvus failures (``RetrySettings``; see the README's Reliability).
        Any other keyword raises ``TypeError`` naming the closest valid one.
        """
        check_known_kwargs(kwargs, parameter_names(Milvus.__init__), "Milvus()")
        vectors = vector_args(
            embedding_function,
            builtin_function,
            vector_field,
            text_field,
            vector_schema,
            index_params,
            search_params,
        )
        dense_field, sparse = vectors.dense_field, vectors.sparse
        self.vector_schema = vector_schema
        del vector_schema  # accepted for drop-in compatibility; unused
        metadata = metadata_layout(
            enable_dynamic_field,
            metadata_field,
            metadata_schema,
            reserved=[primary_field, text_field, dense_field, *vectors.vector_fields],
        )
        self.metadata_schema = metadata_schema
        self._given_index_params, self._given_search_params = index_params, search_params
        self.embedding_func = (
            embedding_function[0]
            if isinstance(embedding_function, list) and len(embedding_function) == 1
            else embedding_function
        )
        self.collection_name = collection_name
        self._spec = CollectionSpec(
            name=collection_name,
            description=collection_description,
            properties=collection_properties,
            primary_field=primary_field,
            text_field=text_field,
            vector_field=dense_field,
            metadata_field=metadata.metadata_field,
            enable_dynamic_field=metadata.enable_dynamic_field,
            metadata_columns=metadata.columns,
            partition_key_field=partition_key_field,
            num_partitions=num_partitions,
            num_shards=num_shards,
            partition_names=partition_names,
            replica_number=replica_number,
            auto_id=auto_id,
            consistency_level=consistency_level,
            index_params=vectors.index_params,
            search_params=vectors.search_params,
            sparse=sparse,
            vectors=vectors.vectors,
        )
        self._engine = MilvusEngine(
            self._spec,
            ConnectionConfig.from_connection_args(
                connection_args, default_uri=DEFAULT_EMBEDDED_URI
            ),
            embedder=vectors.embedder,
            drop_old=bool(drop_old),
            timeout=timeout,
            coalescing=coalescing,
            max_concurrent_rpcs=max_concurrent_rpcs,
            query_cache_size=query_cache_size,
            batch_query_embeddings=batch_query_embeddings,
            retry=retry,
        )

    def __repr__(self) -> str:
        return (
            f"Milvus(collection_name={self.collection_name!r}, connection={self._engine.config!r})"
        )

    # ----- properties ---------------------------------------------------------------------

    @property
    def embeddings(self) -> Any:
        return self.embedding_func

    @property
    def client(self) -> Any:
        """The sync ``pymilvus.MilvusClient`` (escape hatch)."""
        return self._engine.client

    @property
    def aclient(self) -> Any:
        """The running loop's ``pymilvus.AsyncMilvusClient`` (escape hatch)."""
        return self._engine.aclient

    # ----- hooks for the shared surface -------------------------------------------------------

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """As langchain-milvus: no relevance function for several embedding functions (fused
        scores) or a sparse-only store (unbounded BM25 / inner product scores)."""
        vectors, sparse = self._spec.vectors, self._spec.sparse
        if vectors is not None and len(vectors) > 1:
            raise InvalidInputError(
                "No relevance function for several vector fields (their fused scores have no "
                "fixed range); use similarity_search_with_score."
            )
        if vectors is not None and (
            (not vectors and sparse is not None) or (vectors and vectors[0].sparse and not sparse)
        ):
            raise InvalidInputError(
                "No relevance function for a sparse-only store (its scores have no fixed "
                "range); use similarity_search_with_score."
            )
        return super()._select_relevance_score_fn()

    def _search_options(self, param: dict | None) -> dict[str, Any]:
        return {"search_params": param}

    def _pk_query_options(self) -> dict[str, Any]:
        return {"output_fields": []}

    def _pk_value(self, record: Record) -> str | int:
        layout = self._engine.layout
        return int(record.id) if layout is not None and layout.pk_is_int else record.id

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
        if self._spec.vectors is not None:  # typed / several vector fields: all of them
            return self._engine.search_fields(
                query,
                k=k,
                fetch_k=fetch_k,
                ranker=ranker,
                ranker_params=ranker_params,
                filter=filter,
                search_params=param,
            )
        return self._engine.hybrid_search(
            query,
            k=k,
            dense_k=fetch_k,
            sparse_k=fetch_k,
            ranker=ranker,
            ranker_params=ranker_params,
            filter=filter,
            search_params=param,
        )

    def _full_text_op(self, query: str, *, k: int, filter: Any) -> Op[list[Record]]:
        return self._engine.full_text_search(query, k=k, filter=filter)

    def _scored_op(
        self,
        *,
        query: str = "",  # read only when vector is None (each caller passes one of the two)
        vector: Sequence[float] | None = None,
        k: int,
        param: dict | None,
        expr: Any,
        kwargs: Mapping[str, Any],
    ) -> Op[list[tuple[Document, float]]]:
        """As in langchain-milvus, a text search on a store with a BM25 function or several
        vector fields searches them all, fused by the ranker."""
        if (self._spec.sparse is None and self._spec.vectors is None) or vector is not None:
            return (
                yield from super()._scored_op(
                    query=query, vector=vector, k=k, param=param, expr=expr, kwargs=kwargs
                )
            )
        records = yield from self._hybrid_op(
            query,
            k=k,
            fetch_k=kwargs.get("fetch_k"),
            ranker=kwargs.get("reranker")
            or kwargs.get("ranker_type")
            or kwargs.get("ranker")
            or "rrf",
            ranker_params=kwargs.get("ranker_params"),
            filter=pick_filter(expr, kwargs),
            param=param,
        )
        return [(to_document(r), float(r.score or 0.0)) for r in records]

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
    def from_texts(
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
    async def afrom_texts(
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

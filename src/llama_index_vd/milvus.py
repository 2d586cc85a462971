"""``llama_index_vd.MilvusVectorStore``: a drop-in for LlamaIndex's Milvus store, natively async.

Same constructor arguments as ``llama_index.vector_stores.milvus.MilvusVectorStore``. Every
method is a sync/async pair of one-line shells over one operation of the shared
:class:`~vd_integrations.milvus.engine.MilvusEngine` (the sync one on ``MilvusClient``, the
async one on the running loop's own ``AsyncMilvusClient``), so the twins cannot disagree,
and one store serves any number of event loops (``asyncio.run``, pytest-asyncio,
``nest_asyncio``).

The collection matches LlamaIndex's layout: primary key ``id`` (VARCHAR), a ``doc_id``
VARCHAR column, the node text in ``text``, the vector in ``embedding``, and node metadata
(plus ``_node_content``, the node as JSON) in dynamic fields. Differences, all deliberate:

- With ``dim``, the constructor opens the collection as LlamaIndex's does (with the sync
  client: ``overwrite=True`` drops the old one, a missing one is created with its index and
  ``consistency_level``, and loaded), so async calls that follow do no setup. Without
  ``dim`` nothing touches the network in the constructor: the collection is created (once,
  even under concurrent first writes) by the first ``add``, with ``dim`` taken from the
  nodes, and ``overwrite=True`` drops the old one on first use.
- A collection made elsewhere (``MilvusClient.create_collection(dimension=...,
  primary_field_name="id", vector_field_name="embedding", auto_id=True)``) opens with
  ``doc_id_field="id"`` (the document id is then the primary key) and a ``text_key`` kept
  in the dynamic field (``custom_text``); its rows become ``TextNode`` s whose metadata are
  the ``output_fields`` (all their dynamic keys when ``output_fields`` is empty, where
  LlamaIndex gives none) and whose ``node_id`` is the primary key as a string.
- ``MetadataFilters`` are translated server side with every operator, any nesting and a
  ``NOT`` that keeps its meaning (see :mod:`llama_index_vd.filters`); ``doc_ids``,
  ``node_ids`` and a ``string_expr`` kwarg are ANDed in (empty id lists, which
  ``VectorStoreIndex`` passes, restrict nothing); ``get_nodes([])`` and
  ``delete_nodes([])`` touch no node.
- Bad input (nodes without embeddings, wrong dimensions, bad filters, ``k <= 0``, ...)
  raises a clear ``ValueError`` before anything is written.
- Metadata keys named like a collection field (``id``, ``text``, ``embedding``) are kept
  only inside ``_node_content``: nodes round-trip, but such keys are not filterable.
- ``upsert_mode=False`` (the default) inserts, as LlamaIndex does (real Milvus then keeps
  duplicates of a re-added id; Milvus Lite replaces them); ``upsert_mode=True`` upserts.
- Similarities are raw Milvus scores (a distance for L2); for MMR they are the selected
  nodes' search scores (LlamaIndex returns MMR objective values). ``add`` ignores
  ``force_flush`` (Milvus persists on its own).
- Hybrid search: ``enable_sparse=True`` gives a new collection an analyzed text field, a
  built-in BM25 function into ``sparse_embedding_field`` and its sparse index
  (``sparse_index_config``); a ``sparse_embedding_function`` (LlamaIndex's
  ``BaseSparseEmbeddingFunction`` shape: ``encode_documents`` / ``encode_queries``, async
  twins optional) stores caller-computed sparse vectors instead. Query modes ``HYBRID``
  (dense leg ``similarity_top_k``, sparse leg ``sparse_top_k``, ``hybrid_top_k`` results,
  fused by ``hybrid_ranker`` / ``hybrid_ranker_params``, or weighted ``[alpha, 1 - alpha]``
  when the query sets ``alpha``), ``SPARSE`` and ``TEXT_SEARCH`` (BM25 only,
  ``sparse_top_k`` results). Similarities: fused scores / BM25 scores, higher is better.
  BM25 needs Milvus 2.5+ or Milvus Lite 3.x. ``enable_dense=False``: a sparse-only
  collection (nodes need no embedding; queries in SPARSE or TEXT_SEARCH mode).
  ``index_management="create_if_not_exists"`` (the default) also indexes an existing
  collection that lacks its index when the store opens it (in the constructor with ``dim``,
  else at first use); ``"no_validation"`` leaves it as is. A new collection always gets
  its index (LlamaIndex's ``no_validation`` creates one without, which cannot be searched).
  ``use_async_client`` is accepted and has no effect (async I/O is always native), and so
  is ``id_field="id"`` (the primary key is always ``id``; any other name is refused).
  Extra keyword arguments must be pymilvus connection settings
  (``user``, ``password``, ``db_name``, ``secure``, ``server_pem_path``...); any other
  name raises ``TypeError`` naming the closest valid one. ``output_fields`` only limits
  the metadata of rows written by other tools (nodes carry their metadata in
  ``_node_content``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_serializer
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import (
    DEFAULT_DOC_ID_KEY,
    DEFAULT_EMBEDDING_KEY,
    DEFAULT_TEXT_KEY,
)
from pydantic import FieldSerializationInfo

from llama_index_vd._milvus_collection import (
    MILVUS_ID_FIELD,
    NodeCollectionSpec,
    check_id_field,
    index_params,
    node_columns,
    node_filter_expr,
)
from llama_index_vd._milvus_search import check_search_options, search_records, store_ranker
from llama_index_vd._milvus_sparse import SparseEncoder, add_sparse_vectors, sparse_spec
from llama_index_vd._nodes import (
    check_doc_ids,
    check_ids,
    in_id_order,
    node_rows,
    query_result,
    record_to_node,
)
from llama_index_vd._search_plan import plan_search
from llama_index_vd._shells import EngineShells, call_timeout
from llama_index_vd._sparse_only import check_dense_settings, check_sparse_query, checked_nodes
from vd_integrations.core.coalesce import CoalescingSettings
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import refuse_delete_of_everything
from vd_integrations.core.retry import RetrySettings
from vd_integrations.core.validation import check_known_kwargs, parameter_names
from vd_integrations.milvus.config import CONNECTION_KWARGS, ConnectionConfig, redact_setting
from vd_integrations.milvus.engine import MilvusEngine, Op
from vd_integrations.milvus.rankers import Ranker
from vd_integrations.milvus.schema import CollectionLayout, Record

__all__ = ["DEFAULT_MILVUS_URI", "IndexManagement", "MilvusVectorStore"]

DEFAULT_MILVUS_URI = "./milvus_llamaindex.db"
DEFAULT_BATCH_SIZE = 100
#: LlamaIndex's constructor arguments with no effect here: async I/O is always native, and
#: ``id_field`` (passed by LlamaIndex's own tests, ignored there) can only be ``"id"``.
_UPSTREAM_ONLY = frozenset({"use_async_client", "id_field"})


class IndexManagement(str, Enum):
    """LlamaIndex's index management strategies (its own enum is accepted too)."""

    NO_VALIDATION = "no_validation"
    CREATE_IF_NOT_EXISTS = "create_if_not_exists"


def _index_management(value: Any) -> IndexManagement:
    try:
        return IndexManagement(getattr(value, "value", value))
    except ValueError:
        raise InvalidInputError(
            f"index_management must be one of {[m.value for m in IndexManagement]}, got {value!r}."
        ) from None


class MilvusVectorStore(EngineShells, BasePydanticVectorStore):
    """Milvus vector store for LlamaIndex with native async I/O (see the module docstring).

    Example:
        .. code-block:: python

            from llama_index.core import StorageContext, VectorStoreIndex
            from llama_index_vd import MilvusVectorStore

            store = MilvusVectorStore(uri="http://localhost:19530", collection_name="docs")
            index = VectorStoreIndex.from_documents(
                documents, storage_context=StorageContext.from_defaults(vector_store=store)
            )
            nodes = await index.as_retriever(filters=filters).aretrieve("query")

    Besides LlamaIndex's arguments: ``coalescing`` (concurrent async adds, queries and
    deletes merged into batched requests; on by default, ``False`` turns it off) and
    ``max_concurrent_rpcs`` (RPCs in flight per event loop) and ``retry`` (a
    ``RetrySettings`` policy for transient Milvus failures).
    """

    stores_text: bool = True
    stores_node: bool = True

    uri: str = Field(default=DEFAULT_MILVUS_URI, repr=False)  # shown redacted by __repr__
    token: str = Field(default="", exclude=True, repr=False)
    collection_name: str = "llamacollection"
    dim: int | None = None
    embedding_field: str = DEFAULT_EMBEDDING_KEY
    doc_id_field: str = DEFAULT_DOC_ID_KEY
    similarity_metric: str = "IP"
    consistency_level: str = "Session"
    overwrite: bool = False
    upsert_mode: bool = False
    text_key: str = DEFAULT_TEXT_KEY
    output_fields: list[str] = Field(default_factory=list)
    index_config: dict | None = None
    sparse_index_config: dict | None = None
    search_config: dict | None = None
    collection_properties: dict | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    enable_dense: bool = True
    enable_sparse: bool = False
    sparse_embedding_field: str = "sparse_embedding"
    sparse_embedding_function: Any = None
    hybrid_ranker: str = "RRFRanker"
    hybrid_ranker_params: dict = Field(default_factory=dict)
    index_management: IndexManagement = IndexManagement.CREATE_IF_NOT_EXISTS
    scalar_field_names: list[str] | None = None
    scalar_field_types: list[Any] | None = None

    _engine: MilvusEngine = PrivateAttr()
    _columns: dict[str, Any] = PrivateAttr()
    _ranker: Ranker = PrivateAttr()
    _sparse: SparseEncoder | None = PrivateAttr(default=None)

    def __init__(
        self,
        uri: str = DEFAULT_MILVUS_URI,
        token: str = "",
        collection_name: str = "llamacollection",
        overwrite: bool = False,
        upsert_mode: bool = False,
        collection_properties: dict | None = None,
        doc_id_field: str = DEFAULT_DOC_ID_KEY,
        text_key: str | None = DEFAULT_TEXT_KEY,
        scalar_field_names: list[str] | None = None,
        scalar_field_types: list[Any] | None = None,
        enable_dense: bool = True,
        dim: int | None = None,
        embedding_field: str = DEFAULT_EMBEDDING_KEY,
        enable_sparse: bool = False,
        sparse_embedding_field: str = "sparse_embedding",
        sparse_embedding_function: Any = None,
        index_management: Any = IndexManagement.CREATE_IF_NOT_EXISTS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        index_config: dict | None = None,
        sparse_index_config: dict | None = None,
        search_config: dict | None = None,
        similarity_metric: str = "IP",
        consistency_level: str = "Session",
        output_fields: list[str] | None = None,
        hybrid_ranker: str = "RRFRanker",
        hybrid_ranker_params: dict | None = None,
        coalescing: CoalescingSettings | bool | None = None,
        max_concurrent_rpcs: int = 32,
        retry: RetrySettings | None = None,
        **kwargs: Any,
    ) -> None:
        # **kwargs are connection settings (as LlamaIndex passes them to MilvusClient): a
        # name that is neither one of those nor a parameter is a typo, not an option.
        check_known_kwargs(
            kwargs,
            parameter_names(MilvusVectorStore.__init__) | CONNECTION_KWARGS | _UPSTREAM_ONLY,
            "MilvusVectorStore()",
        )
        check_id_field(kwargs.get("id_field", MILVUS_ID_FIELD))
        for name in _UPSTREAM_ONLY:
            kwargs.pop(name, None)
        check_dense_settings(enable_dense, enable_sparse)
        ranker = store_ranker(hybrid_ranker, hybrid_ranker_params)
        sparse = (
            sparse_spec(sparse_embedding_function, sparse_embedding_field, text_key or "")
            if enable_sparse
            else None
        )
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
            raise InvalidInputError(f"dim must be a positive integer, got {dim!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}.")
        text_key = text_key or DEFAULT_TEXT_KEY
        index = index_params(index_config, similarity_metric, embedding_field)
        columns = node_columns(
            text_key, embedding_field, doc_id_field, scalar_field_names, scalar_field_types
        )
        super().__init__(
            stores_text=True,  # the field BasePydanticVectorStore requires
            uri=uri or DEFAULT_MILVUS_URI,
            token=token or "",
            collection_name=collection_name,
            dim=dim,
            embedding_field=embedding_field,
            doc_id_field=doc_id_field,
            similarity_metric=index["metric_type"],
            consistency_level=consistency_level,
            overwrite=overwrite,
            upsert_mode=upsert_mode,
            text_key=text_key,
            output_fields=list(output_fields or []),
            index_config=dict(index_config or {}),
            sparse_index_config=dict(sparse_index_config or {}),
            search_config=dict(search_config or {}),
            collection_properties=collection_properties,
            batch_size=batch_size,
            enable_dense=enable_dense,
            enable_sparse=enable_sparse,
            sparse_embedding_field=sparse_embedding_field,
            sparse_embedding_function=sparse_embedding_function,
            hybrid_ranker=hybrid_ranker,
            hybrid_ranker_params=dict(hybrid_ranker_params or {}),
            index_management=_index_management(index_management),
            scalar_field_names=scalar_field_names,
            scalar_field_types=scalar_field_types,
        )
        spec = NodeCollectionSpec(
            name=collection_name,
            properties=collection_properties,
            primary_field=MILVUS_ID_FIELD,
            text_field=text_key,
            vector_field=embedding_field,
            consistency_level=consistency_level,
            index_params=index,
            search_params=self.search_config or None,
            index_existing=self.index_management is IndexManagement.CREATE_IF_NOT_EXISTS,
            scalar_columns=tuple(columns.items()),
            sparse=None
            if sparse is None
            else dataclasses.replace(sparse, index_params=self.sparse_index_config or None),
            vectors=None if enable_dense else (),  # enable_dense=False: the sparse field only
        )
        kwargs.pop("alias", None)  # pymilvus connection aliases are managed by the engine
        self._columns = columns
        self._ranker = ranker
        self._sparse = (
            None if sparse is None or sparse.bm25 else SparseEncoder(sparse_embedding_function)
        )
        self._engine = MilvusEngine(
            spec,
            ConnectionConfig.from_connection_args({"uri": self.uri, "token": token, **kwargs}),
            drop_old=overwrite,
            coalescing=coalescing,
            max_concurrent_rpcs=max_concurrent_rpcs,
            retry=retry,
        )
        if dim is not None or not enable_dense:  # as LlamaIndex's store: ready after __init__
            self._engine.run(self._engine.ready(dim or 1))  # (no dense field: dim unused)

    @classmethod
    def class_name(cls) -> str:
        return "VdMilvusVectorStore"

    @field_serializer("uri", "token")
    def _redact_connection(self, value: str, info: FieldSerializationInfo) -> str:
        """``model_dump``, ``model_dump_json``, ``to_dict`` and ``to_json`` show the URI and
        token as ``repr`` does: no password inside the URI, no token."""
        return redact_setting(info.field_name, value)

    def __repr__(self) -> str:
        return (
            f"MilvusVectorStore(collection_name={self.collection_name!r}, "
            f"connection={self._engine.config!r})"
        )

    __str__ = __repr__

    # ----- escape hatches ---------------------------------------------------------------------

    @property
    def engine(self) -> MilvusEngine:
        """The framework-free engine behind this store."""
        return self._engine

    @property
    def client(self) -> Any:
        """The sync ``pymilvus.MilvusClient``."""
        return self._engine.client

    @property
    def aclient(self) -> Any:
        """The running loop's ``pymilvus.AsyncMilvusClient`` (use inside a coroutine)."""
        return self._engine.aclient

    # ----- pure helpers -------------------------------------------------------------------------

    def _expr(
        self,
        layout: CollectionLayout | None,
        filters: MetadataFilters | None,
        *,
        node_ids: list[str] | None = None,
        doc_ids: list[str] | None = None,
        string_expr: Any = None,
    ) -> str | None:
        """The filters, ids and extra expression ANDed into one Milvus expression."""
        return node_filter_expr(
            layout,
            filters,
            text_key=self.text_key,
            doc_id_field=self.doc_id_field,
            columns=self._columns,
            node_ids=node_ids,
            doc_ids=doc_ids,
            string_expr=string_expr,
        )

    def _to_node(self, record: Record, with_embedding: bool = False) -> BaseNode:
        return record_to_node(
            record, with_embedding=with_embedding, metadata_keys=self.output_fields
        )

    # ----- operations, written once -------------------------------------------------------------

    def _add_op(
        self, nodes: Sequence[BaseNode], sparse: Sequence[Any] | None = None
    ) -> Op[list[str]]:
        nodes = checked_nodes(nodes, self.dim, dense=self.enable_dense)
        if not nodes:
            return []
        layout = yield from self._engine.ready()
        skip = layout.reserved_keys if layout else {MILVUS_ID_FIELD, self.text_key, "$meta"}
        skip = {*skip, self.sparse_embedding_field} if self.enable_sparse else skip
        doc_id = self.doc_id_field
        rows = node_rows(
            nodes,
            skip_keys={*skip, self.embedding_field},
            # doc_id_field="id": the document id is the primary key, not a column to write
            extra=None
            if doc_id == MILVUS_ID_FIELD
            else lambda node: {doc_id: node.ref_doc_id or "None"},
        )
        op = self._engine.add(
            rows.texts,
            vectors=rows.vectors if self.enable_dense else None,
            metadatas=rows.metadatas,
            ids=rows.ids,
            batch_size=self.batch_size,
            upsert=self.upsert_mode,
        )
        if sparse is not None:  # caller-computed sparse vectors go into the written rows
            field = self.sparse_embedding_field
            op = add_sparse_vectors(op, sparse, rows.ids, field=field, pk_field=MILVUS_ID_FIELD)
        return (yield from op)

    # ----- user-supplied sparse embeddings: computed in the shells, sync or async -------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store nodes with their embeddings (and sparse embeddings, if configured)."""
        sparse = None if self._sparse is None else self._sparse.documents(nodes)
        return self._engine.run(self._add_op(nodes, sparse), timeout=call_timeout(add_kwargs))

    async def async_add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        sparse = None if self._sparse is None else await self._sparse.adocuments(nodes)
        op = self._add_op(nodes, sparse)
        return await self._engine.arun(op, timeout=call_timeout(add_kwargs))

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top nodes for ``query``: DEFAULT, MMR, HYBRID, SPARSE or TEXT_SEARCH mode."""
        sparse = None if self._sparse is None else self._sparse.query(query)
        return self._engine.run(self._query_op(query, kwargs, sparse), timeout=call_timeout(kwargs))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        sparse = None if self._sparse is None else await self._sparse.aquery(query)
        op = self._query_op(query, kwargs, sparse)
        return await self._engine.arun(op, timeout=call_timeout(kwargs))

    def _delete_op(self, ref_doc_id: Any) -> Op[None]:
        doc_ids = check_doc_ids(ref_doc_id)
        if doc_ids and self.doc_id_field == MILVUS_ID_FIELD:  # the document id is the key
            yield from self._engine.delete(doc_ids)
        elif doc_ids:
            yield from self._engine.delete_where_in(self.doc_id_field, doc_ids)

    def _delete_nodes_op(self, node_ids: Any, filters: MetadataFilters | None) -> Op[None]:
        ids = check_ids(node_ids, "node_ids")
        expr = self._expr(None, filters)  # validate before any I/O
        if ids is None:
            refuse_delete_of_everything(expr, clear="clear()")
        layout = yield from self._engine.ready()
        if layout is None or ids == []:
            return
        yield from self._engine.delete(ids, self._expr(layout, filters))

    def _get_nodes_op(self, node_ids: Any, filters: MetadataFilters | None) -> Op[list[BaseNode]]:
        if node_ids is None and filters is None:
            raise InvalidInputError("get_nodes needs node_ids and/or filters.")
        ids = check_ids(node_ids, "node_ids")
        self._expr(None, filters)
        layout = yield from self._engine.ready()
        if layout is None or ids == []:
            return []
        records = yield from self._engine.query(
            self._expr(layout, filters), ids=ids, with_vectors=True
        )
        nodes = [self._to_node(r, with_embedding=True) for r in records]
        return nodes if ids is None else in_id_order(nodes, ids)

    def _query_op(
        self, query: VectorStoreQuery, kwargs: Mapping[str, Any], sparse_query: Any = None
    ) -> Op[Any]:
        check_sparse_query(query, dense=self.enable_dense)
        plan = plan_search(query, kwargs, store=type(self).__name__, dim=self.dim)
        check_search_options(
            plan, query, kwargs, ranker=self._ranker, embedding_field=self.embedding_field
        )
        # Empty id lists place no restriction: VectorStoreIndex passes node_ids=[] for stores
        # that keep the text (LlamaIndex's own stores treat [] the same way).
        node_ids = check_ids(query.node_ids, "node_ids") or None
        doc_ids = check_ids(query.doc_ids, "doc_ids") or None
        self._expr(None, query.filters, string_expr=kwargs.get("string_expr"))
        layout = yield from self._engine.ready()
        expr = self._expr(
            layout,
            query.filters,
            node_ids=node_ids,
            doc_ids=doc_ids,
            string_expr=kwargs.get("string_expr"),
        )
        records = yield from search_records(
            self._engine,
            plan,
            expr,
            ranker=self._ranker,
            search_params=kwargs.get("milvus_search_config"),
            sparse_query=sparse_query,
        )
        return query_result(records, self._to_node)

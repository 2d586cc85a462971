"""``llama_index_vd.VDVectorStore``: a LlamaIndex vector store over any vd backend, sync and async.

The contract matches :class:`llama_index_vd.MilvusVectorStore`. Every method is a
sync/async pair of one-line shells over one operation of the shared
:class:`~vd_integrations.vd.engine.VdEngine`, so the twins cannot disagree.

- Each node is stored as a vd document: its id, its text, its embedding and, as metadata,
  :func:`node_to_metadata_dict` (the node as ``_node_content`` JSON, its metadata, its
  ``doc_id``) plus ``id`` (the node id, so ``node_ids`` and filters on ``id`` work as in
  Milvus). A metadata key ``id`` of the node itself survives inside ``_node_content``.
- ``MetadataFilters`` become vd dict filters with the semantics described in
  :mod:`llama_index_vd.filters`; ``TEXT_MATCH`` and ``TEXT_MATCH_INSENSITIVE`` have no vd
  equivalent and raise a clear error.
- Adding an existing node id replaces it. Similarities are vd scores (higher is better:
  cosine in [-1, 1], dot the inner product, l2 ``1 / (1 + distance)``).
- ``HYBRID``, ``SPARSE`` and ``TEXT_SEARCH`` modes use vd's portable fallback: dense search
  plus a client-side BM25 scan of the matching documents (O(N)), fused by reciprocal rank
  fusion (``sparse_top_k`` / ``hybrid_top_k`` honoured; ``alpha`` is refused, as weighted
  fusion needs a native backend such as ``MilvusVectorStore``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.utils import DEFAULT_DOC_ID_KEY

from llama_index_vd._nodes import (
    check_doc_ids,
    check_ids,
    check_nodes,
    node_rows,
    query_result,
    record_to_node,
)
from llama_index_vd._search_plan import plan_search
from llama_index_vd._shells import EngineShells
from llama_index_vd.filters import to_vd_filter
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import refuse_delete_of_everything
from vd_integrations.core.ops import Op
from vd_integrations.core.validation import parameter_names
from vd_integrations.vd.engine import VdEngine, check_connect_kwargs
from vd_integrations.vd.hybrid import vd_hybrid_search, vd_text_search

__all__ = ["VDVectorStore"]

ID_KEY = "id"
_METRICS = {"cosine": "cosine", "dot": "dot", "ip": "dot", "l2": "l2", "euclidean": "l2"}


def _and(*filters: dict[str, Any] | None) -> dict[str, Any] | None:
    kept = [f for f in filters if f]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else {"$and": kept}


class VDVectorStore(EngineShells, BasePydanticVectorStore):
    """LlamaIndex vector store over any vd backend (``memory``, ``faiss``, ``qdrant``, ...).

    Example:
        .. code-block:: python

            from llama_index_vd import VDVectorStore

            store = VDVectorStore(backend="memory", collection_name="docs")
            ids = await store.async_add(nodes)
            result = await store.aquery(VectorStoreQuery(query_embedding=v, similarity_top_k=4))
    """

    stores_text: bool = True
    stores_node: bool = True

    backend: str = "memory"
    collection_name: str = "llama_index"
    metric: str = "cosine"
    batch_size: int = 100
    connect_kwargs: dict = Field(default_factory=dict, exclude=True, repr=False)

    _engine: VdEngine = PrivateAttr()

    def __init__(
        self,
        backend: str = "memory",
        collection_name: str = "llama_index",
        metric: str = "cosine",
        batch_size: int = 100,
        **connect_kwargs: Any,
    ) -> None:
        check_connect_kwargs(  # vd ignores options its adapter does not take: refuse typos
            backend,
            connect_kwargs,
            where=f"VDVectorStore(backend={backend!r})",
            own=parameter_names(VDVectorStore.__init__),
        )
        canonical = _METRICS.get(str(metric).lower())
        if canonical is None:
            raise InvalidInputError(
                f"metric must be one of 'cosine', 'dot' (or 'ip'), 'l2' (or 'euclidean'), "
                f"got {metric!r}."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}.")
        engine = VdEngine(
            backend, collection_name=collection_name, metric=canonical, **connect_kwargs
        )
        super().__init__(
            stores_text=True,  # the field BasePydanticVectorStore requires
            backend=backend,
            collection_name=collection_name,
            metric=canonical,
            batch_size=batch_size,
            connect_kwargs=connect_kwargs,
        )
        self._engine = engine

    @classmethod
    def class_name(cls) -> str:
        return "VDVectorStore"

    def __repr__(self) -> str:
        return (
            f"VDVectorStore(backend={self.backend!r}, collection_name={self.collection_name!r}, "
            f"metric={self._engine.metric!r})"
        )

    __str__ = __repr__

    # ----- escape hatches ---------------------------------------------------------------------

    @property
    def engine(self) -> VdEngine:
        """The framework-free engine behind this store."""
        return self._engine

    @property
    def client(self) -> Any:
        """The sync vd client."""
        return self._engine.client

    # ----- operations, written once -------------------------------------------------------------

    def _filter(
        self,
        filters: MetadataFilters | None,
        node_ids: list[str] | None = None,
        doc_ids: list[str] | None = None,
    ) -> dict[str, Any] | None:
        return _and(
            to_vd_filter(filters),
            None if node_ids is None else {ID_KEY: {"$in": node_ids}},
            None if doc_ids is None else {DEFAULT_DOC_ID_KEY: {"$in": doc_ids}},
        )

    def _add_op(self, nodes: Sequence[BaseNode]) -> Op[list[str]]:
        rows = node_rows(check_nodes(nodes, None), extra=lambda node: {ID_KEY: node.node_id})
        return (
            yield from self._engine.add(
                rows.texts, rows.vectors, rows.metadatas, rows.ids, batch_size=self.batch_size
            )
        )

    def _delete_op(self, ref_doc_id: Any) -> Op[None]:
        doc_ids = check_doc_ids(ref_doc_id)
        if doc_ids:
            yield from self._engine.delete(filter={DEFAULT_DOC_ID_KEY: {"$in": doc_ids}})

    def _delete_nodes_op(self, node_ids: Any, filters: MetadataFilters | None) -> Op[None]:
        ids = check_ids(node_ids, "node_ids")
        flt = self._filter(filters)
        if ids is None:
            refuse_delete_of_everything(flt, clear="clear()")
        if ids != []:
            yield from self._engine.delete(ids, flt)

    def _get_nodes_op(self, node_ids: Any, filters: MetadataFilters | None) -> Op[list[BaseNode]]:
        if node_ids is None and filters is None:
            raise InvalidInputError("get_nodes needs node_ids and/or filters.")
        ids = check_ids(node_ids, "node_ids")
        records = yield from self._engine.query(self._filter(filters), ids=ids, with_vectors=True)
        return [record_to_node(r, with_embedding=True) for r in records]

    def _query_op(self, query: VectorStoreQuery, kwargs: Mapping[str, Any]) -> Op[Any]:
        plan = plan_search(query, kwargs, store=type(self).__name__, dim=None)
        flt = self._filter(  # empty id lists restrict nothing, as in MilvusVectorStore
            query.filters,
            check_ids(query.node_ids, "node_ids") or None,
            check_ids(query.doc_ids, "doc_ids") or None,
        )
        if plan.hybrid:
            if plan.alpha is not None:
                raise InvalidInputError(
                    "VDVectorStore fuses HYBRID results by reciprocal rank (vd's fallback), so "
                    "alpha (weighted fusion) cannot be honoured; drop alpha, or use "
                    "MilvusVectorStore for weighted fusion."
                )
            records = yield from vd_hybrid_search(
                self._engine,
                plan.query_str or "",
                vector=plan.vector,
                k=plan.k,
                dense_k=plan.dense_k,
                sparse_k=plan.sparse_k,
                filter=flt,
            )
        elif plan.sparse_only:
            records = yield from vd_text_search(
                self._engine, plan.query_str or "", k=plan.k, filter=flt
            )
        elif plan.mmr:
            records = yield from self._engine.mmr(
                plan.vector,
                k=plan.k,
                fetch_k=plan.fetch_k or plan.k,
                lambda_mult=plan.lambda_mult,
                filter=flt,
            )
        else:
            records = (yield from self._engine.search([plan.query_vector], k=plan.k, filter=flt))[0]
        return query_result(records, record_to_node)

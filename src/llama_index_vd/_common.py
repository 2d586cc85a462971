"""Pure pieces shared by the LlamaIndex stores: input checks, query plans, node conversion."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import Op
from vd_integrations.core.validation import check_metadata_depth
from vd_integrations.milvus.schema import Record

__all__ = [
    "DEFAULT_MMR_PREFETCH_FACTOR",
    "NODE_CONTENT_KEY",
    "EngineShells",
    "NodeRows",
    "SearchPlan",
    "check_ids",
    "check_nodes",
    "node_rows",
    "plan_search",
    "query_result",
    "record_to_node",
]

DEFAULT_MMR_PREFETCH_FACTOR = 4.0
NODE_CONTENT_KEY = "_node_content"
_SPARSE_MODES = {
    VectorStoreQueryMode.SPARSE,
    VectorStoreQueryMode.HYBRID,
    VectorStoreQueryMode.TEXT_SEARCH,
    VectorStoreQueryMode.SEMANTIC_HYBRID,
}


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def check_ids(ids: Any, what: str) -> list[str] | None:
    """``None``, or a list of string ids (duplicates dropped, order kept)."""
    if ids is None:
        return None
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise InvalidInputError(f"{what} must be a list of strings, got {ids!r}.")
    out = list(dict.fromkeys(ids))
    for value in out:
        if not isinstance(value, str) or not value:
            raise InvalidInputError(
                f"{what} must be non-empty strings, got {value!r} ({type(value).__name__}); "
                f"convert them with str()."
            )
    return out


def _check_ref_doc_id(ref_doc_id: Any) -> None:
    """``delete`` takes a document id or a list of them; ``None`` is a caller's mistake."""
    if ref_doc_id is None:
        raise InvalidInputError(
            "ref_doc_id must be a document id (a non-empty str) or a list of them, got None."
        )


def check_nodes(nodes: Any, dim: int | None) -> list[BaseNode]:
    """The nodes as a list, each a ``BaseNode`` with an embedding (of ``dim`` if given)."""
    if isinstance(nodes, BaseNode) or not isinstance(nodes, Iterable):
        raise InvalidInputError(f"add expects a list of nodes, got {type(nodes).__name__}.")
    nodes = list(nodes)
    for i, node in enumerate(nodes):
        if not isinstance(node, BaseNode):
            raise InvalidInputError(
                f"node #{i} is a {type(node).__name__}, not a llama_index BaseNode."
            )
        if node.embedding is None:
            raise InvalidInputError(
                f"node #{i} ({node.node_id!r}) has no embedding. Embed nodes before adding "
                f"them (VectorStoreIndex does so with its embed_model)."
            )
        if dim is not None and len(node.embedding) != dim:
            raise InvalidInputError(
                f"node #{i} ({node.node_id!r}) has an embedding of dimension "
                f"{len(node.embedding)}, but the store was created with dim={dim}."
            )
    return nodes


@dataclass(frozen=True)
class NodeRows:
    """Nodes as the engines' columns."""

    texts: list[str]
    vectors: list[list[float]]
    metadatas: list[dict[str, Any]]
    ids: list[str]


def node_rows(
    nodes: Sequence[BaseNode],
    *,
    skip_keys: Iterable[str] = (),
    extra: Callable[[BaseNode], Mapping[str, Any]] | None = None,
) -> NodeRows:
    """Split nodes into text, vector, metadata and id columns.

    The metadata is :func:`node_to_metadata_dict` (the node, minus text and embedding, as
    ``_node_content`` JSON, plus its metadata and doc ids for filtering). Keys in
    ``skip_keys`` (names of the collection's own fields) are not stored as separate
    fields; they still round-trip inside ``_node_content``. ``extra`` adds fields.
    """
    skip = frozenset(skip_keys)
    metadatas = []
    for i, node in enumerate(nodes):
        check_metadata_depth(i, node.metadata or {})  # names the limit; pydantic would not
        try:
            meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
        except (TypeError, ValueError) as exc:  # pydantic cannot serialise a metadata value
            raise InvalidInputError(
                f"node #{i} ({node.node_id!r}) has metadata that cannot be serialised: {exc}. "
                f"Use str, int, float, bool, None, or lists/dicts of those."
            ) from None
        meta = {k: v for k, v in meta.items() if k not in skip}
        if extra is not None:
            meta.update(extra(node))
        metadatas.append(meta)
    return NodeRows(
        texts=[node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes],
        vectors=[list(node.embedding) for node in nodes if node.embedding is not None],
        metadatas=metadatas,
        ids=[node.node_id for node in nodes],
    )


def record_to_node(
    record: Record, *, with_embedding: bool = False, metadata_keys: Sequence[str] = ()
) -> BaseNode:
    """Rebuild a node; rows written by other tools (no ``_node_content``) become TextNodes."""
    if NODE_CONTENT_KEY in record.metadata:
        node = metadata_dict_to_node(dict(record.metadata), text=record.text)
    else:
        metadata = dict(record.metadata)
        if metadata_keys:
            metadata = {k: v for k, v in metadata.items() if k in set(metadata_keys)}
        node = TextNode(id_=record.id, text=record.text, metadata=metadata)
    if with_embedding and record.vector is not None:
        node.embedding = list(record.vector)
    return node


def query_result(
    records: Sequence[Record], to_node: Callable[[Record], BaseNode]
) -> VectorStoreQueryResult:
    return VectorStoreQueryResult(
        nodes=[to_node(r) for r in records],
        similarities=[float(r.score if r.score is not None else 0.0) for r in records],
        ids=[r.id for r in records],
    )


# --------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchPlan:
    """A validated query: the vector, ``k``, and for MMR ``fetch_k`` and ``lambda_mult``."""

    vector: list[Any] | None
    k: int
    fetch_k: int | None = None
    lambda_mult: float = 0.5
    #: Sparse / hybrid modes: the mode, the query text, each leg's limit (``k`` is the
    #: number of results), and ``alpha`` (weighted fusion ``[alpha, 1 - alpha]``).
    mode: VectorStoreQueryMode = VectorStoreQueryMode.DEFAULT
    query_str: str | None = None
    dense_k: int | None = None
    sparse_k: int | None = None
    alpha: float | None = None

    @property
    def query_vector(self) -> list[Any]:
        """``vector``, which every DEFAULT and MMR plan has (a sparse-mode plan may not)."""
        if self.vector is None:  # pragma: no cover - plan_search sets it for those modes
            raise RuntimeError("This search plan has no query vector.")
        return self.vector

    @property
    def mmr(self) -> bool:
        return self.fetch_k is not None

    @property
    def hybrid(self) -> bool:
        return self.mode is VectorStoreQueryMode.HYBRID

    @property
    def sparse_only(self) -> bool:
        """SPARSE or TEXT_SEARCH: the sparse (BM25) leg alone."""
        return self.mode in (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.TEXT_SEARCH)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _mode(query: VectorStoreQuery, store: str) -> VectorStoreQueryMode:
    try:
        mode = VectorStoreQueryMode(query.mode)
    except ValueError:
        raise InvalidInputError(f"Unknown query mode {query.mode!r}.") from None
    if mode is VectorStoreQueryMode.SEMANTIC_HYBRID:
        raise NotImplementedError(
            f"{store} does not implement VectorStoreQueryMode.{mode.name} (a semantic "
            f"reranker); use HYBRID (dense + BM25), SPARSE / TEXT_SEARCH (BM25), DEFAULT or MMR."
        )
    if mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR, *_SPARSE_MODES):
        raise NotImplementedError(
            f"{store} does not support VectorStoreQueryMode.{mode.name} (learner modes run "
            f"client side on SimpleVectorStore); use DEFAULT or MMR."
        )
    return mode


def _plan_sparse(
    query: VectorStoreQuery, mode: VectorStoreQueryMode, k: int, dim: int | None
) -> SearchPlan:
    """HYBRID: dense leg ``similarity_top_k``, sparse leg ``sparse_top_k`` (default
    ``similarity_top_k``), ``hybrid_top_k`` results (default ``similarity_top_k``).
    SPARSE / TEXT_SEARCH: ``sparse_top_k`` (default ``similarity_top_k``) results."""
    text = query.query_str
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(
            f"VectorStoreQueryMode.{mode.name} needs query.query_str (the text for the BM25 "
            f"leg); retrievers set it from the query."
        )
    sparse_k = (
        k if query.sparse_top_k is None else _positive_int(query.sparse_top_k, "sparse_top_k")
    )
    if mode is not VectorStoreQueryMode.HYBRID:
        return SearchPlan(None, sparse_k, mode=mode, query_str=text, sparse_k=sparse_k)
    alpha = query.alpha
    if alpha is not None and (
        isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0
    ):
        raise InvalidInputError(
            f"alpha must be a number in [0, 1] (1 = dense only, 0 = BM25 only), got {alpha!r}."
        )
    vector = query.query_embedding
    tolist = getattr(vector, "tolist", None)
    vector = tolist() if callable(tolist) else vector
    if vector is None or isinstance(vector, (str, bytes)) or not isinstance(vector, Sequence):
        raise InvalidInputError(
            "VectorStoreQueryMode.HYBRID needs query.query_embedding for the dense leg (a "
            "retriever embeds the query with its embed_model)."
        )
    if dim is not None and len(vector) != dim:
        raise InvalidInputError(
            f"query_embedding has dimension {len(vector)}, but the store was created with "
            f"dim={dim}."
        )
    hybrid_k = (
        k if query.hybrid_top_k is None else _positive_int(query.hybrid_top_k, "hybrid_top_k")
    )
    return SearchPlan(
        list(vector),
        hybrid_k,
        mode=mode,
        query_str=text,
        dense_k=k,
        sparse_k=sparse_k,
        alpha=None if alpha is None else float(alpha),
    )


def plan_search(
    query: VectorStoreQuery, kwargs: Mapping[str, Any], *, store: str, dim: int | None
) -> SearchPlan:
    """Validate ``query`` (+ the ``vector_store_kwargs``) into a :class:`SearchPlan`.

    MMR: ``mmr_threshold`` (the query's, else the kwarg; default 0.5) is the lambda, and
    ``fetch_k`` is ``mmr_prefetch_k`` or ``similarity_top_k * mmr_prefetch_factor`` (4).
    """
    if not isinstance(query, VectorStoreQuery):
        raise InvalidInputError(f"query must be a VectorStoreQuery, got {type(query).__name__}.")
    mode = _mode(query, store)
    k = _positive_int(query.similarity_top_k, "similarity_top_k")
    if mode in _SPARSE_MODES:
        return _plan_sparse(query, mode, k, dim)
    vector = query.query_embedding
    tolist = getattr(vector, "tolist", None)  # numpy arrays
    vector = tolist() if callable(tolist) else vector
    if vector is None:
        raise InvalidInputError(
            "query.query_embedding is missing; this store searches by vector (a retriever "
            "embeds the query with its embed_model)."
        )
    if isinstance(vector, (str, bytes)) or not isinstance(vector, Sequence):
        raise InvalidInputError(f"query_embedding must be a list of floats, got {vector!r:.80}.")
    if dim is not None and len(vector) != dim:
        raise InvalidInputError(
            f"query_embedding has dimension {len(vector)}, but the store was created with "
            f"dim={dim}."
        )
    if mode is not VectorStoreQueryMode.MMR:
        return SearchPlan(list(vector), k)
    threshold = query.mmr_threshold
    if threshold is None:
        threshold = kwargs.get("mmr_threshold")
    if threshold is None:
        threshold = 0.5
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not 0.0 <= threshold <= 1.0
    ):
        raise InvalidInputError(f"mmr_threshold must be a number in [0, 1], got {threshold!r}.")
    prefetch_k, factor = kwargs.get("mmr_prefetch_k"), kwargs.get("mmr_prefetch_factor")
    if prefetch_k is not None and factor is not None:
        raise InvalidInputError("Pass mmr_prefetch_k or mmr_prefetch_factor, not both.")
    if prefetch_k is not None:
        fetch_k = _positive_int(prefetch_k, "mmr_prefetch_k")
    else:
        factor = DEFAULT_MMR_PREFETCH_FACTOR if factor is None else factor
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or factor <= 0:
            raise InvalidInputError(f"mmr_prefetch_factor must be positive, got {factor!r}.")
        fetch_k = int(k * factor)
    return SearchPlan(list(vector), k, max(fetch_k, k), float(threshold))


# --------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------


S = TypeVar("S", bound="EngineShells")


def call_timeout(kwargs: Mapping[str, Any]) -> float | None:
    """The per-call ``timeout=`` (seconds, retries included) from a method's kwargs."""
    timeout = kwargs.get("timeout")
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise InvalidInputError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    return float(timeout)


class EngineShells:
    """The LlamaIndex vector-store API as sync/async one-line shells over the store's ops.

    A store mixes this in (before ``BasePydanticVectorStore``) and defines ``_engine`` and
    the generator ops ``_add_op``, ``_delete_op``, ``_delete_nodes_op``, ``_get_nodes_op``
    and ``_query_op``; each public method then exists once for both stores.
    """

    _engine: Any

    # ----- the ops each store defines -----------------------------------------------------------

    def _add_op(self, nodes: Sequence[BaseNode]) -> Op[list[str]]:
        raise NotImplementedError

    def _delete_op(self, ref_doc_id: Any) -> Op[None]:
        raise NotImplementedError

    def _delete_nodes_op(self, node_ids: Any, filters: MetadataFilters | None) -> Op[None]:
        raise NotImplementedError

    def _get_nodes_op(self, node_ids: Any, filters: MetadataFilters | None) -> Op[list[BaseNode]]:
        raise NotImplementedError

    def _query_op(
        self, query: VectorStoreQuery, kwargs: Mapping[str, Any]
    ) -> Op[VectorStoreQueryResult]:
        raise NotImplementedError

    # ----- the LlamaIndex API -------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store nodes with their embeddings; returns their ids."""
        return self._engine.run(self._add_op(nodes), timeout=call_timeout(add_kwargs))

    async def async_add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        return await self._engine.arun(self._add_op(nodes), timeout=call_timeout(add_kwargs))

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id`` (a list of ids is accepted too)."""
        _check_ref_doc_id(ref_doc_id)
        self._engine.run(self._delete_op(ref_doc_id), timeout=call_timeout(delete_kwargs))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        _check_ref_doc_id(ref_doc_id)
        await self._engine.arun(self._delete_op(ref_doc_id), timeout=call_timeout(delete_kwargs))

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes with these ids and/or matching ``filters`` (both: the intersection)."""
        op = self._delete_nodes_op(node_ids, filters)
        self._engine.run(op, timeout=call_timeout(delete_kwargs))

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        op = self._delete_nodes_op(node_ids, filters)
        await self._engine.arun(op, timeout=call_timeout(delete_kwargs))

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Nodes (with embeddings) by ids and/or ``filters``; in ``node_ids`` order if given."""
        return self._engine.run(self._get_nodes_op(node_ids, filters))

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await self._engine.arun(self._get_nodes_op(node_ids, filters))

    def clear(self) -> None:
        """Drop the collection; the next ``add`` creates it again."""
        self._engine.run(self._engine.drop())

    async def aclear(self) -> None:
        await self._engine.arun(self._engine.drop())

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top ``similarity_top_k`` nodes (DEFAULT or MMR mode); see the store for kwargs."""
        return self._engine.run(self._query_op(query, kwargs), timeout=call_timeout(kwargs))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await self._engine.arun(self._query_op(query, kwargs), timeout=call_timeout(kwargs))

    # ----- lifecycle ----------------------------------------------------------------------------

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

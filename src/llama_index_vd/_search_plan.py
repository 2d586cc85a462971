"""A LlamaIndex ``VectorStoreQuery`` and its ``vector_store_kwargs`` as a checked ``SearchPlan``."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from vd_integrations.core.errors import InvalidInputError

__all__ = ["DEFAULT_MMR_PREFETCH_FACTOR", "SearchPlan", "plan_search"]

DEFAULT_MMR_PREFETCH_FACTOR = 4.0
_SPARSE_MODES = {
    VectorStoreQueryMode.SPARSE,
    VectorStoreQueryMode.HYBRID,
    VectorStoreQueryMode.TEXT_SEARCH,
    VectorStoreQueryMode.SEMANTIC_HYBRID,
}


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

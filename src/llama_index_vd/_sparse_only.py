"""``MilvusVectorStore(enable_dense=False)``: a collection with a sparse field and no dense one.

As in LlamaIndex's own store, such a collection holds the text, its sparse vector (a
BM25 function of the text, or the caller's ``sparse_embedding_function``) and the
metadata; nodes need no embedding, and queries run in ``SPARSE`` or ``TEXT_SEARCH`` mode.
The engine side is a spec with no embedded vector fields (``CollectionSpec.vectors=()``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from llama_index_vd._nodes import check_nodes
from vd_integrations.core.errors import InvalidInputError

__all__ = [
    "check_dense_settings",
    "check_sparse_only_nodes",
    "check_sparse_query",
    "checked_nodes",
]

_SPARSE_MODES = (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.TEXT_SEARCH)


def check_dense_settings(enable_dense: bool, enable_sparse: bool) -> None:
    """A store needs a dense or a sparse field (one with neither is not supported)."""
    if not enable_dense and not enable_sparse:
        raise NotImplementedError(
            "enable_dense=False needs enable_sparse=True (a store without any vector field is "
            "not supported); pass enable_sparse=True for a sparse-only store."
        )


def check_sparse_only_nodes(nodes: Any) -> list[BaseNode]:
    """The nodes as a list of ``BaseNode`` (embeddings not needed, and not stored)."""
    if isinstance(nodes, BaseNode) or not isinstance(nodes, Iterable):
        raise InvalidInputError(f"add expects a list of nodes, got {type(nodes).__name__}.")
    nodes = list(nodes)
    for i, node in enumerate(nodes):
        if not isinstance(node, BaseNode):
            raise InvalidInputError(
                f"node #{i} is a {type(node).__name__}, not a llama_index BaseNode."
            )
    return nodes


def checked_nodes(nodes: Any, dim: int | None, *, dense: bool) -> list[BaseNode]:
    """The nodes as a list: with embeddings of ``dim`` for a ``dense`` store, else any."""
    return check_nodes(nodes, dim) if dense else check_sparse_only_nodes(nodes)


def check_sparse_query(query: VectorStoreQuery, *, dense: bool) -> None:
    """A sparse-only store (not ``dense``) answers SPARSE and TEXT_SEARCH queries only."""
    if not dense and query.mode not in (
        VectorStoreQueryMode.SPARSE,
        VectorStoreQueryMode.TEXT_SEARCH,
    ):
        raise InvalidInputError(
            f"This store has no dense vector field (enable_dense=False), so it cannot run a "
            f"{getattr(query.mode, 'value', query.mode)!r} query; query with "
            f"mode=VectorStoreQueryMode.SPARSE (or TEXT_SEARCH) and a query_str."
        )

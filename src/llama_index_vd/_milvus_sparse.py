"""MilvusVectorStore's sparse vectors: the ``enable_sparse`` settings and the caller's encoder."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from llama_index_vd._sparse_only import check_sparse_only_nodes
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import Op
from vd_integrations.milvus.hybrid import sparse_spec_from_builtin, with_sparse_vectors
from vd_integrations.milvus.sparse import SparseSpec

__all__ = ["SparseEncoder", "add_sparse_vectors", "sparse_spec"]

T = TypeVar("T")

_SPARSE_QUERY_MODES = (
    VectorStoreQueryMode.HYBRID,
    VectorStoreQueryMode.SPARSE,
    VectorStoreQueryMode.TEXT_SEARCH,
)


def sparse_spec(function: Any, field: str, text_key: str) -> SparseSpec:
    """BM25 by default (or from a ``BM25BuiltInFunction``), else the caller's sparse vectors."""
    if function is None:
        return SparseSpec(field=field, bm25=True)
    if hasattr(getattr(function, "function", None), "input_field_names"):  # BM25BuiltInFunction
        spec = sparse_spec_from_builtin(function, text_field=text_key)
        return dataclasses.replace(spec, field=field)
    if not callable(getattr(function, "encode_documents", None)) or not callable(
        getattr(function, "encode_queries", None)
    ):
        raise InvalidInputError(
            f"sparse_embedding_function must have encode_documents(texts) and "
            f"encode_queries(texts) returning {{dimension: weight}} dicts (LlamaIndex's "
            f"BaseSparseEmbeddingFunction), got {type(function).__name__}; or leave it None "
            f"for Milvus' built-in BM25."
        )
    return SparseSpec(field=field, bm25=False)


async def _acall(function: Any, name: str, texts: list[str]) -> list[Any]:
    """``function.async_<name>(texts)`` if it has one, else ``<name>`` on a worker thread."""
    native = getattr(function, f"async_{name}", None)
    if native is not None:
        return list(await native(texts))
    return list(await asyncio.to_thread(getattr(function, name), texts))


def _node_texts(nodes: Sequence[BaseNode]) -> list[str]:
    return [n.get_content(metadata_mode=MetadataMode.NONE) for n in check_sparse_only_nodes(nodes)]


def _query_text(query: VectorStoreQuery) -> str | None:
    """The text to encode, if the query needs a sparse vector."""
    if (
        isinstance(query, VectorStoreQuery)
        and query.mode in _SPARSE_QUERY_MODES
        and isinstance(query.query_str, str)
    ):
        return query.query_str
    return None


@dataclass(frozen=True)
class SparseEncoder:
    """A caller's sparse embedding function (LlamaIndex's ``BaseSparseEmbeddingFunction``
    shape: ``encode_documents`` / ``encode_queries``, async twins optional), called in the
    store's shells before the op runs: sync in the sync ones, async in the async ones."""

    function: Any

    def documents(self, nodes: Sequence[BaseNode]) -> list[Any] | None:
        """The nodes' sparse vectors (``None`` for no nodes)."""
        if not nodes:
            return None
        return list(self.function.encode_documents(_node_texts(nodes)))

    async def adocuments(self, nodes: Sequence[BaseNode]) -> list[Any] | None:
        if not nodes:
            return None
        return await _acall(self.function, "encode_documents", _node_texts(nodes))

    def query(self, query: VectorStoreQuery) -> Any:
        """The query's sparse vector, or ``None`` if its mode needs none."""
        text = _query_text(query)
        if text is None:
            return None
        return self.function.encode_queries([text])[0]

    async def aquery(self, query: VectorStoreQuery) -> Any:
        text = _query_text(query)
        if text is None:
            return None
        return (await _acall(self.function, "encode_queries", [text]))[0]


def add_sparse_vectors(
    op: Op[T], vectors: Sequence[Any], ids: Sequence[str], *, field: str, pk_field: str
) -> Op[T]:
    """``op`` (the write of the nodes ``ids``) with the nodes' sparse ``vectors`` in ``field``."""
    if len(vectors) != len(ids):
        raise InvalidInputError(
            f"The sparse embedding function returned {len(vectors)} vectors for {len(ids)} nodes."
        )
    return with_sparse_vectors(op, field, pk_field, dict(zip(ids, vectors, strict=True)))

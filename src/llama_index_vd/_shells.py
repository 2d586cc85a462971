"""``EngineShells``: the LlamaIndex vector-store API as sync/async one-line shells over ops."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)

from llama_index_vd._nodes import check_ref_doc_id
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import Op

__all__ = ["EngineShells", "call_timeout"]


S = TypeVar("S", bound="EngineShells")


#: LlamaIndex's per-call Milvus partitions: refused, never silently ignored (rows would go to,
#: or be searched in, the whole collection instead).
_PARTITION_KWARGS = ("milvus_partition_name", "milvus_partition_names")


def call_timeout(kwargs: Mapping[str, Any]) -> float | None:
    """The per-call ``timeout=`` (seconds, retries included) from a method's kwargs; refuses
    the per-call partition arguments LlamaIndex's Milvus store takes."""
    for name in _PARTITION_KWARGS:
        if kwargs.get(name) is not None:
            raise NotImplementedError(
                f"{name} (a per-call Milvus partition) is not supported; use a collection per "
                f"partition, or a metadata key and MetadataFilters."
            )
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
        check_ref_doc_id(ref_doc_id)
        self._engine.run(self._delete_op(ref_doc_id), timeout=call_timeout(delete_kwargs))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        check_ref_doc_id(ref_doc_id)
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

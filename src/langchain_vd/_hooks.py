"""The base class of the LangChain stores: the engine a store holds and the hooks through which
a store passes its engine's options and abilities to the shared method surface."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from langchain_vd._engine import E
from vd_integrations.core.ops import Op
from vd_integrations.milvus.schema import Record

__all__ = ["EngineStoreHooks"]


class EngineStoreHooks(VectorStore, Generic[E]):
    """LangChain ``VectorStore`` over an :class:`~langchain_vd._engine.Engine` ``E``:
    subclasses set ``self._engine`` and override the hooks their engine needs."""

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

    # ----- shared by the search surfaces ---------------------------------------------------

    def _docs_op(self, scored: Op[list[tuple[Document, float]]]) -> Op[list[Document]]:
        return [doc for doc, _ in (yield from scored)]

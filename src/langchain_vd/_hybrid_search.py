"""The keyword search methods of the LangChain stores: hybrid search (dense + BM25, fused) and
full-text (BM25-only) search, over the engine's ``_hybrid_op`` / ``_full_text_op`` hooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document

from langchain_vd._engine import E, FilterLike, pick_filter, to_document
from langchain_vd._hooks import EngineStoreHooks
from vd_integrations.core.ops import Op

__all__ = ["HybridSearchMethods"]


class HybridSearchMethods(EngineStoreHooks[E]):
    """``hybrid_search*`` and ``full_text_search*``, each with its async twin."""

    # ----- operations -----------------------------------------------------------------------

    def _hybrid_scored_op(
        self,
        query: str,
        k: int,
        fetch_k: int | None,
        ranker: Any,
        ranker_params: Mapping[str, Any] | None,
        expr: FilterLike,
        kwargs: Mapping[str, Any],
    ) -> Op[list[tuple[Document, float]]]:
        records = yield from self._hybrid_op(
            query,
            k=k,
            fetch_k=fetch_k,
            ranker=ranker,
            ranker_params=ranker_params,
            filter=pick_filter(expr, kwargs),
            param=kwargs.get("param"),
        )
        return [(to_document(r), float(r.score or 0.0)) for r in records]

    def _full_text_scored_op(
        self, query: str, k: int, expr: FilterLike, kwargs: Mapping[str, Any]
    ) -> Op[list[tuple[Document, float]]]:
        records = yield from self._full_text_op(query, k=k, filter=pick_filter(expr, kwargs))
        return [(to_document(r), float(r.score or 0.0)) for r in records]

    # ----- hybrid (dense + BM25) and full-text search --------------------------------------------

    def hybrid_search(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int | None = None,
        ranker: str = "rrf",
        ranker_params: dict[str, Any] | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Dense + BM25 search fused by reciprocal rank (``ranker="rrf"``, ``ranker_params=
        {"k": 60}``) or weighted scores (``"weighted"``, ``{"weights": [dense, sparse]}`` or
        ``{"alpha": a}``). Each leg fetches ``fetch_k`` candidates (default ``max(4k, 20)``)
        under the same filter (``expr=`` or ``filter=``)."""
        op = self._hybrid_scored_op(query, k, fetch_k, ranker, ranker_params, expr, kwargs)
        return self._engine.run(self._docs_op(op), timeout=timeout)

    async def ahybrid_search(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int | None = None,
        ranker: str = "rrf",
        ranker_params: dict[str, Any] | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._hybrid_scored_op(query, k, fetch_k, ranker, ranker_params, expr, kwargs)
        return await self._engine.arun(self._docs_op(op), timeout=timeout)

    def hybrid_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int | None = None,
        ranker: str = "rrf",
        ranker_params: dict[str, Any] | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """:meth:`hybrid_search` with each document's fused score (higher is better)."""
        op = self._hybrid_scored_op(query, k, fetch_k, ranker, ranker_params, expr, kwargs)
        return self._engine.run(op, timeout=timeout)

    async def ahybrid_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int | None = None,
        ranker: str = "rrf",
        ranker_params: dict[str, Any] | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._hybrid_scored_op(query, k, fetch_k, ranker, ranker_params, expr, kwargs)
        return await self._engine.arun(op, timeout=timeout)

    def full_text_search(
        self,
        query: str,
        k: int = 4,
        *,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` best BM25 (keyword) matches of ``query``, no embedding involved."""
        op = self._full_text_scored_op(query, k, expr, kwargs)
        return self._engine.run(self._docs_op(op), timeout=timeout)

    async def afull_text_search(
        self,
        query: str,
        k: int = 4,
        *,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._full_text_scored_op(query, k, expr, kwargs)
        return await self._engine.arun(self._docs_op(op), timeout=timeout)

    def full_text_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """:meth:`full_text_search` with each document's BM25 score (higher is better)."""
        op = self._full_text_scored_op(query, k, expr, kwargs)
        return self._engine.run(op, timeout=timeout)

    async def afull_text_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._full_text_scored_op(query, k, expr, kwargs)
        return await self._engine.arun(op, timeout=timeout)

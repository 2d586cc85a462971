"""The vector search methods of the LangChain stores: similarity search (with or without
scores, by query or by vector) and max marginal relevance search."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document

from langchain_vd._engine import E, FilterLike, pick_filter, to_document
from langchain_vd._hooks import EngineStoreHooks
from vd_integrations.core.ops import Op
from vd_integrations.core.validation import check_unit_interval

__all__ = ["SimilarityMethods"]


class SimilarityMethods(EngineStoreHooks[E]):
    """``similarity_search*`` and ``max_marginal_relevance_search*``, each with its async twin."""

    # ----- operations -----------------------------------------------------------------------

    def _scored_op(
        self,
        *,
        query: str = "",  # read only when vector is None (each caller passes one of the two)
        vector: Sequence[float] | None = None,
        k: int,
        param: dict | None,
        expr: FilterLike,
        kwargs: Mapping[str, Any],
    ) -> Op[list[tuple[Document, float]]]:
        filter = pick_filter(expr, kwargs)
        if vector is None:
            records = yield from self._engine.search_text(
                query,
                k=k,
                filter=filter,
                **self._search_options(param),
            )
        else:
            records = (
                yield from self._engine.search(
                    [vector], k=k, filter=filter, **self._search_options(param)
                )
            )[0]
        return [(to_document(r), float(r.score or 0.0)) for r in records]

    def _mmr_op(
        self,
        *,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        k: int,
        fetch_k: int,
        lambda_mult: float,
        param: dict | None,
        expr: FilterLike,
        kwargs: Mapping[str, Any],
    ) -> Op[list[Document]]:
        check_unit_interval(lambda_mult, "lambda_mult")
        records = yield from self._engine.mmr(
            vector,
            query=query,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            filter=pick_filter(expr, kwargs),
            **self._search_options(param),
        )
        return [to_document(r) for r in records]

    # ----- similarity search ------------------------------------------------------------------

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(query=query, k=k, param=param, expr=expr, kwargs=kwargs)
        return self._engine.run(self._docs_op(op), timeout=timeout)

    async def asimilarity_search(
        self,
        query: str,
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(query=query, k=k, param=param, expr=expr, kwargs=kwargs)
        return await self._engine.arun(self._docs_op(op), timeout=timeout)

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(vector=embedding, k=k, param=param, expr=expr, kwargs=kwargs)
        return self._engine.run(self._docs_op(op), timeout=timeout)

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._scored_op(vector=embedding, k=k, param=param, expr=expr, kwargs=kwargs)
        return await self._engine.arun(self._docs_op(op), timeout=timeout)

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Documents with the engine's raw score (Milvus: a distance for L2, else a similarity)."""
        op = self._scored_op(query=query, k=k, param=param, expr=expr, kwargs=kwargs)
        return self._engine.run(op, timeout=timeout)

    async def asimilarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._scored_op(query=query, k=k, param=param, expr=expr, kwargs=kwargs)
        return await self._engine.arun(op, timeout=timeout)

    def similarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._scored_op(vector=embedding, k=k, param=param, expr=expr, kwargs=kwargs)
        return self._engine.run(op, timeout=timeout)

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        op = self._scored_op(vector=embedding, k=k, param=param, expr=expr, kwargs=kwargs)
        return await self._engine.arun(op, timeout=timeout)

    # ----- MMR --------------------------------------------------------------------------------

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._mmr_op(
            query=query,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            param=param,
            expr=expr,
            kwargs=kwargs,
        )
        return self._engine.run(op, timeout=timeout)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._mmr_op(
            query=query,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            param=param,
            expr=expr,
            kwargs=kwargs,
        )
        return await self._engine.arun(op, timeout=timeout)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._mmr_op(
            vector=embedding,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            param=param,
            expr=expr,
            kwargs=kwargs,
        )
        return self._engine.run(op, timeout=timeout)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        param: dict | None = None,
        expr: FilterLike = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        op = self._mmr_op(
            vector=embedding,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            param=param,
            expr=expr,
            kwargs=kwargs,
        )
        return await self._engine.arun(op, timeout=timeout)

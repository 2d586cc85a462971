"""The retriever of the LangChain stores: LangChain's ``VectorStoreRetriever`` plus the
``"hybrid"`` and ``"full_text"`` search types."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStoreRetriever

__all__ = ["EngineRetriever"]


class EngineRetriever(VectorStoreRetriever):
    """``VectorStoreRetriever`` that also knows ``search_type="hybrid"`` (dense + BM25,
    ``hybrid_search``) and ``"full_text"`` (BM25 only, ``full_text_search``)."""

    allowed_search_types: ClassVar[Collection[str]] = (
        "similarity",
        "similarity_score_threshold",
        "mmr",
        "hybrid",
        "full_text",
    )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        store: Any = self.vectorstore
        if self.search_type == "hybrid":
            return store.hybrid_search(query, **(self.search_kwargs | kwargs))
        if self.search_type == "full_text":
            return store.full_text_search(query, **(self.search_kwargs | kwargs))
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        store: Any = self.vectorstore
        if self.search_type == "hybrid":
            return await store.ahybrid_search(query, **(self.search_kwargs | kwargs))
        if self.search_type == "full_text":
            return await store.afull_text_search(query, **(self.search_kwargs | kwargs))
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)

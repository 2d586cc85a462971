"""The LangChain method surface, written once over any engine with the core op API.

``langchain_vd.Milvus`` (over :class:`~vd_integrations.milvus.engine.MilvusEngine`) and
``langchain_vd.VDVectorStore`` (over :class:`~vd_integrations.vd.engine.VdEngine`) differ only
in their constructors and a few hooks; every method is a sync/async pair of one-line shells
around one generator operation, so the twins cannot drift apart. The methods live by concern:

- ``_engine``: the engine API (``Engine``) and record/filter translations;
- ``_hooks``: the engine a store holds and the hooks a store overrides;
- ``_writes``: add, upsert, delete;
- ``_similarity``: similarity and MMR search;
- ``_hybrid_search``: hybrid and full-text search;
- ``_lookups``: get by filter or ids, primary keys, count;
- ``_retriever``: the retriever with the hybrid and full-text search types;
- here: the store class that joins them, its retriever and its lifecycle.
"""

from __future__ import annotations

from typing import Any, TypeVar

from langchain_core.vectorstores import VectorStoreRetriever

from langchain_vd._engine import E
from langchain_vd._hybrid_search import HybridSearchMethods
from langchain_vd._lookups import LookupMethods
from langchain_vd._retriever import EngineRetriever
from langchain_vd._similarity import SimilarityMethods
from langchain_vd._writes import WriteMethods

__all__ = ["EngineVectorStore"]

S = TypeVar("S", bound="EngineVectorStore[Any]")


class EngineVectorStore(
    WriteMethods[E], SimilarityMethods[E], HybridSearchMethods[E], LookupMethods[E]
):
    """LangChain ``VectorStore`` over an :class:`~langchain_vd._engine.Engine` ``E``;
    subclasses set ``self._engine`` (and override the hooks of ``EngineStoreHooks``)."""

    def as_retriever(self, **kwargs: Any) -> VectorStoreRetriever:
        """A retriever; besides LangChain's search types, ``search_type="hybrid"`` (search
        kwargs of :meth:`hybrid_search`) and ``"full_text"``."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return EngineRetriever(vectorstore=self, tags=tags, **kwargs)

    # ----- lifecycle ----------------------------------------------------------------------------

    def drop(self) -> None:
        """Drop the collection; the next write creates it again."""
        self._engine.run(self._engine.drop())

    async def adrop(self) -> None:
        await self._engine.arun(self._engine.drop())

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

"""``langchain_vd.VDVectorStore``: a LangChain vector store over any vd backend, sync and async.

The method surface matches :class:`langchain_vd.Milvus`. Every operation exists as a sync
method and an ``a``-prefixed twin; both run the same operation of the shared
:class:`~vd_integrations.vd.engine.VdEngine`, so they cannot disagree.

- Filters are vd dict filters (``{"year": {"$gte": 2020}}``), passed as ``filter=``
  (``expr=`` is accepted as an alias). Milvus expression strings are rejected.
- Adding with ids replaces (re-adding an id never duplicates).
- Returned documents carry ``Document.id`` and their metadata exactly as stored.
- Scores from ``similarity_search_with_score`` are vd's (higher is better: cosine in
  [-1, 1], dot the inner product, l2 ``1 / (1 + distance)``); relevance scores are in [0, 1].
- ``hybrid_search`` / ``full_text_search`` (and ``as_retriever(search_type="hybrid")``) use
  vd's portable fallback: dense search plus a client-side BM25 scan of the matching
  documents (O(N)), fused by reciprocal rank fusion (``ranker="rrf"`` only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.embeddings import Embeddings

from langchain_vd._base import EngineVectorStore
from vd_integrations.core.ops import Op
from vd_integrations.core.validation import parameter_names
from vd_integrations.milvus.schema import Record
from vd_integrations.vd.engine import VdEngine, check_connect_kwargs
from vd_integrations.vd.hybrid import vd_hybrid_search, vd_text_search

__all__ = ["VDVectorStore"]

_ADD_KWARGS = ("batch_size",)


class VDVectorStore(EngineVectorStore[VdEngine]):
    """LangChain vector store over any vd backend (``memory``, ``faiss``, ``qdrant``, ...).

    Example:
        .. code-block:: python

            from langchain_vd import VDVectorStore

            store = VDVectorStore(embeddings, backend="memory", collection_name="docs")
            await store.aadd_texts(texts, metadatas=metadatas)
            docs = await store.asimilarity_search("query", k=4, filter={"year": {"$gte": 2020}})
    """

    def __init__(
        self,
        embedding: Embeddings | None,
        *,
        backend: str = "memory",
        collection_name: str = "langchain",
        metric: str = "cosine",
        **connect_kwargs: Any,
    ) -> None:
        """``connect_kwargs`` go to ``vd.connect(backend, ...)``; a name the backend does not
        take raises ``TypeError`` naming the closest valid one."""
        check_connect_kwargs(
            backend,
            connect_kwargs,
            where=f"VDVectorStore(backend={backend!r})",
            own=parameter_names(VDVectorStore.__init__),
        )
        self.embedding = embedding
        self.collection_name = collection_name
        self._engine = VdEngine(
            backend,
            collection_name=collection_name,
            metric=metric,
            embedder=embedding,
            **connect_kwargs,
        )

    def __repr__(self) -> str:
        engine = self._engine
        return (
            f"VDVectorStore(backend={engine.backend!r}, "
            f"collection_name={self.collection_name!r}, metric={engine.metric!r})"
        )

    # ----- properties ---------------------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings | None:
        return self.embedding

    @property
    def client(self) -> Any:
        """The sync vd client (escape hatch)."""
        return self._engine.client

    # ----- hooks for the shared surface -------------------------------------------------------

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
        """vd's fallback: dense search + client-side BM25, fused by reciprocal rank."""
        return vd_hybrid_search(
            self._engine,
            query,
            k=k,
            dense_k=fetch_k,
            sparse_k=fetch_k,
            ranker=ranker,
            ranker_params=ranker_params,
            filter=filter,
        )

    def _full_text_op(self, query: str, *, k: int, filter: Any) -> Op[list[Record]]:
        """vd's client-side BM25 over the documents matching ``filter``."""
        return vd_text_search(self._engine, query, k=k, filter=filter)

    # ----- constructors -------------------------------------------------------------------------

    @classmethod
    def _new_for_texts(
        cls, embedding: Embeddings, kwargs: dict[str, Any]
    ) -> tuple[VDVectorStore, dict[str, Any]]:
        add_kwargs = {k: kwargs.pop(k) for k in _ADD_KWARGS if k in kwargs}
        return cls(embedding, **kwargs), add_kwargs

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> VDVectorStore:
        """Create a store (``backend=``, ``collection_name=``, ``metric=``, ...) and add texts."""
        store, add_kwargs = cls._new_for_texts(embedding, kwargs)
        store.add_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> VDVectorStore:
        """Create a store and add texts, without blocking the event loop."""
        store, add_kwargs = cls._new_for_texts(embedding, kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store

"""``langchain_vd.Milvus``: a drop-in for ``langchain_milvus.Milvus`` with native async I/O.

Same constructor arguments and method names as ``langchain_milvus.Milvus``. Every
operation exists as a sync method and an ``a``-prefixed twin; both run the same
operation of the shared :class:`~vd_integrations.milvus.engine.MilvusEngine` (the
sync one on ``MilvusClient``, the async one on the running loop's own
``AsyncMilvusClient``), so they cannot disagree.

Differences from langchain-milvus, all deliberate:

- With no ``connection_args`` it uses an embedded Milvus Lite file (``./milvus_vd.db``).
- Metadata is stored in dynamic fields (any keys, any JSON values, per document);
  collections made by langchain-milvus with static metadata columns are read too.
- Adding with ids upserts (re-adding an id replaces it, never duplicates).
- Returned documents carry ``Document.id``; ``get_by_ids`` exists.
- Nothing touches the network in the constructor: the collection is created (once,
  even under concurrent first writes) by the first write.
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

from langchain_vd._base import EngineVectorStore
from vd_integrations.coalesce import CoalescingSettings
from vd_integrations.milvus.config import DEFAULT_EMBEDDED_URI, ConnectionConfig
from vd_integrations.milvus.engine import MilvusEngine
from vd_integrations.milvus.schema import CollectionSpec, Record

__all__ = ["Milvus"]


class Milvus(EngineVectorStore):
    """Milvus vector store for LangChain, sync and natively async.

    Example:
        .. code-block:: python

            from langchain_vd import Milvus

            store = await Milvus.afrom_texts(texts, embeddings)  # embedded Milvus Lite
            docs = await store.asimilarity_search("query", k=4, filter={"year": {"$gte": 2020}})
    """

    def __init__(
        self,
        embedding_function: Embeddings | None,
        collection_name: str = "LangChainCollection",
        collection_description: str = "",
        collection_properties: dict[str, Any] | None = None,
        connection_args: dict[str, Any] | None = None,
        consistency_level: str = "Session",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        drop_old: bool | None = False,
        auto_id: bool = False,
        *,
        primary_field: str = "pk",
        text_field: str = "text",
        vector_field: str = "vector",
        enable_dynamic_field: bool = True,
        metadata_field: str | None = None,
        partition_key_field: str | None = None,
        num_partitions: int | None = None,
        partition_names: list[str] | None = None,
        replica_number: int = 1,
        timeout: float | None = None,
        num_shards: int | None = None,
        vector_schema: Any = None,
        metadata_schema: Any = None,
        builtin_function: Any = None,
        coalescing: CoalescingSettings | bool | None = None,
        max_concurrent_rpcs: int = 32,
        query_cache_size: int = 0,
        batch_query_embeddings: bool | None = None,
    ) -> None:
        """Arguments as in ``langchain_milvus.Milvus``, plus async tuning (keyword-only):

        ``coalescing`` merges concurrent async calls into batched requests (on by default;
        ``False`` or ``CoalescingSettings(...)``), ``max_concurrent_rpcs`` caps RPCs in
        flight per event loop, ``query_cache_size`` > 0 caches query embeddings (LRU), and
        ``batch_query_embeddings`` lets concurrent queries share one embedding call (None:
        only for embedders known to embed queries like documents).
        """
        if isinstance(embedding_function, list) or isinstance(vector_field, list):
            raise NotImplementedError(
                "Multiple vector fields are not supported yet; pass one embedding_function "
                "and one vector_field."
            )
        if builtin_function is not None:
            raise NotImplementedError(
                "builtin_function (BM25 hybrid search) is not supported yet in langchain_vd."
            )
        del vector_schema, metadata_schema  # accepted for drop-in compatibility; unused
        self.embedding_func = embedding_function
        self.collection_name = collection_name
        self._spec = CollectionSpec(
            name=collection_name,
            description=collection_description,
            properties=collection_properties,
            primary_field=primary_field,
            text_field=text_field,
            vector_field=vector_field,
            metadata_field=metadata_field,
            enable_dynamic_field=enable_dynamic_field or metadata_field is None,
            partition_key_field=partition_key_field,
            num_partitions=num_partitions,
            num_shards=num_shards,
            partition_names=partition_names,
            replica_number=replica_number,
            auto_id=auto_id,
            consistency_level=consistency_level,
            index_params=index_params,
            search_params=search_params,
        )
        self._engine = MilvusEngine(
            self._spec,
            ConnectionConfig.from_connection_args(
                connection_args, default_uri=DEFAULT_EMBEDDED_URI
            ),
            embedder=embedding_function,
            drop_old=bool(drop_old),
            timeout=timeout,
            coalescing=coalescing,
            max_concurrent_rpcs=max_concurrent_rpcs,
            query_cache_size=query_cache_size,
            batch_query_embeddings=batch_query_embeddings,
        )

    def __repr__(self) -> str:
        return (
            f"Milvus(collection_name={self.collection_name!r}, connection={self._engine.config!r})"
        )

    # ----- properties ---------------------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings | None:
        return self.embedding_func

    @property
    def client(self) -> Any:
        """The sync ``pymilvus.MilvusClient`` (escape hatch)."""
        return self._engine.client

    @property
    def aclient(self) -> Any:
        """The running loop's ``pymilvus.AsyncMilvusClient`` (escape hatch)."""
        return self._engine.aclient

    # ----- hooks for the shared surface -------------------------------------------------------

    def _search_options(self, param: dict | None) -> dict[str, Any]:
        return {"search_params": param}

    def _pk_query_options(self) -> dict[str, Any]:
        return {"output_fields": []}

    def _pk_value(self, record: Record) -> str | int:
        layout = self._engine.layout
        return int(record.id) if layout is not None and layout.pk_is_int else record.id

    # ----- constructors -------------------------------------------------------------------------

    @classmethod
    def _new_for_texts(
        cls,
        embedding: Embeddings,
        kwargs: dict[str, Any],
    ) -> tuple[Milvus, dict[str, Any]]:
        store_args = {
            k: kwargs.pop(k)
            for k in list(kwargs)
            if k not in ("batch_size", "timeout", "show_progress")
        }
        return cls(embedding_function=embedding, **store_args), kwargs

    @classmethod
    def from_texts(  # type: ignore[override]
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        collection_name: str = "LangChainCollection",
        connection_args: dict[str, Any] | None = None,
        consistency_level: str = "Session",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        drop_old: bool = False,
        *,
        ids: list[str] | None = None,
        auto_id: bool = False,
        **kwargs: Any,
    ) -> Milvus:
        """Create a store and add ``texts`` to it."""
        store, add_kwargs = cls._new_for_texts(
            embedding,
            dict(
                collection_name=collection_name,
                connection_args=connection_args,
                consistency_level=consistency_level,
                index_params=index_params,
                search_params=search_params,
                drop_old=drop_old,
                auto_id=auto_id,
                **kwargs,
            ),
        )
        store.add_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store

    @classmethod
    async def afrom_texts(  # type: ignore[override]
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        collection_name: str = "LangChainCollection",
        connection_args: dict[str, Any] | None = None,
        consistency_level: str = "Session",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        drop_old: bool = False,
        *,
        ids: list[str] | None = None,
        auto_id: bool = False,
        **kwargs: Any,
    ) -> Milvus:
        """Create a store and add ``texts`` to it, without blocking the event loop."""
        store, add_kwargs = cls._new_for_texts(
            embedding,
            dict(
                collection_name=collection_name,
                connection_args=connection_args,
                consistency_level=consistency_level,
                index_params=index_params,
                search_params=search_params,
                drop_old=drop_old,
                auto_id=auto_id,
                **kwargs,
            ),
        )
        await store.aadd_texts(texts, metadatas, ids=ids, **add_kwargs)
        return store

"""The stores under test, each behind one small interface the runner drives.

A subject knows how to open a fresh store for a workload, fill it, and run one
operation of each workload sync and async. The operations are the tutorial's:
one document added, one query searched, one document deleted, one document
upserted, one MMR search; and the ``bulk`` workload's one call adding N documents
(:data:`ONE_CALL_WORKLOADS`, :meth:`Subject.bulk_op`). Our stores and the
integrations we compare against use the same framework API, so their subjects differ
only in the store they build.

Each operation checks its own result (a search returns k documents, and so on), so a
store that silently does nothing cannot look fast.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from vd_bench.corpus import POPULATION, Item, items, query
from vd_integrations import VdIntegrationsError

__all__ = [
    "ALL_WORKLOADS",
    "BULK",
    "EMBEDDINGS",
    "ONE_CALL_WORKLOADS",
    "SERVICE",
    "SUBJECTS",
    "WORKLOADS",
    "BenchmarkCheckError",
    "Endpoint",
    "Subject",
    "make_subject",
]

#: The workloads of N single-item operations, in the order they run.
WORKLOADS = ("add", "search", "delete", "upsert", "mmr")
#: The web-service workload (:mod:`vd_bench.service`): concurrent HTTP clients against an
#: ASGI app over one LangChain store; it runs after a subject's other workloads.
SERVICE = "service"
#: One call adding N documents (LangChain ``add_documents(docs)``; LlamaIndex one batch
#: embedding call, then ``add(nodes)``), on an empty collection as ``add``.
BULK = "bulk"
#: Workloads measured as ONE call of N documents, not N single-item operations: the
#: runner times one :meth:`Subject.bulk_op`, records one latency, and its ops/s counts
#: documents.
ONE_CALL_WORKLOADS = frozenset({BULK})
#: Every workload ``--workloads`` accepts.
ALL_WORKLOADS = (*WORKLOADS, BULK, SERVICE)
#: Embedding clients the LangChain subjects can use: the tutorial's
#: ``langchain_openai.OpenAIEmbeddings`` (one HTTP request per call; our stores merge
#: concurrent calls on it, langchain-milvus does not), or ours (``vd``), which merges
#: concurrent calls itself and so gives every store one request per burst. LlamaIndex
#: stores take vectors, so their subjects embed with our client either way.
EMBEDDINGS = ("langchain-openai", "vd")
#: Results per search, as in the tutorial.
K = 3
#: Candidates an MMR search re-ranks.
FETCH_K = 20


class BenchmarkCheckError(VdIntegrationsError, AssertionError):
    """An operation returned something other than what the workload requires."""


@dataclass(frozen=True)
class Endpoint:
    """Where the stores live and where embeddings come from."""

    uri: str
    embeddings_base_url: str | None
    embeddings_api_key: str | None
    embeddings_model: str = "text-embedding-3-small"
    #: One of :data:`EMBEDDINGS`.
    embeddings_client: str = "langchain-openai"

    def __repr__(self) -> str:  # never print the key
        return (
            f"Endpoint(uri={self.uri!r}, embeddings_base_url={self.embeddings_base_url!r}, "
            f"embeddings_client={self.embeddings_client!r})"
        )


def population(workload: str, n: int, base: int = POPULATION) -> int:
    """How many documents a workload's collection holds before it is measured."""
    if workload in ("add", BULK):
        return 0
    if workload in ("delete", "upsert"):
        return max(base, n)  # every delete and upsert hits a document
    return base


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchmarkCheckError(message)


class Subject(ABC):
    """One store implementation under test."""

    name: ClassVar[str]
    integration: ClassVar[str]
    label: ClassVar[str]
    #: ``module.Class`` of the store, imported when first needed.
    store_path: ClassVar[str]
    #: True for the integrations we compare against.
    anchor: ClassVar[bool] = False

    def __init__(self, endpoint: Endpoint, population: int = POPULATION) -> None:
        self.endpoint = endpoint
        self.base_population = population
        self.embeddings = self._make_embeddings()

    def population(self, workload: str, n: int) -> int:
        """Documents in the collection before ``n`` operations of ``workload`` run."""
        return population(workload, n, self.base_population)

    @abstractmethod
    def _make_embeddings(self) -> Any: ...

    def _store_class(self) -> Any:
        module, _, name = self.store_path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    @abstractmethod
    def open(self, workload: str, collection: str) -> Any:
        """A store over a fresh (dropped and recreated) collection for ``workload``."""

    @abstractmethod
    def populate(self, store: Any, workload: str, n: int) -> None:
        """Fill the store with the documents ``workload`` runs against."""

    @abstractmethod
    def sync_op(self, workload: str, store: Any, i: int) -> None: ...

    @abstractmethod
    async def async_op(self, workload: str, store: Any, i: int) -> None: ...

    @abstractmethod
    def bulk_op(self, store: Any, n: int) -> None:
        """The bulk workload: one call adding documents 0 .. n-1."""

    @abstractmethod
    async def abulk_op(self, store: Any, n: int) -> None: ...

    def precreate(self, store: Any, workload: str) -> None:
        """Make sure the collection exists before concurrent writes (see the runner's retry)."""
        return None

    def count(self, store: Any) -> int:
        """Rows in the store's collection, read with strong consistency."""
        # A store may still be loading a collection it has just created (our stores load
        # new collections in the background); waiting here keeps that out of the timings.
        store.client.load_collection(self.collection_of(store))
        rows = store.client.query(
            self.collection_of(store),
            filter="",
            output_fields=["count(*)"],
            consistency_level="Strong",
        )
        return int(rows[0]["count(*)"])

    def collection_drop_rows(self, store: Any, expr: str) -> None:
        store.client.delete(self.collection_of(store), filter=expr)

    @abstractmethod
    def collection_of(self, store: Any) -> str: ...

    def expected_count(self, workload: str, n: int) -> int | None:
        """Rows the collection must hold after ``n`` operations of ``workload``."""
        before = self.population(workload, n)
        return {"add": n, BULK: n, "delete": before - n, "upsert": before}.get(workload)

    def drop(self, store: Any) -> None:
        """Drop the measured collection."""
        store.client.drop_collection(self.collection_of(store))

    async def settle(self, store: Any) -> None:
        """Let background work the store started on the running loop finish (our stores
        load a collection they created in the background), so dropping it is quiet."""
        settle = getattr(getattr(store, "engine", None), "asettle", None)
        if callable(settle):
            await settle()

    async def aclose(self, store: Any) -> None:
        """Release the store's resources, those bound to the running loop included."""
        closer = getattr(store, "aclose", None)
        if callable(closer):
            await closer()

    def close(self, store: Any) -> None:
        """Release the store's resources (after :meth:`aclose` when async ran)."""
        closer = getattr(store, "close", None)
        if callable(closer):
            closer()


# ----- LangChain ---------------------------------------------------------------------------------


class LangChainSubject(Subject):
    integration = "langchain"

    def _make_embeddings(self) -> Any:
        endpoint = self.endpoint
        if endpoint.embeddings_client == "vd":
            from langchain_vd.embeddings import OpenAIEmbeddings

            return OpenAIEmbeddings(
                model=endpoint.embeddings_model,
                base_url=endpoint.embeddings_base_url,
                api_key=endpoint.embeddings_api_key,
            )
        try:
            from langchain_openai import OpenAIEmbeddings as TutorialEmbeddings
        except ImportError:
            raise RuntimeError(
                "The benchmark embeds with the tutorial's langchain_openai.OpenAIEmbeddings: "
                "pip install 'vd-integrations[bench]' (or langchain-openai), or pass "
                "--embeddings vd to use ours."
            ) from None
        from vd_integrations.embeddings.openai_client import OFFLINE_API_KEY

        # The offline server takes any key; the real service reads OPENAI_API_KEY.
        key = endpoint.embeddings_api_key or os.environ.get("OPENAI_API_KEY") or OFFLINE_API_KEY
        kwargs: dict[str, Any] = {"api_key": key}
        if endpoint.embeddings_base_url:
            kwargs["base_url"] = endpoint.embeddings_base_url
        # No tiktoken: it downloads its tables, and these texts are far below any limit.
        return TutorialEmbeddings(
            model=endpoint.embeddings_model, check_embedding_ctx_length=False, **kwargs
        )

    def open(self, workload: str, collection: str) -> Any:
        # The tutorial's init_vector_store(); upserts need ids the caller chooses.
        return self._store_class()(
            embedding_function=self.embeddings,
            collection_name=collection,
            connection_args={"uri": self.endpoint.uri},
            auto_id=workload != "upsert",
            drop_old=True,
        )

    def collection_of(self, store: Any) -> str:
        return store.collection_name

    @staticmethod
    def _document(item: Item) -> Any:
        from langchain_core.documents import Document

        return Document(page_content=item.text, metadata=item.metadata)

    def populate(self, store: Any, workload: str, n: int) -> None:
        docs = [self._document(item) for item in items(self.population(workload, n))]
        if not docs:
            # Adds run on an existing, empty collection, as LlamaIndex stores' do (their
            # constructor creates it): a fresh one would put its creation inside the timing
            # of ours and fail langchain-milvus' concurrent first writes.
            self.precreate(store, workload)
            return
        if workload == "upsert":
            store.add_documents(docs, ids=[d.metadata["id"] for d in docs])
        else:
            store.add_documents(docs)

    def sync_op(self, workload: str, store: Any, i: int) -> None:
        if workload == "add":
            _check(len(store.add_documents([self._document(items(1, start=i)[0])])) == 1, "add")
        elif workload == "search":
            _check(len(store.similarity_search(query=query(i), k=K)) == K, "search")
        elif workload == "delete":
            store.delete(expr=f"id == 'doc_{i}'")
        elif workload == "upsert":
            item = items(1, start=i, version=1)[0]
            store.upsert(ids=[item.doc_id], documents=[self._document(item)])
        elif workload == "mmr":
            found = store.max_marginal_relevance_search(query(i), k=K, fetch_k=FETCH_K)
            _check(len(found) == K, "mmr")
        else:
            raise ValueError(f"unknown workload {workload!r}")

    async def async_op(self, workload: str, store: Any, i: int) -> None:
        if workload == "add":
            added = await store.aadd_documents([self._document(items(1, start=i)[0])])
            _check(len(added) == 1, "add")
        elif workload == "search":
            _check(len(await store.asimilarity_search(query=query(i), k=K)) == K, "search")
        elif workload == "delete":
            await store.adelete(expr=f"id == 'doc_{i}'")
        elif workload == "upsert":
            item = items(1, start=i, version=1)[0]
            await store.aupsert(ids=[item.doc_id], documents=[self._document(item)])
        elif workload == "mmr":
            found = await store.amax_marginal_relevance_search(query(i), k=K, fetch_k=FETCH_K)
            _check(len(found) == K, "mmr")
        else:
            raise ValueError(f"unknown workload {workload!r}")

    def bulk_op(self, store: Any, n: int) -> None:
        docs = [self._document(item) for item in items(n)]
        _check(len(store.add_documents(docs)) == n, BULK)

    async def abulk_op(self, store: Any, n: int) -> None:
        docs = [self._document(item) for item in items(n)]
        _check(len(await store.aadd_documents(docs)) == n, BULK)

    def precreate(self, store: Any, workload: str) -> None:
        probe = self._document(items(1, start=10**6)[0])
        store.add_documents([probe], **({"ids": ["probe"]} if workload == "upsert" else {}))
        self.collection_drop_rows(store, "id == 'doc_1000000'")


class LangChainVd(LangChainSubject):
    name = "langchain_vd"
    label = "langchain_vd.Milvus"
    store_path = "langchain_vd.Milvus"


class LangChainMilvus(LangChainSubject):
    name = "langchain_milvus"
    label = "langchain_milvus.Milvus"
    store_path = "langchain_milvus.Milvus"
    anchor = True
    requirement = "langchain-milvus==0.4.0"


# ----- LlamaIndex --------------------------------------------------------------------------------


class LlamaIndexSubject(Subject):
    integration = "llama_index"

    def _make_embeddings(self) -> Any:
        from llama_index_vd.embeddings import OpenAIEmbedding

        return OpenAIEmbedding(
            model_name=self.endpoint.embeddings_model,
            base_url=self.endpoint.embeddings_base_url,
            api_key=self.endpoint.embeddings_api_key,
        )

    def open(self, workload: str, collection: str) -> Any:
        dim = len(self.embeddings.get_query_embedding("dimension probe"))
        return self._store_class()(
            uri=self.endpoint.uri,
            collection_name=collection,
            dim=dim,
            overwrite=True,
            upsert_mode=workload == "upsert",
        )

    def collection_of(self, store: Any) -> str:
        return store.collection_name

    @staticmethod
    def _node(item: Item, embedding: list[float]) -> Any:
        from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

        return TextNode(
            id_=f"node_{item.index}",
            text=item.text,
            metadata=dict(item.metadata),
            embedding=embedding,
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=item.doc_id)},
        )

    @staticmethod
    def _query(embedding: list[float], workload: str) -> Any:
        from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

        if workload == "mmr":
            return VectorStoreQuery(
                query_embedding=embedding,
                similarity_top_k=K,
                mode=VectorStoreQueryMode.MMR,
                mmr_threshold=0.5,
            )
        return VectorStoreQuery(query_embedding=embedding, similarity_top_k=K)

    def populate(self, store: Any, workload: str, n: int) -> None:
        batch = items(self.population(workload, n))
        if not batch:
            return
        vectors = self.embeddings.get_text_embedding_batch([item.text for item in batch])
        store.add([self._node(item, v) for item, v in zip(batch, vectors, strict=True)])

    def sync_op(self, workload: str, store: Any, i: int) -> None:
        if workload in ("add", "upsert"):
            item = items(1, start=i, version=int(workload == "upsert"))[0]
            vector = self.embeddings.get_text_embedding(item.text)
            _check(len(store.add([self._node(item, vector)])) == 1, workload)
        elif workload in ("search", "mmr"):
            vector = self.embeddings.get_query_embedding(query(i))
            result = store.query(self._query(vector, workload))
            _check(len(result.ids) == K, workload)
        elif workload == "delete":
            store.delete(ref_doc_id=f"doc_{i}")
        else:
            raise ValueError(f"unknown workload {workload!r}")

    async def async_op(self, workload: str, store: Any, i: int) -> None:
        if workload in ("add", "upsert"):
            item = items(1, start=i, version=int(workload == "upsert"))[0]
            vector = await self.embeddings.aget_text_embedding(item.text)
            _check(len(await store.async_add([self._node(item, vector)])) == 1, workload)
        elif workload in ("search", "mmr"):
            vector = await self.embeddings.aget_query_embedding(query(i))
            result = await store.aquery(self._query(vector, workload))
            _check(len(result.ids) == K, workload)
        elif workload == "delete":
            await store.adelete(ref_doc_id=f"doc_{i}")
        else:
            raise ValueError(f"unknown workload {workload!r}")

    def bulk_op(self, store: Any, n: int) -> None:
        batch = items(n)
        vectors = self.embeddings.get_text_embedding_batch([item.text for item in batch])
        nodes = [self._node(item, v) for item, v in zip(batch, vectors, strict=True)]
        _check(len(store.add(nodes)) == n, BULK)

    async def abulk_op(self, store: Any, n: int) -> None:
        batch = items(n)
        vectors = await self.embeddings.aget_text_embedding_batch([item.text for item in batch])
        nodes = [self._node(item, v) for item, v in zip(batch, vectors, strict=True)]
        _check(len(await store.async_add(nodes)) == n, BULK)


class LlamaIndexVd(LlamaIndexSubject):
    name = "llama_index_vd"
    label = "llama_index_vd.MilvusVectorStore"
    store_path = "llama_index_vd.MilvusVectorStore"


class LlamaIndexMilvus(LlamaIndexSubject):
    name = "llama_index_milvus"
    label = "llama_index.vector_stores.milvus.MilvusVectorStore"
    store_path = "llama_index.vector_stores.milvus.MilvusVectorStore"
    anchor = True
    requirement = "llama-index-vector-stores-milvus"


SUBJECTS: dict[str, type[Subject]] = {
    cls.name: cls for cls in (LangChainVd, LangChainMilvus, LlamaIndexVd, LlamaIndexMilvus)
}


def make_subject(name: str, endpoint: Endpoint, population: int = POPULATION) -> Subject:
    """The subject called ``name`` (one of :data:`SUBJECTS`)."""
    try:
        return SUBJECTS[name](endpoint, population)
    except KeyError:
        raise ValueError(f"unknown subject {name!r}; choose from {sorted(SUBJECTS)}") from None

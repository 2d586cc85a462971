"""``llama_index_vd.MilvusVectorStore(enable_dense=False, enable_sparse=True)`` on the Lite
server (issue 17, point 5): as LlamaIndex's own store, a collection with no dense field,
created in the constructor, holding nodes that need no embedding, queried in SPARSE or
TEXT_SEARCH mode (BM25, or the caller's sparse embedding function), sync and async. The
expected hits come from which text holds the query word, not from the store's output.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from pymilvus import DataType

from llama_index_vd import MilvusVectorStore
from vd_integrations.core.errors import InvalidInputError

TEXTS = {
    "n1": "the quick brown fox",
    "n2": "a lazy sleeping dog",
    "n3": "bright orange tangerines",
    "n4": "the dog chased the fox",
}


def text_nodes() -> list[TextNode]:
    return [
        TextNode(
            id_=node_id,
            text=text,
            metadata={"n": int(node_id[1])},
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc{node_id}")},
        )
        for node_id, text in TEXTS.items()
    ]


def holding(word: str) -> set[str]:
    """The oracle: the nodes whose text has ``word``."""
    return {node_id for node_id, text in TEXTS.items() if word in text.split()}


def sparse_query(text: str, mode: VectorStoreQueryMode, k: int = 4) -> VectorStoreQuery:
    return VectorStoreQuery(query_str=text, mode=mode, sparse_top_k=k, similarity_top_k=k)


class WordsSparse:
    """A caller's sparse embedding function (LlamaIndex's encode_documents / encode_queries)."""

    @staticmethod
    def _encode(text: str) -> dict[int, float]:
        return {sum(map(ord, w)) % 9973: 1.0 for w in re.findall(r"\w+", text.lower())}

    def encode_documents(self, texts: list[str]) -> list[dict[int, float]]:
        return [self._encode(t) for t in texts]

    def encode_queries(self, texts: list[str]) -> list[dict[int, float]]:
        return [self._encode(t) for t in texts]


@pytest.mark.parametrize("function", [None, WordsSparse()], ids=["bm25", "caller"])
def test_sparse_only_store(milvus_uri: str, collection_name: str, function: object) -> None:
    store = MilvusVectorStore(
        uri=milvus_uri,
        collection_name=collection_name,
        enable_dense=False,
        enable_sparse=True,
        sparse_embedding_function=function,
        consistency_level="Strong",
    )
    client = store.client
    assert client.has_collection(collection_name)  # created in the constructor, as upstream
    types = {f["name"]: f["type"] for f in client.describe_collection(collection_name)["fields"]}
    assert DataType.FLOAT_VECTOR not in types.values()
    assert types["sparse_embedding"] == DataType.SPARSE_FLOAT_VECTOR
    nodes = text_nodes()
    assert store.add(nodes[:2]) == ["n1", "n2"]  # no embeddings needed
    assert asyncio.run(store.async_add(nodes[2:])) == ["n3", "n4"]
    for mode in (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.TEXT_SEARCH):
        if function is not None and mode is VectorStoreQueryMode.TEXT_SEARCH:
            continue  # TEXT_SEARCH is BM25's
        found = store.query(sparse_query("fox", mode))
        assert set(found.ids or []) == holding("fox")
        found = asyncio.run(store.aquery(sparse_query("tangerines", mode, k=1)))
        assert found.ids == ["n3"] and found.nodes and found.nodes[0].get_content() == TEXTS["n3"]
    store.delete("docn4")
    found = store.query(sparse_query("fox", VectorStoreQueryMode.SPARSE))
    assert set(found.ids or []) == holding("fox") - {"n4"}
    assert [n.node_id for n in store.get_nodes(node_ids=["n2"])] == ["n2"]
    client.drop_collection(collection_name)


def test_sparse_only_store_refuses_dense_queries_before_any_request(
    milvus_uri: str, collection_name: str
) -> None:
    store = MilvusVectorStore(
        uri=milvus_uri, collection_name=collection_name, enable_dense=False, enable_sparse=True
    )
    calls = dict(store._engine.rpc_counts)
    for mode in (
        VectorStoreQueryMode.DEFAULT,
        VectorStoreQueryMode.HYBRID,
        VectorStoreQueryMode.MMR,
    ):
        query = VectorStoreQuery(query_embedding=[1.0, 0.0], query_str="fox", mode=mode)
        with pytest.raises(InvalidInputError, match="no dense vector field"):
            store.query(query)
        with pytest.raises(InvalidInputError, match="SPARSE"):
            asyncio.run(store.aquery(query))
    assert dict(store._engine.rpc_counts) == calls
    with pytest.raises(NotImplementedError, match="enable_sparse=True"):
        MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, enable_dense=False)
    store.client.drop_collection(collection_name)

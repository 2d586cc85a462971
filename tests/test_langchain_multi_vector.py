"""langchain_vd.Milvus with several vector fields, sparse embedding functions and BM25-only
stores, on the Lite server: what langchain-milvus users rely on (issue 17, points 2 and 5).

Upstream behaviours covered: ``embedding_function=[e1, e2]`` with ``vector_field=[...]``
(or generated names ``vector``, ``vector_2``), per-field ``index_params`` and
``search_params`` lists, ``similarity_search`` over every field fused by ``ranker_type`` /
``ranker_params`` or ``reranker=Function(RERANK)``, ``add_embeddings`` taking one vector per
field per text, searches by one vector refused on several fields, sparse embedding functions
(``BaseSparseEmbedding``) in their own ``SPARSE_FLOAT_VECTOR`` field, and BM25-only stores
(``embedding_function=[]`` or None with ``builtin_function``). Expected results come from
brute force over the vectors the fake embedders give, not from the store's own output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from pymilvus import DataType, Function, FunctionType

from langchain_vd import Milvus
from langchain_vd.milvus import BM25BuiltInFunction
from vd_integrations.core.errors import InvalidInputError

TEXTS = ["red apple pie", "green pear tart", "blue plum jam", "yellow lemon curd"]


class Table(Embeddings):
    """Each text a fixed vector from a table; the query a fixed vector too."""

    def __init__(self, vectors: list[list[float]], query: list[float]) -> None:
        self.vectors, self.query = vectors, query

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[TEXTS.index(t)] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.query


def nearest_l2(vectors: list[list[float]], query: list[float]) -> str:
    """The brute-force oracle: the text whose vector is nearest to ``query`` (L2)."""
    distances = [float(np.linalg.norm(np.subtract(v, query))) for v in vectors]
    return TEXTS[int(np.argmin(distances))]


FIRST = [[float(i), 0.0, 1.0] for i in range(4)]
SECOND = [[0.0, float(3 - i), 1.0, 2.0] for i in range(4)]
Q1, Q2 = [0.1, 0.0, 1.0], [0.0, 0.2, 1.0, 2.0]  # nearest: TEXTS[0] by FIRST, TEXTS[3] by SECOND


def weighted(name: str, weights: list[float]) -> Function:
    return Function(
        name=name,
        function_type=FunctionType.RERANK,
        input_field_names=[],
        params={"reranker": "weighted", "weights": weights},
    )


@pytest.fixture
def two_fields(milvus_uri: str, collection_name: str) -> Iterator[Milvus]:
    store = Milvus(
        [Table(FIRST, Q1), Table(SECOND, Q2)],
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        vector_field=["first", "second"],
        index_params=[
            {"metric_type": "L2", "index_type": "AUTOINDEX"},
            {"metric_type": "L2", "index_type": "FLAT"},
        ],
        consistency_level="Strong",
    )
    store.add_texts(TEXTS, ids=[str(i) for i in range(4)])
    yield store
    store.drop()
    store.close()


def test_two_embedding_functions_fill_two_indexed_fields(two_fields: Milvus) -> None:
    client, name = two_fields.client, two_fields.collection_name
    fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
    assert fields["first"]["type"] == DataType.FLOAT_VECTOR
    assert fields["first"]["params"]["dim"] == 3 and fields["second"]["params"]["dim"] == 4
    indexes = {client.describe_index(name, i)["field_name"]: i for i in client.list_indexes(name)}
    assert set(indexes) == {"first", "second"}
    assert client.describe_index(name, indexes["second"])["index_type"] == "FLAT"
    stored = client.query(name, filter='pk == "2"', output_fields=["first", "second"])[0]
    assert np.allclose(stored["first"], FIRST[2]) and np.allclose(stored["second"], SECOND[2])


def test_search_fuses_every_field_by_the_ranker_sync_and_async(two_fields: Milvus) -> None:
    by_first, by_second = nearest_l2(FIRST, Q1), nearest_l2(SECOND, Q2)
    assert by_first != by_second
    search = two_fields.similarity_search
    assert search("q", k=1, reranker=weighted("w1", [1.0, 0.0]))[0].page_content == by_first
    assert search("q", k=1, reranker=weighted("w2", [0.0, 1.0]))[0].page_content == by_second
    kw: dict[str, Any] = {"ranker_type": "weighted", "ranker_params": {"weights": [0.0, 1.0]}}
    assert search("q", k=1, **kw)[0].page_content == by_second
    kw = {"ranker_type": "weighted", "ranker_params": {"weights": [1.0, 0.0]}}
    found = asyncio.run(two_fields.asimilarity_search_with_score("q", k=1, **kw))
    assert found[0][0].page_content == by_first
    assert len(search("q", k=4)) == 4  # RRF over both fields by default
    assert {d.page_content for d in two_fields.hybrid_search("q", k=4)} == set(TEXTS)


def test_bad_ranker_or_params_fail_before_any_request(two_fields: Milvus) -> None:
    calls = dict(two_fields._engine.rpc_counts)
    with pytest.raises(InvalidInputError, match="two numbers"):
        two_fields.similarity_search(
            "q", ranker_type="weighted", ranker_params={"weights": [1.0, 0.0, 0.0]}
        )
    with pytest.raises(InvalidInputError, match="one dict per field"):
        two_fields.similarity_search("q", param=[{"params": {}}])
    assert dict(two_fields._engine.rpc_counts) == calls


def test_one_vector_search_is_refused_on_several_fields(two_fields: Milvus) -> None:
    with pytest.raises(ValueError, match="No relevance function for several vector fields"):
        two_fields.similarity_search_with_relevance_scores("q", k=1)  # as upstream
    with pytest.raises(InvalidInputError, match=r"needs one vector field.*\['first', 'second'\]"):
        two_fields.similarity_search_by_vector(Q1, k=1)
    with pytest.raises(InvalidInputError, match="needs one vector field"):
        asyncio.run(two_fields.asimilarity_search_with_score_by_vector(Q1, k=1))
    calls = dict(two_fields._engine.rpc_counts)
    with pytest.raises(InvalidInputError, match="needs one vector field"):
        two_fields.max_marginal_relevance_search("q", k=1)  # as upstream: one embedding only
    with pytest.raises(InvalidInputError, match="needs one vector field"):
        asyncio.run(two_fields.amax_marginal_relevance_search_by_vector(Q1, k=1))
    assert dict(two_fields._engine.rpc_counts) == calls


def test_add_embeddings_takes_one_vector_per_field_per_text(two_fields: Milvus) -> None:
    assert two_fields.add_embeddings(["extra"], [[[9.0, 9.0, 9.0], [9.0] * 4]], ids=["x"]) == ["x"]
    assert asyncio.run(
        two_fields.aadd_embeddings(["extra2"], [[[8.0] * 3, [8.0] * 4]], ids=["y"])
    ) == ["y"]
    before = two_fields.client.query(two_fields.collection_name, filter="", limit=100)
    for bad in ([[9.0, 9.0, 9.0]], [[[9.0] * 3]], [[[9.0] * 3, [9.0] * 5]]):
        with pytest.raises(InvalidInputError):
            two_fields.add_embeddings(["bad"], bad, ids=["bad"])
    after = two_fields.client.query(two_fields.collection_name, filter="", limit=100)
    assert len(after) == len(before) == 6
    two_fields.drop()  # a new collection takes the dimensions of its first vectors again
    assert two_fields.add_embeddings(["new"], [[[1.0, 2.0], [3.0]]], ids=["n"]) == ["n"]
    fields = two_fields.client.describe_collection(two_fields.collection_name)["fields"]
    assert [f["params"]["dim"] for f in fields if f["name"] in ("first", "second")] == [2, 1]


def test_generated_field_names_and_too_many_names(milvus_uri: str, collection_name: str) -> None:
    store = Milvus(
        [Table(FIRST, Q1), Table(SECOND, Q2)],
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
    )
    asyncio.run(store.aadd_texts(TEXTS))
    names = [f["name"] for f in store.client.describe_collection(collection_name)["fields"]]
    assert [n for n in names if n.startswith("vector")] == ["vector", "vector_2"]
    store.drop()
    with pytest.raises(ValueError, match="Too many vector fields"):
        Milvus(Table(FIRST, Q1), vector_field=["a", "b"], connection_args={"uri": milvus_uri})
    with pytest.raises(ValueError, match="one dict per field"):
        Milvus(
            [Table(FIRST, Q1), Table(SECOND, Q2)],
            index_params={"metric_type": "L2"},
            connection_args={"uri": milvus_uri},
        )
    one_dense = Milvus(  # one dict next to a BM25 field: the dense field's, as before
        Table(FIRST, Q1),
        builtin_function=BM25BuiltInFunction(),
        vector_field=["dense", "sparse"],
        index_params={"metric_type": "IP", "index_type": "FLAT"},
        connection_args={"uri": milvus_uri},
    )
    assert one_dense._spec.index["metric_type"] == "IP"


@pytest.mark.parametrize("embedding_function", [[], None])
def test_bm25_only_store(milvus_uri: str, collection_name: str, embedding_function: Any) -> None:
    store = Milvus(
        embedding_function,
        builtin_function=[BM25BuiltInFunction()],
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        vector_field="sparse",
        auto_id=True,
        consistency_level="Strong",
    )
    store.add_texts(TEXTS, metadatas=[{"page": i} for i in range(4)])
    fields = {
        f["name"]: f["type"] for f in store.client.describe_collection(collection_name)["fields"]
    }
    assert (
        DataType.FLOAT_VECTOR not in fields.values()
        and fields["sparse"] == DataType.SPARSE_FLOAT_VECTOR
    )
    (doc,) = store.similarity_search("plum", k=1)
    assert (doc.page_content, doc.metadata) == ("blue plum jam", {"page": 2})
    found = asyncio.run(store.asimilarity_search_with_score("lemon", k=1))
    assert found[0][0].page_content == "yellow lemon curd" and found[0][1] > 0
    assert store.full_text_search("pear", k=1)[0].page_content == "green pear tart"
    with pytest.raises(InvalidInputError, match="BM25-only"):
        store.similarity_search_by_vector([1.0, 2.0], k=1)
    with pytest.raises(ValueError, match="sparse-only"):
        asyncio.run(store.asimilarity_search_with_relevance_scores("plum", k=1))
    with pytest.raises(InvalidInputError, match="BM25-only"):
        store.add_embeddings(["x"], [[1.0, 2.0]])
    assert (
        store.client.query(collection_name, filter="", output_fields=["count(*)"])[0]["count(*)"]
        == 4
    )
    store.drop()


def test_dense_and_bm25_with_index_params_per_field(milvus_uri: str, collection_name: str) -> None:
    store = Milvus(
        [Table(FIRST, Q1)],
        builtin_function=[
            BM25BuiltInFunction(input_field_names="body", output_field_names="words")
        ],
        text_field="body",
        vector_field=["dense", "words"],
        index_params=[
            {"metric_type": "COSINE", "index_type": "HNSW", "params": {"M": 8}},
            {"metric_type": "BM25", "index_type": "SPARSE_INVERTED_INDEX"},
        ],
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        auto_id=True,
        consistency_level="Strong",
    )
    asyncio.run(store.aadd_texts(TEXTS))
    client = store.client
    infos = [
        client.describe_index(collection_name, i) for i in client.list_indexes(collection_name)
    ]
    metrics = {i["field_name"]: (i["index_type"], i["metric_type"]) for i in infos}
    assert metrics == {"dense": ("HNSW", "COSINE"), "words": ("SPARSE_INVERTED_INDEX", "BM25")}
    assert store.full_text_search("plum", k=1)[0].page_content == "blue plum jam"
    assert len(store.similarity_search("plum", k=4)) == 4
    store.drop()


def test_sparse_embedding_functions(milvus_uri: str, collection_name: str) -> None:
    sparse_base = pytest.importorskip("langchain_milvus.utils.sparse").BaseSparseEmbedding

    class Words(sparse_base):  # type: ignore[misc, valid-type]
        vocabulary = sorted({w for t in TEXTS for w in t.split()})

        def embed_query(self, query: str) -> dict[int, float]:
            words = [w for w in query.split() if w in self.vocabulary]
            return {self.vocabulary.index(w): 1.0 for w in words} or {0: 0.01}

        def embed_documents(self, texts: list[str]) -> list[dict[int, float]]:
            return [self.embed_query(t) for t in texts]

    alone = Milvus(Words(), collection_name=collection_name, connection_args={"uri": milvus_uri})
    alone.add_texts(TEXTS)
    fields = {
        f["name"]: f["type"] for f in alone.client.describe_collection(collection_name)["fields"]
    }
    assert fields["vector"] == DataType.SPARSE_FLOAT_VECTOR
    assert alone.similarity_search("plum", k=1)[0].page_content == "blue plum jam"
    assert (
        asyncio.run(alone.asimilarity_search("lemon", k=1))[0].page_content == "yellow lemon curd"
    )
    alone.drop()

    mixed = Milvus(
        [Words(), Table(FIRST, Q1)],
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        vector_field=["words", "dense"],
    )
    mixed.add_texts(TEXTS)
    kw: dict[str, Any] = {"ranker_type": "weighted", "ranker_params": {"weights": [1.0, 0.0]}}
    assert mixed.similarity_search("green pear", k=1, **kw)[0].page_content == "green pear tart"
    kw = {"ranker_type": "weighted", "ranker_params": {"weights": [0.0, 1.0]}}
    assert mixed.similarity_search("green pear", k=1, **kw)[0].page_content == nearest_l2(FIRST, Q1)
    mixed.drop()


def test_a_store_without_embedding_function_holds_the_callers_vectors(
    milvus_uri: str, collection_name: str
) -> None:
    """No embedding and no built-in function: one vector field, named and indexed as asked,
    written with add_embeddings and searched by vector (a typed one keeps its type)."""
    store = Milvus(
        None,
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        vector_field="emb",
        index_params={"index_type": "FLAT", "metric_type": "L2"},
    )
    assert store.vector_fields == ["emb"]
    store.add_embeddings(["a", "b"], [[1.0, 0.0], [0.0, 1.0]], ids=["a", "b"])
    assert [d.id for d in store.similarity_search_by_vector([0.9, 0.1], k=1)] == ["a"]
    store.drop()
    store.close()
    typed = Milvus(None, vector_schema={"dtype": DataType.BINARY_VECTOR, "dim": 16})
    assert [v.dtype for v in typed.engine.spec.vectors or ()] == [DataType.BINARY_VECTOR]

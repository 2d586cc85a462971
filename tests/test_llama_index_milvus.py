"""llama_index_vd.MilvusVectorStore on a Milvus Lite server: contract, filters, loops, bad input.

The random-filter oracle (data, filters and the reference predicate) is defined here and
reused by ``test_llama_index_vd.py``.
"""

from __future__ import annotations

import asyncio
import copy
import math
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import (
    BaseNode,
    IndexNode,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from pymilvus import DataType
from vd import UnsupportedFilterError

from llama_index_vd import IndexManagement, MilvusVectorStore, VDVectorStore
from llama_index_vd.filters import to_milvus_expr
from tests.loop_watch import LoopWatch
from vd_integrations.core.errors import (
    InvalidFilterExpressionError,
    InvalidInputError,
    StoreClosedError,
)

# ------------------------------------------------------------------------------------------------
# Deterministic embeddings and sample nodes
# ------------------------------------------------------------------------------------------------

VOCAB = ("apple", "banana", "cherry", "dog", "eagle", "fish", "goat", "horse")
DIM = len(VOCAB)


def axis_vector(text: str) -> list[float]:
    """Each known word is one axis; unit length; no known word gives the all-ones direction."""
    vector = np.zeros(DIM)
    for word in text.lower().replace(".", " ").split():
        if word in VOCAB:
            vector[VOCAB.index(word)] += 1.0
    if not vector.any():
        vector[:] = 1.0
    return (vector / np.linalg.norm(vector)).tolist()


class AxisEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model with no network: :func:`axis_vector`."""

    def _get_query_embedding(self, query: str) -> list[float]:
        return axis_vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return axis_vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return axis_vector(text)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return axis_vector(text)


def text_node(node_id: str, content: str, doc: str | None = None, **metadata: Any) -> TextNode:
    node = TextNode(id_=node_id, text=content, metadata=metadata, embedding=axis_vector(content))
    if doc is not None:
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    return node


def sample_nodes() -> list[TextNode]:
    return [
        text_node("a", "apple", "d1", kind="fruit", n=1, tags=["red"]),
        text_node("b", "banana", "d1", kind="fruit", n=2, tags=["yellow", "sweet"]),
        text_node("c", "cherry", "d2", kind="fruit", n=3, tags=["red", "sweet"]),
        text_node("ab", "apple banana", "d2", kind="mix", n=4, note='say "hi" \\o/'),
        text_node("d", "dog", "d3", kind="animal", n=5, nested={"x": [1, 2.5, None]}),
    ]


def node_key(node: BaseNode) -> tuple[Any, ...]:
    """What must round-trip: id, text, metadata, doc id, relationships and node type."""
    return (
        node.node_id,
        node.get_content(),
        node.metadata,
        node.ref_doc_id,
        {str(k): v.node_id for k, v in node.relationships.items()},  # type: ignore[union-attr]
        type(node).__name__,
    )


def where(**kwargs: Any) -> MetadataFilters:
    """``MetadataFilters`` of EQ conditions."""
    return MetadataFilters(filters=[MetadataFilter(key=k, value=v) for k, v in kwargs.items()])


ALL = MetadataFilters(filters=[])


def vector_query(text: str, k: int = 5, **kwargs: Any) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=axis_vector(text), similarity_top_k=k, **kwargs)


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


def make_store(uri: str, name: str, **kwargs: Any) -> MilvusVectorStore:
    kwargs.setdefault("similarity_metric", "COSINE")
    return MilvusVectorStore(uri=uri, collection_name=name, **kwargs)


@pytest.fixture
def store(milvus_uri: str, collection_name: str) -> Iterator[MilvusVectorStore]:
    store = make_store(milvus_uri, collection_name)
    yield store
    store.close()


ASYNC_NAMES = {"add": "async_add"}


def caller(store: Any, mode: str) -> Callable[..., Any]:
    def invoke(name: str, *args: Any, **kwargs: Any) -> Any:
        if mode == "sync":
            return getattr(store, name)(*args, **kwargs)
        return asyncio.run(getattr(store, ASYNC_NAMES.get(name, "a" + name))(*args, **kwargs))

    return invoke


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest, store: MilvusVectorStore) -> Callable[..., Any]:
    """Call a store method by its sync name, in sync mode or via its async twin."""
    return caller(store, request.param)


def snapshot(call: Callable[..., Any]) -> list[tuple[Any, ...]]:
    return sorted(node_key(n) for n in call("get_nodes", filters=ALL))


# ------------------------------------------------------------------------------------------------
# End to end through VectorStoreIndex
# ------------------------------------------------------------------------------------------------

DOCUMENTS = [
    Document(text="apple banana. apple cherry.", id_="fruit-doc", metadata={"topic": "fruit"}),
    Document(text="dog eagle. fish goat.", id_="animal-doc", metadata={"topic": "animal"}),
    Document(text="horse apple. dog banana.", id_="mixed-doc", metadata={"topic": "mixed"}),
]


def _ids_by_doc(nodes: list[Any]) -> set[str | None]:
    return {n.node.ref_doc_id for n in nodes}


async def test_vector_store_index_end_to_end(milvus_uri: str, collection_name: str) -> None:
    Settings.llm = None  # never resolve OpenAI defaults
    embed = AxisEmbedding()
    store = make_store(milvus_uri, collection_name, dim=DIM)
    index = VectorStoreIndex.from_documents(
        [copy.deepcopy(d) for d in DOCUMENTS],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed,
        transformations=[SentenceSplitter(chunk_size=8, chunk_overlap=0, tokenizer=str.split)],
    )
    nodes = store.get_nodes(filters=ALL)
    assert len(nodes) >= 3 and all(n.embedding is not None for n in nodes)

    retriever = index.as_retriever(similarity_top_k=10, filters=where(topic="fruit"))
    sync_hits = retriever.retrieve("apple")
    async_hits = await retriever.aretrieve("apple")
    assert [h.node.node_id for h in sync_hits] == [h.node.node_id for h in async_hits]
    assert _ids_by_doc(sync_hits) == {"fruit-doc"}
    assert "apple" in sync_hits[0].node.get_content()

    not_fruit = MetadataFilters(
        filters=[MetadataFilter(key="topic", value="fruit")], condition=FilterCondition.NOT
    )
    hits = await index.as_retriever(similarity_top_k=10, filters=not_fruit).aretrieve("apple")
    assert _ids_by_doc(hits) == {"animal-doc", "mixed-doc"}

    mmr = index.as_retriever(
        similarity_top_k=2,
        vector_store_query_mode="mmr",
        vector_store_kwargs={"mmr_threshold": 0.2},
    )
    assert len(await mmr.aretrieve("apple")) == 2

    index.delete_ref_doc("fruit-doc")
    await index.adelete_ref_doc("animal-doc")
    remaining = await store.aget_nodes(filters=ALL)
    assert {n.ref_doc_id for n in remaining} == {"mixed-doc"}
    assert _ids_by_doc(await index.as_retriever(similarity_top_k=10).aretrieve("apple")) == {
        "mixed-doc"
    }
    new_doc = Document(text="cherry cherry", id_="new-doc")
    if hasattr(index, "ainsert"):
        await index.ainsert(new_doc)
    else:  # llama-index-core < 0.12.36 has no VectorStoreIndex.ainsert
        index.insert(new_doc)
    assert (await index.as_retriever(similarity_top_k=1).aretrieve("cherry"))[
        0
    ].node.ref_doc_id == "new-doc"
    await store.aclose()


# ------------------------------------------------------------------------------------------------
# Every method, sync and async
# ------------------------------------------------------------------------------------------------


def test_add_and_query_roundtrip(call: Callable[..., Any]) -> None:
    assert call("query", vector_query("apple")).ids == []  # no collection yet
    nodes = sample_nodes()
    assert call("add", nodes) == ["a", "b", "c", "ab", "d"]
    result = call("query", vector_query("apple", k=3))
    assert result.ids[:2] == ["a", "ab"]
    assert result.similarities[0] == pytest.approx(1.0, abs=1e-5)
    assert result.similarities == sorted(result.similarities, reverse=True)
    by_id = {n.node_id: n for n in nodes}
    for node in result.nodes:
        assert node_key(node) == node_key(by_id[node.node_id])
    assert sorted(node_key(n) for n in call("get_nodes", filters=ALL)) == sorted(
        node_key(n) for n in nodes
    )


def test_query_restrictions(call: Callable[..., Any]) -> None:
    call("add", sample_nodes())
    assert call("query", vector_query("apple", node_ids=["b", "d"])).ids == ["b", "d"]
    assert set(call("query", vector_query("apple", doc_ids=["d2"])).ids) == {"ab", "c"}
    # VectorStoreIndex passes node_ids=[] meaning "no restriction"
    assert len(call("query", vector_query("apple", node_ids=[], doc_ids=[])).ids) == 5
    restricted = vector_query("apple", doc_ids=["d1", "d2"], filters=where(kind="fruit"))
    assert set(call("query", restricted).ids) == {"a", "b", "c"}
    assert set(call("query", restricted, string_expr="n >= 2").ids) == {"b", "c"}
    negated = MetadataFilters(
        filters=[
            MetadataFilter(key="tags", operator=FilterOperator.CONTAINS, value="red"),
            MetadataFilter(key="n", operator=FilterOperator.GT, value=4),
        ],
        condition=FilterCondition.NOT,
    )
    # LlamaIndex's own Milvus store loses the NOT; here it keeps its meaning
    assert set(call("query", vector_query("apple", filters=negated)).ids) == {"b", "ab"}
    text = MetadataFilters(
        filters=[MetadataFilter(key="note", operator=FilterOperator.TEXT_MATCH, value='"hi" ')]
    )
    assert call("query", vector_query("apple", filters=text)).ids == ["ab"]
    empty = MetadataFilters(
        filters=[MetadataFilter(key="tags", operator=FilterOperator.IS_EMPTY, value=None)]
    )
    assert set(call("query", vector_query("apple", filters=empty)).ids) == {"ab", "d"}


def test_mmr(call: Callable[..., Any]) -> None:
    nodes = [
        text_node("1", "apple"),
        text_node("2", "apple"),
        text_node("3", "apple banana"),
        text_node("4", "banana"),
    ]
    call("add", nodes)
    plain = call("query", vector_query("apple", k=2))
    assert set(plain.ids) == {"1", "2"}
    mode = VectorStoreQueryMode.MMR
    diverse = call("query", vector_query("apple", k=2, mode=mode, mmr_threshold=0.1))
    assert diverse.ids[0] in {"1", "2"} and diverse.ids[1] not in {"1", "2"}
    by_kwarg = call("query", vector_query("apple", k=2, mode=mode), mmr_threshold=0.1)
    assert by_kwarg.ids == diverse.ids
    relevance_only = call("query", vector_query("apple", k=2, mode=mode), mmr_threshold=1.0)
    assert set(relevance_only.ids) == {"1", "2"}
    prefetch_one = call(
        "query", vector_query("apple", k=2, mode=mode), mmr_threshold=0.1, mmr_prefetch_k=2
    )
    assert set(prefetch_one.ids) == {"1", "2"}  # only the two nearest were fetched
    filtered = call(
        "query", vector_query("apple", k=2, mode=mode, filters=where(kind="none")), mmr_threshold=0
    )
    assert filtered.ids == [] and filtered.nodes == []


def test_get_nodes(call: Callable[..., Any]) -> None:
    call("add", sample_nodes())
    got = call("get_nodes", ["d", "a", "missing"])
    assert [n.node_id for n in got] == ["d", "a"]
    assert got[0].embedding == pytest.approx(axis_vector("dog"))
    assert {n.node_id for n in call("get_nodes", filters=where(kind="fruit"))} == {"a", "b", "c"}
    assert [n.node_id for n in call("get_nodes", ["a", "d"], where(kind="fruit"))] == ["a"]
    assert call("get_nodes", []) == []


def test_delete_delete_nodes_and_clear(call: Callable[..., Any]) -> None:
    call("delete", "d1")  # nothing stored yet: a no-op
    call("add", sample_nodes())
    call("delete", "d1")
    assert {n.node_id for n in call("get_nodes", filters=ALL)} == {"c", "ab", "d"}
    call("delete", "no-such-doc")
    call("delete_nodes", ["c", "missing"])
    assert {n.node_id for n in call("get_nodes", filters=ALL)} == {"ab", "d"}
    call("delete_nodes", ["ab", "d"], filters=where(kind="animal"))  # the intersection
    assert {n.node_id for n in call("get_nodes", filters=ALL)} == {"ab"}
    call("add", sample_nodes())
    call("delete_nodes", filters=where(kind="fruit"))
    assert {n.node_id for n in call("get_nodes", filters=ALL)} == {"ab", "d"}
    call("delete_nodes", [])
    assert len(call("get_nodes", filters=ALL)) == 2
    call("clear")
    assert call("get_nodes", filters=ALL) == []
    assert call("query", vector_query("apple")).ids == []
    call("add", sample_nodes()[:1])  # the collection is created again
    assert [n.node_id for n in call("get_nodes", filters=ALL)] == ["a"]


def test_node_types_and_field_named_metadata_roundtrip(call: Callable[..., Any]) -> None:
    index_node = IndexNode(
        id_="i", text="dog index", index_id="other", embedding=axis_vector("dog"), metadata={}
    )
    odd = text_node(
        "o",
        "fish",
        "doc-o",
        id="user id",
        text="user text",
        embedding="not a vector",
        **{"odd key": 'q"\\', "ünï": ["ç", 1.5, None, {"deep": True}]},
    )
    odd.excluded_embed_metadata_keys = ["id"]
    call("add", [index_node, odd])
    got = {n.node_id: n for n in call("get_nodes", ["i", "o"])}
    assert isinstance(got["i"], IndexNode) and got["i"].index_id == "other"
    assert node_key(got["o"]) == node_key(odd)
    assert got["o"].excluded_embed_metadata_keys == ["id"]
    # "id"/"text" in a filter name the node id and text, not the shadowed metadata keys
    assert [n.node_id for n in call("get_nodes", filters=where(id="o"))] == ["o"]
    assert [n.node_id for n in call("get_nodes", filters=where(text="fish"))] == ["o"]
    odd_filter = MetadataFilters(
        filters=[MetadataFilter(key="odd key", operator=FilterOperator.IN, value=['q"\\'])]
    )
    assert [n.node_id for n in call("get_nodes", filters=odd_filter)] == ["o"]


def test_upsert_mode_and_insert_mode(
    milvus_uri: str, collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for upsert_mode, expected in ((False, "insert"), (True, "upsert")):
        store = make_store(milvus_uri, f"{collection_name}_{expected}", upsert_mode=upsert_mode)
        methods: list[str] = []
        perform = store.engine._perform

        def spy(step: Any, *args: Any, perform: Any = perform, methods: list[str] = methods) -> Any:
            methods.append(getattr(step, "method", ""))
            return perform(step, *args)

        monkeypatch.setattr(store.engine, "_perform", spy)
        store.add([text_node("x", "apple")])
        store.add([text_node("x", "banana")])
        other = "upsert" if expected == "insert" else "insert"
        assert methods.count(expected) == 2 and other not in methods
        assert store.get_nodes(["x"])[0].get_content() == "banana"  # Milvus Lite dedups ids
        store.clear()
        store.close()


def test_existing_collection_with_llama_index_schema(milvus_uri: str, collection_name: str) -> None:
    """A collection laid out like llama-index-vector-stores-milvus makes it, with foreign rows."""
    store = make_store(milvus_uri, collection_name, output_fields=["source"])
    client = store.client
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=65535)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=65535)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("embedding", index_type="FLAT", metric_type="IP")
    client.create_collection(collection_name, schema=schema, index_params=index)
    row = {"id": "raw", "doc_id": "x", "text": "goat", "embedding": axis_vector("goat")}
    client.insert(collection_name, [{**row, "source": "import", "other": 1}])
    store.add([text_node("g", "goat horse", "d9", kind="animal")])
    result = store.query(vector_query("goat", k=2))
    assert result.ids == ["raw", "g"]
    raw = result.nodes[0]
    assert isinstance(raw, TextNode) and raw.text == "goat" and raw.metadata == {"source": "import"}
    assert store.engine.layout is not None and store.engine.layout.metric == "IP"
    assert [n.node_id for n in store.get_nodes(filters=where(doc_id="d9"))] == ["g"]
    store.delete("d9")
    assert [n.node_id for n in store.get_nodes(filters=ALL)] == ["raw"]
    store.close()


def test_scalar_fields_overwrite_and_index_config(milvus_uri: str, collection_name: str) -> None:
    store = make_store(
        milvus_uri,
        collection_name,
        scalar_field_names=["year", "label"],
        scalar_field_types=[DataType.INT64, DataType.VARCHAR],
        index_config={"index_type": "HNSW", "M": 8, "efConstruction": 64},
        search_config={"params": {"ef": 32}},
        similarity_metric="l2",
        collection_properties={"mmap.enabled": False},
    )
    store.add(
        [text_node("a", "apple", year=2020, label="x"), text_node("b", "dog", year=2024, label="")]
    )
    description = store.client.describe_collection(collection_name)
    columns = {f["name"]: f["type"] for f in description["fields"]}
    assert columns["year"] == DataType.INT64 and columns["doc_id"] == DataType.VARCHAR
    (index_name,) = store.client.list_indexes(collection_name)
    info = store.client.describe_index(collection_name, index_name)
    assert info["index_type"] == "HNSW" and info["metric_type"] == "L2"
    assert description["properties"] == {"mmap.enabled": "False"}
    newer = MetadataFilters(
        filters=[MetadataFilter(key="year", operator=FilterOperator.GTE, value=2021)]
    )
    assert store.query(vector_query("apple", filters=newer)).ids == ["b"]
    empty = MetadataFilters(
        filters=[MetadataFilter(key="label", operator=FilterOperator.IS_EMPTY, value=None)]
    )
    assert store.query(vector_query("apple", filters=empty)).ids == ["b"]
    result = store.query(vector_query("apple", k=2))
    assert result.ids == ["a", "b"] and result.similarities[0] == pytest.approx(0.0, abs=1e-5)
    store.close()

    fresh = make_store(milvus_uri, collection_name, overwrite=True)
    assert fresh.get_nodes(filters=ALL) == []  # the old collection was dropped on first use
    fresh.add([text_node("c", "cherry")])
    assert [n.node_id for n in fresh.get_nodes(filters=ALL)] == ["c"]
    fresh.close()


def test_constructor_defaults_and_arguments(milvus_uri: str) -> None:
    store = MilvusVectorStore()
    assert store.stores_text and store.uri == "./milvus_llamaindex.db"
    assert store.engine.config.is_embedded and store.similarity_metric == "IP"
    assert store.collection_name == "llamacollection" and store.consistency_level == "Session"
    assert store.engine.spec.index == {"index_type": "FLAT", "metric_type": "IP", "params": {}}
    assert (store.text_key, store.embedding_field, store.doc_id_field) == (
        "text",
        "embedding",
        "doc_id",
    )
    custom = MilvusVectorStore(
        uri=milvus_uri,
        token="root:Milvus-Secret-1",
        collection_name="c",
        dim=4,
        embedding_field="vec",
        text_key="body",
        doc_id_field="ref",
        similarity_metric="euclidean",
        consistency_level="Strong",
        upsert_mode=True,
        batch_size=7,
        index_management=IndexManagement.NO_VALIDATION,
        enable_sparse=True,
        hybrid_ranker="WeightedRanker",
        hybrid_ranker_params={"weights": [0.5, 0.5]},
    )
    spec = custom.engine.spec
    assert (spec.vector_field, spec.text_field, spec.primary_field) == ("vec", "body", "id")
    assert spec.index["metric_type"] == "L2" and custom.similarity_metric == "L2"
    assert "Milvus-Secret-1" not in repr(custom) and "Milvus-Secret-1" not in str(
        custom.model_dump()
    )
    assert custom.index_management is IndexManagement.NO_VALIDATION
    for kwargs, message in [
        ({"similarity_metric": "hamming"}, "similarity_metric"),
        ({"scalar_field_names": ["a"], "scalar_field_types": []}, "same length"),
        ({"scalar_field_names": ["a"], "scalar_field_types": ["INT"]}, "DataType"),
        ({"hybrid_ranker": "Magic"}, "hybrid_ranker"),
        ({"index_management": "sometimes"}, "index_management"),
        ({"dim": 0}, "dim"),
        ({"batch_size": 0}, "batch_size"),
        ({"embedding_field": "bad name"}, "identifier"),
        ({"index_config": {"field_name": "other"}}, "field_name"),
    ]:
        with pytest.raises(ValueError, match=message):
            MilvusVectorStore(uri=milvus_uri, **kwargs)
    with pytest.raises(NotImplementedError, match="enable_dense=False"):
        MilvusVectorStore(uri=milvus_uri, enable_dense=False)


@pytest.mark.parametrize(
    "mode",
    [
        VectorStoreQueryMode.SEMANTIC_HYBRID,
        VectorStoreQueryMode.SVM,
    ],
)
def test_unimplemented_query_modes_raise(milvus_uri: str, mode: VectorStoreQueryMode) -> None:
    store = MilvusVectorStore(uri=milvus_uri, collection_name="never_created", enable_sparse=True)
    query = vector_query("apple", mode=mode, query_str="apple")
    with pytest.raises(NotImplementedError, match=mode.name):
        store.query(query)
    with pytest.raises(NotImplementedError, match=mode.name):
        asyncio.run(store.aquery(query))
    assert not store.client.has_collection("never_created")
    store.close()


def test_escape_hatches_and_close(milvus_uri: str, collection_name: str) -> None:
    from pymilvus import AsyncMilvusClient, MilvusClient

    store = make_store(milvus_uri, collection_name)
    assert isinstance(store.client, MilvusClient)

    async def use_async() -> None:
        assert isinstance(store.aclient, AsyncMilvusClient)
        await store.async_add(sample_nodes())
        await store.aclose()

    asyncio.run(use_async())
    with pytest.raises(StoreClosedError):
        store.get_nodes(["a"])
    with pytest.raises(StoreClosedError):
        asyncio.run(store.aquery(vector_query("apple")))
    with make_store(milvus_uri, collection_name) as again:
        assert len(again.get_nodes(filters=ALL)) == 5


# ------------------------------------------------------------------------------------------------
# Event loops
# ------------------------------------------------------------------------------------------------


def test_one_store_across_20_asyncio_runs(store: MilvusVectorStore) -> None:
    for i in range(20):
        asyncio.run(store.async_add([text_node(f"n{i}", f"apple {i}", f"doc{i % 3}", i=i)]))
        result = asyncio.run(store.aquery(vector_query("apple", k=30)))
        assert len(result.ids) == i + 1
    asyncio.run(store.adelete("doc0"))
    assert len(store.get_nodes(filters=ALL)) == 13


NOTEBOOK_SCRIPT = """
import asyncio, sys
import nest_asyncio
from tests.test_llama_index_milvus import ALL, make_store, sample_nodes, vector_query

store = make_store(sys.argv[1], sys.argv[2])
loop = asyncio.new_event_loop()
nest_asyncio.apply(loop)  # what a Jupyter kernel with nest_asyncio does


async def cell():
    asyncio.run(store.async_add(sample_nodes()))
    found = loop.run_until_complete(store.aquery(vector_query("dog", k=1)))
    return len(found.ids) + len(await store.aget_nodes(filters=ALL))


assert loop.run_until_complete(cell()) == 6
assert loop.run_until_complete(store.aquery(vector_query("dog", k=1))).ids == ["d"]
loop.close()
store.close()
print("notebook ok")
"""


def test_nest_asyncio_notebook_pattern(milvus_uri: str, collection_name: str) -> None:
    """Cells on a kernel loop patched by nest_asyncio, in a process of their own:
    nest_asyncio patches asyncio for the whole process, for good (in this process it would
    change how every later test's loops end)."""
    result = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_SCRIPT, milvus_uri, collection_name],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "notebook ok" in result.stdout


@pytest.fixture(scope="module")
def shared_store(milvus_uri: str) -> Iterator[MilvusVectorStore]:
    """One store used by several tests, each on its own pytest-asyncio event loop."""
    store = make_store(milvus_uri, "t_shared_llama")
    store.add(sample_nodes())
    yield store
    store.clear()
    store.close()


@pytest.mark.parametrize("round_", range(3))
async def test_shared_store_on_pytest_asyncio_loops(
    shared_store: MilvusVectorStore, round_: int
) -> None:
    result = await shared_store.aquery(vector_query("cherry", k=1))
    assert result.ids == ["c"]
    assert len(await shared_store.aget_nodes(filters=ALL)) == 5


async def test_async_paths_never_block_the_loop(
    store: MilvusVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sync client call from an async method (it is forbidden), and the loop keeps ticking."""

    class Forbidden:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"sync MilvusClient.{name} called from an async method")

    monkeypatch.setattr(type(store.engine), "client", property(lambda self: Forbidden()))
    async with LoopWatch() as watch:
        nodes = [text_node(f"n{i}", f"apple {i}", f"doc{i % 5}", i=i) for i in range(40)]
        await asyncio.gather(*(store.async_add([node]) for node in nodes))
        await asyncio.gather(*(store.aquery(vector_query("apple", k=3)) for _ in range(30)))
        mmr = vector_query("apple", k=2, mode=VectorStoreQueryMode.MMR, filters=where(i=3))
        assert (await store.aquery(mmr)).ids == ["n3"]
        assert len(await store.aget_nodes(["n1", "n2"])) == 2
        await store.adelete("doc0")
        await store.adelete_nodes(["n1"])
        assert len(await store.aget_nodes(filters=ALL)) == 31
        await store.aclear()
    assert watch.longest_block < 0.5, (
        f"event loop blocked for {watch.longest_block:.3f}s (longest gap {watch.longest_gap:.3f}s)"
    )


# ------------------------------------------------------------------------------------------------
# Bad input: a clear error, and nothing stored changes
# ------------------------------------------------------------------------------------------------


def _bad_op(op: str, **extra: Any) -> MetadataFilters:
    """A filter with an operator pydantic would refuse, as a caller could still build it."""
    return MetadataFilters(filters=[MetadataFilter.model_construct(key="n", operator=op, **extra)])


def _filters(*filters: MetadataFilter, condition: Any = FilterCondition.AND) -> MetadataFilters:
    return MetadataFilters.model_construct(filters=list(filters), condition=condition)


def _f(key: str, op: FilterOperator, value: Any = None) -> MetadataFilter:
    return MetadataFilter.model_construct(key=key, operator=op, value=value)


BAD_FILTERS: list[tuple[str, Any, str]] = [
    ("unknown operator", _bad_op("regex", value="x"), "Unknown filter operator"),
    ("unknown condition", _filters(_f("n", FilterOperator.EQ, 1), condition="xor"), "condition"),
    ("eq none", _filters(_f("n", FilterOperator.EQ, None)), "IS_EMPTY"),
    ("eq list", _filters(_f("n", FilterOperator.EQ, [1, 2])), "IN, ANY or ALL"),
    ("in scalar", _filters(_f("n", FilterOperator.IN, 1)), "list"),
    ("gt list", _filters(_f("n", FilterOperator.GT, [1])), "single"),
    ("nan", _filters(_f("n", FilterOperator.GT, math.nan)), "finite"),
    ("huge int", _filters(_f("n", FilterOperator.EQ, 2**70)), "int64"),
    ("all empty", _filters(_f("tags", FilterOperator.ALL, [])), "at least one"),
    ("text wildcard", _filters(_f("kind", FilterOperator.TEXT_MATCH, "50%")), "'%'"),
    ("text underscore", _filters(_f("kind", FilterOperator.TEXT_MATCH, "a_b")), "'_'"),
    ("text backslash", _filters(_f("kind", FilterOperator.TEXT_MATCH, "a\\b")), "backslash"),
    ("text number", _filters(_f("kind", FilterOperator.TEXT_MATCH, 5)), "string"),
    (
        "insensitive",
        _filters(_f("kind", FilterOperator.TEXT_MATCH_INSENSITIVE, "x")),
        "TEXT_MATCH_INSENSITIVE",
    ),
    ("contains odd key", _filters(_f("odd key", FilterOperator.CONTAINS, "x")), "identifier"),
    ("is_empty odd key", _filters(_f("odd key", FilterOperator.IS_EMPTY)), "identifier"),
    ("contains column", _filters(_f("doc_id", FilterOperator.CONTAINS, "x")), "scalar column"),
    ("empty key", _filters(_f("", FilterOperator.EQ, 1)), "non-empty"),
    ("dict filters", {"n": 1}, "MetadataFilters"),
    ("nested junk", _filters("junk"), "Expected MetadataFilters"),  # type: ignore[arg-type]
    ("lone surrogate", _filters(_f("kind", FilterOperator.EQ, "\ud800")), "UTF-8"),
]


@pytest.fixture(scope="module")
def seeded(milvus_uri: str) -> Iterator[MilvusVectorStore]:
    store = make_store(milvus_uri, "t_bad_input_llama", dim=DIM)
    store.add(sample_nodes())
    yield store
    store.clear()
    store.close()


@pytest.fixture(params=["sync", "async"])
def bad_call(request: pytest.FixtureRequest, seeded: MilvusVectorStore) -> Callable[..., Any]:
    return caller(seeded, request.param)


@pytest.mark.parametrize(
    ("case", "filters", "message"), BAD_FILTERS, ids=[c[0] for c in BAD_FILTERS]
)
def test_bad_filters(bad_call: Callable[..., Any], case: str, filters: Any, message: str) -> None:
    before = snapshot(bad_call)
    for method, args in (
        ("query", (vector_query("apple", filters=filters),)),
        ("get_nodes", (None, filters)),
        ("delete_nodes", (None, filters)),
    ):
        with pytest.raises(UnsupportedFilterError, match=message):
            bad_call(method, *args)
    assert snapshot(bad_call) == before


def _no_embedding() -> list[TextNode]:
    return [text_node("ok", "apple"), TextNode(id_="bare", text="no vector")]


BAD_CALLS: list[tuple[str, str, tuple[Any, ...], dict[str, Any], type[Exception], str]] = [
    ("no embedding", "add", (_no_embedding(),), {}, InvalidInputError, "no embedding"),
    (
        "wrong dim",
        "add",
        ([TextNode(id_="w", text="x", embedding=[1.0, 0.0])],),
        {},
        InvalidInputError,
        "dimension",
    ),
    (
        "nan embedding",
        "add",
        ([TextNode(id_="w", text="x", embedding=[math.nan] * DIM)],),
        {},
        InvalidInputError,
        "NaN",
    ),
    ("not a node", "add", (["apple"],), {}, InvalidInputError, "not a llama_index BaseNode"),
    ("single node", "add", (text_node("s", "apple"),), {}, InvalidInputError, "list of nodes"),
    (
        "duplicate ids",
        "add",
        ([text_node("dup", "apple"), text_node("dup", "dog")],),
        {},
        InvalidInputError,
        "Duplicate",
    ),
    ("k zero", "query", (vector_query("apple", k=0),), {}, InvalidInputError, "similarity_top_k"),
    ("k negative", "query", (vector_query("apple", k=-2),), {}, InvalidInputError, "positive"),
    (
        "no query vector",
        "query",
        (VectorStoreQuery(query_str="apple"),),
        {},
        InvalidInputError,
        "query_embedding",
    ),
    (
        "query dim",
        "query",
        (VectorStoreQuery(query_embedding=[1.0], similarity_top_k=1),),
        {},
        InvalidInputError,
        "dimension",
    ),
    (
        "int node ids",
        "query",
        (vector_query("apple", node_ids=[1, 2]),),
        {},
        InvalidInputError,
        "strings",
    ),
    (
        "int doc ids",
        "query",
        (vector_query("apple", doc_ids=[7]),),
        {},
        InvalidInputError,
        "strings",
    ),
    (
        "mmr threshold",
        "query",
        (vector_query("apple", mode="mmr", mmr_threshold=1.5),),
        {},
        InvalidInputError,
        "mmr_threshold",
    ),
    (
        "mmr prefetch both",
        "query",
        (vector_query("apple", mode="mmr"),),
        {"mmr_prefetch_k": 4, "mmr_prefetch_factor": 2},
        InvalidInputError,
        "not both",
    ),
    (
        "malformed string_expr",
        "query",
        (vector_query("apple"),),
        {"string_expr": "n = = 1"},
        InvalidFilterExpressionError,
        "filter",
    ),
    ("get nothing", "get_nodes", (), {}, InvalidInputError, "node_ids and/or filters"),
    ("get int ids", "get_nodes", ([1],), {}, InvalidInputError, "strings"),
    ("get id string", "get_nodes", ("abc",), {}, InvalidInputError, "list of strings"),
    ("delete nothing", "delete_nodes", (), {}, InvalidInputError, "clear()"),
    ("delete all-filter", "delete_nodes", (None, ALL), {}, InvalidInputError, "clear()"),
    ("delete int ids", "delete_nodes", ([3],), {}, InvalidInputError, "strings"),
    ("delete int doc", "delete", (12,), {}, InvalidInputError, "ref_doc_id"),
]


@pytest.mark.parametrize(
    ("case", "method", "args", "kwargs", "error", "message"),
    BAD_CALLS,
    ids=[c[0] for c in BAD_CALLS],
)
def test_bad_calls(
    bad_call: Callable[..., Any],
    case: str,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    before = snapshot(bad_call)
    with pytest.raises(error, match=message):
        bad_call(method, *args, **kwargs)
    assert snapshot(bad_call) == before


def test_dimension_is_checked_against_an_existing_collection(store: MilvusVectorStore) -> None:
    store.add(sample_nodes())
    with pytest.raises(InvalidInputError, match="dimension"):
        asyncio.run(store.async_add([TextNode(id_="x", text="x", embedding=[1.0, 0.0, 0.0])]))
    with pytest.raises(InvalidInputError, match="dimension"):
        store.query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=1))
    assert len(store.get_nodes(filters=ALL)) == 5


# ------------------------------------------------------------------------------------------------
# The oracle: random nodes and random filters vs SimpleVectorStore and brute force
# ------------------------------------------------------------------------------------------------

STRINGS = [
    "plain",
    "Plain",
    "it's",
    'say "hi"',
    "back\\slash",
    "tab\there",
    "new\nline",
    "héllo wörld",
    "a b c",
    "50%_off",
    "snake_case\\",
    "",
]
SUBSTRINGS = [
    "'", '"', "l", "é", "", "a b", "\t", "\n", "Plain", "plain", "hi", "zz",
    "ca", "50", " c", 'y "', "\u00e9llo",
]  # fmt: skip
TAGS = ["red", "green", "blue", 'q"t', "b\\s"]
ORACLE_KEYS = ("n", "f", "s", "tags", "odd key")
OPERATORS: dict[str, list[FilterOperator]] = {
    "n": [
        FilterOperator.EQ,
        FilterOperator.NE,
        FilterOperator.GT,
        FilterOperator.GTE,
        FilterOperator.LT,
        FilterOperator.LTE,
        FilterOperator.IN,
        FilterOperator.NIN,
        FilterOperator.IS_EMPTY,
    ],
    "f": [
        FilterOperator.GT,
        FilterOperator.GTE,
        FilterOperator.LT,
        FilterOperator.LTE,
        FilterOperator.NE,
        FilterOperator.IS_EMPTY,
    ],
    "s": [
        FilterOperator.EQ,
        FilterOperator.NE,
        FilterOperator.GT,
        FilterOperator.LTE,
        FilterOperator.IN,
        FilterOperator.NIN,
        FilterOperator.TEXT_MATCH,
        FilterOperator.IS_EMPTY,
    ],
    "tags": [
        FilterOperator.CONTAINS,
        FilterOperator.ANY,
        FilterOperator.ALL,
        FilterOperator.IN,
        FilterOperator.NIN,
        FilterOperator.IS_EMPTY,
    ],
    "odd key": [
        FilterOperator.EQ,
        FilterOperator.NE,
        FilterOperator.IN,
        FilterOperator.NIN,
        FilterOperator.LT,
        FilterOperator.TEXT_MATCH,
    ],
}
_MISSING = object()


def random_metadata(rng: random.Random) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if rng.random() < 0.85:
        meta["n"] = None if rng.random() < 0.1 else rng.randint(-3, 9)
    if rng.random() < 0.8:
        meta["f"] = round(rng.uniform(-1, 1), 3)
    if rng.random() < 0.85:
        meta["s"] = None if rng.random() < 0.05 else rng.choice(STRINGS)
    if rng.random() < 0.8:
        meta["tags"] = sorted(set(rng.sample(TAGS, rng.randint(0, 3))))
    if rng.random() < 0.7:
        meta["odd key"] = rng.choice(STRINGS)
    return meta


def random_nodes(rng: random.Random, n: int = 100) -> list[TextNode]:
    nodes = []
    for i in range(n):
        vector = np.array([rng.gauss(0, 1) for _ in range(DIM)])
        node = TextNode(
            id_=f"node-{i}",
            text=f"text {i}",
            metadata=random_metadata(rng),
            embedding=(vector / np.linalg.norm(vector)).tolist(),
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{i % 7}")
        nodes.append(node)
    return nodes


def _value(rng: random.Random, key: str, op: FilterOperator) -> Any:
    if op is FilterOperator.IS_EMPTY:
        return None
    many = op in (FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL)
    if key == "n":
        return (
            [rng.randint(-4, 10) for _ in range(rng.randint(0, 3))] if many else rng.randint(-4, 10)
        )
    if key == "f":
        return round(rng.uniform(-1, 1), 2)
    if key == "tags":
        size = rng.randint(1 if op is FilterOperator.ALL else 0, 3)
        return rng.sample(TAGS, size) if many else rng.choice(TAGS)
    if op is FilterOperator.TEXT_MATCH:
        return rng.choice(SUBSTRINGS)
    return rng.sample(STRINGS, rng.randint(0, 3)) if many else rng.choice(STRINGS)


def random_filters(
    rng: random.Random, *, text_match: bool = True, depth: int = 0
) -> MetadataFilters:
    items: list[Any] = []
    for _ in range(rng.randint(0 if depth else 1, 3)):
        if depth < 2 and rng.random() < 0.3:
            items.append(random_filters(rng, text_match=text_match, depth=depth + 1))
            continue
        key = rng.choice(ORACLE_KEYS)
        ops = [o for o in OPERATORS[key] if text_match or o is not FilterOperator.TEXT_MATCH]
        op = rng.choice(ops)
        items.append(MetadataFilter(key=key, operator=op, value=_value(rng, key, op)))
    return MetadataFilters(filters=items, condition=rng.choice(list(FilterCondition)))


def atom_matches(meta: dict[str, Any], flt: MetadataFilter) -> bool:
    """The reference semantics (see llama_index_vd.filters); a stored None counts as missing."""
    x = meta.get(flt.key, _MISSING)
    present = x is not _MISSING and x is not None
    op, v = flt.operator, flt.value
    if op is FilterOperator.IS_EMPTY:
        return not present or x == "" or x == []
    if op is FilterOperator.NE:
        return not present or x != v
    if op is FilterOperator.NIN:
        return not atom_matches(
            meta, MetadataFilter(key=flt.key, operator=FilterOperator.IN, value=v)
        )
    if not present:
        return False
    if op is FilterOperator.EQ:
        return x == v
    if op is FilterOperator.IN:
        return any(i in v for i in x) if isinstance(x, list) else x in v
    if op in (FilterOperator.CONTAINS, FilterOperator.ANY, FilterOperator.ALL):
        if not isinstance(x, list):
            return False
        if op is FilterOperator.CONTAINS:
            return v in x
        return (any if op is FilterOperator.ANY else all)(i in x for i in v)
    if op is FilterOperator.TEXT_MATCH:
        return isinstance(x, str) and v in x
    if isinstance(x, str) != isinstance(v, str) or isinstance(x, list):
        return False
    return {
        FilterOperator.GT: x > v,
        FilterOperator.GTE: x >= v,
        FilterOperator.LT: x < v,
        FilterOperator.LTE: x <= v,
    }[op]


def filters_match(meta: dict[str, Any], filters: MetadataFilters) -> bool:
    results = [
        filters_match(meta, f) if isinstance(f, MetadataFilters) else atom_matches(meta, f)
        for f in filters.filters
    ]
    if not results:
        return True
    if filters.condition is FilterCondition.OR:
        return any(results)
    if filters.condition is FilterCondition.NOT:
        return not any(results)
    return all(results)


def _simple_store_is_a_reference() -> bool:
    """Whether SimpleVectorStore filters as the oracle does (llama-index-core 0.14.23+): a
    missing key matches ``!=``, NOT groups work, TEXT_MATCH is case-sensitive. Older versions
    differ, and there only brute force checks our stores."""
    store = SimpleVectorStore()
    store.add([TextNode(id_="a", text="a", embedding=[1.0], metadata={"s": "Ab"})])

    def ids(flt: MetadataFilter, condition: FilterCondition = FilterCondition.AND) -> Any:
        filters = MetadataFilters(filters=[flt], condition=condition)
        try:
            query = VectorStoreQuery(query_embedding=[1.0], similarity_top_k=1, filters=filters)
            return store.query(query).ids
        except ValueError:  # e.g. "Invalid filter condition: not"
            return None

    return (
        ids(MetadataFilter(key="n", value=1, operator=FilterOperator.NE)) == ["a"]
        and ids(MetadataFilter(key="s", value="x"), FilterCondition.NOT) == ["a"]
        and ids(MetadataFilter(key="s", value="ab", operator=FilterOperator.TEXT_MATCH)) == []
    )


SIMPLE_STORE_IS_A_REFERENCE = _simple_store_is_a_reference()
#: How many oracle queries SimpleVectorStore must confirm (none where it filters differently).
MIN_SIMPLE_CHECKS = 25 if SIMPLE_STORE_IS_A_REFERENCE else 0


def simple_store_can_check(filters: MetadataFilters) -> bool:
    """SimpleVectorStore has no nesting and no list-overlap IN/NIN."""
    return SIMPLE_STORE_IS_A_REFERENCE and all(
        isinstance(f, MetadataFilter)
        and not (f.key == "tags" and f.operator in (FilterOperator.IN, FilterOperator.NIN))
        for f in filters.filters
    )


def brute_force(
    nodes: list[TextNode], query: list[float], k: int, filters: MetadataFilters
) -> tuple[list[str], list[float]]:
    matching = [n for n in nodes if filters_match(n.metadata, filters)]
    scores = [float(np.dot(query, n.embedding)) for n in matching]  # unit vectors: cosine
    order = sorted(range(len(matching)), key=lambda i: -scores[i])[:k]
    return [matching[i].node_id for i in order], [scores[i] for i in order]


def features(filters: MetadataFilters) -> set[Any]:
    out: set[Any] = {filters.condition}
    for f in filters.filters:
        out |= features(f) if isinstance(f, MetadataFilters) else {f.operator}
    return out


def run_oracle(store: Any, *, text_match: bool, seed: int = 20240607, rounds: int = 100) -> int:
    """Add random nodes, then check random filtered queries against the oracles.

    Returns how many queries SimpleVectorStore could check too.
    """
    rng = random.Random(seed)
    nodes = random_nodes(rng)
    store.add(copy.deepcopy(nodes))
    simple = SimpleVectorStore()
    simple.add(copy.deepcopy(nodes))
    checked_by_simple = 0
    seen: set[Any] = set()
    for i in range(rounds):
        filters = random_filters(rng, text_match=text_match)
        seen |= features(filters)
        q = np.array([rng.gauss(0, 1) for _ in range(DIM)])
        query_vector = (q / np.linalg.norm(q)).tolist()
        k = rng.randint(1, 15)
        query = VectorStoreQuery(query_embedding=query_vector, similarity_top_k=k, filters=filters)
        expected_ids, expected_scores = brute_force(nodes, query_vector, k, filters)
        got = store.query(query)
        context = (i, filters, to_milvus_expr(filters))
        assert got.ids == expected_ids, context
        assert got.similarities == pytest.approx(expected_scores, abs=1e-5), context
        for node in got.nodes:
            assert filters_match(node.metadata, filters), context
        if simple_store_can_check(filters):
            assert simple.query(query).ids == expected_ids, context
            checked_by_simple += 1
        if i % 4 == 0:
            everything = {n.node_id for n in nodes if filters_match(n.metadata, filters)}
            assert {n.node_id for n in store.get_nodes(filters=filters)} == everything, context
    wanted = set(FilterCondition) | {
        op
        for ops in OPERATORS.values()
        for op in ops
        if text_match or op is not FilterOperator.TEXT_MATCH
    }
    assert wanted <= seen, f"not exercised: {wanted - seen}"
    return checked_by_simple


def test_oracle_random_filters(milvus_uri: str, collection_name: str) -> None:
    store = make_store(
        milvus_uri,
        collection_name,
        dim=DIM,
        index_config={"index_type": "FLAT"},
        consistency_level="Strong",
    )
    assert run_oracle(store, text_match=True) >= MIN_SIMPLE_CHECKS
    store.close()


def test_vd_store_is_importable_from_the_package() -> None:
    assert VDVectorStore.class_name() == "VDVectorStore"

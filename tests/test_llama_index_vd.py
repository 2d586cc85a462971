"""llama_index_vd.VDVectorStore over the in-memory vd backend: the MilvusVectorStore contract.

Sample data, the random-filter oracle and helpers come from ``test_llama_index_milvus``.
"""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Settings, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import IndexNode, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from vd import UnsupportedFilterError

from llama_index_vd import VDVectorStore
from llama_index_vd.filters import to_vd_filter
from tests.loop_watch import LoopWatch
from tests.test_llama_index_milvus import (
    ALL,
    DOCUMENTS,
    MIN_SIMPLE_CHECKS,
    AxisEmbedding,
    _f,
    _filters,
    axis_vector,
    caller,
    node_key,
    run_oracle,
    sample_nodes,
    text_node,
    vector_query,
    where,
)
from vd_integrations.core.errors import InvalidInputError, StoreClosedError
from vd_integrations.vd.engine import VdEngine


def _name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store() -> Iterator[VDVectorStore]:
    store = VDVectorStore(collection_name=_name())
    yield store
    store.close()


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest, store: VDVectorStore) -> Callable[..., Any]:
    return caller(store, request.param)


def snapshot(call: Callable[..., Any]) -> list[tuple[Any, ...]]:
    return sorted(node_key(n) for n in call("get_nodes", filters=ALL))


# ------------------------------------------------------------------------------------------------
# End to end and every method, sync and async
# ------------------------------------------------------------------------------------------------


async def test_vector_store_index_end_to_end() -> None:
    Settings.llm = None
    store = VDVectorStore(collection_name=_name())
    index = VectorStoreIndex.from_documents(
        [copy.deepcopy(d) for d in DOCUMENTS],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=AxisEmbedding(),
        transformations=[SentenceSplitter(chunk_size=8, chunk_overlap=0, tokenizer=str.split)],
    )
    retriever = index.as_retriever(similarity_top_k=10, filters=where(topic="fruit"))
    sync_hits = retriever.retrieve("apple")
    async_hits = await retriever.aretrieve("apple")
    assert [h.node.node_id for h in sync_hits] == [h.node.node_id for h in async_hits]
    assert {h.node.ref_doc_id for h in sync_hits} == {"fruit-doc"}
    await index.adelete_ref_doc("fruit-doc")
    index.delete_ref_doc("animal-doc")
    assert {n.ref_doc_id for n in await store.aget_nodes(filters=ALL)} == {"mixed-doc"}
    hits = await index.as_retriever(similarity_top_k=10).aretrieve("apple")
    assert {h.node.ref_doc_id for h in hits} == {"mixed-doc"}
    await store.aclose()


def test_add_and_query_roundtrip(call: Callable[..., Any]) -> None:
    assert call("query", vector_query("apple")).ids == []
    nodes = sample_nodes()
    assert call("add", nodes) == ["a", "b", "c", "ab", "d"]
    result = call("query", vector_query("apple", k=3))
    assert result.ids[:2] == ["a", "ab"] and result.similarities[0] == pytest.approx(1.0)
    by_id = {n.node_id: n for n in nodes}
    assert all(node_key(n) == node_key(by_id[n.node_id]) for n in result.nodes)
    assert snapshot(call) == sorted(node_key(n) for n in nodes)
    call("add", [text_node("a", "cherry", "d1", kind="changed")])  # an existing id is replaced
    (changed,) = call("get_nodes", ["a"])
    assert changed.get_content() == "cherry" and changed.metadata == {"kind": "changed"}


def test_query_restrictions_and_filters(call: Callable[..., Any]) -> None:
    call("add", sample_nodes())
    assert call("query", vector_query("apple", node_ids=["b", "d"])).ids == ["b", "d"]
    assert set(call("query", vector_query("apple", doc_ids=["d2"])).ids) == {"ab", "c"}
    assert len(call("query", vector_query("apple", node_ids=[], doc_ids=[])).ids) == 5
    restricted = vector_query("apple", doc_ids=["d1", "d2"], filters=where(kind="fruit"))
    assert set(call("query", restricted).ids) == {"a", "b", "c"}
    negated = MetadataFilters(
        filters=[
            MetadataFilter(key="tags", operator=FilterOperator.CONTAINS, value="red"),
            MetadataFilter(key="n", operator=FilterOperator.GT, value=4),
        ],
        condition=FilterCondition.NOT,
    )
    assert set(call("query", vector_query("apple", filters=negated)).ids) == {"b", "ab"}
    empty = MetadataFilters(
        filters=[MetadataFilter(key="tags", operator=FilterOperator.IS_EMPTY, value=None)]
    )
    assert set(call("query", vector_query("apple", filters=empty)).ids) == {"ab", "d"}
    assert [n.node_id for n in call("get_nodes", filters=where(id="ab"))] == ["ab"]


def test_mmr(call: Callable[..., Any]) -> None:
    call(
        "add",
        [text_node("1", "apple"), text_node("2", "apple"), text_node("3", "apple banana")],
    )
    mode = VectorStoreQueryMode.MMR
    diverse = call("query", vector_query("apple", k=2, mode=mode, mmr_threshold=0.1))
    assert diverse.ids[0] in {"1", "2"} and diverse.ids[1] == "3"
    assert call("query", vector_query("apple", k=2, mode=mode), mmr_threshold=0.1).ids == (
        diverse.ids
    )
    assert set(call("query", vector_query("apple", k=2, mode=mode), mmr_prefetch_k=2).ids) == {
        "1",
        "2",
    }


def test_get_delete_and_clear(call: Callable[..., Any]) -> None:
    call("delete", "d1")  # nothing stored yet
    call("add", sample_nodes())
    got = call("get_nodes", ["d", "a", "missing"])
    assert [n.node_id for n in got] == ["d", "a"]
    assert got[0].embedding == pytest.approx(axis_vector("dog"))
    assert [n.node_id for n in call("get_nodes", ["a", "d"], where(kind="fruit"))] == ["a"]
    assert call("get_nodes", []) == []
    call("delete", "d1")
    assert {n.node_id for n in call("get_nodes", filters=ALL)} == {"c", "ab", "d"}
    call("delete_nodes", ["c", "missing"])
    call("delete_nodes", ["ab", "d"], filters=where(kind="animal"))
    assert {n.node_id for n in call("get_nodes", filters=ALL)} == {"ab"}
    call("add", sample_nodes())
    call("delete_nodes", filters=where(kind="fruit"))
    assert {n.node_id for n in call("get_nodes", filters=ALL)} == {"ab", "d"}
    call("clear")
    assert call("get_nodes", filters=ALL) == []
    call("add", sample_nodes()[:1])
    assert [n.node_id for n in call("get_nodes", filters=ALL)] == ["a"]


def test_node_types_roundtrip(call: Callable[..., Any]) -> None:
    index_node = IndexNode(id_="i", text="dog", index_id="other", embedding=axis_vector("dog"))
    odd = text_node("o", "fish", "doc-o", id="user id", **{"odd key": 'q"\\', "x": [1, None]})
    call("add", [index_node, odd])
    got = {n.node_id: n for n in call("get_nodes", ["i", "o"])}
    assert isinstance(got["i"], IndexNode) and got["i"].index_id == "other"
    assert node_key(got["o"]) == node_key(odd)


def test_constructor_and_escape_hatches() -> None:
    store = VDVectorStore(collection_name=_name(), metric="ip", batch_size=3)
    assert store.metric == "dot" and store.engine.metric == "dot" and store.stores_text
    assert isinstance(store.engine, VdEngine) and store.client is store.engine.client
    assert "memory" in repr(store)
    store.add([text_node(str(i), "apple") for i in range(7)])  # several batches
    assert len(store.get_nodes(filters=ALL)) == 7
    store.close()
    with pytest.raises(StoreClosedError):
        store.get_nodes(["1"])
    with pytest.raises(InvalidInputError, match="metric"):
        VDVectorStore(metric="hamming")
    with pytest.raises(InvalidInputError, match="backend"):
        VDVectorStore(backend="no-such-backend")
    with pytest.raises(InvalidInputError, match="batch_size"):
        VDVectorStore(batch_size=0)


@pytest.mark.parametrize(
    "mode",
    [VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH],
)
def test_keyword_query_modes_need_query_str(
    store: VDVectorStore, mode: VectorStoreQueryMode
) -> None:
    with pytest.raises(ValueError, match="query_str"):
        store.query(vector_query("apple", mode=mode))
    with pytest.raises(ValueError, match="query_str"):
        asyncio.run(store.aquery(vector_query("apple", mode=mode)))


@pytest.mark.parametrize("mode", [VectorStoreQueryMode.SEMANTIC_HYBRID, VectorStoreQueryMode.SVM])
def test_unimplemented_query_modes_raise(store: VDVectorStore, mode: VectorStoreQueryMode) -> None:
    with pytest.raises(NotImplementedError, match=mode.name):
        store.query(vector_query("apple", mode=mode))
    with pytest.raises(NotImplementedError, match=mode.name):
        asyncio.run(store.aquery(vector_query("apple", mode=mode)))


def test_filters_translate_to_vd_dicts() -> None:
    flt = MetadataFilters(
        filters=[
            MetadataFilter(key="n", operator=FilterOperator.GTE, value=2),
            MetadataFilters(
                filters=[MetadataFilter(key="tags", operator=FilterOperator.ANY, value=["x"])],
                condition=FilterCondition.NOT,
            ),
        ]
    )
    assert to_vd_filter(flt) == {
        "$and": [
            {"n": {"$gte": 2}},
            {"$not": {"$or": [{"$and": [{"tags": {"$in": ["x"]}}, {"tags": {"$ne": "x"}}]}]}},
        ]
    }
    assert to_vd_filter(MetadataFilters(filters=[])) is None and to_vd_filter(None) is None


# ------------------------------------------------------------------------------------------------
# The oracle
# ------------------------------------------------------------------------------------------------


def test_oracle_random_filters() -> None:
    store = VDVectorStore(collection_name=_name(), metric="cosine")
    assert run_oracle(store, text_match=False) >= MIN_SIMPLE_CHECKS
    store.close()


# ------------------------------------------------------------------------------------------------
# Event loops
# ------------------------------------------------------------------------------------------------


def test_one_store_across_20_asyncio_runs(store: VDVectorStore) -> None:
    for i in range(20):
        asyncio.run(store.async_add([text_node(f"n{i}", f"apple {i}", f"doc{i % 3}", i=i)]))
        assert len(asyncio.run(store.aquery(vector_query("apple", k=30))).ids) == i + 1
    asyncio.run(store.adelete("doc0"))
    assert len(store.get_nodes(filters=ALL)) == 13


NEST_ASYNCIO_SCRIPT = """
import asyncio
import nest_asyncio
from llama_index_vd import VDVectorStore
from tests.test_llama_index_milvus import ALL, sample_nodes, vector_query

store = VDVectorStore(collection_name="nest_asyncio_cell")
loop = asyncio.new_event_loop()
nest_asyncio.apply(loop)

async def cell():
    asyncio.run(store.async_add(sample_nodes()))
    found = loop.run_until_complete(store.aquery(vector_query("dog", k=1)))
    return len(found.ids) + len(await store.aget_nodes(filters=ALL))

assert loop.run_until_complete(cell()) == 6
loop.close()
store.close()
print("nest ok")
"""


def test_nest_asyncio_notebook_pattern() -> None:
    """A notebook cell under nest_asyncio calls ``asyncio.run`` and ``run_until_complete``
    inside the running loop. Its own interpreter: ``nest_asyncio.apply`` replaces
    ``asyncio.run`` for the whole process, so later tests' loops would all be one loop."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", NEST_ASYNCIO_SCRIPT],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nest ok"


@pytest.fixture(scope="module")
def shared_store() -> Iterator[VDVectorStore]:
    store = VDVectorStore(collection_name=_name())
    store.add(sample_nodes())
    yield store
    store.close()


@pytest.mark.parametrize("round_", range(3))
async def test_shared_store_on_pytest_asyncio_loops(
    shared_store: VDVectorStore, round_: int
) -> None:
    assert (await shared_store.aquery(vector_query("cherry", k=1))).ids == ["c"]
    assert len(await shared_store.aget_nodes(filters=ALL)) == 5


async def test_async_methods_never_use_the_sync_driver(
    store: VDVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Async methods go through ``arun`` only (the sync driver is forbidden) and the loop ticks."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the sync driver was used by an async method")

    monkeypatch.setattr(VdEngine, "run", forbidden)
    monkeypatch.setattr(VdEngine, "_perform", forbidden)
    async with LoopWatch() as watch:
        nodes = [text_node(f"n{i}", f"apple {i}", f"doc{i % 5}", i=i) for i in range(40)]
        await asyncio.gather(*(store.async_add([node]) for node in nodes))
        await asyncio.gather(*(store.aquery(vector_query("apple", k=3)) for _ in range(30)))
        mmr = vector_query("apple", k=2, mode=VectorStoreQueryMode.MMR, filters=where(i=3))
        assert (await store.aquery(mmr)).ids == ["n3"]
        await store.adelete("doc0")
        await store.adelete_nodes(["n1"])
        assert len(await store.aget_nodes(filters=ALL)) == 31
        await store.aclear()
    assert watch.longest_block < 0.5, (
        f"event loop blocked for {watch.longest_block:.3f}s (longest gap {watch.longest_gap:.3f}s)"
    )


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------

BAD_FILTERS: list[tuple[str, Any, str]] = [
    ("text match", _filters(_f("kind", FilterOperator.TEXT_MATCH, "fr")), "substring"),
    (
        "text match insensitive",
        _filters(_f("kind", FilterOperator.TEXT_MATCH_INSENSITIVE, "FR")),
        "substring",
    ),
    ("unknown operator", _filters(_f("n", "regex", "x")), "Unknown filter operator"),  # type: ignore[arg-type]
    ("unknown condition", _filters(_f("n", FilterOperator.EQ, 1), condition="xor"), "condition"),
    ("eq none", _filters(_f("n", FilterOperator.EQ, None)), "IS_EMPTY"),
    ("in scalar", _filters(_f("n", FilterOperator.IN, 1)), "list"),
    ("nan", _filters(_f("n", FilterOperator.GT, float("nan"))), "finite"),
    ("all empty", _filters(_f("tags", FilterOperator.ALL, [])), "at least one"),
    ("dollar key", _filters(_f("$and", FilterOperator.EQ, 1)), "'\\$'"),
    ("dict filters", {"n": 1}, "MetadataFilters"),
]


@pytest.fixture(scope="module")
def seeded() -> Iterator[VDVectorStore]:
    store = VDVectorStore(collection_name=_name())
    store.add(sample_nodes())
    yield store
    store.close()


@pytest.fixture(params=["sync", "async"])
def bad_call(request: pytest.FixtureRequest, seeded: VDVectorStore) -> Callable[..., Any]:
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


BAD_CALLS: list[tuple[str, str, tuple[Any, ...], dict[str, Any], str]] = [
    (
        "no embedding",
        "add",
        ([text_node("x", "apple"), TextNode(id_="y", text="y")],),
        {},
        "no embedding",
    ),
    ("wrong dim", "add", ([TextNode(id_="w", text="x", embedding=[1.0])],), {}, "dimension"),
    ("not a node", "add", ([{"text": "x"}],), {}, "BaseNode"),
    ("duplicate ids", "add", ([text_node("z", "apple"), text_node("z", "dog")],), {}, "Duplicate"),
    ("k zero", "query", (vector_query("apple", k=0),), {}, "similarity_top_k"),
    ("no query vector", "query", (VectorStoreQuery(similarity_top_k=1),), {}, "query_embedding"),
    (
        "query dim",
        "query",
        (VectorStoreQuery(query_embedding=[1.0, 2.0], similarity_top_k=1),),
        {},
        "dimension",
    ),
    ("int node ids", "query", (vector_query("apple", node_ids=[1]),), {}, "strings"),
    (
        "mmr threshold",
        "query",
        (vector_query("apple", mode="mmr"),),
        {"mmr_threshold": -1},
        "mmr_threshold",
    ),
    ("get nothing", "get_nodes", (), {}, "node_ids and/or filters"),
    ("get int ids", "get_nodes", ([1],), {}, "strings"),
    ("delete nothing", "delete_nodes", (), {}, "clear()"),
    ("delete int doc", "delete", (3.5,), {}, "ref_doc_id"),
]


@pytest.mark.parametrize(
    ("case", "method", "args", "kwargs", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_calls(
    bad_call: Callable[..., Any],
    case: str,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    message: str,
) -> None:
    before = snapshot(bad_call)
    with pytest.raises(InvalidInputError, match=message):
        bad_call(method, *args, **kwargs)
    assert snapshot(bad_call) == before

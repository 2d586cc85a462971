"""Tests for ``langchain_vd.VDVectorStore`` and the generic ``VdEngine`` behind it.

Most tests run twice, through the sync methods and their ``a``-prefixed twins (the
``api`` fixture). The in-memory vd backend is used throughout; two test-only backends
registered below exercise the native-async path and a native factory that falls back to
a wrapper around a separate client.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import vd
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from vd.backends.memory import MemoryClient, MemoryCollection

from langchain_vd import VDVectorStore
from vd_integrations.core.errors import InvalidInputError, StoreClosedError
from vd_integrations.core.ops import Exclusive, drive
from vd_integrations.vd.engine import VdEngine

# --------------------------------------------------------------------------------------------
# LangChain's standard suite
# --------------------------------------------------------------------------------------------


class TestVDVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self) -> Generator[VectorStore, None, None]:  # type: ignore[override]
        store = VDVectorStore(self.get_embeddings(), collection_name=f"t_{uuid.uuid4().hex}")
        try:
            yield store
        finally:
            store.close()


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------

# A crafted embedding: "apple" and "apple pie" are near-duplicates close to the query,
# "banana" is less relevant but different. Unknown texts get a deterministic vector.
VECTORS: dict[str, list[float]] = {
    "query": [1.0, 0.0, 0.0],
    "apple": [1.0, 0.05, 0.0],
    "apple pie": [1.0, 0.06, 0.0],
    "banana": [0.5, 0.0, 0.866],
    "cherry": [0.0, 1.0, 0.0],
    "durian": [0.0, 0.0, 1.0],
}


class TableEmbeddings(Embeddings):
    """Looks vectors up in :data:`VECTORS`; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
        if text in VECTORS:
            return list(VECTORS[text])
        h = abs(hash(text))
        return [float(h % 7 + 1), float(h % 11 + 1), float(h % 13 + 1)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return self._vector(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(0)
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        await asyncio.sleep(0)
        return self.embed_query(text)


class Api:
    """Call a store method by its sync name, in sync or async mode."""

    def __init__(self, store: VDVectorStore, mode: str) -> None:
        self.store = store
        self.mode = mode

    async def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "sync":
            return getattr(self.store, name)(*args, **kwargs)
        return await getattr(self.store, "a" + name)(*args, **kwargs)

    async def invoke(self, runnable: Any, value: Any) -> Any:
        if self.mode == "sync":
            return runnable.invoke(value)
        return await runnable.ainvoke(value)


def _name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store() -> Generator[VDVectorStore, None, None]:
    s = VDVectorStore(TableEmbeddings(), collection_name=_name())
    yield s
    s.close()


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, store: VDVectorStore) -> Api:
    return Api(store, request.param)


FRUIT = ["apple", "apple pie", "banana", "cherry", "durian"]
FRUIT_META = [
    {"kind": "fruit", "n": 1, "tags": ["red"]},
    {"kind": "dessert", "n": 2, "tags": ["sweet", "red"]},
    {"kind": "fruit", "n": 3, "tags": ["yellow"]},
    {"kind": "fruit", "n": 4},
    {"kind": "fruit", "n": 5, "smell": "strong"},
]
FRUIT_IDS = ["a", "ap", "b", "c", "d"]


async def _seed(api: Api) -> list[str]:
    return await api("add_texts", FRUIT, FRUIT_META, ids=FRUIT_IDS)


def _ids(docs: list[Document]) -> list[str | None]:
    return [d.id for d in docs]


def _snapshot(store: VDVectorStore) -> list[tuple[str | None, str, dict]]:
    keys = list(store.engine.client.get_collection(store.collection_name))
    return sorted((d.id, d.page_content, d.metadata) for d in store.get_by_ids(keys))


# --------------------------------------------------------------------------------------------
# Adding and reading
# --------------------------------------------------------------------------------------------


async def test_add_texts_and_get_by_ids(api: Api) -> None:
    ids = await _seed(api)
    assert ids == FRUIT_IDS
    assert await api("count") == 5
    docs = await api("get_by_ids", ["d", "missing", "a", "a"])
    assert docs == [
        Document(id="d", page_content="durian", metadata=FRUIT_META[4]),
        Document(id="a", page_content="apple", metadata=FRUIT_META[0]),
    ]


async def test_add_texts_generates_ids(api: Api) -> None:
    ids = await api("add_texts", ["apple", "banana"])
    assert len(ids) == 2 and len(set(ids)) == 2 and all(isinstance(i, str) and i for i in ids)
    assert _ids(await api("get_by_ids", ids)) == ids


async def test_add_embeddings(api: Api) -> None:
    ids = await api(
        "add_embeddings", ["x", "y"], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [{"i": 1}, None]
    )
    docs = await api("similarity_search_by_vector", [0.0, 1.0, 0.0], k=1)
    assert docs == [Document(id=ids[1], page_content="y", metadata={})]


async def test_add_documents_uses_document_ids(api: Api) -> None:
    docs = [Document(page_content="apple", id="A"), Document(page_content="banana")]
    ids = await api("add_documents", docs)
    assert ids[0] == "A" and ids[1]
    assert {d.id for d in await api("get_by_ids", ids)} == set(ids)


async def test_metadata_round_trips_and_is_copied(api: Api) -> None:
    meta = {"nested": {"a": [1, 2.5, None, True]}, "s": "x", "e": {}}
    await api("add_texts", ["apple"], [meta], ids=["m"])
    meta["nested"]["a"].append("mutated")  # the caller's dict is not the stored one
    (doc,) = await api("get_by_ids", ["m"])
    assert doc.metadata == {"nested": {"a": [1, 2.5, None, True]}, "s": "x", "e": {}}
    doc.metadata["nested"]["a"].clear()  # nor is a returned one
    (hit,) = await api("similarity_search", "apple", k=1)
    assert hit.metadata == {"nested": {"a": [1, 2.5, None, True]}, "s": "x", "e": {}}


async def test_sync_and_async_share_data(store: VDVectorStore) -> None:
    store.add_texts(["apple"], ids=["s"])
    await store.aadd_texts(["banana"], ids=["as"])
    assert _ids(await store.aget_by_ids(["s", "as"])) == ["s", "as"]
    assert _ids(store.get_by_ids(["s", "as"])) == ["s", "as"]
    assert store.count() == await store.acount() == 2


# --------------------------------------------------------------------------------------------
# Similarity search
# --------------------------------------------------------------------------------------------


async def test_similarity_search(api: Api) -> None:
    await _seed(api)
    assert _ids(await api("similarity_search", "query", k=3)) == ["a", "ap", "b"]
    assert _ids(await api("similarity_search_by_vector", [0.0, 1.0, 0.0], k=1)) == ["c"]


async def test_similarity_search_with_score(api: Api) -> None:
    await _seed(api)
    scored = await api("similarity_search_with_score", "query", k=5)
    scores = [s for _, s in scored]
    assert scores == sorted(scores, reverse=True)
    assert scored[0][0].id == "a" and scores[0] == pytest.approx(1 / math.sqrt(1 + 0.05**2))
    by_vec = await api("similarity_search_with_score_by_vector", [0.0, 0.0, 1.0], k=1)
    assert by_vec[0][0].id == "d" and by_vec[0][1] == pytest.approx(1.0)


async def test_similarity_search_filters(api: Api) -> None:
    await _seed(api)
    docs = await api("similarity_search", "query", k=5, filter={"kind": "fruit", "n": {"$gte": 3}})
    assert _ids(docs) == ["b", "c", "d"]
    docs = await api("similarity_search", "query", k=5, expr={"tags": {"$in": ["red"]}})
    assert _ids(docs) == ["a", "ap"]
    docs = await api(
        "similarity_search_with_score_by_vector",
        [1.0, 0.0, 0.0],
        k=5,
        filter={"$or": [{"smell": {"$exists": True}}, {"n": 1}]},
    )
    assert [d.id for d, _ in docs] == ["a", "d"]
    docs = await api("similarity_search", "query", k=5, filter={"$not": {"kind": "fruit"}})
    assert _ids(docs) == ["ap"]


async def test_filter_and_expr_together_is_an_error(api: Api) -> None:
    await _seed(api)
    with pytest.raises(InvalidInputError, match="not both"):
        await api("similarity_search", "query", filter={"n": 1}, expr={"n": 2})


async def test_search_on_empty_store(api: Api) -> None:
    assert await api("similarity_search", "query") == []
    assert await api("max_marginal_relevance_search", "query") == []
    assert await api("search_by_metadata", {"n": 1}) == []
    assert await api("count") == 0
    assert await api("get_by_ids", ["a"]) == []


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
async def test_relevance_scores_in_unit_interval(metric: str) -> None:
    store = VDVectorStore(TableEmbeddings(), collection_name=_name(), metric=metric)
    store.add_embeddings(
        ["far", "near", "opposite", "big"],
        [[0.0, 5.0, 0.0], [1.0, 0.1, 0.0], [-3.0, 0.0, 0.0], [40.0, 40.0, 40.0]],
    )
    sync = store.similarity_search_with_relevance_scores("query", k=4)
    asyn = await store.asimilarity_search_with_relevance_scores("query", k=4)
    assert sync == asyn
    assert len(sync) == 4
    assert all(0.0 <= score <= 1.0 for _, score in sync)
    assert [s for _, s in sync] == sorted((s for _, s in sync), reverse=True)
    if metric != "dot":
        assert sync[0][0].page_content == "near"
    store.close()


def test_relevance_fn_per_metric() -> None:
    assert VdEngine(metric="cosine").relevance_fn()(1.0) == 1.0
    assert VdEngine(metric="cosine").relevance_fn()(-1.0) == 0.0
    assert VdEngine(metric="cosine").relevance_fn()(0.0) == 0.5
    assert VdEngine(metric="dot").relevance_fn()(7.0) == 1.0
    assert VdEngine(metric="dot").relevance_fn()(-7.0) == 0.0
    assert VdEngine(metric="l2").relevance_fn()(0.25) == 0.25
    assert VdEngine(metric="L2").metric == "l2"


# --------------------------------------------------------------------------------------------
# MMR
# --------------------------------------------------------------------------------------------


async def test_mmr_diversifies(api: Api) -> None:
    await _seed(api)
    plain = await api("similarity_search", "query", k=2)
    assert _ids(plain) == ["a", "ap"]  # near-duplicates
    mmr = await api("max_marginal_relevance_search", "query", k=2, fetch_k=3, lambda_mult=0.25)
    # among the 3 nearest, the near-duplicate is skipped for something different
    assert _ids(mmr) == ["a", "b"]
    assert mmr[0].metadata == FRUIT_META[0]
    same = await api("max_marginal_relevance_search", "query", k=2, fetch_k=5, lambda_mult=1.0)
    assert _ids(same) == ["a", "ap"]
    by_vec = await api(
        "max_marginal_relevance_search_by_vector", [1.0, 0.0, 0.0], k=2, fetch_k=3, lambda_mult=0.25
    )
    assert _ids(by_vec) == ["a", "b"]


async def test_mmr_with_filter(api: Api) -> None:
    await _seed(api)
    docs = await api(
        "max_marginal_relevance_search", "query", k=3, fetch_k=10, filter={"kind": "fruit"}
    )
    assert set(_ids(docs)) <= {"a", "b", "c", "d"} and len(docs) == 3
    assert docs[0].id == "a"


@pytest.mark.parametrize("metric", ["l2", "dot"])
async def test_mmr_other_metrics(metric: str) -> None:
    store = VDVectorStore(TableEmbeddings(), collection_name=_name(), metric=metric)
    await store.aadd_texts(FRUIT, ids=FRUIT_IDS)
    docs = store.max_marginal_relevance_search("query", k=2, fetch_k=3, lambda_mult=0.25)
    assert _ids(docs) == ["a", "b"]
    adocs = await store.amax_marginal_relevance_search("query", k=2, fetch_k=3, lambda_mult=0.25)
    assert adocs == docs
    store.close()


# --------------------------------------------------------------------------------------------
# Delete, upsert, metadata search, pks
# --------------------------------------------------------------------------------------------


async def test_delete_by_ids(api: Api) -> None:
    await _seed(api)
    assert await api("delete", ["a", "missing", "b"]) is True
    assert await api("count") == 3
    assert await api("get_by_ids", ["a", "b"]) == []
    assert await api("delete", ["missing"]) is True  # missing ids are not an error
    assert await api("count") == 3


async def test_delete_by_filter(api: Api) -> None:
    await _seed(api)
    await api("delete", filter={"n": {"$gte": 4}})
    assert sorted(_ids(await api("search_by_metadata", {}, limit=10))) == ["a", "ap", "b"]
    await api("delete", expr={"kind": "dessert"})
    assert sorted(_ids(await api("search_by_metadata", {}, limit=10))) == ["a", "b"]


async def test_delete_by_ids_and_filter_is_the_intersection(api: Api) -> None:
    await _seed(api)
    await api("delete", ["a", "ap", "c"], filter={"kind": "fruit"})
    assert sorted(_ids(await api("search_by_metadata", {}, limit=10))) == ["ap", "b", "d"]


async def test_delete_needs_ids_or_filter(api: Api) -> None:
    await _seed(api)
    with pytest.raises(InvalidInputError, match="ids or a filter"):
        await api("delete")
    assert await api("count") == 5


async def test_upsert_replaces(api: Api) -> None:
    await _seed(api)
    ids = await api(
        "upsert",
        ["a", "new"],
        [Document(page_content="apple v2", metadata={"v": 2}), Document(page_content="cherry")],
    )
    assert ids == ["a", "new"]
    assert await api("count") == 6
    (doc,) = await api("get_by_ids", ["a"])
    assert doc == Document(id="a", page_content="apple v2", metadata={"v": 2})
    ids = await api("upsert", documents=[Document(id="a", page_content="apple v3")])
    assert ids == ["a"]
    assert (await api("get_by_ids", ["a"]))[0].page_content == "apple v3"
    assert await api("count") == 6


async def test_upsert_length_mismatch(api: Api) -> None:
    with pytest.raises(InvalidInputError, match="ids"):
        await api("upsert", ["a"], [Document(page_content="x"), Document(page_content="y")])


async def test_add_with_existing_id_replaces(api: Api) -> None:
    await _seed(api)
    await api("add_texts", ["banana"], [{"kind": "other"}], ids=["a"])
    assert await api("count") == 5
    assert (await api("get_by_ids", ["a"]))[0].metadata == {"kind": "other"}


async def test_search_by_metadata(api: Api) -> None:
    await _seed(api)
    docs = await api("search_by_metadata", {"kind": "fruit"}, limit=10)
    assert _ids(docs) == ["a", "b", "c", "d"]
    assert docs[0] == Document(id="a", page_content="apple", metadata=FRUIT_META[0])
    docs = await api("search_by_metadata", {"kind": "fruit"}, fields=["n"], limit=2)
    assert [(d.id, d.metadata) for d in docs] == [("a", {"n": 1}), ("b", {"n": 3})]
    assert await api("search_by_metadata", {"kind": "nothing"}) == []
    with pytest.raises(InvalidInputError, match="limit"):
        await api("search_by_metadata", {"kind": "fruit"}, limit=0)


async def test_get_pks(api: Api) -> None:
    await _seed(api)
    assert await api("get_pks", {"tags": {"$in": ["red"]}}) == ["a", "ap"]
    assert await api("get_pks", {"n": {"$gt": 100}}) == []
    with pytest.raises(InvalidInputError, match="filter"):
        await api("get_pks", None)


# --------------------------------------------------------------------------------------------
# Retrievers
# --------------------------------------------------------------------------------------------


async def test_as_retriever_similarity(api: Api) -> None:
    await _seed(api)
    retriever = api.store.as_retriever(search_kwargs={"k": 2, "filter": {"kind": "fruit"}})
    assert _ids(await api.invoke(retriever, "query")) == ["a", "b"]


async def test_as_retriever_mmr(api: Api) -> None:
    await _seed(api)
    retriever = api.store.as_retriever(
        search_type="mmr", search_kwargs={"k": 2, "fetch_k": 3, "lambda_mult": 0.25}
    )
    assert _ids(await api.invoke(retriever, "query")) == ["a", "b"]


async def test_as_retriever_score_threshold(api: Api) -> None:
    await _seed(api)
    retriever = api.store.as_retriever(
        search_type="similarity_score_threshold",
        search_kwargs={"k": 5, "score_threshold": 0.9},
    )
    # cosine relevance (s + 1) / 2 >= 0.9  <=>  cosine >= 0.8: only the two apples
    assert _ids(await api.invoke(retriever, "query")) == ["a", "ap"]


# --------------------------------------------------------------------------------------------
# Constructors, drop, lifecycle
# --------------------------------------------------------------------------------------------


def test_from_texts() -> None:
    name = _name()
    store = VDVectorStore.from_texts(
        FRUIT, TableEmbeddings(), FRUIT_META, ids=FRUIT_IDS, collection_name=name, metric="l2"
    )
    assert store.collection_name == name and store.engine.metric == "l2"
    assert store.count() == 5
    assert _ids(store.similarity_search("query", k=1)) == ["a"]
    store.close()


async def test_afrom_texts() -> None:
    store = await VDVectorStore.afrom_texts(
        FRUIT, TableEmbeddings(), ids=FRUIT_IDS, collection_name=_name(), batch_size=2
    )
    assert await store.acount() == 5
    assert _ids(await store.asimilarity_search("query", k=1)) == ["a"]
    await store.aclose()


async def test_drop(api: Api) -> None:
    await _seed(api)
    await api("drop")
    assert await api("count") == 0
    assert await api("similarity_search", "query") == []
    await api("drop")  # dropping a missing collection is fine
    # a new collection is created by the next write, with a new dimension if need be
    await api("add_embeddings", ["wide"], [[1.0, 2.0, 3.0, 4.0]], ids=["w"])
    assert _ids(await api("similarity_search_by_vector", [1.0, 2.0, 3.0, 4.0], k=1)) == ["w"]
    assert await api("count") == 1


async def test_closed_store_raises(api: Api) -> None:
    await _seed(api)
    await api("close")
    await api("close")  # idempotent
    for name, args in [
        ("add_texts", (["x"],)),
        ("similarity_search", ("query",)),
        ("get_by_ids", (["a"],)),
        ("delete", (["a"],)),
        ("count", ()),
    ]:
        with pytest.raises(StoreClosedError, match="closed"):
            await api(name, *args)


def test_context_manager() -> None:
    with VDVectorStore(TableEmbeddings(), collection_name=_name()) as store:
        store.add_texts(["apple"])
    with pytest.raises(StoreClosedError):
        store.count()


async def test_async_context_manager() -> None:
    async with VDVectorStore(TableEmbeddings(), collection_name=_name()) as store:
        await store.aadd_texts(["apple"])
        assert await store.acount() == 1
    with pytest.raises(StoreClosedError):
        await store.acount()


def test_repr_and_properties(store: VDVectorStore) -> None:
    assert "memory" in repr(store) and store.collection_name in repr(store)
    assert isinstance(store.embeddings, TableEmbeddings)
    assert store.client is store.engine.client


# --------------------------------------------------------------------------------------------
# Event loops and concurrency
# --------------------------------------------------------------------------------------------


def test_one_store_across_twenty_asyncio_runs() -> None:
    store = VDVectorStore(TableEmbeddings(), collection_name=_name())

    async def step(i: int) -> tuple[int, list[str | None]]:
        await store.aadd_texts([f"text {i}"], [{"i": i}], ids=[f"id{i}"])
        hits = await store.asimilarity_search(f"text {i}", k=1, filter={"i": i})
        return await store.acount(), _ids(hits)

    for i in range(20):
        assert asyncio.run(step(i)) == (i + 1, [f"id{i}"])
    assert store.count() == 20
    assert len(store.engine._async) <= 1  # resources of closed loops are pruned
    store.close()


async def test_concurrent_first_writes_and_reads(store: VDVectorStore) -> None:
    async def writer(i: int) -> None:
        await store.aadd_texts([f"doc {i} {j}" for j in range(5)], [{"w": i}] * 5)
        await store.asimilarity_search("query", k=3)
        await store.asearch_by_metadata({"w": i}, limit=100)

    await asyncio.gather(*(writer(i) for i in range(20)))
    assert await store.acount() == 100
    assert len(list(store.client.list_collections())) == 1


def test_concurrent_sync_first_writes_from_threads(store: VDVectorStore) -> None:
    def writer(i: int) -> int:
        store.add_texts([f"doc {i} {j}" for j in range(5)], [{"w": i}] * 5)
        return len(store.similarity_search("query", k=3))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(writer, range(16))) == [3] * 16
    assert store.count() == 80


# --------------------------------------------------------------------------------------------
# Bad input: a clear error, and nothing changed
# --------------------------------------------------------------------------------------------


class _Opaque:
    pass


BAD_WRITES: list[tuple[str, str, tuple, dict, type[Exception], str]] = [
    ("texts-vs-metadatas", "add_texts", (["x", "y"], [{}]), {}, InvalidInputError, "lengths"),
    ("texts-vs-ids", "add_texts", (["x", "y"],), {"ids": ["1"]}, InvalidInputError, "lengths"),
    (
        "texts-vs-embeddings",
        "add_embeddings",
        (["x", "y"], [[1.0, 0.0, 0.0]]),
        {},
        InvalidInputError,
        "lengths",
    ),
    (
        "duplicate-ids",
        "add_texts",
        (["x", "y"],),
        {"ids": ["n1", "n1"]},
        InvalidInputError,
        "Duplicate",
    ),
    ("int-ids", "add_texts", (["x", "y"],), {"ids": [1, 2]}, InvalidInputError, "strings"),
    ("empty-id", "add_texts", (["x"],), {"ids": [""]}, InvalidInputError, "non-empty"),
    ("non-str-text", "add_texts", ([b"bytes"],), {}, InvalidInputError, "str"),
    ("set-metadata", "add_texts", (["x", "y"], [{}, {"s": {1, 2}}]), {}, InvalidInputError, "'s'"),
    ("object-metadata", "add_texts", (["x"], [{"o": _Opaque()}]), {}, InvalidInputError, "'o'"),
    ("nan-metadata", "add_texts", (["x"], [{"f": float("nan")}]), {}, InvalidInputError, "NaN"),
    ("inf-nested", "add_texts", (["x"], [{"f": [1, math.inf]}]), {}, InvalidInputError, "'f'"),
    ("int-key", "add_texts", (["x"], [{1: "a"}]), {}, InvalidInputError, "keys"),
    ("metadata-not-dict", "add_texts", (["x"], ["meta"]), {}, InvalidInputError, "dict"),
    (
        "wrong-dimension",
        "add_embeddings",
        (["x"], [[1.0, 0.0]]),
        {},
        InvalidInputError,
        "dimension 2, expected 3",
    ),
    (
        "mixed-dimensions",
        "add_embeddings",
        (["x", "y"], [[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
        {},
        InvalidInputError,
        "dimension",
    ),
    ("nan-vector", "add_embeddings", (["x"], [[math.nan, 0.0, 0.0]]), {}, InvalidInputError, "NaN"),
    (
        "upsert-bad-metadata",
        "upsert",
        (["a"], [Document(page_content="x", metadata={"s": {1}})]),
        {},
        InvalidInputError,
        "'s'",
    ),
    (
        "string-filter-delete",
        "delete",
        (),
        {"expr": "n == 1"},
        vd.UnsupportedFilterError,
        "dict filters",
    ),
    (
        "unknown-op-delete",
        "delete",
        (),
        {"filter": {"n": {"$regex": "1"}}},
        vd.UnsupportedFilterError,
        "regex",
    ),
    (
        "unknown-logical-delete",
        "delete",
        (["a"],),
        {"filter": {"$xor": [{"n": 1}]}},
        vd.UnsupportedFilterError,
        "xor",
    ),
    (
        "malformed-in-delete",
        "delete",
        (),
        {"filter": {"n": {"$in": 1}}},
        vd.UnsupportedFilterError,
        "list",
    ),
    ("non-str-delete-id", "delete", ([1],), {}, InvalidInputError, "strings"),
]


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "error", "match"),
    [case[1:] for case in BAD_WRITES],
    ids=[case[0] for case in BAD_WRITES],
)
async def test_bad_writes_change_nothing(
    api: Api, method: str, args: tuple, kwargs: dict, error: type[Exception], match: str
) -> None:
    await _seed(api)
    before = _snapshot(api.store)
    with pytest.raises(error, match=match):
        await api(method, *args, **kwargs)
    assert _snapshot(api.store) == before
    assert await api("count") == 5


BAD_READS: list[tuple[str, str, tuple, dict, type[Exception], str]] = [
    ("k-zero", "similarity_search", ("query",), {"k": 0}, InvalidInputError, "k must"),
    ("k-negative", "similarity_search_with_score", ("query",), {"k": -1}, InvalidInputError, "k"),
    (
        "k-zero-vector",
        "similarity_search_by_vector",
        ([1.0, 0.0, 0.0],),
        {"k": 0},
        InvalidInputError,
        "k must",
    ),
    ("mmr-k-zero", "max_marginal_relevance_search", ("query",), {"k": 0}, InvalidInputError, "k"),
    (
        "mmr-fetch-k-zero",
        "max_marginal_relevance_search",
        ("query",),
        {"fetch_k": 0},
        InvalidInputError,
        "fetch_k",
    ),
    (
        "mmr-lambda",
        "max_marginal_relevance_search",
        ("query",),
        {"lambda_mult": 2.0},
        InvalidInputError,
        "lambda_mult",
    ),
    (
        "string-filter",
        "similarity_search",
        ("query",),
        {"filter": "kind == 'fruit'"},
        vd.UnsupportedFilterError,
        "dict filters",
    ),
    (
        "string-expr",
        "max_marginal_relevance_search",
        ("query",),
        {"expr": "n > 1"},
        vd.UnsupportedFilterError,
        "dict filters",
    ),
    (
        "unknown-op",
        "similarity_search",
        ("query",),
        {"filter": {"n": {"$near": 1}}},
        vd.UnsupportedFilterError,
        "near",
    ),
    (
        "unknown-op-metadata",
        "search_by_metadata",
        ({"n": {"$like": "x"}},),
        {},
        vd.UnsupportedFilterError,
        "like",
    ),
    ("string-filter-pks", "get_pks", ("n == 1",), {}, vd.UnsupportedFilterError, "dict filters"),
    (
        "bad-and",
        "similarity_search",
        ("query",),
        {"filter": {"$and": {"n": 1}}},
        vd.UnsupportedFilterError,
        "list",
    ),
    (
        "wrong-query-dimension",
        "similarity_search_by_vector",
        ([1.0, 0.0],),
        {},
        InvalidInputError,
        "dimension",
    ),
]


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "error", "match"),
    [case[1:] for case in BAD_READS],
    ids=[case[0] for case in BAD_READS],
)
async def test_bad_reads_raise(
    api: Api, method: str, args: tuple, kwargs: dict, error: type[Exception], match: str
) -> None:
    await _seed(api)
    before = _snapshot(api.store)
    with pytest.raises(error, match=match):
        await api(method, *args, **kwargs)
    assert _snapshot(api.store) == before


async def test_bad_first_write_creates_nothing(api: Api) -> None:
    with pytest.raises(InvalidInputError):
        await api("add_texts", ["x", "y"], [{"ok": 1}, {"bad": {1}}])
    assert await api("count") == 0
    assert list(api.store.client.list_collections()) == []


async def test_wrong_embedder_dimension_changes_nothing(api: Api) -> None:
    await _seed(api)
    before = _snapshot(api.store)

    class Bad(TableEmbeddings):
        def _vector(self, text: str) -> list[float]:
            return [1.0, 2.0] if text == "bad" else super()._vector(text)

    api.store.engine.embedder = Bad()
    with pytest.raises(InvalidInputError, match="dimension"):
        await api("add_texts", ["apple", "bad"])
    assert _snapshot(api.store) == before


async def test_no_embedder() -> None:
    store = VDVectorStore(None, collection_name=_name())
    ids = await store.aadd_embeddings(["x"], [[1.0, 0.0]])
    assert _ids(store.similarity_search_by_vector([1.0, 0.0], k=1)) == ids
    with pytest.raises(InvalidInputError, match="embedding function"):
        await store.asimilarity_search("x")
    with pytest.raises(InvalidInputError, match="embedding function"):
        store.add_texts(["y"])
    assert store.count() == 1


def test_engine_constructor_errors() -> None:
    with pytest.raises(InvalidInputError, match="metric"):
        VdEngine(metric="hamming")
    with pytest.raises(InvalidInputError, match="Unknown backend 'no-such-db'"):
        VdEngine(backend="no-such-db")
    if "qdrant" not in vd.list_backends():
        with pytest.raises(vd.BackendNotInstalledError, match="pip install"):
            VdEngine(backend="qdrant")
    with pytest.raises(InvalidInputError, match="collection_name"):
        VdEngine(collection_name="")


# --------------------------------------------------------------------------------------------
# Test-only backends: a shared "server" with a native async client, and a native factory
# that falls back to a wrapper around a separate client (like embedded qdrant does)
# --------------------------------------------------------------------------------------------

_SERVER: dict[str, dict[str, MemoryCollection]] = {}
_NATIVE_CLIENTS: list[Any] = []


@vd.register_backend("vdtest_server")
class _ServerClient(MemoryClient):
    def __init__(self, *, embedder: Any = None, space: str = "default", **config: Any) -> None:
        super().__init__(embedder=embedder, **config)
        self._collections = _SERVER.setdefault(space, {})


class _AsyncServerCollection(vd.AsyncAbstractCollection):
    def __init__(self, collection: MemoryCollection) -> None:
        self._col = collection
        self.name = collection.name
        self.dimension = collection.dimension
        self.metric = collection.metric

    async def _write_many(self, docs: list[vd.Document]) -> None:
        await asyncio.sleep(0)
        self._col._write_many(docs)

    async def _read(self, key: str) -> vd.Document:
        await asyncio.sleep(0)
        return self._col._read(key)

    async def _drop(self, key: str) -> None:
        self._col._drop(key)

    async def _keys(self) -> AsyncIterator[str]:
        for key in list(self._col._keys()):
            yield key

    async def _count(self) -> int:
        return self._col._count()

    async def _query(self, vector: list[float], *, limit: int, filter: Any, **kw: Any) -> list:
        return list(self._col._query(vector, limit=limit, filter=filter))


class _AsyncServerClient(vd.AsyncAbstractClient):
    def __init__(self, *, embedder: Any = None, space: str = "default", **config: Any) -> None:
        super().__init__(embedder=embedder, **config)
        self._space = _SERVER.setdefault(space, {})
        self.loop = asyncio.get_running_loop()
        self.closed = False
        _NATIVE_CLIENTS.append(self)

    async def create_collection(
        self, name: str, *, dimension: int | None = None, metric: str = "cosine", **kw: Any
    ) -> _AsyncServerCollection:
        if name in self._space:
            raise ValueError(f"{name} exists")
        self._space[name] = MemoryCollection(name, dimension=dimension, metric=metric)
        return _AsyncServerCollection(self._space[name])

    async def get_collection(self, name: str) -> _AsyncServerCollection:
        return _AsyncServerCollection(self._space[name])

    async def delete_collection(self, name: str) -> None:
        del self._space[name]

    async def list_collections(self) -> AsyncIterator[str]:
        for name in list(self._space):
            yield name

    async def close(self) -> None:
        self.closed = True


async def _connect_server(**kwargs: Any) -> _AsyncServerClient:
    return _AsyncServerClient(**kwargs)


vd.register_async_backend("vdtest_server", _connect_server)


@vd.register_backend("vdtest_fallback")
class _FallbackClient(MemoryClient):
    pass


async def _connect_fallback(**kwargs: Any) -> Any:
    return vd.AsyncClientWrapper(vd.connect("vdtest_fallback", **kwargs))  # a separate store


vd.register_async_backend("vdtest_fallback", _connect_fallback)


def test_native_async_backend_gets_one_client_per_loop() -> None:
    space = uuid.uuid4().hex
    store = VDVectorStore(TableEmbeddings(), backend="vdtest_server", space=space, metric="dot")
    before = len(_NATIVE_CLIENTS)

    async def step(i: int) -> list[str | None]:
        await store.aadd_texts([f"text {i}"], ids=[f"id{i}"])
        return _ids(await store.aget_by_ids([f"id{j}" for j in range(i + 1)]))

    for i in range(3):
        assert asyncio.run(step(i)) == [f"id{j}" for j in range(i + 1)]
    clients = _NATIVE_CLIENTS[before:]
    assert len(clients) == 3 and len({id(c.loop) for c in clients}) == 3
    # the sync side talks to the same "server"
    assert store.count() == 3
    store.add_texts(["apple"], ids=["sync"])
    assert asyncio.run(store.acount()) == 4
    assert store.engine.metric == "dot"

    async def close() -> None:
        await store.aadd_texts(["x"])
        await store.aclose()

    asyncio.run(close())
    assert _NATIVE_CLIENTS[-1].closed
    with pytest.raises(StoreClosedError):
        store.count()


async def test_native_async_concurrent_first_writes() -> None:
    store = VDVectorStore(TableEmbeddings(), backend="vdtest_server", space=uuid.uuid4().hex)
    await asyncio.gather(*(store.aadd_texts([f"t{i}"]) for i in range(10)))
    assert await store.acount() == store.count() == 10
    await store.adrop()
    assert store.count() == 0
    await store.aclose()


async def test_existing_collection_is_opened_with_its_metric_and_dimension() -> None:
    space = uuid.uuid4().hex
    first = VDVectorStore(TableEmbeddings(), backend="vdtest_server", space=space, metric="l2")
    first.add_texts(FRUIT, ids=FRUIT_IDS)
    second = VDVectorStore(TableEmbeddings(), backend="vdtest_server", space=space)
    assert _ids(await second.asimilarity_search("query", k=1)) == ["a"]
    assert second.engine.metric == "l2" and second.engine.dimension == 3
    with pytest.raises(InvalidInputError, match="dimension"):
        await second.aadd_embeddings(["x"], [[1.0, 2.0]])
    first.close()
    await second.aclose()


async def test_non_native_factory_falls_back_to_the_shared_client() -> None:
    store = VDVectorStore(TableEmbeddings(), backend="vdtest_fallback")
    store.add_texts(["apple"], ids=["a"])
    assert _ids(await store.aget_by_ids(["a"])) == ["a"]  # not a separate, empty store
    await store.aadd_texts(["banana"], ids=["b"])
    assert store.count() == 2
    await store.aclose()


@vd.register_backend("vdtest_broken_async")
class _BrokenAsyncClient(MemoryClient):
    pass


async def _connect_broken(**kwargs: Any) -> Any:
    raise RuntimeError("storage folder is locked by another client")


vd.register_async_backend("vdtest_broken_async", _connect_broken)


async def test_failing_native_factory_falls_back_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = VDVectorStore(TableEmbeddings(), backend="vdtest_broken_async")
    store.add_texts(["apple"], ids=["a"])
    with caplog.at_level("WARNING", logger="vd_integrations.vd.engine"):
        assert _ids(await store.aget_by_ids(["a"])) == ["a"]
    assert "locked" in caplog.text
    await store.aclose()


def test_setup_uses_a_collection_created_concurrently() -> None:
    engine = VdEngine(collection_name="race", metric="cosine")
    calls: list[str] = []

    def perform(step: Any) -> Any:
        if isinstance(step, Exclusive):
            return drive(step.op, perform)
        calls.append(step.method)
        if step.method == "open_collection" and calls.count("open_collection") == 1:
            raise KeyError("race")
        if step.method == "create_collection":
            raise ValueError("already exists")  # another client won the race
        return (3, "l2")

    assert drive(engine.ready(3), perform) is True
    assert calls == ["open_collection", "create_collection", "open_collection"]
    assert engine.dimension == 3 and engine.metric == "l2"
    assert drive(engine.ready(), perform) is True and len(calls) == 3  # cached: no more steps


async def test_concurrent_writes_during_scans_do_not_race(store: VDVectorStore) -> None:
    # vd's memory backend iterates its dict in Python during a filtered search; the
    # wrapper runs calls on worker threads, so unserialized writes of new keys would
    # raise "dictionary changed size during iteration".
    n = 400
    await store.aadd_embeddings(
        [f"seed {i}" for i in range(n)],
        [[1.0, float(i % 7), float(i % 5)] for i in range(n)],
        [{"i": i} for i in range(n)],
    )

    async def writer(w: int) -> None:
        for j in range(10):
            await store.aadd_embeddings([f"w{w} {j}"], [[0.0, 1.0, float(j)]], [{"i": j}])

    async def reader() -> None:
        for _ in range(10):
            await store.asimilarity_search_by_vector(
                [1.0, 0.0, 0.0], k=3, filter={"i": {"$gte": 5}}
            )

    await asyncio.gather(*(writer(w) for w in range(8)), *(reader() for _ in range(8)))
    assert await store.acount() == n + 80


@pytest.mark.skipif("faiss" not in vd.list_backends(), reason="faiss is not installed")
async def test_faiss_backend_smoke() -> None:
    store = VDVectorStore(TableEmbeddings(), backend="faiss", collection_name=_name())
    store.add_texts(FRUIT, FRUIT_META, ids=FRUIT_IDS)
    assert _ids(await store.asimilarity_search("query", k=2)) == ["a", "ap"]
    hits = store.similarity_search("query", k=5, filter={"n": {"$gte": 4}})
    assert sorted(_ids(hits)) == ["c", "d"]  # a tie: both orthogonal to the query
    mmr = await store.amax_marginal_relevance_search("query", k=2, fetch_k=3, lambda_mult=0.25)
    assert _ids(mmr) == ["a", "b"]
    await store.adelete(filter={"kind": "dessert"})
    assert store.count() == 4 and await store.aget_by_ids(["ap", "a"]) == [
        Document(id="a", page_content="apple", metadata=FRUIT_META[0])
    ]
    store.close()

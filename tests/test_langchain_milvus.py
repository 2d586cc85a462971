"""langchain_vd.Milvus on a real Milvus Lite server: contract, concurrency, loops, bad input."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_vd import Milvus
from tests.loop_watch import LoopWatch
from tests.raw_clients import raw_client_kwargs
from vd_integrations.core.errors import (
    InvalidFilterExpressionError,
    InvalidInputError,
    StoreClosedError,
)


class AxisEmbeddings(Embeddings):
    """Deterministic, meaningful embeddings: each known word is one axis (unit vectors)."""

    vocabulary = ("apple", "banana", "cherry", "dog", "eagle", "fish", "goat", "horse")

    def _embed(self, text: str) -> list[float]:
        vector = np.zeros(len(self.vocabulary))
        for word in text.lower().split():
            if word in self.vocabulary:
                vector[self.vocabulary.index(word)] += 1.0
        if not vector.any():
            vector[:] = 1.0
        return (vector / np.linalg.norm(vector)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def make_store(uri: str, name: str, embedding: Embeddings | None = None, **kwargs: Any) -> Milvus:
    return Milvus(
        embedding if embedding is not None else AxisEmbeddings(),
        collection_name=name,
        connection_args={"uri": uri},
        **kwargs,
    )


@pytest.fixture
def store(milvus_uri: str, collection_name: str) -> Iterator[Milvus]:
    store = make_store(milvus_uri, collection_name, index_params={"metric_type": "COSINE"})
    yield store
    store.close()


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest, store: Milvus) -> Callable[..., Any]:
    """Call a store method by its sync name, in sync mode or via its async twin."""

    def invoke(name: str, *args: Any, **kwargs: Any) -> Any:
        if request.param == "sync":
            return getattr(store, name)(*args, **kwargs)
        return asyncio.run(getattr(store, "a" + name)(*args, **kwargs))

    invoke.mode = request.param  # type: ignore[attr-defined]
    return invoke


# ------------------------------------------------------------------------------------------------
# LangChain's standard suite
# ------------------------------------------------------------------------------------------------


class TestMilvusStandardSuite(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, milvus_uri: str, collection_name: str) -> Iterator[Milvus]:
        store = make_store(milvus_uri, collection_name, self.get_embeddings())
        try:
            yield store
        finally:
            store.drop()
            store.close()


# ------------------------------------------------------------------------------------------------
# Every method, sync and async
# ------------------------------------------------------------------------------------------------

FRUIT = ["apple", "banana", "cherry", "apple banana", "dog"]
FRUIT_META = [
    {"kind": "fruit", "n": 1},
    {"kind": "fruit", "n": 2},
    {"kind": "fruit", "n": 3},
    {"kind": "mix", "n": 4, "tags": ["a", "b"]},
    {"kind": "animal", "n": 5, "nested": {"x": [1, 2.5, None]}},
]
FRUIT_IDS = ["a", "b", "c", "ab", "d"]


def test_add_and_search_roundtrip(call: Callable[..., Any]) -> None:
    assert call("similarity_search", "apple", k=2) == []
    assert call("add_texts", FRUIT, FRUIT_META, ids=FRUIT_IDS) == FRUIT_IDS
    docs = call("similarity_search", "apple", k=2)
    assert [d.id for d in docs] == ["a", "ab"]
    assert docs[0] == Document(page_content="apple", metadata=FRUIT_META[0], id="a")
    # metadata comes back exactly as stored, nested values included
    (dog,) = call("get_by_ids", ["d"])
    assert dog.metadata == FRUIT_META[4]

    scored = call("similarity_search_with_score", "banana", k=5)
    assert scored[0][0].id == "b" and scored[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)

    vector = AxisEmbeddings().embed_query("cherry")
    assert call("similarity_search_by_vector", vector, k=1)[0].id == "c"
    by_vec = call("similarity_search_with_score_by_vector", vector, k=2)
    assert by_vec[0][0].id == "c"

    relevance = call("similarity_search_with_relevance_scores", "dog", k=5)
    assert relevance[0][0].id == "d"
    assert all(0.0 <= s <= 1.0 for _, s in relevance)


def test_filters_string_and_dict(call: Callable[..., Any]) -> None:
    call("add_texts", FRUIT, FRUIT_META, ids=FRUIT_IDS)
    by_expr = call("similarity_search", "apple", k=5, expr="kind == 'fruit'")
    by_dict = call("similarity_search", "apple", k=5, filter={"kind": "fruit"})
    assert {d.id for d in by_expr} == {d.id for d in by_dict} == {"a", "b", "c"}
    complex_filter = {"$or": [{"n": {"$gte": 5}}, {"tags": {"$in": ["b"]}}]}
    assert {d.id for d in call("similarity_search", "apple", k=5, filter=complex_filter)} == {
        "ab",
        "d",
    }
    assert call("similarity_search", "apple", k=5, filter={"$not": {"n": {"$lt": 5}}})[0].id == "d"
    found = call("search_by_metadata", "n >= 4", fields=["kind"], limit=10)
    assert sorted((d.id, d.metadata) for d in found) == [
        ("ab", {"kind": "mix"}),
        ("d", {"kind": "animal"}),
    ]
    assert sorted(call("get_pks", "kind == 'fruit'")) == ["a", "b", "c"]
    assert sorted(call("get_pks", {"n": {"$in": [1, 5]}})) == ["a", "d"]


def test_mmr_prefers_diversity(call: Callable[..., Any]) -> None:
    texts = ["apple", "apple", "apple banana", "banana"]
    call("add_texts", texts, ids=["1", "2", "3", "4"])
    plain = call("similarity_search", "apple banana", k=2)
    assert plain[0].id == "3"
    diverse = call("max_marginal_relevance_search", "apple", k=2, fetch_k=4, lambda_mult=0.1)
    # the second pick is not the duplicate "apple"
    assert diverse[0].page_content == "apple"
    assert diverse[1].page_content != "apple"
    vector = AxisEmbeddings().embed_query("apple")
    by_vector = call("max_marginal_relevance_search_by_vector", vector, k=2, lambda_mult=0.1)
    assert [d.id for d in by_vector] == [d.id for d in diverse]


def test_delete_upsert_and_documents(call: Callable[..., Any]) -> None:
    ids = call(
        "add_documents",
        [Document("apple", id="x1", metadata={"v": 1}), Document("banana", metadata={"v": 2})],
    )
    assert ids[0] == "x1" and len(ids) == 2 and isinstance(ids[1], str)
    upserted = call("upsert", documents=[Document("cherry", id="x1", metadata={"v": 10})])
    assert upserted == ["x1"]
    (doc,) = call("get_by_ids", ["x1"])
    assert doc.page_content == "cherry" and doc.metadata == {"v": 10}
    assert call("count") == 2
    call("delete", ids=["x1", "missing"])
    assert call("count") == 1
    call("delete", expr="v == 2")
    assert call("count") == 0
    call(
        "add_embeddings",
        ["e1", "e2"],
        [[1.0] + [0.0] * 7, [0.0, 1.0] + [0.0] * 6],
        ids=["e1", "e2"],
    )
    assert call("similarity_search_by_vector", [1.0] + [0.0] * 7, k=1)[0].id == "e1"
    call("delete", filter={"v": {"$exists": False}})
    assert call("count") == 0


def test_engine_add_takes_vectors_from_a_generator(store: Milvus) -> None:
    """``MilvusEngine.add`` types ``vectors`` as any iterable: with a list of texts, a
    generator of vectors is read, not ``len()``-ed (a TypeError before; found by mypy)."""
    vectors = ([1.0 if i == j else 0.0 for i in range(8)] for j in range(2))
    engine = store.engine
    ids = engine.run(engine.add(["apple", "banana"], vectors=vectors, ids=["g1", "g2"]))
    assert ids == ["g1", "g2"]
    assert store.similarity_search_by_vector([0.0, 1.0] + [0.0] * 6, k=1)[0].id == "g2"


def test_from_texts_sync_and_async(milvus_uri: str, collection_name: str) -> None:
    args = {"connection_args": {"uri": milvus_uri}, "index_params": {"metric_type": "IP"}}
    store = Milvus.from_texts(
        ["apple", "dog"], AxisEmbeddings(), [{"i": 1}, {"i": 2}], collection_name, **args
    )
    assert store.similarity_search("dog", k=1)[0].metadata == {"i": 2}

    async def build() -> Milvus:
        return await Milvus.afrom_texts(
            ["fish"], AxisEmbeddings(), collection_name=collection_name, drop_old=True, **args
        )

    fresh = asyncio.run(build())
    assert [d.page_content for d in fresh.similarity_search("dog", k=5)] == ["fish"]
    from_docs = asyncio.run(
        Milvus.afrom_documents(
            [Document("goat", id="g")], AxisEmbeddings(), collection_name=collection_name, **args
        )
    )
    assert from_docs.get_by_ids(["g"])[0].page_content == "goat"
    for s in (store, fresh, from_docs):
        s.close()


@pytest.mark.parametrize("search_type", ["similarity", "mmr", "similarity_score_threshold"])
async def test_retrievers_sync_and_async(store: Milvus, search_type: str) -> None:
    await store.aadd_texts(FRUIT, FRUIT_META, ids=FRUIT_IDS)
    kwargs: dict[str, Any] = {"k": 2}
    if search_type == "similarity_score_threshold":
        kwargs["score_threshold"] = 0.8
    retriever = store.as_retriever(search_type=search_type, search_kwargs=kwargs)
    async_docs = await retriever.ainvoke("apple")
    sync_docs = retriever.invoke("apple")
    assert [d.id for d in async_docs] == [d.id for d in sync_docs]
    assert async_docs[0].id == "a"
    filtered = store.as_retriever(search_kwargs={"k": 5, "filter": {"kind": "animal"}})
    assert [d.id for d in await filtered.ainvoke("apple")] == ["d"]


def test_progress_bar_and_batches(store: Milvus, capsys: pytest.CaptureFixture[str]) -> None:
    texts = [f"apple {i}" for i in range(250)]
    ids = store.add_texts(texts, batch_size=100, show_progress=True)
    assert len(ids) == 250 and store.count() == 250
    assert "250/250" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# Concurrency and event loops
# ------------------------------------------------------------------------------------------------


def test_tutorial_pattern_100_concurrent_first_writes(
    milvus_uri: str, collection_name: str
) -> None:
    """The tutorial's crash case: concurrent aadd_documents on a fresh auto_id store."""
    store = make_store(milvus_uri, collection_name, auto_id=True, drop_old=True)

    async def add_all() -> list[list[str]]:
        docs = [
            Document(f"doc {i}", metadata={"i": i, "category": f"cat_{i % 5}"}) for i in range(100)
        ]
        return await asyncio.gather(*(store.aadd_documents([doc]) for doc in docs))

    results = asyncio.run(add_all())
    assert all(len(r) == 1 for r in results)
    assert len({r[0] for r in results}) == 100
    assert store.count() == 100
    found = store.search_by_metadata("category == 'cat_1'", limit=100)
    assert sorted(d.metadata["i"] for d in found) == list(range(1, 100, 5))
    store.close()


def test_one_store_across_20_asyncio_runs(store: Milvus) -> None:
    for i in range(20):
        asyncio.run(store.aadd_texts([f"apple {i}"], ids=[str(i)]))
        assert len(asyncio.run(store.asimilarity_search("apple", k=30))) == i + 1
    assert store.count() == 20


def test_threads_with_their_own_loops(store: Milvus) -> None:
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for j in range(5):
                asyncio.run(store.aadd_texts([f"dog {t} {j}"], ids=[f"{t}-{j}"]))
            asyncio.run(store.asimilarity_search("dog", k=3))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count() == 30


NOTEBOOK_SCRIPT = """
import asyncio, sys
import nest_asyncio
from tests.test_langchain_milvus import make_store

store = make_store(sys.argv[1], sys.argv[2])
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
nest_asyncio.apply(loop)  # what a Jupyter kernel with nest_asyncio does


async def cell():
    # a cell calling asyncio.run while the kernel's loop is running
    asyncio.run(store.aadd_texts(["apple", "dog"], ids=["1", "2"]))
    docs = loop.run_until_complete(store.asimilarity_search("dog", k=1))
    return len(docs) + await store.acount()


assert loop.run_until_complete(cell()) == 3
assert loop.run_until_complete(store.asimilarity_search("apple", k=1))[0].id == "1"
for _ in range(3):  # later cells
    assert asyncio.run(store.acount()) == 2
print("notebook ok")
"""


def test_nest_asyncio_notebook_pattern(milvus_uri: str, collection_name: str) -> None:
    """Jupyter with nest_asyncio, in its own process: nest_asyncio patches asyncio for good."""
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_SCRIPT, milvus_uri, collection_name],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "notebook ok" in result.stdout


async def test_async_paths_never_block_the_loop(
    store: Milvus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sync client call on the loop (it is forbidden), and a heartbeat keeps ticking."""

    class Forbidden:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"sync MilvusClient.{name} called from an async method")

    monkeypatch.setattr(type(store.engine), "client", property(lambda self: Forbidden()))
    async with LoopWatch() as watch:
        await asyncio.gather(*(store.aadd_texts([f"apple {i}"], ids=[str(i)]) for i in range(50)))
        await asyncio.gather(*(store.asimilarity_search("apple", k=3) for _ in range(50)))
        await store.amax_marginal_relevance_search("apple", k=2)
        await store.adelete(ids=["1"])
        await store.aupsert(documents=[Document("dog", id="2")])
        assert len(await store.aget_by_ids(["2", "3"])) == 2
    assert watch.longest_block < 0.5, (
        f"event loop blocked for {watch.longest_block:.3f}s (longest gap {watch.longest_gap:.3f}s)"
    )


# ------------------------------------------------------------------------------------------------
# Compatibility with collections written by langchain-milvus
# ------------------------------------------------------------------------------------------------


def test_opens_collections_made_by_langchain_milvus(milvus_uri: str, collection_name: str) -> None:
    langchain_milvus = pytest.importorskip("langchain_milvus")
    theirs = langchain_milvus.Milvus.from_texts(
        ["apple", "dog"],
        AxisEmbeddings(),
        metadatas=[{"kind": "fruit", "n": 1}, {"kind": "animal", "n": 2}],
        collection_name=collection_name,
        connection_args=raw_client_kwargs(milvus_uri),  # no idle pings: see raw_clients
        ids=["p1", "p2"],
    )
    ours = make_store(milvus_uri, collection_name)
    docs = ours.similarity_search("dog", k=2)
    assert docs[0] == Document(page_content="dog", metadata={"kind": "animal", "n": 2}, id="p2")
    assert [d.id for d in ours.similarity_search("dog", k=2, filter={"kind": "fruit"})] == ["p1"]
    # their schema has static metadata columns and no dynamic field: a known key can be written
    ours.add_texts(["cherry"], [{"kind": "fruit", "n": 3}], ids=["p3"])
    assert {d.page_content for d in theirs.similarity_search("cherry", k=3)} >= {"cherry"}
    with pytest.raises(InvalidInputError, match="no dynamic field"):
        ours.add_texts(["x"], [{"unknown": 1}], ids=["p4"])
    ours.close()
    theirs.client.close()


# ------------------------------------------------------------------------------------------------
# Bad input: a clear error, and nothing already stored is lost
# ------------------------------------------------------------------------------------------------


class Unstorable:
    pass


BAD_ADDS: list[tuple[str, dict[str, Any], str]] = [
    ("texts/metadatas length", {"texts": ["a", "b"], "metadatas": [{}]}, "lengths differ"),
    ("texts/ids length", {"texts": ["a", "b"], "ids": ["1"]}, "lengths differ"),
    ("duplicate ids", {"texts": ["a", "b"], "ids": ["1", "1"]}, "Duplicate id"),
    ("int id", {"texts": ["a"], "ids": [1]}, "must be strings"),
    ("empty id", {"texts": ["a"], "ids": [""]}, "non-empty"),
    ("set metadata", {"texts": ["a"], "metadatas": [{"s": {1, 2}}]}, "cannot store"),
    ("object metadata", {"texts": ["a"], "metadatas": [{"o": Unstorable()}]}, "cannot store"),
    ("nan metadata", {"texts": ["a"], "metadatas": [{"f": math.nan}]}, "cannot store"),
    ("reserved key", {"texts": ["a"], "metadatas": [{"pk": 1}]}, "reserved key"),
    ("non-dict metadata", {"texts": ["a"], "metadatas": ["x"]}, "must be a dict"),
    ("non-str text", {"texts": [b"bytes"]}, "must be a str"),
    ("huge text", {"texts": ["x" * 70_000]}, "max_length"),
]


@pytest.mark.parametrize(("case", "kwargs", "message"), BAD_ADDS, ids=[c[0] for c in BAD_ADDS])
def test_bad_add_input(
    call: Callable[..., Any], case: str, kwargs: dict[str, Any], message: str
) -> None:
    call("add_texts", ["apple"], ids=["keep"])
    with pytest.raises(InvalidInputError, match=message):
        call("add_texts", **kwargs)
    assert call("count") == 1
    assert call("get_by_ids", ["keep"])[0].page_content == "apple"


BAD_CALLS: list[tuple[str, str, tuple[Any, ...], dict[str, Any], type[Exception], str]] = [
    ("wrong dim", "add_embeddings", (["a"], [[1.0, 2.0]]), {}, InvalidInputError, "dimension"),
    ("nan vector", "add_embeddings", (["a"], [[math.nan] * 8]), {}, InvalidInputError, "NaN"),
    ("emb length", "add_embeddings", (["a", "b"], [[0.0] * 8]), {}, InvalidInputError, "lengths"),
    ("k zero", "similarity_search", ("apple",), {"k": 0}, InvalidInputError, "positive"),
    (
        "k negative",
        "max_marginal_relevance_search",
        ("a",),
        {"k": -1},
        InvalidInputError,
        "positive",
    ),
    ("query dim", "similarity_search_by_vector", ([1.0],), {}, InvalidInputError, "dimension"),
    (
        "unknown op",
        "similarity_search",
        ("a",),
        {"filter": {"n": {"$regex": "x"}}},
        ValueError,
        "regex",
    ),
    ("bad logical", "similarity_search", ("a",), {"filter": {"$xor": []}}, ValueError, "xor"),
    (
        "malformed expr",
        "similarity_search",
        ("a",),
        {"expr": "n = = 1"},
        InvalidFilterExpressionError,
        "filter",
    ),
    ("malformed delete", "delete", (), {"expr": "n >> 1"}, InvalidFilterExpressionError, "filter"),
    ("delete nothing", "delete", (), {}, InvalidInputError, "ids or a filter"),
    (
        "expr and filter",
        "similarity_search",
        ("a",),
        {"expr": "n == 1", "filter": {"n": 1}},
        InvalidInputError,
        "not both",
    ),
    (
        "lambda",
        "max_marginal_relevance_search",
        ("a",),
        {"lambda_mult": 2},
        InvalidInputError,
        "lambda",
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "args", "kwargs", "error", "message"),
    BAD_CALLS,
    ids=[c[0] for c in BAD_CALLS],
)
def test_bad_call_input(
    call: Callable[..., Any],
    case: str,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    call("add_texts", ["apple"], [{"n": 1}], ids=["keep"])
    with pytest.raises(error, match=message):
        call(method, *args, **kwargs)
    assert call("count") == 1


def test_store_without_embedding_cannot_infer_dimension(
    milvus_uri: str, collection_name: str
) -> None:
    store = Milvus(None, collection_name=collection_name, connection_args={"uri": milvus_uri})
    with pytest.raises(InvalidInputError, match="no embedding function"):
        store.add_texts(["apple"])
    assert store.similarity_search_by_vector([1.0, 0.0], k=1) == []  # nothing exists yet
    assert store.add_embeddings(["apple"], [[1.0, 0.0]], ids=["1"]) == ["1"]
    assert store.similarity_search_by_vector([1.0, 0.0], k=1)[0].id == "1"
    store.close()


def test_closed_store_and_secrets(milvus_uri: str, collection_name: str) -> None:
    store = Milvus(
        AxisEmbeddings(),
        collection_name=collection_name,
        connection_args={"uri": milvus_uri, "token": "root:SuperSecret123"},
    )
    assert "SuperSecret123" not in repr(store) and "SuperSecret123" not in str(store.engine)
    store.close()
    with pytest.raises(StoreClosedError, match="closed"):
        store.similarity_search("apple")
    with pytest.raises(StoreClosedError):
        asyncio.run(store.asimilarity_search("apple"))


async def test_async_context_manager(milvus_uri: str, collection_name: str) -> None:
    async with make_store(milvus_uri, collection_name) as store:
        await store.aadd_texts(["apple"], ids=["1"])
        assert (await store.aget_by_ids(["1"]))[0].page_content == "apple"
        await store.adrop()
        assert await store.acount() == 0
    with pytest.raises(StoreClosedError):
        await store.acount()

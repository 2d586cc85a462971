"""The native async vd backend for Milvus, against a real Milvus Lite server."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import vd

from tests.raw_clients import raw_client
from vd_integrations.milvus import vd_backend, vd_collection
from vd_integrations.milvus.collection import CollectionSetup
from vd_integrations.milvus.engine import MilvusEngine
from vd_integrations.milvus.vd_backend import MilvusAsyncClient, MilvusAsyncCollection

DOCS: list[tuple[str, list[float], str, dict[str, Any]]] = [
    ("a", [1.0, 0.0, 0.0, 0.0], "apple pie recipe", {"year": 2020, "cat": "tech", "tags": ["x"]}),
    ("b", [0.0, 1.0, 0.0, 0.0], "banana bread", {"year": 2021, "cat": "sci", 'we"ird k': 1}),
    ("c", [0.0, 0.0, 1.0, 0.0], "cherry tart", {"year": 2022, "cat": "tech", "draft": True}),
    ("d", [0.0, 0.0, 0.0, 1.0], "dog food", {"cat": "art", "tags": ["x", "y"]}),
    ("e", [1.0, 1.0, 0.0, 0.0], "eagle eyes", {"year": 2023, "tags": ["y"]}),
    ("f", [1.0, 0.0, 1.0, 0.0], "fish soup", {}),
]


def documents() -> list[vd.Document]:
    return [vd.Document(id=i, text=t, vector=v, metadata=dict(m)) for i, v, t, m in DOCS]


def embed(text: str) -> list[float]:
    """A deterministic toy embedder: letter counts of a, b, c, d."""
    return [float(text.count(ch)) + 0.1 for ch in "abcd"]


async def collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


@pytest.fixture
async def client(milvus_uri: str) -> AsyncIterator[MilvusAsyncClient]:
    client = await vd.connect_async("milvus", uri=milvus_uri)
    yield client
    await client.close()


@pytest.fixture
def sync_client(milvus_uri: str) -> Iterator[Any]:
    client = vd.connect("milvus", uri=milvus_uri)
    yield client
    client.close()


@pytest.fixture
async def filled(client: MilvusAsyncClient, collection_name: str) -> MilvusAsyncCollection:
    col = await client.create_collection(collection_name, dimension=4)
    await col.add_documents(documents())
    return col


# ----- registration -----------------------------------------------------------------------


async def test_connect_async_returns_native_client(milvus_uri: str) -> None:
    assert "milvus" in vd.list_async_backends()
    client = await vd.connect_async("milvus", uri=milvus_uri)
    try:
        assert isinstance(client, MilvusAsyncClient)
        assert client.native_async is True
        assert client.backend_name == "milvus"
        assert isinstance(client, vd.AsyncClient)
        col = await client.get_or_create_collection("t_native", dimension=2)
        assert col.native_async is True
        assert isinstance(col, vd.AsyncCollection)
        assert isinstance(col.native, MilvusEngine)
        assert client.client is not None  # the running loop's AsyncMilvusClient
        await client.delete_collection("t_native")
    finally:
        await client.close()
    # native=False still gives vd's to_thread wrapper.
    wrapped = await vd.connect_async("milvus", native=False, uri=milvus_uri)
    assert wrapped.native_async is False
    await wrapped.close()


# ----- the AsyncCollection contract --------------------------------------------------------


async def test_collection_contract(client: MilvusAsyncClient, collection_name: str) -> None:
    col = await client.create_collection(collection_name)  # created by the first write
    assert await col.count() == 0
    assert await collect(col.keys()) == []
    assert await collect(col.search([1.0, 0.0], limit=3)) == []
    with pytest.raises(KeyError):
        await col.get("nope")

    await col.set("a", vd.Document(id="a", text="alpha", vector=[1.0, 0.0], metadata={"k": 1}))
    await col.set("b", vd.Document(id="ignored", text="beta", vector=[0.0, 1.0]))
    got = await col.get("a")
    assert (got.id, got.text, got.metadata) == ("a", "alpha", {"k": 1})
    assert got.vector == pytest.approx([1.0, 0.0])
    assert (await col.get("b")).id == "b"
    assert sorted(await collect(col.keys())) == ["a", "b"]
    assert await col.count() == 2

    # set replaces, upsert replaces
    await col.set("a", vd.Document(id="a", text="alpha2", vector=[1.0, 0.1], metadata={"k": 2}))
    await col.upsert(vd.Document(id="b", text="beta2", vector=[0.1, 1.0], metadata={"n": None}))
    assert (await col.get("a")).text == "alpha2"
    assert (await col.get("b")).metadata == {"n": None}
    assert await col.count() == 2

    # add_documents: batches, auto ids, duplicates within a batch (last wins)
    await col.add_documents(
        [
            vd.Document(id="c", text="gamma", vector=[0.5, 0.5]),
            vd.Document(id="d", text="delta", vector=[0.2, 0.8], metadata={"nested": {"x": [1]}}),
            vd.Document(id="c", text="gamma2", vector=[0.6, 0.4]),
            vd.Document(id="", text="auto", vector=[0.3, 0.3]),
        ],
        batch_size=3,
    )
    keys = await collect(col.keys())
    assert len(keys) == len(set(keys)) == 5 == await col.count()
    assert (await col.get("c")).text == "gamma2"
    assert (await col.get("d")).metadata == {"nested": {"x": [1]}}

    hits = await collect(col.search([1.0, 0.0], limit=2))
    assert [h["id"] for h in hits] == ["a", "c"]
    assert set(hits[0]) == {"id", "text", "score", "metadata"}
    assert hits[0]["metadata"] == {"k": 2}
    ids = await collect(col.search([1.0, 0.0], limit=2, egress=lambda h: h["id"]))
    assert ids == ["a", "c"]

    await col.delete("a")
    with pytest.raises(KeyError):
        await col.get("a")
    with pytest.raises(KeyError):
        await col.delete("a")
    with pytest.raises(KeyError):
        await col.delete("never")
    assert await col.count() == 4

    with pytest.raises(ValueError, match="dimension"):
        await col.set("z", vd.Document(id="z", vector=[1.0, 2.0, 3.0]))
    with pytest.raises(vd.EmbeddingRequiredError):
        await col.set("t", "text without an embedder")
    with pytest.raises(TypeError, match="search_params"):
        await collect(col.search([1.0, 0.0], limit=1, bogus=True))
    hits = await collect(col.search([1.0, 0.0], limit=1, search_params={"params": {}}))
    assert len(hits) == 1


async def test_embedder_and_tuple_inputs(milvus_uri: str, collection_name: str) -> None:
    async with await vd.connect_async("milvus", uri=milvus_uri, embedder=embed) as client:
        col = await client.create_collection(collection_name)
        await col.set("x", "aaa")
        await col.set("y", ("bbb", {"kind": "b"}))
        await col.add_documents([("ccc", "z", {"kind": "c"}), "ddd"])
        assert await col.count() == 4
        assert (await col.get("y")).metadata == {"kind": "b"}
        assert (await col.get("z")).vector == pytest.approx(embed("ccc"))
        hits = await collect(col.search("bb", limit=1))
        assert hits[0]["id"] == "y"
        hits = await collect(col.search("cc", limit=3, filter={"kind": {"$exists": True}}))
        assert [h["id"] for h in hits][:1] == ["z"]
        assert {h["id"] for h in hits} == {"y", "z"}


async def test_keys_paginate(
    client: MilvusAsyncClient, collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vd_collection, "_KEYS_PAGE", 7)
    col = await client.create_collection(collection_name, dimension=2)
    ids = [f"k{random.random()}" for _ in range(40)]
    await col.add_documents([vd.Document(id=i, vector=[1.0, 0.5]) for i in ids], batch_size=9)
    keys = await collect(col.keys())
    assert len(keys) == 40
    assert sorted(keys) == sorted(ids)


# ----- filters: server-side, same answers as vd's memory backend ---------------------------

FILTERS: list[dict[str, Any]] = [
    {"cat": "tech"},
    {"cat": {"$eq": "sci"}},
    {"year": {"$gte": 2021}},
    {"year": {"$gt": 2020, "$lte": 2022}},
    {"cat": {"$ne": "tech"}},
    {"cat": {"$in": ["sci", "art"]}},
    {"tags": {"$in": ["x"]}},
    {"cat": {"$nin": ["tech"]}},
    {"$or": [{"cat": "sci"}, {"year": {"$gte": 2023}}]},
    {"$and": [{"year": {"$gte": 2020}}, {"year": {"$lt": 2022}}]},
    {"$not": {"cat": "tech"}},
    {"$not": {"year": {"$gte": 2021}}},
    {"draft": {"$exists": True}},
    {"year": {"$exists": False}},
    {"cat": "tech", "year": {"$lt": 2022}},
    {"$or": [{"$not": {"tags": {"$in": ["y"]}}}, {"draft": True}]},
    {'we"ird k': 1},
    {"and": {"$exists": False}},
]

# Valid vd filters that Milvus cannot express: evaluated client-side.
CLIENT_SIDE_FILTERS: list[dict[str, Any]] = [
    {"cat": None},
    {"tags": ["x", "y"]},
]


@pytest.fixture
def memory_collection() -> Any:
    col = vd.connect("memory").create_collection("m", dimension=4)
    col.add_documents(documents())
    return col


@pytest.mark.parametrize("flt", FILTERS, ids=[str(f) for f in FILTERS])
async def test_filters_server_side_match_memory(
    filled: MilvusAsyncCollection,
    memory_collection: Any,
    flt: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_client_filtering(*args: Any) -> bool:
        raise AssertionError("filter evaluated client-side")

    expected = {h["id"] for h in memory_collection.search([1.0, 1.0, 1.0, 1.0], filter=flt)}
    monkeypatch.setattr(vd_collection, "matches_filter", no_client_filtering)
    hits = await collect(filled.search([1.0, 1.0, 1.0, 1.0], limit=10, filter=flt))
    assert {h["id"] for h in hits} == expected
    # limit applies after filtering (server-side: no over-fetch needed)
    one = await collect(filled.search([0.0, 0.0, 0.0, 1.0], limit=1, filter=flt))
    assert len(one) == min(1, len(expected))


@pytest.mark.parametrize("flt", CLIENT_SIDE_FILTERS, ids=[str(f) for f in CLIENT_SIDE_FILTERS])
async def test_untranslatable_filters_fall_back(
    filled: MilvusAsyncCollection, memory_collection: Any, flt: dict[str, Any]
) -> None:
    expected = {h["id"] for h in memory_collection.search([1.0, 1.0, 1.0, 1.0], filter=flt)}
    hits = await collect(filled.search([1.0, 1.0, 1.0, 1.0], limit=10, filter=flt))
    assert {h["id"] for h in hits} == expected


async def test_invalid_filter_rejected(filled: MilvusAsyncCollection) -> None:
    with pytest.raises(vd.UnsupportedFilterError):
        await collect(filled.search([1.0, 0.0, 0.0, 0.0], filter={"year": {"$regex": "x"}}))


# ----- scores follow vd's conventions ------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
async def test_scores_match_memory_backend(
    client: MilvusAsyncClient, collection_name: str, metric: str
) -> None:
    rng = random.Random(7)
    docs = [
        vd.Document(id=f"d{i}", vector=[rng.uniform(-1, 1) for _ in range(8)]) for i in range(25)
    ]
    query = [rng.uniform(-1, 1) for _ in range(8)]
    memory = vd.connect("memory").create_collection("m", dimension=8, metric=metric)
    memory.add_documents(docs)
    col = await client.create_collection(collection_name, dimension=8, metric=metric)
    assert col.metric == metric
    await col.add_documents(docs)

    expected = list(memory.search(query, limit=10))
    got = await collect(col.search(query, limit=10))
    assert [h["id"] for h in got] == [h["id"] for h in expected]
    for mine, ref in zip(got, expected, strict=True):
        assert mine["score"] == pytest.approx(ref["score"], rel=1e-4, abs=1e-5)
    scores = [h["score"] for h in got]
    assert scores == sorted(scores, reverse=True)  # higher is better

    reopened = await client.get_collection(collection_name)
    assert reopened.metric == metric
    assert reopened.dimension == 8


# ----- interop with vd's sync milvus backend ----------------------------------------------


def _shape(uri: str, name: str) -> dict[str, Any]:
    raw = raw_client(uri)
    try:
        desc = raw.describe_collection(name)
        indexes = [raw.describe_index(name, i) for i in raw.list_indexes(name)]
    finally:
        raw.close()
    return {
        "fields": sorted(
            (
                f["name"],
                f["type"],
                sorted((f.get("params") or {}).items()),
                bool(f.get("is_primary")),
            )
            for f in desc["fields"]
        ),
        "functions": sorted(
            (f["name"], str(f["input_field_names"]), str(f["output_field_names"]))
            for f in desc.get("functions", [])
        ),
        "dynamic": desc["enable_dynamic_field"],
        "indexes": sorted((i["field_name"], i["index_type"], i["metric_type"]) for i in indexes),
    }


@pytest.mark.parametrize("lexical", [True, False])
async def test_creates_the_same_schema_as_vd(
    client: MilvusAsyncClient, sync_client: Any, milvus_uri: str, lexical: bool
) -> None:
    ours, theirs = f"ours_{lexical}_{random.randrange(10**9)}", f"theirs_{random.randrange(10**9)}"
    await client.create_collection(ours, dimension=5, metric="dot", lexical=lexical)
    sync_client.create_collection(theirs, dimension=5, metric="dot", lexical=lexical)
    try:
        assert _shape(milvus_uri, ours) == _shape(milvus_uri, theirs)
    finally:
        await client.delete_collection(ours)
        sync_client.delete_collection(theirs)


@pytest.mark.parametrize("lexical", [True, False])
async def test_sync_writes_async_reads(
    client: MilvusAsyncClient, sync_client: Any, collection_name: str, lexical: bool
) -> None:
    sync_col = sync_client.create_collection(collection_name, metric="l2", lexical=lexical)
    sync_col.add_documents(documents())

    col = await client.get_collection(collection_name)
    assert col.metric == "l2"
    assert await col.count() == len(DOCS)
    assert sorted(await collect(col.keys())) == sorted(d[0] for d in DOCS)
    doc = await col.get("c")
    assert (doc.text, doc.metadata) == ("cherry tart", {"year": 2022, "cat": "tech", "draft": True})
    hits = await collect(col.search([1.0, 0.0, 1.0, 0.0], limit=2, filter={"cat": "tech"}))
    assert [h["id"] for h in hits] == ["a", "c"] or [h["id"] for h in hits] == ["c", "a"]
    assert hits[0]["score"] == pytest.approx(1 / (1 + 1.0), rel=1e-4)  # euclidean distance 1

    # ...and the async side writes back into the sync collection
    await col.set(
        "g", vd.Document(id="g", text="goat", vector=[0.0, 0.5, 0.5, 0.0], metadata={"z": 1})
    )
    await col.delete("a")
    assert sync_col["g"].metadata == {"z": 1}
    assert "a" not in set(sync_col)
    assert len(sync_col) == len(DOCS)


async def test_async_writes_sync_reads(
    client: MilvusAsyncClient, sync_client: Any, collection_name: str
) -> None:
    col = await client.create_collection(collection_name, metric="dot")
    await col.add_documents(documents())

    sync_col = sync_client.get_collection(collection_name)
    assert sync_col.metric == "dot"
    assert sorted(sync_col) == sorted(d[0] for d in DOCS)
    assert sync_col["d"].metadata == {"cat": "art", "tags": ["x", "y"]}
    assert sync_col["d"].text == "dog food"
    hits = list(sync_col.search([0.0, 0.0, 0.0, 1.0], limit=1, filter={"cat": "art"}))
    assert hits[0]["id"] == "d"
    # the BM25 field is there: vd's sync native hybrid search works on our collection
    fused = list(sync_col.hybrid_search([0.0, 1.0, 0.0, 0.0], query_text="banana", limit=2))
    assert fused[0]["id"] == "b"

    sync_col["h"] = vd.Document(
        id="h", text="horse", vector=[0.5, 0.5, 0.5, 0.5], metadata={"n": 1}
    )
    got = await col.get("h")
    assert (got.text, got.metadata) == ("horse", {"n": 1})
    hits = await collect(col.search([1.0, 1.0, 1.0, 1.0], limit=1, filter={"n": {"$gte": 1}}))
    assert hits[0]["id"] == "h"
    assert await col.count() == len(DOCS) + 1


# ----- lifecycle, loops, concurrency --------------------------------------------------------


async def test_client_collection_management(
    client: MilvusAsyncClient, collection_name: str
) -> None:
    lazy, eager = f"{collection_name}_lazy", f"{collection_name}_eager"
    await client.create_collection(lazy)  # not in Milvus until the first write
    await client.create_collection(eager, dimension=3, metric="l2")
    names = await collect(client.list_collections())
    assert lazy in names and eager in names
    for name in (lazy, eager):
        with pytest.raises(ValueError, match="exists"):
            await client.create_collection(name)
    assert (await client.get_collection(lazy)).metric == "cosine"
    assert (await client.get_collection(eager)).metric == "l2"
    assert (await client.get_or_create_collection(eager)).dimension == 3
    with pytest.raises(KeyError):
        await client.get_collection(f"{collection_name}_missing")
    with pytest.raises(KeyError):
        await client.delete_collection(f"{collection_name}_missing")
    with pytest.raises(ValueError, match="metric"):
        await client.create_collection(f"{collection_name}_bad", metric="hamming")

    made = await client.get_or_create_collection(f"{collection_name}_new", metric="dot")
    await made.set("x", vd.Document(id="x", vector=[1.0, 2.0]))
    assert (await client.get_collection(f"{collection_name}_new")).metric == "dot"

    for name in (lazy, eager, f"{collection_name}_new"):
        await client.delete_collection(name)
    names = await collect(client.list_collections())
    assert not {lazy, eager, f"{collection_name}_new"} & set(names)
    # a deleted collection can be created again, with another metric
    again = await client.create_collection(eager, dimension=2, metric="cosine")
    await again.set("y", vd.Document(id="y", vector=[0.0, 1.0]))
    assert await again.count() == 1
    await client.delete_collection(eager)


async def test_async_with_closes(milvus_uri: str, collection_name: str) -> None:
    async with await vd.connect_async("milvus", uri=milvus_uri) as client:
        col = await client.create_collection(collection_name, dimension=2)
        await col.set("a", vd.Document(id="a", vector=[1.0, 0.0]))
    with pytest.raises(RuntimeError, match="closed"):
        await col.count()
    await client.close()  # idempotent
    async with await vd.connect_async("milvus", uri=milvus_uri) as other:
        assert await (await other.get_collection(collection_name)).count() == 1
        await other.delete_collection(collection_name)


def test_one_client_across_three_asyncio_runs(milvus_uri: str, collection_name: str) -> None:
    async def start() -> tuple[MilvusAsyncClient, MilvusAsyncCollection]:
        client = await vd.connect_async("milvus", uri=milvus_uri)
        col = await client.create_collection(collection_name)
        await col.set("a", vd.Document(id="a", vector=[1.0, 0.0]))
        return client, col

    async def more(client: MilvusAsyncClient, col: MilvusAsyncCollection) -> list[str]:
        await col.set("b", vd.Document(id="b", vector=[0.0, 1.0]))
        same = await client.get_collection(collection_name)
        return [h["id"] for h in await collect(same.search([0.0, 1.0], limit=5))]

    async def finish(client: MilvusAsyncClient, col: MilvusAsyncCollection) -> int:
        count = await col.count()
        await client.delete_collection(collection_name)
        await client.close()
        return count

    client, col = asyncio.run(start())
    assert asyncio.run(more(client, col)) == ["b", "a"]
    assert asyncio.run(finish(client, col)) == 2


async def test_concurrent_first_writes_create_once(
    client: MilvusAsyncClient, collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[int] = []
    original = CollectionSetup.create

    def spy(self: CollectionSetup, dim: int) -> Any:
        created.append(dim)
        return (yield from original(self, dim))

    monkeypatch.setattr(CollectionSetup, "create", spy)
    col = await client.create_collection(collection_name)
    await asyncio.gather(
        *(
            col.set(f"d{i}", vd.Document(id=f"d{i}", text=f"doc {i}", vector=[1.0, float(i)]))
            for i in range(50)
        )
    )
    assert created == [2]
    assert await col.count() == 50
    assert len(set(await collect(col.keys()))) == 50
    names = await collect(client.list_collections())
    assert names.count(collection_name) == 1


async def test_embedded_milvus_lite_path(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    start = vd_backend._start_milvus_lite

    def spy(connection: Any) -> None:
        threads.append(threading.current_thread())
        start(connection)

    monkeypatch.setattr(vd_backend, "_start_milvus_lite", spy)
    client = await vd.connect_async("milvus", path=str(tmp_path / "lite.db"))
    try:
        assert client.native_async is True
        # the embedded server was started off the event loop
        assert threads and threads[0] is not threading.main_thread()
        col = await client.create_collection("docs", metric="l2")
        await col.add_documents(documents())
        hits = await collect(col.search([0.0, 1.0, 0.0, 0.0], limit=1, filter={"cat": "sci"}))
        assert hits[0]["id"] == "b"
        assert hits[0]["score"] == pytest.approx(1.0, rel=1e-5)
    finally:
        await client.close()


# ----- hybrid search ------------------------------------------------------------------------


async def test_hybrid_search_async_without_bm25_field_falls_back(
    filled: MilvusAsyncCollection,
) -> None:
    # native hybrid needs a BM25 field; without one the collection fuses dense results with
    # a client-side BM25 leg, like vd's own fallback
    assert isinstance(filled, vd.SupportsHybrid)
    hits = await collect(
        vd.hybrid_search_async(filled, [0.0, 1.0, 0.0, 0.0], query_text="banana bread", limit=3)
    )
    assert hits[0]["id"] == "b"
    assert len(hits) == 3
    filtered = await collect(
        vd.hybrid_search_async(
            filled, [1.0, 0.0, 0.0, 0.0], query_text="cherry", limit=5, filter={"cat": "tech"}
        )
    )
    assert {h["id"] for h in filtered} == {"a", "c"}


async def test_text_limits_follow_lexical(client: MilvusAsyncClient, collection_name: str) -> None:
    long_text = "word " * 20_000  # 100 000 characters
    bounded = await client.create_collection(collection_name, dimension=2)
    with pytest.raises(ValueError, match="max_length"):
        await bounded.set("a", vd.Document(id="a", text=long_text, vector=[1.0, 0.0]))
    assert await bounded.count() == 0
    unbounded = await client.create_collection(f"{collection_name}_x", lexical=False)
    await unbounded.set("a", vd.Document(id="a", text=long_text, vector=[1.0, 0.0]))
    assert (await unbounded.get("a")).text == long_text
    reopened = await client.get_collection(f"{collection_name}_x")
    assert (await reopened.get("a")).text == long_text
    await client.delete_collection(f"{collection_name}_x")

"""Reliability under concurrency (issue 6): event loops, load and cancellation.

Every figure is asserted here, on the session's Milvus Lite server:

- Loops: 50 sequential ``asyncio.run`` calls on one store (both integrations); 8 threads,
  each with its own loop, on one shared store; ``nest_asyncio`` notebook cells; anyio on
  its asyncio backend; trio rejected with a clear error.
- Load: 2,000 concurrent mixed operations on one ``langchain_vd.Milvus`` store and 400 on
  one ``llama_index_vd.MilvusVectorStore``; final contents equal a model of the operations.
- Cancellation: 500 in-flight calls, 30% cancelled at random points (seeded); completed
  writes are exact, cancelled ones are whole or absent (see ``vd_integrations.core.coalesce``).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from langchain_vd import Milvus
from llama_index_vd import MilvusVectorStore
from vd_integrations.core.coalesce import Coalescer, CoalescingSettings
from vd_integrations.core.loops import UnsupportedEventLoopError

DIM = 16
Contents = dict[str, tuple[str, dict[str, Any]]]


def hvec(text: str) -> list[float]:
    """A deterministic unit vector per text: equal texts match exactly (cosine 1)."""
    raw = np.frombuffer(hashlib.sha256(text.encode()).digest()[:DIM], dtype=np.uint8)
    vector = raw.astype(float) - 127.5
    return (vector / np.linalg.norm(vector)).tolist()


class HashEmbeddings(Embeddings):
    """:func:`hvec` as LangChain embeddings, natively async (no executor hop)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [hvec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return hvec(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return hvec(text)


# ----- one interface over both integrations ----------------------------------------------------


class LangChainAdapter:
    name = "langchain"

    def __init__(self, uri: str, collection: str, **kwargs: Any) -> None:
        kwargs.setdefault("index_params", {"metric_type": "COSINE"})
        self.store = Milvus(
            HashEmbeddings(),
            collection_name=collection,
            connection_args={"uri": uri},
            consistency_level="Strong",
            **kwargs,
        )

    @property
    def engine(self) -> Any:
        return self.store.engine

    def seed(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        ids, texts, metas = zip(*items, strict=True)
        self.store.add_texts(list(texts), metadatas=list(metas), ids=list(ids))

    async def add(self, items: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
        ids, texts, metas = zip(*items, strict=True)
        return await self.store.aadd_texts(list(texts), metadatas=list(metas), ids=list(ids))

    async def upsert(self, items: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
        docs = [Document(page_content=t, metadata=m) for _, t, m in items]
        return await self.store.aupsert(ids=[i for i, _, _ in items], documents=docs)

    async def search(self, text: str, k: int, group: str) -> list[str]:
        found = await self.store.asimilarity_search(text, k=k, filter={"group": group})
        return [d.id for d in found]

    async def mmr(self, text: str, k: int, group: str) -> list[str]:
        found = await self.store.amax_marginal_relevance_search(
            text, k=k, fetch_k=10, filter=f"group == '{group}'"
        )
        return [d.id for d in found]

    async def delete(self, ids: list[str]) -> None:
        await self.store.adelete(ids=ids)

    async def delete_seed_by_filter(self, n: int) -> None:
        await self.store.adelete(expr={"group": "seed", "n": n})

    def contents(self) -> Contents:
        docs = self.store.search_by_metadata("", limit=16_384)
        return {d.id: (d.page_content, d.metadata) for d in docs}

    def close(self) -> None:
        self.store.close()


def _node(node_id: str, text: str, meta: dict[str, Any]) -> TextNode:
    node = TextNode(id_=node_id, text=text, metadata=meta, embedding=hvec(text))
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{node_id}")
    return node


def _group(group: str) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key="group", value=group)])


class LlamaAdapter:
    name = "llama_index"

    def __init__(self, uri: str, collection: str, **kwargs: Any) -> None:
        self.store = MilvusVectorStore(
            uri=uri,
            collection_name=collection,
            similarity_metric="COSINE",
            consistency_level="Strong",
            upsert_mode=True,
            **kwargs,
        )

    @property
    def engine(self) -> Any:
        return self.store.engine

    def seed(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.store.add([_node(*item) for item in items])

    async def add(self, items: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
        return await self.store.async_add([_node(*item) for item in items])

    upsert = add  # upsert_mode=True

    async def _query(self, text: str, k: int, group: str, mode: VectorStoreQueryMode) -> Any:
        query = VectorStoreQuery(
            query_embedding=hvec(text), similarity_top_k=k, filters=_group(group), mode=mode
        )
        return (await self.store.aquery(query, mmr_prefetch_k=10)).ids

    async def search(self, text: str, k: int, group: str) -> list[str]:
        return await self._query(text, k, group, VectorStoreQueryMode.DEFAULT)

    async def mmr(self, text: str, k: int, group: str) -> list[str]:
        return await self._query(text, k, group, VectorStoreQueryMode.MMR)

    async def delete(self, ids: list[str]) -> None:
        await self.store.adelete_nodes(node_ids=ids)

    async def delete_seed_by_filter(self, n: int) -> None:
        await self.store.adelete(f"doc-s{n}")  # by ref_doc_id: a delete by filter

    def contents(self) -> Contents:
        engine = self.store.engine
        records = engine.run(engine.query("", limit=16_384))
        out: Contents = {}
        for record in records:
            node = self.store._to_node(record)
            out[node.node_id] = (node.get_content(), dict(node.metadata))
        return out

    def close(self) -> None:
        self.store.close()


ADAPTERS = {"langchain": LangChainAdapter, "llama_index": LlamaAdapter}


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest, milvus_uri: str, collection_name: str) -> Iterator[Any]:
    made = ADAPTERS[request.param](milvus_uri, collection_name)
    yield made
    made.close()


def item(prefix: str, i: int, group: str = "g", **extra: Any) -> tuple[str, str, dict[str, Any]]:
    """``(id, text, metadata)`` for document ``prefix{i}``."""
    return f"{prefix}{i}", f"{prefix} text {i}", {"group": group, "n": i, **extra}


def loop_resources(engine: Any) -> int:
    """Event loops the engine holds a client for (closed loops are pruned on access)."""
    gc.collect()
    return len(engine._async)


# ------------------------------------------------------------------------------------------------
# Loops
# ------------------------------------------------------------------------------------------------


def test_one_store_across_50_asyncio_runs(adapter: Any) -> None:
    """50 sequential ``asyncio.run`` calls, each adding and then finding its own document."""
    for i in range(50):

        async def cell(i: int = i) -> list[str]:
            await adapter.add([item("r", i)])
            return await adapter.search(f"r text {i}", 1, "g")

        assert asyncio.run(cell()) == [f"r{i}"]
    assert loop_resources(adapter.engine) <= 1  # dead loops' clients are not kept
    contents = adapter.contents()
    assert sorted(contents) == sorted(f"r{i}" for i in range(50))
    assert all(contents[f"r{i}"][1]["n"] == i for i in range(50))


def test_8_threads_with_their_own_loops_share_one_store(adapter: Any) -> None:
    """8 threads each run a loop with 25 concurrent adds and 10 searches, plus a sync
    search, on one store that none of them created (the first writes race to create it)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    async def work(t: int) -> None:
        adds = [adapter.add([item(f"t{t}-", j, group=f"t{t}")]) for j in range(25)]
        await asyncio.gather(*adds)
        searches = [adapter.search(f"t{t}- text {j}", 1, f"t{t}") for j in range(10)]
        for j, found in enumerate(await asyncio.gather(*searches)):
            assert found == [f"t{t}-{j}"], (t, j, found)

    def thread(t: int) -> None:
        try:
            barrier.wait()
            asyncio.run(work(t))
            assert len(adapter.contents()) >= 25  # the sync client, shared across threads
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    contents = adapter.contents()
    assert len(contents) == 8 * 25
    for t in range(8):
        for j in range(25):
            assert contents[f"t{t}-{j}"] == (f"t{t}- text {j}", {"group": f"t{t}", "n": j})


NOTEBOOK_SCRIPT = """
import asyncio, sys
import nest_asyncio
from tests.test_concurrency import ADAPTERS, item

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
nest_asyncio.apply(loop)  # what a Jupyter kernel with nest_asyncio does

for name, collection in zip(ADAPTERS, sys.argv[2:], strict=True):
    store = ADAPTERS[name](sys.argv[1], collection)

    async def cell(c):
        # inside the kernel's running loop: sync methods, asyncio.run, run_until_complete
        store.seed([item("sync", c)])
        asyncio.run(store.add([item("run", c)]))
        adds = [store.add([item(f"g{c}-", j)]) for j in range(10)]
        loop.run_until_complete(asyncio.gather(*adds))
        found = loop.run_until_complete(store.search(f"run text {c}", 1, "g"))
        assert found == [f"run{c}"], found
        return len(store.contents())

    sizes = [loop.run_until_complete(cell(c)) for c in range(5)]
    assert sizes == [12 * (c + 1) for c in range(5)], sizes
    for c in range(3):  # top-level cells awaiting directly
        assert loop.run_until_complete(store.search(f"sync text {c}", 1, "g")) == [f"sync{c}"]
    store.close()
    print(name, "notebook ok")
"""


def test_nest_asyncio_notebook_cells(milvus_uri: str) -> None:
    """A kernel loop with nest_asyncio (own process: nest_asyncio patches asyncio for good):
    5 cells each call a sync method, ``asyncio.run`` and ``run_until_complete`` of 10
    concurrent adds; both integrations; exact sizes after every cell."""
    root = Path(__file__).resolve().parent.parent
    names = [f"nb_{name}_{random.randrange(10**9)}" for name in ADAPTERS]
    result = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_SCRIPT, milvus_uri, *names],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("notebook ok") == 2


def test_anyio_asyncio_backend(adapter: Any) -> None:
    """``anyio.run(..., backend="asyncio")``: a task group of 20 adds, then searches."""

    async def main() -> list[list[str]]:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(adapter.add, [item("any", i)])
        with anyio.fail_after(30):
            return [await adapter.search(f"any text {i}", 1, "g") for i in range(0, 20, 5)]

    assert anyio.run(main, backend="asyncio") == [[f"any{i}"] for i in range(0, 20, 5)]
    assert len(adapter.contents()) == 20


def test_trio_is_rejected_with_a_clear_error(adapter: Any) -> None:
    """Under trio every async method raises UnsupportedEventLoopError naming trio and the
    alternatives; sync methods from a trio worker thread work; the store stays usable."""
    trio = pytest.importorskip("trio")
    adapter.seed([item("seed", 0)])
    calls = {
        "add": lambda: adapter.add([item("x", 1)]),
        "search": lambda: adapter.search("seed text 0", 1, "g"),
        "mmr": lambda: adapter.mmr("seed text 0", 1, "g"),
        "delete": lambda: adapter.delete(["seed0"]),
        "aclose": lambda: adapter.store.aclose(),
    }
    seen: dict[str, str] = {}

    async def main() -> list[str]:
        for name, call in calls.items():
            with pytest.raises(UnsupportedEventLoopError) as info:
                await call()
            seen[name] = str(info.value)
        # the way out the message suggests: sync methods in a worker thread
        return await trio.to_thread.run_sync(lambda: list(adapter.contents()))

    assert trio.run(main) == ["seed0"]
    assert anyio.run(main, backend="trio") == ["seed0"]
    for message in seen.values():
        assert "trio" in message and "unsupported" in message and "asyncio" in message
    # nothing was written, nothing broke: asyncio still works on the same store
    assert asyncio.run(adapter.search("seed text 0", 1, "g")) == ["seed0"]
    assert list(adapter.contents()) == ["seed0"]


def test_async_call_without_a_running_loop_is_a_clear_error(adapter: Any) -> None:
    """Driving the coroutine by hand (no asyncio loop at all) is refused the same way."""
    coro = adapter.search("a", 1, "g")
    with pytest.raises(UnsupportedEventLoopError, match="without a running asyncio event loop"):
        coro.send(None)
    coro.close()


# ------------------------------------------------------------------------------------------------
# Load
# ------------------------------------------------------------------------------------------------


def _load_plan(rng: random.Random, counts: dict[str, int], seeds: int) -> list[tuple[str, int]]:
    ops = [(kind, i) for kind, n in counts.items() for i in range(n)]
    rng.shuffle(ops)
    assert seeds >= counts["delete"] + counts["delete_where"] + counts["upsert"]
    return ops


async def _run_load(adapter: Any, counts: dict[str, int], seeds: int, keep: int) -> Contents:
    """Run the planned mix concurrently on one loop; return the expected final contents.

    Disjoint id ranges make the outcome deterministic whatever the interleaving: seeds
    ``s0..`` are deleted by id, then by filter, then upserted, in that order of ranges;
    ``a{i}-*`` are new; ``k*`` (group ``keep``) are only read.
    """
    rng = random.Random(2000)
    keep_items = [item("k", j, group="keep") for j in range(keep)]
    seed_items = [item("s", i, group="seed") for i in range(seeds)]
    adapter.seed(keep_items + seed_items)
    expected: Contents = {i: (t, m) for i, t, m in keep_items + seed_items}
    n_del, n_where = counts["delete"], counts["delete_where"]

    def ids_of(kind: str, i: int) -> list[tuple[str, str, dict[str, Any]]]:
        if kind == "add":
            return [item(f"a{i}-", j, group="added", op=i) for j in range(1 + i % 3)]
        s = n_del + n_where + i  # upsert: a new text and metadata for seed s
        return [(f"s{s}", f"upserted {s}", {"group": "seed", "n": s, "v": 2})]

    async def run(kind: str, i: int) -> Any:
        if kind in ("add", "upsert"):
            items = ids_of(kind, i)
            method = adapter.add if kind == "add" or i % 2 else adapter.upsert
            assert await method(items) == [x[0] for x in items]
        elif kind == "delete":
            await adapter.delete([f"s{i}", f"missing{i}"] if i % 4 == 0 else [f"s{i}"])
        elif kind == "delete_where":
            await adapter.delete_seed_by_filter(n_del + i)
        else:
            j = i % keep
            found = await getattr(adapter, kind)(f"k text {j}", 3, "keep")
            assert found[0] == f"k{j}" and len(found) == 3, found
            assert all(f.startswith("k") for f in found), found

    ops = _load_plan(rng, counts, seeds)
    results = await asyncio.gather(*(run(kind, i) for kind, i in ops), return_exceptions=True)
    errors = [(op, r) for op, r in zip(ops, results, strict=True) if isinstance(r, BaseException)]
    assert errors == [], errors[:5]
    for kind, i in ops:
        if kind in ("add", "upsert"):
            expected.update({x[0]: (x[1], x[2]) for x in ids_of(kind, i)})
    for i in range(n_del + n_where):
        del expected[f"s{i}"]
    return expected


async def test_2000_concurrent_mixed_operations_langchain(
    milvus_uri: str, collection_name: str
) -> None:
    """600 adds (1-3 docs), 400 deletes by id, 100 by filter, 400 upserts, 300 searches
    and 200 MMR searches, all at once on one store: no error, exact final contents."""
    counts = {"add": 600, "delete": 400, "delete_where": 100, "upsert": 400}
    counts |= {"search": 300, "mmr": 200}
    assert sum(counts.values()) == 2000
    adapter = LangChainAdapter(milvus_uri, collection_name)
    expected = await _run_load(adapter, counts, seeds=900, keep=50)
    assert len(expected) == 50 + 400 + sum(1 + i % 3 for i in range(600))  # = 1650
    assert await adapter.store.acount() == len(expected)
    assert adapter.contents() == expected
    await adapter.store.aclose()


async def test_400_concurrent_mixed_operations_llama_index(
    milvus_uri: str, collection_name: str
) -> None:
    """The same mix, smaller, on LlamaIndex's store (deletes by filter go by ref_doc_id)."""
    counts = {"add": 120, "delete": 60, "delete_where": 20, "upsert": 80}
    counts |= {"search": 70, "mmr": 50}
    assert sum(counts.values()) == 400
    adapter = LlamaAdapter(milvus_uri, collection_name)
    expected = await _run_load(adapter, counts, seeds=200, keep=30)
    assert len(expected) == 30 + 120 + sum(1 + i % 3 for i in range(120))
    got = adapter.contents()
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in expected.items()}
    for node_id, (_, meta) in expected.items():
        assert {k: got[node_id][1].get(k) for k in meta} == meta
    await adapter.store.aclose()


# ------------------------------------------------------------------------------------------------
# Cancellation
# ------------------------------------------------------------------------------------------------


async def test_a_cancelled_caller_whose_part_was_sent_lands_whole() -> None:
    """The documented rule, deterministically: cancelled after dispatch -> written whole;
    the other callers of the batch get their results; drain() waits for the write."""
    written: list[Any] = []
    sent = asyncio.Event()

    async def run(parts: list[Any]) -> list[Any]:
        sent.set()
        await asyncio.sleep(0.05)
        written.extend(parts)
        return [p * 10 for p in parts]

    coalescer: Coalescer[Any, Any] = Coalescer(CoalescingSettings())
    tasks = [asyncio.ensure_future(coalescer.submit("k", i, run)) for i in range(5)]
    await sent.wait()
    tasks[2].cancel()
    late = asyncio.ensure_future(coalescer.submit("k", 99, run))  # queued behind the batch
    await asyncio.sleep(0)
    late.cancel()  # not sent yet: left out
    results = await asyncio.gather(*tasks, late, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    assert isinstance(results[5], asyncio.CancelledError)
    assert [r for i, r in enumerate(results[:5]) if i != 2] == [0, 10, 30, 40]
    await coalescer.drain()
    assert sorted(written) == [0, 1, 2, 3, 4]  # 2 landed whole, 99 never sent
    assert coalescer.in_flight == 0 and coalescer._keys == {}


async def test_a_batch_cancelled_by_loop_shutdown_cancels_its_callers() -> None:
    """If the batch's own task is cancelled, its callers are cancelled (not handed a
    CancelledError as an exception, which asyncio would report as never retrieved)."""
    coalescer: Coalescer[Any, Any] = Coalescer()
    started = asyncio.Event()

    async def run(parts: list[Any]) -> list[Any]:
        started.set()
        await asyncio.sleep(10)
        return parts

    caller = asyncio.ensure_future(coalescer.submit("k", 1, run))
    await started.wait()
    for task in list(coalescer._tasks):
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()
    await coalescer.drain()


async def test_cancelling_the_first_write_mid_setup_leaves_the_store_usable(
    milvus_uri: str, collection_name: str
) -> None:
    """The first write creates the collection (several RPCs under the setup lock); a caller
    cancelled at 6 points spread over that setup leaves a store that works afterwards."""
    loop = asyncio.get_running_loop()
    probe = LangChainAdapter(milvus_uri, collection_name)
    started = loop.time()
    await probe.add([item("x", 0)])
    setup = loop.time() - started
    await probe.store.aclose()
    for n in range(6):
        adapter = LangChainAdapter(milvus_uri, f"{collection_name}_{n}")
        task = asyncio.ensure_future(adapter.add([item("x", 0)]))
        await asyncio.sleep(setup * n / 6)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await adapter.add([item("y", 1)])
        assert await adapter.search("y text 1", 1, "g") == ["y1"]
        assert set(adapter.contents()) in ({"y1"}, {"x0", "y1"})
        await adapter.store.aclose()


@pytest.mark.parametrize("coalescing", [True, False], ids=["coalesced", "uncoalesced"])
async def test_cancel_30_percent_of_500_in_flight_calls(
    milvus_uri: str, collection_name: str, coalescing: bool
) -> None:
    """250 adds (1-3 docs, with ids), 100 upserts and 100 deletes (2 docs each) and 50
    searches start at random moments within 120 ms; at 150 random moments in that time a
    random call still in flight is cancelled (exactly 150 = 30%, at whatever stage it is:
    embedding, waiting to be merged, or its RPC in flight).

    Completed writes are exactly in the store; every cancelled write is whole or absent
    (never some of its documents); completed searches are right; no asyncio warning.
    """
    rng = random.Random(500)
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    settings = CoalescingSettings(window=0.002, max_batch=64) if coalescing else False
    adapter = LangChainAdapter(milvus_uri, collection_name, coalescing=settings)
    keep = [item("k", j, group="keep") for j in range(20)]
    victims = [item("d", i, group="victim") for i in range(200)]  # deleted in pairs
    olds = [item("u", i, group="old") for i in range(200)]  # upserted in pairs
    adapter.seed(keep + victims + olds)

    Items = list[tuple[str, str, dict[str, Any]]]
    ops: list[tuple[str, Items]] = []
    for i in range(250):
        ops.append(("add", [item(f"n{i}-", j, group="new", op=i) for j in range(1 + i % 3)]))
    for i in range(100):
        pair = olds[2 * i : 2 * i + 2]
        ops.append(("upsert", [(x[0], f"upserted {x[0]}", {"group": "v2", "n": i}) for x in pair]))
    for i in range(100):
        ops.append(("delete", victims[2 * i : 2 * i + 2]))
    for i in range(50):
        ops.append(("search", [keep[i % 20]]))
    rng.shuffle(ops)
    assert len(ops) == 500

    started: set[int] = set()

    async def run(index: int, kind: str, items: Items, delay: float) -> Any:
        await asyncio.sleep(delay)
        started.add(index)
        if kind == "add":
            return await adapter.add(items)
        if kind == "upsert":
            return await adapter.upsert(items)
        if kind == "delete":
            return await adapter.delete([x[0] for x in items])
        return await adapter.search(items[0][1], 1, "keep")

    tasks = [
        asyncio.ensure_future(run(i, kind, items, rng.uniform(0, 0.12)))
        for i, (kind, items) in enumerate(ops)
    ]
    doomed: set[int] = set()

    async def cancel_one(delay: float) -> None:
        await asyncio.sleep(delay)
        while not all(task.done() for task in tasks):
            live = sorted(i for i in started - doomed if not tasks[i].done())
            if live:
                index = rng.choice(live)
                doomed.add(index)
                tasks[index].cancel()
                return
            await asyncio.sleep(0)

    await asyncio.gather(*(cancel_one(rng.uniform(0, 0.12)) for _ in range(150)))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await adapter.engine._async.get().coalescer.drain()  # writes sent for cancelled callers

    contents = adapter.contents()
    stats = {"completed": 0, "cancelled": 0, "cancelled_landed": 0, "cancelled_absent": 0}
    for task, result, (kind, items) in zip(tasks, results, ops, strict=True):
        ids = [x[0] for x in items]
        present = [contents.get(i) == (text, meta) for i, text, meta in items]
        if kind == "delete":  # applied: all gone; not applied: all still there
            applied, untouched = all(i not in contents for i in ids), all(present)
        elif kind == "add":
            applied, untouched = all(present), all(i not in contents for i in ids)
        else:  # upsert of two seeds: both new versions, or both old
            applied = all(present)
            untouched = all(contents.get(i, ("",))[0] == f"u text {i[1:]}" for i in ids)
        if task.cancelled():
            assert isinstance(result, asyncio.CancelledError)
            stats["cancelled"] += 1
            if kind != "search":
                assert applied or untouched, (kind, ids, [contents.get(i) for i in ids])
                stats["cancelled_landed" if applied else "cancelled_absent"] += 1
            continue
        assert not isinstance(result, BaseException), (kind, ids, result)
        stats["completed"] += 1
        if kind == "search":
            assert result == ids, (result, ids)
        else:
            assert applied, (kind, ids, [contents.get(i) for i in ids])
            if kind != "delete":
                assert result == ids
    # nothing else is in the store: only seeds and the documents of the writes
    allowed = {x[0] for x in keep + victims + olds} | {x[0] for _, its in ops for x in its}
    assert set(contents) <= allowed
    assert stats["completed"] + stats["cancelled"] == 500
    assert stats["cancelled"] == len(doomed) == 150
    print(f"\ncancellation ({'coalesced' if coalescing else 'uncoalesced'}): {stats}")
    await adapter.store.aclose()
    gc.collect()
    await asyncio.sleep(0.01)
    loop.set_exception_handler(None)
    assert reports == []  # no "Task exception was never retrieved", no destroyed tasks
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

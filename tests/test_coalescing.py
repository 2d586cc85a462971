"""Coalescing: concurrent async calls merged into batched embeddings and Milvus requests.

Unit tests of the Coalescer's rules, then the Milvus engine against the Milvus Lite
server: request counts (a counting client and a counting embedder), results equal to the
uncoalesced path, per-caller errors, cancellation and read-your-writes.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_vd import Milvus
from vd_integrations.core.coalesce import Coalescer, CoalescingSettings
from vd_integrations.core.errors import InvalidFilterExpressionError, InvalidInputError
from vd_integrations.embeddings.batching import QueryEmbeddingCache, batches_query_embeddings

DIM = 16


# ----- the Coalescer ---------------------------------------------------------------------------


class Recorder:
    """A batch function that records each batch and returns one result per part."""

    def __init__(self, delay: float = 0.0, fail: set[Any] | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.delay = delay
        self.fail = fail or set()

    async def __call__(self, parts: list[Any]) -> list[Any]:
        self.batches.append(list(parts))
        await asyncio.sleep(self.delay)
        return [ValueError(f"bad {p}") if p in self.fail else p * 10 for p in parts]


async def test_calls_in_one_loop_turn_become_one_batch():
    coalescer, run = Coalescer(), Recorder()
    results = await asyncio.gather(*(coalescer.submit("k", i, run) for i in range(50)))
    assert results == [i * 10 for i in range(50)]
    assert run.batches == [list(range(50))]


async def test_a_lone_call_is_sent_on_the_next_loop_turn():
    coalescer, run = Coalescer(), Recorder()
    task = asyncio.ensure_future(coalescer.submit("k", 1, run))
    for _ in range(3):  # submit, the flush callback, the batch task
        await asyncio.sleep(0)
    assert run.batches == [[1]]
    assert await task == 10


async def test_keys_are_batched_separately_and_size_is_capped():
    coalescer = Coalescer(CoalescingSettings(max_batch=4))
    run = Recorder()
    calls = [coalescer.submit(i % 2, i, run) for i in range(10)]
    assert await asyncio.gather(*calls) == [i * 10 for i in range(10)]
    assert sorted(map(sorted, run.batches)) == [[0, 2, 4, 6], [1, 3, 5, 7], [8], [9]]


async def test_calls_arriving_during_a_batch_are_not_held_back_behind_it():
    """A free slot means the next loop turn: a batch in flight never delays later callers."""
    coalescer, run = Coalescer(), Recorder(delay=0.5)
    first = asyncio.ensure_future(coalescer.submit("k", 0, run))
    await asyncio.sleep(0.01)  # batch [0] is in flight, for a long while
    later = [asyncio.ensure_future(coalescer.submit("k", i, run)) for i in range(1, 30)]
    for _ in range(3):  # the flush callback, the batch task
        await asyncio.sleep(0)
    assert run.batches == [[0], list(range(1, 30))]  # sent while [0] is still in flight
    assert not first.done()
    await asyncio.gather(first, *later)


async def test_with_every_slot_taken_calls_queue_into_one_batch():
    """``max_in_flight`` batches in flight: later callers wait together for the first free slot."""
    gates = [asyncio.Event() for _ in range(3)]
    batches: list[list[int]] = []

    async def run(parts: list[int]) -> list[int]:
        batches.append(list(parts))
        index = len(batches) - 1
        if index < len(gates):
            await gates[index].wait()
        return [p * 10 for p in parts]

    coalescer = Coalescer(CoalescingSettings(max_in_flight=2))
    tasks = [asyncio.ensure_future(coalescer.submit("k", 0, run))]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.ensure_future(coalescer.submit("k", 1, run)))
    await asyncio.sleep(0.01)
    assert batches == [[0], [1]]  # two slots, two batches in flight
    tasks += [asyncio.ensure_future(coalescer.submit("k", i, run)) for i in range(2, 6)]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.ensure_future(coalescer.submit("k", 6, run)))
    await asyncio.sleep(0.01)
    assert batches == [[0], [1]]  # no slot: 2..6 wait, arriving at different times
    gates[1].set()  # the second batch returns first: its slot goes to the queue
    await asyncio.sleep(0.01)
    assert batches == [[0], [1], [2, 3, 4, 5, 6]]
    for gate in gates:
        gate.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(7)]


class FirstHeld:
    """A batch function whose first batch waits for ``gate``; records every batch."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.batches: list[list[int]] = []

    async def __call__(self, parts: list[int]) -> list[int]:
        self.batches.append(list(parts))
        if len(self.batches) == 1:
            await self.gate.wait()
        return [p * 10 for p in parts]


@pytest.mark.parametrize(
    ("max_queued", "held", "want"),
    [(3, [[0], [1, 2, 3]], [[0], [1, 2, 3], [4, 5]]), (None, [[0]], [[0], [1, 2, 3, 4, 5]])],
)
async def test_a_queue_of_max_queued_goes_without_waiting_for_a_slot(max_queued, held, want):
    """Every slot taken: a queue that reaches ``max_queued`` items goes as one more batch,
    the calls after it queue again; ``max_queued=None`` waits for a slot, however long."""
    run = FirstHeld()
    coalescer = Coalescer(CoalescingSettings(max_in_flight=1, max_queued=max_queued))
    tasks = [asyncio.ensure_future(coalescer.submit("k", 0, run))]
    await asyncio.sleep(0.01)
    for i in range(1, 6):  # arriving at different times while the slot is taken
        tasks.append(asyncio.ensure_future(coalescer.submit("k", i, run)))
        await asyncio.sleep(0.005)
    assert run.batches == held  # while the first batch is still in flight
    run.gate.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(6)]
    assert run.batches == want


async def test_serial_keys_never_spill_past_one_batch_in_flight():
    run = FirstHeld()
    coalescer = Coalescer(CoalescingSettings(max_queued=2))
    tasks = [asyncio.ensure_future(coalescer.submit("w", 0, run, serial=True))]
    await asyncio.sleep(0.01)
    tasks += [
        asyncio.ensure_future(coalescer.submit("w", i, run, serial=True)) for i in range(1, 6)
    ]
    await asyncio.sleep(0.01)
    assert run.batches == [[0]]  # a backend that writes one batch at a time: the rest wait
    run.gate.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(6)]
    assert run.batches == [[0], [1, 2, 3, 4, 5]]


async def test_each_caller_gets_its_own_error():
    coalescer, run = Coalescer(), Recorder(fail={3})
    results = await asyncio.gather(
        *(coalescer.submit("k", i, run) for i in range(5)), return_exceptions=True
    )
    assert [r for i, r in enumerate(results) if i != 3] == [0, 10, 20, 40]
    assert isinstance(results[3], ValueError) and "bad 3" in str(results[3])


async def test_a_failing_batch_fails_its_callers_only():
    coalescer = Coalescer()

    async def explode(parts):
        raise RuntimeError("down")

    results = await asyncio.gather(
        *(coalescer.submit("k", i, explode) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    run = Recorder()
    assert await coalescer.submit("k", 7, run) == 70  # the coalescer still works


async def test_cancelled_before_sending_is_left_out():
    coalescer = Coalescer(CoalescingSettings(window=1.0))  # long: a busy loop cannot beat it
    run = Recorder()
    tasks = [asyncio.ensure_future(coalescer.submit("k", i, run)) for i in range(10)]
    await asyncio.sleep(0.01)
    assert run.batches == [], "the batch left before the cancels: the test's premise failed"
    for task in tasks[:3]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results[:3])
    assert results[3:] == [i * 10 for i in range(3, 10)]
    assert run.batches == [list(range(3, 10))]


async def test_cancelling_one_caller_in_flight_spares_the_others():
    coalescer, run = Coalescer(), Recorder(delay=0.05)
    tasks = [asyncio.ensure_future(coalescer.submit("k", i, run)) for i in range(5)]
    await asyncio.sleep(0.01)  # in flight
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [10, 20, 30, 40]


async def test_disabled_runs_every_call_alone():
    coalescer, run = Coalescer(CoalescingSettings.disabled()), Recorder()
    assert await asyncio.gather(*(coalescer.submit("k", i, run) for i in range(4))) == [
        0,
        10,
        20,
        30,
    ]
    assert run.batches == [[0], [1], [2], [3]]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": -1},
        {"max_batch": 0},
        {"max_in_flight": 0},
        {"max_batch": True},
        {"max_queued": 0},
        {"max_queued": 2.5},
    ],
)
def test_settings_are_validated(kwargs):
    with pytest.raises(ValueError):
        CoalescingSettings(**kwargs)


def test_coalescing_argument_forms():
    assert (
        CoalescingSettings.coerce(None) == CoalescingSettings.coerce(True) == CoalescingSettings()
    )
    assert CoalescingSettings.coerce(None, max_batch=64).max_batch == 64
    assert not CoalescingSettings.coerce(False).enabled
    custom = CoalescingSettings(window=0.01)
    assert CoalescingSettings.coerce(custom) is custom
    with pytest.raises(ValueError, match="CoalescingSettings or a bool"):
        CoalescingSettings.coerce("yes")


# ----- query embeddings ------------------------------------------------------------------------


class CountingEmbeddings(DeterministicFakeEmbedding):
    """Deterministic vectors; counts calls to the async batch method."""

    calls: int = 0
    texts: int = 0

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        self.texts += len(texts)
        await asyncio.sleep(0.005)
        return self.embed_documents(texts)


class AsymmetricEmbeddings(DeterministicFakeEmbedding):
    def embed_query(self, text: str) -> list[float]:
        return super().embed_query("query: " + text)


def test_query_batching_only_for_symmetric_embedders():
    assert batches_query_embeddings(DeterministicFakeEmbedding(size=4), None)
    assert batches_query_embeddings(CountingEmbeddings(size=4), None)
    assert not batches_query_embeddings(AsymmetricEmbeddings(size=4), None)
    assert batches_query_embeddings(AsymmetricEmbeddings(size=4), True)
    assert not batches_query_embeddings(DeterministicFakeEmbedding(size=4), False)
    assert not batches_query_embeddings(object(), None)


def test_query_cache_is_a_bounded_lru():
    cache = QueryEmbeddingCache(2)
    cache.put("a", [1.0])
    cache.put("b", [2.0])
    assert cache.get("a") == [1.0]
    cache.put("c", [3.0])  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("c") == [3.0]
    assert QueryEmbeddingCache(0).get("a") is None
    with pytest.raises(ValueError):
        QueryEmbeddingCache(-1)


# ----- the Milvus engine -----------------------------------------------------------------------


class CountingClient:
    """Wraps an AsyncMilvusClient and counts calls per method."""

    def __init__(self, inner: Any, calls: Counter) -> None:
        self._inner = inner
        self.calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await attr(*args, **kwargs)

        return call


def store_for(uri: str, name: str, embeddings: Any, **kwargs: Any) -> tuple[Milvus, Counter]:
    store = Milvus(
        embeddings,
        collection_name=name,
        connection_args={"uri": uri},
        consistency_level="Strong",
        **kwargs,
    )
    calls: Counter = Counter()
    wrap_clients(store, lambda client: CountingClient(client, calls))
    return store, calls


def wrap_clients(store: Any, wrap: Callable[[Any], Any]) -> list[Any]:
    """Wrap each event loop's AsyncMilvusClient of ``store``; returns the wrappers made."""
    connection, made = store.engine.connection, []
    make = connection.make_async_client

    def wrapped():
        client = wrap(make())
        made.append(client)
        return client

    connection.make_async_client = wrapped
    return made


def docs(n: int, start: int = 0) -> list[Document]:
    return [
        Document(f"document number {i}", metadata={"n": i, "group": f"g{i % 3}"})
        for i in range(start, start + n)
    ]


async def test_concurrent_adds_share_embedding_and_insert_requests(milvus_uri, collection_name):
    embeddings = CountingEmbeddings(size=DIM)
    store, calls = store_for(milvus_uri, collection_name, embeddings)
    await store.aadd_documents(docs(1), ids=["warm"])  # creates the collection
    embeddings.calls, embeddings.texts = 0, 0
    calls.clear()
    ids = await asyncio.gather(
        *(store.aadd_documents([d], ids=[f"id{i}"]) for i, d in enumerate(docs(100)))
    )
    assert ids == [[f"id{i}"] for i in range(100)]
    assert embeddings.calls <= 2 and embeddings.texts == 100
    assert 1 <= calls["upsert"] + calls["insert"] <= 2
    # the engine's own counter agrees with the counting client
    assert store.engine.rpc_counts["upsert"] == calls["upsert"] + 1  # + the first add
    assert await store.acount() == 101
    await store.aclose()


async def test_first_adds_on_a_fresh_collection_share_one_setup(milvus_uri, collection_name):
    """Concurrent first calls share one setup run (single flight), so they reach the
    embedder together: one embedding request, one collection, one write."""
    embeddings = CountingEmbeddings(size=DIM)
    store, calls = store_for(milvus_uri, collection_name, embeddings, drop_old=True)
    ids = await asyncio.gather(*(store.aadd_documents([d]) for d in docs(100)))
    assert len({i for (i,) in ids}) == 100
    assert embeddings.calls == 1 and embeddings.texts == 100
    assert calls["create_collection"] == 1
    assert calls["insert"] == 1
    assert calls["has_collection"] <= 4  # drop_old's check, the probe, and two describes
    assert await store.acount() == 100
    await store.aclose()


class ServerLikeLoading:
    """Wraps an AsyncMilvusClient so a new collection behaves as on a real Milvus server:
    loading takes a while, and reads sent before it has finished are recorded."""

    def __init__(self, inner: Any, delay: float) -> None:
        self._inner = inner
        self.delay = delay
        self.loaded = False
        self.early_reads: list[str] = []
        self.log: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.log.append(name)
            if name == "load_collection":
                await asyncio.sleep(self.delay)
                result = await attr(*args, **kwargs)
                self.loaded = True
                return result
            needs_load = name in ("search", "query", "hybrid_search") or (
                name == "delete" and not str(kwargs.get("filter", "")).startswith("(pk in [")
            )
            if needs_load and not self.loaded:
                self.early_reads.append(name)
            return await attr(*args, **kwargs)

        return call


async def test_a_new_collection_loads_in_the_background(milvus_uri, collection_name):
    """Writes do not wait for a new collection to load (seconds on a real server); reads
    and deletes by filter do, and aclose() lets the load finish."""
    embeddings = DeterministicFakeEmbedding(size=DIM)
    store, _ = store_for(milvus_uri, collection_name, embeddings, drop_old=True)
    clients = wrap_clients(store, lambda client: ServerLikeLoading(client, delay=0.5))
    ids = await asyncio.gather(
        *(store.aadd_documents([d], ids=[f"k{i}"]) for i, d in enumerate(docs(20)))
    )
    client = clients[0]
    assert not client.loaded, "the adds waited for the load"
    await store.adelete(ids=["k0"])  # by ids: no load needed either
    assert not client.loaded
    found, _ = await asyncio.gather(
        store.asimilarity_search("document number 3", k=2),
        store.adelete(expr="n == 4"),
    )
    assert client.loaded and client.early_reads == []
    assert client.log.count("load_collection") == 1
    assert len(found) == 2 and [i for (i,) in ids] == [f"k{i}" for i in range(20)]
    assert await store.acount() == 18
    await store.aclose()


async def test_aclose_waits_for_the_background_load(milvus_uri, collection_name):
    embeddings = DeterministicFakeEmbedding(size=DIM)
    store, _ = store_for(milvus_uri, collection_name, embeddings, drop_old=True)
    clients = wrap_clients(store, lambda client: ServerLikeLoading(client, delay=0.3))
    await store.aadd_documents(docs(3))
    assert not clients[0].loaded
    await store.aclose()
    assert clients[0].loaded


async def test_asettle_waits_for_the_background_load_and_keeps_the_store_open(
    milvus_uri, collection_name
):
    embeddings = DeterministicFakeEmbedding(size=DIM)
    store, _ = store_for(milvus_uri, collection_name, embeddings, drop_old=True)
    clients = wrap_clients(store, lambda client: ServerLikeLoading(client, delay=0.3))
    await store.aadd_documents(docs(3))
    assert not clients[0].loaded
    await store.engine.asettle()
    assert clients[0].loaded
    assert len(await store.asimilarity_search("document number 1", k=2)) == 2
    await store.aclose()


def test_sync_writes_leave_a_new_collection_loaded(milvus_uri, collection_name):
    store = Milvus(
        DeterministicFakeEmbedding(size=DIM),
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        drop_old=True,
    )
    store.add_documents(docs(3))
    assert store.engine.rpc_counts["load_collection"] == 1
    assert not store.engine.setup.load_pending
    store.close()


async def test_auto_id_inserts_return_each_callers_own_key(milvus_uri, collection_name):
    store, calls = store_for(
        milvus_uri, collection_name, CountingEmbeddings(size=DIM), auto_id=True
    )
    await store.aadd_documents(docs(1))
    calls.clear()
    keys = await asyncio.gather(*(store.aadd_documents([d]) for d in docs(40)))
    assert 1 <= calls["insert"] <= 2
    flat = [k for ks in keys for k in ks]
    assert len(set(flat)) == 40
    found = await store.aget_by_ids(flat)
    by_key = {d.id: d.metadata["n"] for d in found}
    assert [by_key[k[0]] for k in keys] == list(range(40))  # each caller got its own row's key
    await store.aclose()


async def test_searches_merge_by_parameters_and_equal_uncoalesced_results(
    milvus_uri, collection_name
):
    embeddings = CountingEmbeddings(size=DIM)
    merged, calls = store_for(milvus_uri, collection_name, embeddings)
    plain = Milvus(
        embeddings,
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        coalescing=False,
    )
    await merged.aadd_documents(docs(200), ids=[f"d{i}" for i in range(200)])
    rng = random.Random(7)
    requests = [
        (
            f"document number {rng.randrange(200)}",
            rng.choice([1, 3, 5]),
            rng.choice([None, {"group": "g1"}, "n < 100"]),
        )
        for _ in range(300)
    ]
    calls.clear()
    embeddings.calls = 0
    got = await asyncio.gather(
        *(merged.asimilarity_search_with_score(q, k=k, filter=f) for q, k, f in requests)
    )
    merged_embedding_calls = embeddings.calls
    want = [await plain.asimilarity_search_with_score(q, k=k, filter=f) for q, k, f in requests]
    assert [[(d.id, round(s, 4)) for d, s in r] for r in got] == [
        [(d.id, round(s, 4)) for d, s in r] for r in want
    ]
    assert 9 <= calls["search"] <= 20  # 9 parameter groups, each at most a couple of batches
    assert merged_embedding_calls <= 3
    await merged.aclose()
    await plain.aclose()


async def test_deletes_by_ids_and_by_filter_are_merged(milvus_uri, collection_name):
    store, calls = store_for(milvus_uri, collection_name, CountingEmbeddings(size=DIM))
    await store.aadd_documents(docs(300), ids=[f"d{i}" for i in range(300)])
    calls.clear()
    await asyncio.gather(*(store.adelete(ids=[f"d{i}"]) for i in range(100)))
    assert 1 <= calls["delete"] <= 2
    calls.clear()
    await asyncio.gather(*(store.adelete(expr=f"n == {i}") for i in range(100, 200)))
    assert 1 <= calls["delete"] <= 2 and 1 <= calls["query"] <= 2  # merged, one check each
    remaining = await store.asearch_by_metadata("n >= 0", limit=1000)
    assert sorted(d.metadata["n"] for d in remaining) == list(range(200, 300))
    await store.aclose()


async def test_a_bad_filter_fails_only_its_own_caller(milvus_uri, collection_name):
    store, _ = store_for(milvus_uri, collection_name, CountingEmbeddings(size=DIM))
    await store.aadd_documents(docs(10), ids=[f"d{i}" for i in range(10)])
    results = await asyncio.gather(
        store.adelete(expr="n == 1"),
        store.adelete(expr="n == == 2"),
        store.adelete(expr="n == 3"),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], InvalidFilterExpressionError)
    left = sorted(d.metadata["n"] for d in await store.asearch_by_metadata("n >= 0", limit=100))
    assert left == [0, 2, 4, 5, 6, 7, 8, 9]
    await store.aclose()


class QueryRecorder(CountingClient):
    """Counts calls and records the keyword arguments of each query."""

    def __init__(self, inner: Any, calls: Counter) -> None:
        super().__init__(inner, calls)
        self.queries: list[dict[str, Any]] = []

    async def query(self, *args: Any, **kwargs: Any) -> Any:
        self.queries.append(kwargs)
        return await self._inner.query(*args, **kwargs)


async def test_the_filter_probe_of_a_delete_does_not_wait_for_consistency(
    milvus_uri, collection_name
):
    """A delete by expression sends a one-row probe with its filter (AsyncMilvusClient
    ignores a delete's status). The probe only checks the parse, so it reads at Eventually:
    at the collection's level (here Strong) it would wait for the server's time tick."""
    store, calls = store_for(milvus_uri, collection_name, CountingEmbeddings(size=DIM))
    clients = wrap_clients(store, lambda client: QueryRecorder(client, calls))
    await store.aadd_documents(docs(6), ids=[f"d{i}" for i in range(6)])
    assert await store.adelete(expr="n >= 4") is True
    probes = [q for q in clients[0].queries if q.get("filter") == "n >= 4"]
    assert len(probes) == 1 and probes[0]["consistency_level"] == "Eventually"
    left = sorted(d.metadata["n"] for d in await store.asearch_by_metadata("n >= 0", limit=100))
    assert left == [0, 1, 2, 3]
    with pytest.raises(InvalidFilterExpressionError):  # the probe still catches what Milvus refuses
        await store.adelete(expr="no_such_function(n)")
    assert await store.acount() == 4
    await store.aclose()


async def test_bad_input_fails_its_caller_before_anything_is_written(milvus_uri, collection_name):
    store, _ = store_for(milvus_uri, collection_name, CountingEmbeddings(size=DIM))
    await store.aadd_texts(["seed"], ids=["seed"])
    results = await asyncio.gather(
        store.aadd_embeddings(["ok"], [[0.1] * DIM], ids=["a"]),
        store.aadd_embeddings(["wrong dim"], [[0.1] * (DIM + 1)], ids=["b"]),
        store.aadd_embeddings(["ok too"], [[0.2] * DIM], ids=["c"]),
        return_exceptions=True,
    )
    assert results[0] == ["a"] and results[2] == ["c"]
    assert isinstance(results[1], InvalidInputError)
    assert sorted(d.id for d in await store.aget_by_ids(["a", "b", "c", "seed"])) == [
        "a",
        "c",
        "seed",
    ]
    await store.aclose()


async def test_cancelled_adds_before_sending_are_not_written(milvus_uri, collection_name):
    # The window is long so that a busy machine cannot send the batch before the cancels
    # (sent parts are written by design); the precondition is checked, not assumed.
    store, _ = store_for(
        milvus_uri,
        collection_name,
        CountingEmbeddings(size=DIM),
        coalescing=CoalescingSettings(window=2.0),
    )
    await store.aadd_texts(["seed"], ids=["seed"])
    writes = lambda: store.engine.rpc_counts["insert"] + store.engine.rpc_counts["upsert"]  # noqa: E731
    before = writes()
    tasks = [
        asyncio.ensure_future(store.aadd_embeddings([f"t{i}"], [[0.1] * DIM], ids=[f"x{i}"]))
        for i in range(20)
    ]
    await asyncio.sleep(0.05)  # all waiting in the window
    assert writes() == before, "the batch left before the cancels: the test's premise failed"
    for task in tasks[:5]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results[:5])
    assert results[5:] == [[f"x{i}"] for i in range(5, 20)]
    assert await store.acount() == 16
    await store.aclose()


async def test_random_mix_matches_the_uncoalesced_store(milvus_uri, collection_name):
    """Concurrent adds, searches and deletes: same final contents as without coalescing."""
    rng = random.Random(11)
    embeddings = CountingEmbeddings(size=DIM)
    merged = Milvus(
        embeddings,
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        consistency_level="Strong",
    )
    plain = Milvus(
        embeddings,
        collection_name=collection_name + "_plain",
        connection_args={"uri": milvus_uri},
        consistency_level="Strong",
        coalescing=False,
    )
    for store in (merged, plain):
        await store.aadd_documents(docs(50), ids=[f"d{i}" for i in range(50)])
    ops = []
    for i in range(150):
        kind = rng.choice(["add", "search", "delete", "delete_expr"])
        ops.append((kind, i))

    async def run(store: Milvus, kind: str, i: int) -> Any:
        if kind == "add":
            return await store.aadd_documents(docs(1, start=1000 + i), ids=[f"new{i}"])
        if kind == "search":
            found = await store.asimilarity_search("document number 7", k=2, filter="n < 50")
            return len(found)
        if kind == "delete":
            return await store.adelete(ids=[f"d{i % 50}"])
        return await store.adelete(expr=f"n == {1000 + i - 3}")

    merged_results = await asyncio.gather(*(run(merged, k, i) for k, i in ops))
    plain_results = [await run(plain, k, i) for k, i in ops]
    assert [r for r, (k, _) in zip(merged_results, ops, strict=True) if k == "add"] == [
        r for r, (k, _) in zip(plain_results, ops, strict=True) if k == "add"
    ]
    # order among concurrent calls is not defined, so compare what stays after all of them
    contents = []
    for store in (merged, plain):
        rows = await store.asearch_by_metadata("n >= 0", limit=10_000)
        contents.append(sorted((d.id, d.page_content) for d in rows))
    merged_ids = {i for i, _ in contents[0]}
    plain_ids = {i for i, _ in contents[1]}
    deleted_by_expr = {f"new{i - 3}" for k, i in ops if k == "delete_expr"}
    # a delete-by-filter may run before or after the add it targets when both are concurrent
    assert merged_ids - deleted_by_expr == plain_ids - deleted_by_expr
    for store in (merged, plain):
        await store.aclose()


async def test_a_caller_reads_its_own_write(milvus_uri, collection_name):
    store, _ = store_for(milvus_uri, collection_name, CountingEmbeddings(size=DIM))
    await store.aadd_texts(["seed"], ids=["seed"])

    async def write_then_read(i: int) -> bool:
        await store.aadd_texts([f"unique text {i}"], ids=[f"u{i}"], metadatas=[{"n": i}])
        found = await store.asearch_by_metadata(f"n == {i}")
        return [d.id for d in found] == [f"u{i}"]

    assert all(await asyncio.gather(*(write_then_read(i) for i in range(50))))
    await store.aclose()


async def test_query_cache_skips_repeated_query_embeddings(milvus_uri, collection_name):
    embeddings = CountingEmbeddings(size=DIM)
    store, _ = store_for(milvus_uri, collection_name, embeddings, query_cache_size=16)
    await store.aadd_texts(["alpha", "beta"], ids=["a", "b"])
    embeddings.calls = 0
    for _ in range(5):
        await store.asimilarity_search("alpha", k=1)
    store.similarity_search("alpha", k=1)
    assert embeddings.calls == 1  # sync reused the async call's cached vector
    await store.aclose()


# ----- sync paths without waste ----------------------------------------------------------------


class CountingSyncEmbeddings(DeterministicFakeEmbedding):
    texts_embedded: int = 0
    largest_call: int = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts_embedded += len(texts)
        self.largest_call = max(self.largest_call, len(texts))
        return super().embed_documents(texts)


def test_add_texts_streams_a_generator_in_batches(milvus_uri, collection_name):
    embeddings = CountingSyncEmbeddings(size=DIM)
    store = Milvus(
        embeddings,
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        consistency_level="Strong",
    )
    pulled = []

    def texts():
        for i in range(2500):
            pulled.append(i)
            yield f"streamed text {i}"

    def metadatas():
        for i in range(2500):
            yield {"n": i}

    ids = store.add_texts(
        texts(), metadatas=metadatas(), batch_size=1000, ids=(f"s{i}" for i in range(2500))
    )
    assert ids == [f"s{i}" for i in range(2500)]
    assert embeddings.texts_embedded == 2500  # nothing embedded twice
    assert embeddings.largest_call == 1000  # never more than a batch in memory
    assert store.count() == 2500
    assert store.get_by_ids(["s2499"])[0].metadata["n"] == 2499
    with pytest.raises(InvalidInputError, match="metadatas"):
        store.add_texts((t for t in ["a", "b"]), metadatas=iter([{"n": 1}]))
    store.close()


def test_delete_matching_looks_up_keys_page_by_page(milvus_uri, collection_name):
    """LlamaIndex's delete(ref_doc_id) path: keys first, then a delete by keys."""
    store, _ = store_for(milvus_uri, collection_name, DeterministicFakeEmbedding(size=DIM))
    store.add_documents(docs(10), ids=[f"k{i}" for i in range(10)])
    engine = store.engine
    before = engine.rpc_counts["delete"]
    assert engine.run(engine.delete_matching("n < 7", page_size=3)) == 7
    assert engine.rpc_counts["delete"] - before == 3  # pages of 3, 3 and 1 keys
    assert sorted(d.id for d in store.get_by_ids([f"k{i}" for i in range(10)])) == [
        "k7",
        "k8",
        "k9",
    ]
    assert engine.run(engine.delete_matching("n < 7")) == 0
    store.close()


async def test_serial_keys_keep_one_batch_in_flight():
    """Writes the backend performs one at a time: one batch, the rest wait together."""
    coalescer, run = Coalescer(), Recorder(delay=0.05)
    first = asyncio.ensure_future(coalescer.submit("w", 0, run, serial=True))
    await asyncio.sleep(0.01)
    later = []
    for i in range(1, 6):
        later.append(asyncio.ensure_future(coalescer.submit("w", i, run, serial=True)))
        await asyncio.sleep(0.002)  # arriving at different times
    await asyncio.gather(first, *later)
    assert run.batches == [[0], [1, 2, 3, 4, 5]]

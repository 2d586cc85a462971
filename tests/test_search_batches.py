"""How merged searches go out: one at a time on Milvus Lite, overlapping elsewhere.

Milvus Lite 3 is a Python server where every search pays a fixed cost on one interpreter,
so a store there keeps one merged search in flight per parameter group and sends what
arrived meanwhile as the next batch. On other servers a search arriving while a batch is
in flight is not held back behind it. A gate on the async client holds the first search
in flight so the test sees which rule applied.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_vd import Milvus
from tests.test_coalescing import wrap_clients

DIM = 16


class GatedSearches:
    """Wraps an AsyncMilvusClient: the first search waits for ``release``; every search's
    number of queries is recorded, and the most searches in flight at once."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.release = asyncio.Event()
        self.first_in_flight = asyncio.Event()
        self.nq: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != "search":
            return attr

        async def search(*args: Any, **kwargs: Any) -> Any:
            first = not self.nq
            self.nq.append(len(kwargs["data"]))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                if first:
                    self.first_in_flight.set()
                    await self.release.wait()
                return await attr(*args, **kwargs)
            finally:
                self.in_flight -= 1

        return search


async def test_searches_arriving_during_a_batch_follow_the_servers_rule(
    milvus_uri, collection_name
):
    store = Milvus(
        DeterministicFakeEmbedding(size=DIM),
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        consistency_level="Strong",
    )
    gates: list[GatedSearches] = wrap_clients(store, GatedSearches)
    await store.aadd_texts([f"text {i}" for i in range(20)], ids=[f"d{i}" for i in range(20)])
    one_at_a_time = store.engine.connection.merges_one_at_a_time("search")
    assert one_at_a_time == store.engine.connection.merges_one_at_a_time("insert")  # Lite: both
    [gate] = gates  # this loop's client
    first = asyncio.ensure_future(store.asimilarity_search("text 0", k=2))
    await asyncio.wait_for(gate.first_in_flight.wait(), 30)
    later = []
    for i in range(1, 6):
        later.append(asyncio.ensure_future(store.asimilarity_search(f"text {i}", k=2)))
        await asyncio.sleep(0.01)  # arriving at different times, while the first is held
    if one_at_a_time:
        assert gate.nq == [1]  # the five wait together behind the one in flight
    else:
        assert len(gate.nq) > 1  # not held back: sent while the first is in flight
    gate.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, *later), 60)
    assert [r[0].page_content for r in results] == [f"text {i}" for i in range(6)]
    assert sum(gate.nq) == 6
    if one_at_a_time:
        assert gate.nq == [1, 5] and gate.most_in_flight == 1
    await store.aclose()


def test_only_a_milvus_lite_connection_merges_searches_one_at_a_time(milvus_uri, tmp_path):
    embedded = Milvus(
        DeterministicFakeEmbedding(size=DIM), connection_args={"uri": str(tmp_path / "x.db")}
    )
    connection = embedded.engine.connection
    assert connection.merges_one_at_a_time("search")
    assert connection.merges_one_at_a_time("insert")
    assert not connection.merges_one_at_a_time("query")  # only searches and writes
    assert not connection.serialises("search")  # no write lock is taken for a search
    embedded.close()

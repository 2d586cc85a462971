"""Sync vs async on the embedded default: the tutorial's workloads at a small scale.

Runs N independent single-document adds, searches and deletes through
``langchain_vd.Milvus`` on an embedded Milvus Lite file, first one by one with the
sync methods, then all at once with their async twins, and prints the timings.

The embedding model is a deterministic fake with a simulated per-request latency
(``--latency``, default 50 ms) standing in for a remote embedding API: no network
and no API key are needed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_vd import Milvus


class SlowFakeEmbeddings(DeterministicFakeEmbedding):
    """Deterministic vectors after a fixed delay per request (sync sleeps, async awaits)."""

    latency: float = 0.05

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        time.sleep(self.latency)
        return super().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        time.sleep(self.latency)
        return super().embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(self.latency)
        return super().embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        await asyncio.sleep(self.latency)
        return super().embed_query(text)


def documents(n: int) -> list[Document]:
    return [
        Document(
            page_content=f"This is test document {i}",
            metadata={"doc": f"doc_{i}", "category": f"cat_{i % 5}"},
        )
        for i in range(n)
    ]


def make_store(uri: str, embeddings: SlowFakeEmbeddings, name: str) -> Milvus:
    return Milvus(
        embeddings,
        collection_name=name,
        connection_args={"uri": uri},
        auto_id=True,
        drop_old=True,
    )


def run(n: int, latency: float, uri: str) -> list[tuple[str, float, float]]:
    embeddings = SlowFakeEmbeddings(size=384, latency=latency)
    rows = []

    sync_store, async_store = (make_store(uri, embeddings, f"demo_{m}") for m in ("sync", "async"))
    start = time.perf_counter()
    for doc in documents(n):
        sync_store.add_documents([doc])
    sync_add = time.perf_counter() - start

    async def add_all() -> None:
        await asyncio.gather(*(async_store.aadd_documents([d]) for d in documents(n)))

    start = time.perf_counter()
    asyncio.run(add_all())
    rows.append(("add", sync_add, time.perf_counter() - start))

    queries = [f"test document {i % 50}" for i in range(n)]
    start = time.perf_counter()
    for q in queries:
        sync_store.similarity_search(q, k=3)
    sync_search = time.perf_counter() - start

    async def search_all() -> None:
        await asyncio.gather(*(async_store.asimilarity_search(q, k=3) for q in queries))

    start = time.perf_counter()
    asyncio.run(search_all())
    rows.append(("search", sync_search, time.perf_counter() - start))

    start = time.perf_counter()
    for i in range(n):
        sync_store.delete(expr=f"doc == 'doc_{i}'")
    sync_delete = time.perf_counter() - start

    async def delete_all() -> None:
        await asyncio.gather(*(async_store.adelete(expr=f"doc == 'doc_{i}'") for i in range(n)))

    start = time.perf_counter()
    asyncio.run(delete_all())
    rows.append(("delete", sync_delete, time.perf_counter() - start))

    assert sync_store.count() == 0 and async_store.count() == 0, "every document was deleted"
    sync_store.close()
    async_store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="operations per workload")
    parser.add_argument("--latency", type=float, default=0.05, help="embedding latency (s)")
    parser.add_argument("--uri", default=None, help="Milvus URI (default: embedded Milvus Lite)")
    args = parser.parse_args()
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        uri = args.uri or str(Path(tmp) / "demo.db")
        print(f"{args.n} single-document operations per workload on {uri}")
        print(f"embedding latency {args.latency * 1000:.0f} ms per request\n")
        print(f"{'workload':<10}{'sync (s)':>10}{'async (s)':>11}{'speed-up':>10}")
        for name, sync_s, async_s in run(args.n, args.latency, uri):
            print(f"{name:<10}{sync_s:>10.2f}{async_s:>11.2f}{sync_s / async_s:>9.1f}x")


if __name__ == "__main__":
    main()

"""Measurements behind the throughput targets that the workload table does not cover.

    python -m vd_bench.targets [--uri URI] [--n 1000] [--ingest 100000]

- **lone call**: the latency coalescing adds to one uncontended call (median of
  sequential ``asimilarity_search_by_vector`` calls with coalescing on minus off);
- **different filters**: N concurrent ``asimilarity_search_by_vector`` calls that each
  carry their own filter (nothing to merge) against the same N searches sent straight to
  ``AsyncMilvusClient.search``;
- **request counts**: embedding requests and Milvus RPCs behind 100 concurrent adds and
  1000 concurrent searches (offline embeddings server, 100 ms per request);
- **streamed ingest**: ``add_texts`` from a generator of 100k texts (dim 384) in a child
  process, reporting its peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vd_integrations.milvus.config import ConnectionConfig

__all__ = [
    "different_filters",
    "lone_call_overhead",
    "request_counts",
    "streamed_ingest_rss",
]

DIM = 384


class _Vectors:
    """Deterministic random unit vectors (no embedding service needed)."""

    def __init__(self, dim: int = DIM, seed: int = 0) -> None:
        self.dim = dim
        self.rng = random.Random(seed)

    def one(self) -> list[float]:
        v = [self.rng.gauss(0, 1) for _ in range(self.dim)]
        norm = sum(x * x for x in v) ** 0.5
        return [x / norm for x in v]


def _store(uri: str, name: str, **kwargs: Any) -> Any:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from langchain_vd import Milvus

    return Milvus(
        DeterministicFakeEmbedding(size=DIM),
        collection_name=name,
        connection_args={"uri": uri},
        drop_old=kwargs.pop("drop_old", False),
        **kwargs,
    )


def _fill(uri: str, name: str, rows: int, vectors: _Vectors) -> None:
    store = _store(uri, name, drop_old=True)
    store.add_embeddings(
        [f"row {i}" for i in range(rows)],
        [vectors.one() for _ in range(rows)],
        metadatas=[{"n": i} for i in range(rows)],
        ids=[f"r{i}" for i in range(rows)],
    )
    store.close()


def lone_call_overhead(uri: str, calls: int = 200) -> dict[str, float]:
    """Median latency of one uncontended async search, coalescing on vs off (ms)."""
    vectors = _Vectors(seed=1)
    name = "vd_targets_lone"
    _fill(uri, name, 1000, vectors)
    queries = [vectors.one() for _ in range(calls)]

    async def measure(coalescing: bool) -> list[float]:
        store = _store(uri, name, coalescing=coalescing)
        await store.asimilarity_search_by_vector(queries[0], k=3)  # connect, warm up
        out = []
        for q in queries:
            start = time.perf_counter()
            await store.asimilarity_search_by_vector(q, k=3)
            out.append(time.perf_counter() - start)
        await store.aclose()
        return out

    result: dict[str, list[float]] = {}
    for _ in range(2):  # interleave twice to even out drift
        for label, flag in (("on", True), ("off", False)):
            result.setdefault(label, []).extend(asyncio.run(measure(flag)))
    on_ms = statistics.median(result["on"]) * 1000
    off_ms = statistics.median(result["off"]) * 1000
    return {"median_on_ms": on_ms, "median_off_ms": off_ms, "added_ms": on_ms - off_ms}


def different_filters(uri: str, n: int = 1000, rows: int = 2000) -> dict[str, float]:
    """Throughput of N concurrent by-vector searches with N distinct filters: ours vs raw."""
    vectors = _Vectors(seed=2)
    name = "vd_targets_filters"
    _fill(uri, name, rows, vectors)
    queries = [vectors.one() for _ in range(n)]

    async def ours() -> float:
        store = _store(uri, name)
        await store.asimilarity_search_by_vector(queries[0], k=3)
        start = time.perf_counter()
        found = await asyncio.gather(
            *(
                store.asimilarity_search_by_vector(q, k=3, expr=f"n >= {i % rows}")
                for i, q in enumerate(queries)
            )
        )
        elapsed = time.perf_counter() - start
        assert all(found)
        await store.aclose()
        return elapsed

    async def raw() -> float:
        from pymilvus import AsyncMilvusClient

        client = AsyncMilvusClient(**ConnectionConfig(uri=uri).client_kwargs())
        await client.load_collection(name)
        await client.search(name, data=[queries[0]], limit=3, anns_field="vector")
        start = time.perf_counter()
        await asyncio.gather(
            *(
                client.search(
                    name,
                    data=[q],
                    limit=3,
                    anns_field="vector",
                    filter=f"n >= {i % rows}",
                    output_fields=["text", "n"],
                )
                for i, q in enumerate(queries)
            )
        )
        elapsed = time.perf_counter() - start
        await client.close()
        return elapsed

    times: dict[str, list[float]] = {"ours": [], "raw": []}
    for _ in range(2):
        times["raw"].append(asyncio.run(raw()))
        times["ours"].append(asyncio.run(ours()))
    ours_s, raw_s = min(times["ours"]), min(times["raw"])
    return {"n": n, "ours_s": ours_s, "raw_s": raw_s, "ours_vs_raw_throughput": raw_s / ours_s}


def request_counts(uri: str, latency: float = 0.1) -> dict[str, dict[str, int | float]]:
    """Embedding requests and Milvus RPCs behind 100 concurrent single-document adds to a
    fresh collection, then 1000 concurrent searches, through ``langchain_vd.Milvus``
    (offline embeddings server)."""
    from langchain_core.documents import Document

    from langchain_vd import Milvus, OpenAIEmbeddings
    from vd_integrations.testing.embedding_server import OfflineEmbeddingServer

    out: dict[str, dict[str, int | float]] = {}
    with OfflineEmbeddingServer(latency=latency) as server:
        store = Milvus(
            OpenAIEmbeddings(base_url=server.base_url),
            collection_name="vd_targets_counts",
            connection_args={"uri": uri},
            drop_old=True,
        )

        async def measure() -> None:
            # The adds are the first calls on a fresh collection, as in the benchmark's
            # add workload: their counts include the collection's setup.
            for name, calls in (
                (
                    "add_100",
                    [
                        store.aadd_documents([Document(f"document {i}")], ids=[f"d{i}"])
                        for i in range(100)
                    ],
                ),
                (
                    "search_1000",
                    [store.asimilarity_search(f"test document {i % 50}", k=3) for i in range(1000)],
                ),
            ):
                server.reset_stats()
                before = dict(store.engine.rpc_counts)
                start = time.perf_counter()
                await asyncio.gather(*calls)
                elapsed = time.perf_counter() - start
                after = store.engine.rpc_counts
                rpcs = {
                    m: after[m] - before.get(m, 0) for m in after if after[m] != before.get(m, 0)
                }
                out[name] = {
                    "seconds": elapsed,
                    "embedding_requests": server.stats()["requests"],
                    **{f"rpc_{m}": n for m, n in rpcs.items()},
                }
            await store.adrop()
            await store.aclose()

        asyncio.run(measure())
    return out


_INGEST_CHILD = r"""
import json, resource, sys, time, logging
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_vd import Milvus
uri, total = sys.argv[1], int(sys.argv[2])
store = Milvus(DeterministicFakeEmbedding(size=384), collection_name="vd_targets_ingest",
               connection_args={"uri": uri}, drop_old=True)
texts = (f"streamed document number {i} " + "lorem ipsum " * 20 for i in range(total))
start = time.perf_counter()
ids = store.add_texts(texts, ids=(f"g{i}" for i in range(total)), batch_size=1000)
elapsed = time.perf_counter() - start
count = store.count()
store.drop()
store.close()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"texts": total, "rows": count, "seconds": elapsed, "peak_rss_mib": rss}))
"""


def streamed_ingest_rss(uri: str, total: int = 100_000) -> dict[str, float]:
    """Ingest ``total`` generated texts (dim 384) in a child process; its peak RSS (MiB).

    Against an embedded ``.db`` URI the Milvus Lite server is a separate process, so the
    figure is the Python client's memory either way."""
    result = subprocess.run(
        [sys.executable, "-c", _INGEST_CHILD, uri, str(total)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the ingest child failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=None, help="Milvus URI (default: embedded Lite)")
    parser.add_argument("--n", type=int, default=1000, help="concurrent filtered searches")
    parser.add_argument("--ingest", type=int, default=100_000, help="texts to stream in")
    parser.add_argument("--out", default="bench_results", help="folder for targets.json")
    args = parser.parse_args(argv)
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        uri = args.uri or str(Path(tmp) / "targets.db")
        report: dict[str, Any] = {
            "uri": args.uri or "embedded Milvus Lite",
            "lone_call": lone_call_overhead(uri),
            "request_counts": request_counts(uri),
            "different_filters": different_filters(uri, args.n),
            # an embedded .db file can be open in one process only: the child gets its own
            "streamed_ingest": streamed_ingest_rss(
                args.uri or str(Path(tmp) / "ingest.db"), args.ingest
            ),
        }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "targets.json").write_text(json.dumps(report, indent=2))
    lone, filt, ingest = report["lone_call"], report["different_filters"], report["streamed_ingest"]
    print(
        f"lone call: +{lone['added_ms']:.2f} ms median with coalescing "
        f"({lone['median_on_ms']:.2f} vs {lone['median_off_ms']:.2f} ms)"
    )
    print(
        f"{filt['n']} concurrent by-vector searches, distinct filters: ours {filt['ours_s']:.2f}"
        f" s, raw AsyncMilvusClient {filt['raw_s']:.2f} s "
        f"(ours at {filt['ours_vs_raw_throughput']:.0%} of raw throughput)"
    )
    for name, counts in report["request_counts"].items():
        print(
            f"{name}: "
            + ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in counts.items()
            )
        )
    print(
        f"streamed ingest of {ingest['texts']} texts: {ingest['seconds']:.1f} s, "
        f"{ingest['rows']} rows, peak RSS {ingest['peak_rss_mib']:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

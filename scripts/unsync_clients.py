#!/usr/bin/env python3
"""Unsynchronised async clients on one LangChain store, no HTTP: the coalescing experiment.

N clients (default 50) share one store; each pauses a random 0-50 ms before every call (as
requests reach a web app), then awaits ``asimilarity_search`` (phase ``search``) or
``aadd_texts`` of one text (phase ``add``). Embeddings come from the offline
OpenAI-compatible server at 100 ms per request, so the physical floor is about
``clients / (0.1 s + mean pause)`` calls per second.

Subjects, run in their own processes, interleaved, repeated (``--reps``), medians printed:
``ours`` (default coalescing), ``ours-N`` (``max_in_flight=N``), ``ours-nocoal``
(``coalescing=False``) and, when installed, ``lcm`` (langchain-milvus with
langchain-openai). Run from the repo root with the project's venv::

    .venv/bin/python scripts/unsync_clients.py                       # a Milvus Lite server
    .venv/bin/python scripts/unsync_clients.py --uri http://127.0.0.1:19530 --reps 3

Written by hand: it measures our own stores against an upstream one under one workload,
which no benchmark library models.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def child(subject: str, uri: str, base_url: str, phase: str, calls: int, clients: int) -> None:
    """One measurement in this process; prints one JSON line."""
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    name = f"u_{uuid.uuid4().hex[:8]}"
    settings = {"base_url": base_url, "api_key": "offline", "model": "text-embedding-3-small"}
    if subject == "lcm":
        from langchain_milvus import Milvus as Upstream
        from langchain_openai import OpenAIEmbeddings as UpstreamEmbeddings

        emb = UpstreamEmbeddings(**settings, check_embedding_ctx_length=False)
        store = Upstream(emb, connection_args={"uri": uri}, collection_name=name, auto_id=True)
    else:
        from langchain_vd import Milvus
        from langchain_vd.embeddings import OpenAIEmbeddings
        from vd_integrations import CoalescingSettings

        kw: dict = {}
        if subject == "ours-nocoal":
            kw = {"coalescing": False}
        elif subject.startswith("ours-"):
            kw = {"coalescing": CoalescingSettings(max_in_flight=int(subject[5:]))}
        emb = OpenAIEmbeddings(**settings, max_concurrency=64, **kw)
        store = Milvus(emb, connection_args={"uri": uri}, collection_name=name, **kw)
    store.add_texts([f"doc {i}" for i in range(100)])

    async def main() -> dict:
        rng = random.Random(7)
        latencies: list[float] = []
        left = calls

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await asyncio.sleep(rng.random() * 0.05)
                start = time.perf_counter()
                if phase == "search":
                    await store.asimilarity_search(f"query {rng.random()}", k=4)
                else:
                    await store.aadd_texts([f"new {rng.random()}"])
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(store.asimilarity_search("warm up", k=4) for _ in range(5)))
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
        latencies.sort()
        return {
            "rps": calls / elapsed,
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)],
        }

    try:
        print(json.dumps(asyncio.run(main())))
    finally:  # leave the server as it was: a thousand rows a run would pile up
        from pymilvus import MilvusClient

        MilvusClient(uri).drop_collection(name)


def _installed(module: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", help="Milvus URI (default: a Milvus Lite server started here)")
    parser.add_argument("--subjects", nargs="+", default=["ours", "ours-nocoal", "lcm"])
    parser.add_argument("--phases", nargs="+", default=["search", "add"])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        subject, uri, base_url, phase = args.child
        child(subject, uri, base_url, phase, args.calls, args.clients)
        return 0

    sys.path.insert(0, str(SRC))
    import httpx

    from vd_integrations.testing.embedding_server import OfflineEmbeddingServer
    from vd_integrations.testing.lite_server import MilvusLiteServer

    subjects = [s for s in args.subjects if s != "lcm" or _installed("langchain_milvus")]
    results: dict[tuple[str, str], list[dict]] = {}
    with OfflineEmbeddingServer(latency=0.1, dim=256) as embeddings, MilvusLiteServer() as lite:
        uri = args.uri or lite.uri
        env = dict(os.environ, PYTHONPATH=str(SRC))
        for rep in range(args.reps):
            for phase in args.phases:
                for subject in subjects:
                    httpx.post(embeddings.root_url + "/stats/reset")
                    cmd = [sys.executable, __file__, "--calls", str(args.calls)]
                    cmd += ["--clients", str(args.clients), "--child"]
                    cmd += [subject, uri, embeddings.base_url, phase]
                    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
                    if not lines:
                        print(f"{subject} {phase} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                        continue
                    row = json.loads(lines[-1])
                    row["requests"] = httpx.get(embeddings.root_url + "/stats").json()["requests"]
                    results.setdefault((phase, subject), []).append(row)
                    print(f"rep {rep} {phase} {subject}: {row}", flush=True)
    print(f"\n{args.clients} clients, {args.calls} calls per run, medians of {args.reps} runs")
    print("| phase | subject | calls/s | p50 ms | p99 ms | embedding requests |")
    print("|---|---|---|---|---|---|")
    for (phase, subject), rows in results.items():

        def med(key: str, rows: list[dict] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        print(
            f"| {phase} | {subject} | {med('rps'):.0f} | {med('p50') * 1000:.0f} | "
            f"{med('p99') * 1000:.0f} | {med('requests'):.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m vd_bench``: the sync-vs-async benchmark (the README's main job)."""

from __future__ import annotations

import argparse
import sys

from vd_bench.bench import run_benchmark
from vd_bench.runner import MODES, BenchConfig
from vd_bench.subjects import EMBEDDINGS, WORKLOADS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vd_bench",
        description="N independent single-item operations, sync one by one vs async "
        "concurrently, through langchain_vd and llama_index_vd.",
    )
    parser.add_argument(
        "-n",
        "--n",
        type=int,
        nargs="+",
        default=[10, 100, 1000],
        help="operation counts (default: 10 100 1000)",
    )
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument(
        "--integrations",
        nargs="+",
        choices=["langchain", "llama_index"],
        default=["langchain", "llama_index"],
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--uri",
        default=None,
        help="Milvus URI, e.g. http://127.0.0.1:19530 (default: embedded Lite)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run langchain_milvus.Milvus and LlamaIndex's "
        "MilvusVectorStore, each in its own environment if needed",
    )
    parser.add_argument("--out", default="bench_results", help="output folder")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.1,
        help="offline embeddings server latency per request, seconds",
    )
    parser.add_argument("--dim", type=int, default=1536, help="offline embedding size")
    parser.add_argument(
        "--population",
        type=int,
        default=1000,
        help="documents searched, deleted and upserted (default: 1000)",
    )
    parser.add_argument(
        "--embeddings",
        choices=EMBEDDINGS,
        default="langchain-openai",
        help="LangChain stores' embedding client: the tutorial's langchain_openai."
        "OpenAIEmbeddings (default), or ours, which merges concurrent calls itself "
        "(LlamaIndex subjects always use ours: they embed outside the store)",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = BenchConfig(
        n=tuple(args.n),
        workloads=tuple(args.workloads),
        integrations=tuple(args.integrations),
        modes=tuple(args.modes),
        compare=args.compare,
        uri=args.uri,
        out_dir=args.out,
        latency=args.latency,
        dim=args.dim,
        population=args.population,
        embeddings=args.embeddings,
    )
    results = run_benchmark(config, progress=not args.no_progress)
    paths = results.save(args.out)
    print(results.summary())
    print()
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    failed = [m for m in results.measurements if not m.ok and not m.anchor]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

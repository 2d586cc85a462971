"""``python -m vd_bench``: the sync-vs-async benchmark (the README's main job)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vd_bench.bench import MissingDependencyError, check_dependencies, run_benchmark
from vd_bench.estimate import describe, estimate_seconds, format_duration
from vd_bench.runner import FULL, MAX_REPEAT, MODES, QUICK, BenchConfig
from vd_bench.subjects import ALL_WORKLOADS, EMBEDDINGS

INTEGRATIONS = ("langchain", "llama_index")
#: What a compared integration's first run installs (into .venv-bench/<subject>).
COMPARE_INSTALLS = "langchain-milvus==0.4.0, llama-index-vector-stores-milvus"


def _duration(**overrides: Any) -> str:
    return format_duration(estimate_seconds(BenchConfig(**overrides)))


def _rounds(text: str) -> int:
    """``--repeat``'s value: an integer from 1 to :data:`MAX_REPEAT`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_REPEAT:
        raise argparse.ArgumentTypeError(f"R must be an integer 1-{MAX_REPEAT}, got {text!r}")
    return value


def _choices(name: str, choices: tuple[str, ...], base: dict[str, Any]) -> str:
    """``add (about 40 s), search (...)``: each choice alone on top of ``base``."""
    return ", ".join(f"{c} {_duration(**{**base, name: (c,)})}" for c in choices)


def _help_texts() -> dict[str, str]:
    quick = BenchConfig()
    full = BenchConfig.full()
    compare_extra = estimate_seconds(BenchConfig(compare=True)) - estimate_seconds(quick)
    return {
        "epilog": (
            f"Time (2-core machine, embedded Milvus Lite, offline embeddings at 100 ms per "
            f"request; a Milvus server or the OpenAI service differs): the default, "
            f"{describe(quick)}. --full: {describe(full)}. "
            f"--compare doubles the stores (about {compare_extra / 60:.0f} min more on the "
            f"default) and, the first time, installs the integrations we replace "
            f"({COMPARE_INSTALLS}) plus this package into isolated virtualenvs under "
            f"$VD_BENCH_VENVS (default .venv-bench/), a minute or two each; nothing is "
            f"installed into the current environment. Results, tables and plots go to --out."
        ),
        "n": (
            f"operation counts (default: {' '.join(map(str, QUICK['n']))}; "
            f"--full: {' '.join(map(str, FULL['n']))}). Sync time grows with N: "
            + ", ".join(f"N={n} {_duration(n=(n,))}" for n in FULL["n"])
            + " on the default workloads"
        ),
        "workloads": (
            f"default: {' '.join(QUICK['workloads'])} (the tutorial's three studies); "
            f"--full: all. Each alone at the default N: "
            + _choices("workloads", ALL_WORKLOADS, {})
            + ". bulk: ONE call adding N documents (add_documents(docs); LlamaIndex: one "
            "batch embedding call, then add(nodes)), its ops/s in documents. service: a web "
            "app (Starlette, uvicorn) over each LangChain store under concurrent HTTP "
            "clients (see --service-clients)"
        ),
        "integrations": (
            f"default: {' '.join(INTEGRATIONS)}. Each alone: "
            + _choices("integrations", INTEGRATIONS, {})
        ),
        "modes": (
            f"default: {' '.join(MODES)}. Each alone: "
            + _choices("modes", MODES, {})
            + " (the speed-up needs both)"
        ),
        "population": (
            f"documents searched, deleted and upserted (default: {QUICK['population']}; "
            f"--full: {FULL['population']}, the tutorial's)"
        ),
        "repeat": f"the default at --repeat 3 {_duration(repeat=3)}",
        "full": (
            f"the full study: all {len(ALL_WORKLOADS)} workloads (bulk and the service "
            "too), N "
            f"{' '.join(map(str, FULL['n']))}, population {FULL['population']}, "
            f"{FULL['service_searches']:,} service searches then {FULL['service_adds']} adds "
            f"({format_duration(estimate_seconds(full))} here); -n, --workloads, "
            "--population and the --service options still override it"
        ),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    texts = _help_texts()
    parser = argparse.ArgumentParser(
        prog="python -m vd_bench",
        description="N independent single-item operations, sync one by one vs async "
        "concurrently (and with --workloads bulk one call adding N documents), through "
        "langchain_vd and llama_index_vd (and with --compare the integrations they "
        "replace). Prints a table, writes results.json, results.md and PNG plots.",
        epilog=texts["epilog"],
    )
    parser.add_argument("--full", action="store_true", help=texts["full"])
    parser.add_argument("-n", "--n", type=int, nargs="+", default=None, help=texts["n"])
    parser.add_argument(
        "--workloads", nargs="+", choices=ALL_WORKLOADS, default=None, help=texts["workloads"]
    )
    parser.add_argument(
        "--integrations",
        nargs="+",
        choices=INTEGRATIONS,
        default=list(INTEGRATIONS),
        help=texts["integrations"],
    )
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help=texts["modes"]
    )
    parser.add_argument("--population", type=int, default=None, help=texts["population"])
    parser.add_argument(
        "--uri",
        default=None,
        help="Milvus URI, e.g. http://127.0.0.1:19530 (default: embedded Milvus Lite, "
        "one .db file per store under --out)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run langchain_milvus.Milvus and LlamaIndex's MilvusVectorStore; the "
        "first run INSTALLS them (and this package) into isolated virtualenvs under "
        "$VD_BENCH_VENVS (default .venv-bench/), a minute or two each (default: off)",
    )
    parser.add_argument(
        "--out", default="bench_results", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.1,
        help="offline embeddings server latency per request, seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--dim", type=int, default=1536, help="offline embedding size (default: %(default)s)"
    )
    parser.add_argument(
        "--embeddings",
        choices=EMBEDDINGS,
        default="langchain-openai",
        help="LangChain stores' embedding client: the tutorial's langchain_openai."
        "OpenAIEmbeddings (default), or ours, which merges concurrent calls itself "
        "(LlamaIndex subjects always use ours: they embed outside the store)",
    )
    service = parser.add_argument_group(
        "service workload",
        "N concurrent HTTP clients (httpx) against POST /search then POST /add of a "
        "Starlette app served by uvicorn on 127.0.0.1, one app per LangChain store and mode "
        "(async endpoints, or sync ones in the thread pool); each client pauses a random "
        "0 to --service-pause seconds before each request. Needs the service extra.",
    )
    service.add_argument(
        "--service-clients", type=int, default=None, help="concurrent clients (default: 50)"
    )
    service.add_argument(
        "--service-searches",
        type=int,
        default=None,
        help=f"searches in all (default: {QUICK['service_searches']}; "
        f"--full: {FULL['service_searches']})",
    )
    service.add_argument(
        "--service-adds",
        type=int,
        default=None,
        help=f"adds after the searches (default: {QUICK['service_adds']}; "
        f"--full: {FULL['service_adds']})",
    )
    service.add_argument(
        "--service-pause",
        type=float,
        default=None,
        help="longest pause before each request, seconds (default: 0.05)",
    )
    parser.add_argument(
        "--repeat",
        type=_rounds,
        default=1,
        metavar="R",
        help=f"repeat the whole run R times (1-{MAX_REPEAT}), interleaved: every subject once "
        "per round; tables report each measurement's median over the rounds and its spread "
        f"(default: %(default)s, also with --full; R times as long: {texts['repeat']})",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="do not measure the physical floor (one raw embedding request and one raw "
        "AsyncMilvusClient request next to each measurement)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> BenchConfig:
    """The preset (quick, or full with ``--full``) with the explicit options applied."""
    preset = FULL if args.full else QUICK
    service: dict[str, Any] = {
        "service_searches": preset["service_searches"],
        "service_adds": preset["service_adds"],
    }
    for name in ("clients", "searches", "adds", "pause"):
        value = getattr(args, f"service_{name}")
        if value is not None:
            service[f"service_{name}"] = value
    return BenchConfig(
        n=tuple(args.n or preset["n"]),
        workloads=tuple(args.workloads or preset["workloads"]),
        integrations=tuple(args.integrations),
        modes=tuple(args.modes),
        compare=args.compare,
        uri=args.uri,
        out_dir=args.out,
        latency=args.latency,
        dim=args.dim,
        population=args.population or preset["population"],
        embeddings=args.embeddings,
        floor=not args.no_floor,
        repeat=args.repeat,
        **service,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from(args)
    try:
        check_dependencies(config, plots=True, progress=not args.no_progress)
    except MissingDependencyError as exc:
        print(f"vd_bench: {exc}", file=sys.stderr)
        return 2
    print(f"vd_bench: {describe(config)} (estimate)", flush=True)
    try:
        results = run_benchmark(config, progress=not args.no_progress)
    except KeyboardInterrupt:  # the servers it started have stopped
        print("vd_bench: interrupted; nothing was written", file=sys.stderr)
        return 130
    paths = results.save(args.out)
    print(results.summary())
    print()
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    print(f"took {results.meta.get('seconds', 0):.0f} s")
    if not config.is_full:
        print(
            f"\nThis was a quick run. The full study ({describe(BenchConfig.full())}):\n"
            "    python -m vd_bench --full          (from a checkout: python3 dev.py main --full)\n"
            "or choose N, workloads and population: python -m vd_bench -n 10 100 1000 "
            "--workloads add search delete upsert mmr bulk service --population 1000. "
            "Add --compare to measure the integrations we replace; --help lists every option."
        )
    failed = [m for m in results.measurements if not m.ok and not m.anchor]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

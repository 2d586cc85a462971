"""Matplotlib figures of a run. Each function returns a Figure (notebooks show it inline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vd_bench.report import BenchResults

__all__ = ["latency_figure", "save_all", "speedup_figure", "throughput_figure", "time_figure"]

WORKLOAD_ORDER = ("add", "search", "delete", "upsert", "mmr")
TITLES = {"langchain": "LangChain", "llama_index": "LlamaIndex"}


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline",):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _integrations(results: BenchResults) -> list[str]:
    return list(dict.fromkeys(m.integration for m in results.measurements))


def _workloads(results: BenchResults) -> list[str]:
    present = {m.workload for m in results.measurements}
    return [w for w in WORKLOAD_ORDER if w in present]


def _ns(results: BenchResults) -> list[int]:
    return sorted({m.n for m in results.measurements})


def _grid(plt: Any, rows: int, cols: int, title: str) -> tuple[Any, Any]:
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 3.6 * rows), squeeze=False)
    fig.suptitle(title)
    return fig, axes


def _series(results: BenchResults, integration: str) -> list[tuple[str, str]]:
    return [(s, mode) for s in results.subjects(integration) for mode in ("sync", "async")]


def _bars(
    ax: Any, results: BenchResults, integration: str, n: int, value: Any, ylabel: str
) -> None:
    workloads = _workloads(results)
    series = _series(results, integration)
    width = 0.8 / max(len(series), 1)
    for k, (subject, mode) in enumerate(series):
        heights = []
        for w in workloads:
            m = results.get(subject, w, n, mode)
            heights.append(value(m) if m is not None and m.ok else 0.0)
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(workloads))]
        anchor = any(mm.anchor for mm in results.measurements if mm.subject == subject)
        hatch = "//" if anchor else None
        ax.bar(
            xs,
            heights,
            width,
            label=f"{results.label(subject)} {mode}",
            hatch=hatch,
            alpha=0.55 if mode == "sync" else 0.95,
        )
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{TITLES.get(integration, integration)}, N={n}")
    ax.legend(fontsize=7)


def time_figure(results: BenchResults) -> Any:
    """Seconds per workload, sync vs async, for every store and N (log scale)."""
    plt = _pyplot()
    integrations, ns = _integrations(results), _ns(results)
    fig, axes = _grid(plt, len(ns), len(integrations), "Time for N single-item operations")
    for row, n in enumerate(ns):
        for col, integration in enumerate(integrations):
            _bars(axes[row][col], results, integration, n, lambda m: m.seconds, "seconds")
    fig.tight_layout()
    return fig


def speedup_figure(results: BenchResults) -> Any:
    """Async over sync speed-up against N, one line per workload and store."""
    plt = _pyplot()
    integrations, ns = _integrations(results), _ns(results)
    fig, axes = _grid(plt, 1, len(integrations), "Speed-up of async (concurrent) over sync")
    for col, integration in enumerate(integrations):
        ax = axes[0][col]
        for subject in results.subjects(integration):
            anchor = any(m.anchor for m in results.measurements if m.subject == subject)
            for w in _workloads(results):
                ys = [results.speedup(subject, w, n) for n in ns]
                points = [(n, y) for n, y in zip(ns, ys, strict=True) if y is not None]
                if points:
                    ax.plot(
                        *zip(*points, strict=True),
                        marker="o",
                        linestyle="--" if anchor else "-",
                        label=f"{results.label(subject)} {w}",
                    )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (operations)")
        ax.set_ylabel("sync s / async s")
        ax.set_title(TITLES.get(integration, integration))
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def latency_figure(results: BenchResults, n: int | None = None) -> Any:
    """Per-operation latency p50 and p99 at one N (default: the largest)."""
    plt = _pyplot()
    integrations = _integrations(results)
    n = n or max(_ns(results))
    fig, axes = _grid(plt, 2, len(integrations), f"Latency per operation, N={n}")
    for col, integration in enumerate(integrations):
        _bars(axes[0][col], results, integration, n, lambda m: m.p50_ms, "p50 ms")
        _bars(axes[1][col], results, integration, n, lambda m: m.p99_ms, "p99 ms")
    fig.tight_layout()
    return fig


def throughput_figure(results: BenchResults) -> Any:
    """Operations per second against N: how each mode scales with concurrency."""
    plt = _pyplot()
    integrations, ns = _integrations(results), _ns(results)
    workloads = _workloads(results)
    fig, axes = _grid(plt, len(workloads), len(integrations), "Throughput (operations/s)")
    for row, w in enumerate(workloads):
        for col, integration in enumerate(integrations):
            ax = axes[row][col]
            for subject, mode in _series(results, integration):
                points = [
                    (n, m.ops_per_s)
                    for n in ns
                    if (m := results.get(subject, w, n, mode)) is not None and m.ok
                ]
                if points:
                    ax.plot(
                        *zip(*points, strict=True),
                        marker="o",
                        linestyle="-" if mode == "async" else ":",
                        label=f"{results.label(subject)} {mode}",
                    )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{TITLES.get(integration, integration)}: {w}")
            ax.set_xlabel("N")
            ax.set_ylabel("ops/s")
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


FIGURES = {
    "time": time_figure,
    "speedup": speedup_figure,
    "latency": latency_figure,
    "throughput": throughput_figure,
}


def save_all(results: BenchResults, out_dir: Path) -> dict[str, Path]:
    """Write every figure as ``<name>.png`` in ``out_dir``."""
    plt = _pyplot()
    paths = {}
    for name, make in FIGURES.items():
        fig = make(results)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[name] = path
    return paths

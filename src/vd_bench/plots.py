"""Matplotlib figures of a run. Each function returns a Figure (notebooks show it inline).

One encoding throughout: a workload has a hue (add blue, search orange, delete green,
upsert purple, MMR red); within it our store is the dark shade and the integration it
replaces the light one. Sync bars are hatched, async bars solid; in line charts ours is
solid, theirs dashed. Legends sit outside the axes, on the right. With a single N the
charts over N become bars. Speed-ups are drawn from a 1x reference line.

This module needs nothing from :mod:`vd_bench.report`: any object with the lookups below
(:class:`~vd_bench.report.BenchResults` has them) can be plotted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from vd_bench.runner import Measurement

__all__ = ["latency_figure", "save_all", "speedup_figure", "throughput_figure", "time_figure"]

WORKLOAD_ORDER = ("add", "search", "delete", "upsert", "mmr")
TITLES = {"langchain": "LangChain", "llama_index": "LlamaIndex"}
#: A colour map per workload: ours takes the dark end, theirs the light one.
HUES = {
    "add": "Blues",
    "search": "Oranges",
    "delete": "Greens",
    "upsert": "Purples",
    "mmr": "Reds",
}
OURS_SHADE, THEIRS_SHADE = 0.85, 0.45
MODE_LABELS = {"sync": "sync, one by one", "async": "async, concurrent"}
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 14,
    "hatch.linewidth": 1.2,
}


class Results(Protocol):
    """What the figures read from a run (:class:`vd_bench.report.BenchResults` has it)."""

    measurements: list[Measurement]

    def subjects(self, integration: str | None = None) -> list[str]: ...

    def label(self, subject: str) -> str: ...

    def get(self, subject: str, workload: str, n: int, mode: str) -> Measurement | None: ...

    def speedup(self, subject: str, workload: str, n: int) -> float | None: ...


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline",):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def _style(plt: Any) -> Iterator[None]:
    with plt.rc_context(STYLE):
        yield


# ----- what a run holds --------------------------------------------------------------------------


def _integrations(results: Results) -> list[str]:
    return list(dict.fromkeys(m.integration for m in results.measurements))


def _workloads(results: Results) -> list[str]:
    present = {m.workload for m in results.measurements}
    return [w for w in WORKLOAD_ORDER if w in present] + sorted(present - set(WORKLOAD_ORDER))


def _ns(results: Results) -> list[int]:
    return sorted({m.n for m in results.measurements})


def _modes(results: Results) -> list[str]:
    present = {m.mode for m in results.measurements}
    return [mode for mode in ("sync", "async") if mode in present]


def _is_anchor(results: Results, subject: str) -> bool:
    return any(m.anchor for m in results.measurements if m.subject == subject)


def _ordered_subjects(results: Results, integration: str) -> list[str]:
    """Ours first, then the integration it replaces."""
    return sorted(results.subjects(integration), key=lambda s: _is_anchor(results, s))


def _colour(plt: Any, workload: str, anchor: bool) -> Any:
    cmap = plt.get_cmap(HUES.get(workload, "Greys"))
    return cmap(THEIRS_SHADE if anchor else OURS_SHADE)


def _log_axis(axis: Any) -> None:
    """Log scale labelled with plain numbers (0.2, 1, 10), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _value(m: Measurement | None, read: Callable[[Measurement], float | None]) -> float | None:
    if m is None or not m.ok:
        return None
    value = read(m)
    return value if value is not None and value > 0 else None


# ----- layout and legends ------------------------------------------------------------------------


def _figure(plt: Any, rows: int, cols: int, title: str, *, width: float = 6.4, height: float = 4.0):
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width * cols + 3.2, height * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    fig.suptitle(title, fontweight="bold")
    return fig, axes


def _store_handles(plt: Any, results: Results) -> list[Any]:
    """Grey proxies for the shades: each measured store, ours dark, theirs light."""
    from matplotlib.patches import Patch

    handles = []
    for integration in _integrations(results):
        for subject in _ordered_subjects(results, integration):
            anchor = _is_anchor(results, subject)
            grey = plt.get_cmap("Greys")(THEIRS_SHADE if anchor else OURS_SHADE)
            role = "replaced" if anchor else "ours"
            handles.append(Patch(facecolor=grey, label=f"{results.label(subject)} ({role})"))
    return handles


def _workload_handles(plt: Any, workloads: Sequence[str]) -> list[Any]:
    from matplotlib.patches import Patch

    return [Patch(facecolor=_colour(plt, w, False), label=w) for w in workloads]


def _mode_bar_handles(modes: Sequence[str]) -> list[Any]:
    from matplotlib.patches import Patch

    handles = []
    for mode in modes:
        if mode == "sync":
            handles.append(
                Patch(facecolor="white", edgecolor="0.35", hatch="///", label=MODE_LABELS[mode])
            )
        elif mode == "async":
            handles.append(Patch(facecolor="0.35", edgecolor="0.35", label=MODE_LABELS[mode]))
    return handles


def _line_store_handles(results: Results) -> list[Any]:
    from matplotlib.lines import Line2D

    handles = []
    for integration in _integrations(results):
        for subject in _ordered_subjects(results, integration):
            anchor = _is_anchor(results, subject)
            role = "replaced" if anchor else "ours"
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.55" if anchor else "0.15",
                    linestyle="--" if anchor else "-",
                    marker="o",
                    label=f"{results.label(subject)} ({role})",
                )
            )
    return handles


def _legend(fig: Any, sections: Sequence[tuple[str, list[Any]]]) -> None:
    """One legend per section, stacked outside the axes on the right."""
    from matplotlib.lines import Line2D

    handles: list[Any] = []
    for k, (title, items) in enumerate(sections):
        if not items:
            continue
        if k:
            handles.append(Line2D([], [], linestyle="none", label=" "))
        handles.append(Line2D([], [], linestyle="none", label=title))
        handles.extend(items)
    legend = fig.legend(handles=handles, loc="outside right upper", frameon=False)
    titles = {title for title, _ in sections}
    for text in legend.get_texts():
        if text.get_text() in titles:
            text.set_fontweight("bold")


# ----- bars --------------------------------------------------------------------------------------


def _grouped_bars(
    plt: Any,
    ax: Any,
    results: Results,
    integration: str,
    n: int,
    read: Callable[[Measurement], float | None],
    ylabel: str,
    *,
    annotate: Callable[[float], str] | None = None,
) -> None:
    """Per workload, a bar per (store, mode): hue by workload, shade by store, hatch by mode."""
    workloads = _workloads(results)
    series = [
        (subject, mode)
        for subject in _ordered_subjects(results, integration)
        for mode in _modes(results)
    ]
    width = 0.84 / max(len(series), 1)
    for i, workload in enumerate(workloads):
        for k, (subject, mode) in enumerate(series):
            x = i + (k - (len(series) - 1) / 2) * width
            m = results.get(subject, workload, n, mode)
            value = _value(m, read)
            if value is None:
                if m is not None:
                    ax.annotate(
                        "failed",
                        (x, 0),
                        xycoords=("data", "axes fraction"),
                        xytext=(0, 3),
                        textcoords="offset points",
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=8,
                        color="0.3",
                    )
                continue
            colour = _colour(plt, workload, _is_anchor(results, subject))
            if mode == "sync":
                style = {"facecolor": "white", "edgecolor": colour, "hatch": "///"}
            else:
                style = {"facecolor": colour, "edgecolor": colour}
            ax.bar(x, value, width * 0.92, linewidth=1.2, **style)
            if annotate is not None:
                ax.annotate(
                    annotate(value),
                    (x, value),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_xlim(-0.6, len(workloads) - 0.4)
    ax.set_yscale("log")
    _log_axis(ax.yaxis)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.12)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.set_axisbelow(True)


def _bar_legend(fig: Any, plt: Any, results: Results) -> None:
    _legend(
        fig,
        [
            ("store (shade)", _store_handles(plt, results)),
            ("mode", _mode_bar_handles(_modes(results))),
        ],
    )


def time_figure(results: Results) -> Any:
    """Seconds for N operations per workload, sync vs async, for every store and N (log)."""
    plt = _pyplot()
    integrations, ns = _integrations(results), _ns(results)
    with _style(plt):
        fig, axes = _figure(
            plt, len(ns), len(integrations), "Time for N single-item operations (lower is better)"
        )
        for row, n in enumerate(ns):
            for col, integration in enumerate(integrations):
                ax = axes[row][col]
                _grouped_bars(plt, ax, results, integration, n, lambda m: m.seconds, "seconds")
                ax.set_title(f"{TITLES.get(integration, integration)}, N={n}")
        _bar_legend(fig, plt, results)
    return fig


def latency_figure(results: Results, n: int | None = None) -> Any:
    """Per-operation latency p50 and p99 at one N (default: the largest)."""
    plt = _pyplot()
    integrations = _integrations(results)
    n = n or max(_ns(results))
    with _style(plt):
        fig, axes = _figure(
            plt, 2, len(integrations), f"Latency per operation at N={n} (lower is better)"
        )
        for col, integration in enumerate(integrations):
            title = TITLES.get(integration, integration)
            _grouped_bars(plt, axes[0][col], results, integration, n, lambda m: m.p50_ms, "ms")
            axes[0][col].set_title(f"{title}: median (p50)")
            _grouped_bars(plt, axes[1][col], results, integration, n, lambda m: m.p99_ms, "ms")
            axes[1][col].set_title(f"{title}: p99")
        _bar_legend(fig, plt, results)
    return fig


# ----- speed-up ----------------------------------------------------------------------------------


REFERENCE_LABEL = "1x: async no faster than sync"


def _reference_line(ax: Any) -> Any:
    """The 1x line, kept inside the y range; returns its legend handle."""
    line = ax.axhline(1.0, color="0.2", linewidth=1.4, linestyle=":", zorder=4)
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, 0.6), max(high, 1.6))
    line.set_label(REFERENCE_LABEL)
    return line


def _speedup_bars(plt: Any, ax: Any, results: Results, integration: str, n: int) -> None:
    """A single N: per workload, a bar per store from the 1x line to its speed-up."""
    workloads = _workloads(results)
    subjects = _ordered_subjects(results, integration)
    width = 0.8 / max(len(subjects), 1)
    for i, workload in enumerate(workloads):
        for k, subject in enumerate(subjects):
            x = i + (k - (len(subjects) - 1) / 2) * width
            speedup = results.speedup(subject, workload, n)
            if speedup is None:
                continue
            colour = _colour(plt, workload, _is_anchor(results, subject))
            ax.bar(x, speedup - 1.0, width * 0.92, bottom=1.0, color=colour, zorder=2)
            ax.annotate(
                f"{speedup:.1f}x",
                (x, speedup),
                xytext=(0, 2 if speedup >= 1 else -2),
                textcoords="offset points",
                ha="center",
                va="bottom" if speedup >= 1 else "top",
                fontsize=8,
            )
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_xlim(-0.6, len(workloads) - 0.4)


def _speedup_lines(plt: Any, ax: Any, results: Results, integration: str, ns: list[int]) -> None:
    for subject in _ordered_subjects(results, integration):
        anchor = _is_anchor(results, subject)
        for workload in _workloads(results):
            points = [
                (n, y) for n in ns if (y := results.speedup(subject, workload, n)) is not None
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(
                    xs,
                    ys,
                    marker="o",
                    linestyle="--" if anchor else "-",
                    linewidth=2,
                    color=_colour(plt, workload, anchor),
                    zorder=3,
                )
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("N (operations)")


def speedup_figure(results: Results) -> Any:
    """Async over sync speed-up (sync s / async s) per workload and store, against N."""
    plt = _pyplot()
    integrations, ns = _integrations(results), _ns(results)
    single = len(ns) == 1
    title = "Speed-up of async (concurrent) over sync (one by one)"
    if single:
        title += f", N={ns[0]}"
    with _style(plt):
        fig, axes = _figure(plt, 1, len(integrations), title, height=4.6)
        for col, integration in enumerate(integrations):
            ax = axes[0][col]
            if single:
                _speedup_bars(plt, ax, results, integration, ns[0])
            else:
                _speedup_lines(plt, ax, results, integration, ns)
            ax.set_yscale("log")
            ax.margins(y=0.15)
            reference = _reference_line(ax)
            _log_axis(ax.yaxis)
            ax.set_ylabel("sync s / async s")
            ax.set_title(TITLES.get(integration, integration))
            ax.grid(axis="y", which="major", alpha=0.3)
            ax.set_axisbelow(True)
        store = _store_handles(plt, results) if single else _line_store_handles(results)
        _legend(
            fig,
            [
                ("workload (hue)", _workload_handles(plt, _workloads(results))),
                ("store (shade)" if single else "store", store),
                ("reference", [reference]),
            ],
        )
    return fig


# ----- throughput --------------------------------------------------------------------------------


def throughput_figure(results: Results) -> Any:
    """Operations per second against N, sync and async: how each mode scales with N.

    A row per mode, a column per integration; with a single N, bars per workload.
    """
    plt = _pyplot()
    integrations, ns, modes = _integrations(results), _ns(results), _modes(results)
    if len(ns) == 1:
        with _style(plt):
            fig, axes = _figure(
                plt,
                1,
                len(integrations),
                f"Throughput at N={ns[0]} (operations/s, higher is better)",
                height=4.6,
            )
            for col, integration in enumerate(integrations):
                ax = axes[0][col]
                _grouped_bars(plt, ax, results, integration, ns[0], lambda m: m.ops_per_s, "ops/s")
                ax.set_title(TITLES.get(integration, integration))
            _bar_legend(fig, plt, results)
        return fig
    with _style(plt):
        fig, axes = _figure(
            plt, len(modes), len(integrations), "Throughput (operations/s, higher is better)"
        )
        for row, mode in enumerate(modes):
            for col, integration in enumerate(integrations):
                ax = axes[row][col]
                for subject in _ordered_subjects(results, integration):
                    anchor = _is_anchor(results, subject)
                    for workload in _workloads(results):
                        points = [
                            (n, value)
                            for n in ns
                            if (
                                value := _value(
                                    results.get(subject, workload, n, mode), lambda m: m.ops_per_s
                                )
                            )
                            is not None
                        ]
                        if points:
                            xs, ys = zip(*points, strict=True)
                            ax.plot(
                                xs,
                                ys,
                                marker="o",
                                linewidth=2,
                                linestyle="--" if anchor else "-",
                                color=_colour(plt, workload, anchor),
                            )
                ax.set_xscale("log")
                ax.set_yscale("log")
                _log_axis(ax.yaxis)
                ax.set_xticks(ns, [str(n) for n in ns])
                ax.minorticks_off()
                ax.margins(y=0.12)
                ax.set_title(f"{TITLES.get(integration, integration)}: {MODE_LABELS[mode]}")
                ax.set_xlabel("N (operations)")
                ax.set_ylabel("ops/s")
                ax.grid(which="major", alpha=0.3)
        _legend(
            fig,
            [
                ("workload (hue)", _workload_handles(plt, _workloads(results))),
                ("store", _line_store_handles(results)),
            ],
        )
    return fig


FIGURES: dict[str, Callable[[Results], Any]] = {
    "time": time_figure,
    "speedup": speedup_figure,
    "latency": latency_figure,
    "throughput": throughput_figure,
}


def save_all(results: Results, out_dir: str | Path) -> dict[str, Path]:
    """Write every figure as ``<name>.png`` in ``out_dir``; returns the paths."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, make in FIGURES.items():
        fig = make(results)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[name] = path
    return paths

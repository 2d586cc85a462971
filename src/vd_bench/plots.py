"""Matplotlib figures of a run. Each function returns a Figure (notebooks show it inline).

One encoding throughout: a workload has a hue (add blue, search orange, delete green,
upsert purple, MMR red); within it our store is the dark shade and the integration it
replaces the light one. Sync bars are hatched, async bars solid; in line charts ours is
solid, theirs dashed. Legends sit outside the axes, on the right. With a single N the
charts over N become bars. Speed-ups are drawn from a 1x reference line. A run of several
rounds is drawn from its medians (the lookups' median run), and the titles say so.

This module needs nothing from :mod:`vd_bench.report`: any object with the lookups of
:class:`~vd_bench.plot_data.Results` (:class:`~vd_bench.report.BenchResults` has them) can
be plotted. The lookups live in :mod:`vd_bench.plot_data`, the shared encoding (colours,
axes, layout, legends) in :mod:`vd_bench.plot_style`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vd_bench.plot_data import (
    Results,
    integrations_of,
    is_anchor,
    measured_value,
    median_note,
    modes_of,
    ns_of,
    ordered_subjects,
    workloads_of,
)
from vd_bench.plot_style import (
    MODE_LABELS,
    TITLES,
    colour,
    legend,
    line_store_handles,
    log_axis,
    mode_bar_handles,
    new_figure,
    pyplot,
    store_handles,
    style,
    workload_handles,
)
from vd_bench.runner import Measurement

__all__ = ["latency_figure", "save_all", "speedup_figure", "throughput_figure", "time_figure"]

_colour = colour  # kept under its old name: tests/test_bench.py reads plots._colour


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
    workloads = workloads_of(results)
    series = [
        (subject, mode)
        for subject in ordered_subjects(results, integration)
        for mode in modes_of(results)
    ]
    width = 0.84 / max(len(series), 1)
    for i, workload in enumerate(workloads):
        for k, (subject, mode) in enumerate(series):
            x = i + (k - (len(series) - 1) / 2) * width
            m = results.get(subject, workload, n, mode)
            value = measured_value(m, read)
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
            hue = colour(plt, workload, is_anchor(results, subject))
            if mode == "sync":
                bar_style = {"facecolor": "white", "edgecolor": hue, "hatch": "///"}
            else:
                bar_style = {"facecolor": hue, "edgecolor": hue}
            ax.bar(x, value, width * 0.92, linewidth=1.2, **bar_style)
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
    log_axis(ax.yaxis)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.12)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.set_axisbelow(True)


def _bar_legend(fig: Any, plt: Any, results: Results) -> None:
    legend(
        fig,
        [
            ("store (shade)", store_handles(plt, results)),
            ("mode", mode_bar_handles(modes_of(results))),
        ],
    )


def time_figure(results: Results) -> Any:
    """Seconds for N operations per workload, sync vs async, for every store and N (log)."""
    plt = pyplot()
    integrations, ns = integrations_of(results), ns_of(results)
    with style(plt):
        fig, axes = new_figure(
            plt,
            len(ns),
            len(integrations),
            "Time for N operations (bulk: one call of N documents; lower is better)"
            + median_note(results),
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
    plt = pyplot()
    integrations = integrations_of(results)
    n = n or max(ns_of(results))
    with style(plt):
        fig, axes = new_figure(
            plt,
            2,
            len(integrations),
            f"Latency per operation at N={n} (lower is better)" + median_note(results),
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
    workloads = workloads_of(results)
    subjects = ordered_subjects(results, integration)
    width = 0.8 / max(len(subjects), 1)
    for i, workload in enumerate(workloads):
        for k, subject in enumerate(subjects):
            x = i + (k - (len(subjects) - 1) / 2) * width
            speedup = results.speedup(subject, workload, n)
            if speedup is None:
                continue
            hue = colour(plt, workload, is_anchor(results, subject))
            ax.bar(x, speedup - 1.0, width * 0.92, bottom=1.0, color=hue, zorder=2)
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
    for subject in ordered_subjects(results, integration):
        anchor = is_anchor(results, subject)
        for workload in workloads_of(results):
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
                    color=colour(plt, workload, anchor),
                    zorder=3,
                )
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("N (operations; bulk: documents)")


def speedup_figure(results: Results) -> Any:
    """Async over sync speed-up (sync s / async s) per workload and store, against N."""
    plt = pyplot()
    integrations, ns = integrations_of(results), ns_of(results)
    single = len(ns) == 1
    title = "Speed-up of async (concurrent) over sync (one by one)"
    if single:
        title += f", N={ns[0]}"
    title += median_note(results)
    with style(plt):
        fig, axes = new_figure(plt, 1, len(integrations), title, height=4.6)
        for col, integration in enumerate(integrations):
            ax = axes[0][col]
            if single:
                _speedup_bars(plt, ax, results, integration, ns[0])
            else:
                _speedup_lines(plt, ax, results, integration, ns)
            ax.set_yscale("log")
            ax.margins(y=0.15)
            reference = _reference_line(ax)
            log_axis(ax.yaxis)
            ax.set_ylabel("sync s / async s")
            ax.set_title(TITLES.get(integration, integration))
            ax.grid(axis="y", which="major", alpha=0.3)
            ax.set_axisbelow(True)
        store = store_handles(plt, results) if single else line_store_handles(results)
        legend(
            fig,
            [
                ("workload (hue)", workload_handles(plt, workloads_of(results))),
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
    plt = pyplot()
    integrations, ns, modes = integrations_of(results), ns_of(results), modes_of(results)
    if len(ns) == 1:
        with style(plt):
            fig, axes = new_figure(
                plt,
                1,
                len(integrations),
                f"Throughput at N={ns[0]} (operations/s, higher is better)" + median_note(results),
                height=4.6,
            )
            for col, integration in enumerate(integrations):
                ax = axes[0][col]
                _grouped_bars(plt, ax, results, integration, ns[0], lambda m: m.ops_per_s, "ops/s")
                ax.set_title(TITLES.get(integration, integration))
            _bar_legend(fig, plt, results)
        return fig
    with style(plt):
        fig, axes = new_figure(
            plt,
            len(modes),
            len(integrations),
            "Throughput (operations/s, higher is better)" + median_note(results),
        )
        for row, mode in enumerate(modes):
            for col, integration in enumerate(integrations):
                ax = axes[row][col]
                for subject in ordered_subjects(results, integration):
                    anchor = is_anchor(results, subject)
                    for workload in workloads_of(results):
                        points = [
                            (n, value)
                            for n in ns
                            if (
                                value := measured_value(
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
                                color=colour(plt, workload, anchor),
                            )
                ax.set_xscale("log")
                ax.set_yscale("log")
                log_axis(ax.yaxis)
                ax.set_xticks(ns, [str(n) for n in ns])
                ax.minorticks_off()
                ax.margins(y=0.12)
                ax.set_title(f"{TITLES.get(integration, integration)}: {MODE_LABELS[mode]}")
                ax.set_xlabel("N (operations; bulk: documents)")
                ax.set_ylabel("ops/s")
                ax.grid(which="major", alpha=0.3)
        legend(
            fig,
            [
                ("workload (hue)", workload_handles(plt, workloads_of(results))),
                ("store", line_store_handles(results)),
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
    plt = pyplot()
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

"""The encoding the figures share: matplotlib setup, colours, log axes, layout and legends.

A workload has a hue; within it our store is the dark shade and the integration it
replaces the light one. Sync bars are hatched, async bars solid; in line charts ours is
solid, theirs dashed. Legends sit outside the axes, on the right.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from vd_bench.plot_data import Results, integrations_of, is_anchor, ordered_subjects

__all__ = [
    "HUES",
    "MODE_LABELS",
    "OURS_SHADE",
    "STYLE",
    "THEIRS_SHADE",
    "TITLES",
    "colour",
    "legend",
    "line_store_handles",
    "log_axis",
    "mode_bar_handles",
    "new_figure",
    "pyplot",
    "store_handles",
    "style",
    "workload_handles",
]

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


def pyplot() -> Any:
    """``matplotlib.pyplot``, on the Agg backend unless a notebook shows figures inline."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline",):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def style(plt: Any) -> Iterator[None]:
    """Draw with :data:`STYLE`."""
    with plt.rc_context(STYLE):
        yield


def colour(plt: Any, workload: str, anchor: bool) -> Any:
    """The workload's hue, dark for ours, light for the integration it replaces."""
    cmap = plt.get_cmap(HUES.get(workload, "Greys"))
    return cmap(THEIRS_SHADE if anchor else OURS_SHADE)


def log_axis(axis: Any) -> None:
    """Log scale labelled with plain numbers (0.2, 1, 10), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


# ----- layout and legends ------------------------------------------------------------------------


def new_figure(
    plt: Any, rows: int, cols: int, title: str, *, width: float = 6.4, height: float = 4.0
) -> tuple[Any, Any]:
    """A ``rows`` x ``cols`` grid titled ``title``, with room on the right for the legend."""
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width * cols + 3.2, height * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    fig.suptitle(title, fontweight="bold")
    return fig, axes


def store_handles(plt: Any, results: Results) -> list[Any]:
    """Grey proxies for the shades: each measured store, ours dark, theirs light."""
    from matplotlib.patches import Patch

    handles = []
    for integration in integrations_of(results):
        for subject in ordered_subjects(results, integration):
            anchor = is_anchor(results, subject)
            grey = plt.get_cmap("Greys")(THEIRS_SHADE if anchor else OURS_SHADE)
            role = "replaced" if anchor else "ours"
            handles.append(Patch(facecolor=grey, label=f"{results.label(subject)} ({role})"))
    return handles


def workload_handles(plt: Any, workloads: Sequence[str]) -> list[Any]:
    """A patch per workload in its hue (our shade)."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=colour(plt, w, False), label=w) for w in workloads]


def mode_bar_handles(modes: Sequence[str]) -> list[Any]:
    """Sync hatched, async solid."""
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


def line_store_handles(results: Results) -> list[Any]:
    """A line per measured store: ours solid and dark, theirs dashed and light."""
    from matplotlib.lines import Line2D

    handles = []
    for integration in integrations_of(results):
        for subject in ordered_subjects(results, integration):
            anchor = is_anchor(results, subject)
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


def legend(fig: Any, sections: Sequence[tuple[str, list[Any]]]) -> None:
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
    box = fig.legend(handles=handles, loc="outside right upper", frameon=False)
    titles = {title for title, _ in sections}
    for text in box.get_texts():
        if text.get_text() in titles:
            text.set_fontweight("bold")

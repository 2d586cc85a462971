"""What the figures read from a run: the :class:`Results` protocol and lookups over it.

Any object with these lookups can be plotted (:class:`vd_bench.report.BenchResults` has
them); nothing here imports :mod:`vd_bench.report` or matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from vd_bench.runner import Measurement

__all__ = [
    "WORKLOAD_ORDER",
    "Results",
    "integrations_of",
    "is_anchor",
    "measured_value",
    "median_note",
    "modes_of",
    "ns_of",
    "ordered_subjects",
    "workloads_of",
]

WORKLOAD_ORDER = ("add", "search", "delete", "upsert", "mmr")


class Results(Protocol):
    """What the figures read from a run (:class:`vd_bench.report.BenchResults` has it)."""

    measurements: list[Measurement]

    def subjects(self, integration: str | None = None) -> list[str]: ...

    def label(self, subject: str) -> str: ...

    def get(self, subject: str, workload: str, n: int, mode: str) -> Measurement | None: ...

    def speedup(self, subject: str, workload: str, n: int) -> float | None: ...


def integrations_of(results: Results) -> list[str]:
    """The integrations measured, in the order of the measurements."""
    return list(dict.fromkeys(m.integration for m in results.measurements))


def workloads_of(results: Results) -> list[str]:
    """The workloads measured: the known ones in :data:`WORKLOAD_ORDER`, then the rest."""
    present = {m.workload for m in results.measurements}
    return [w for w in WORKLOAD_ORDER if w in present] + sorted(present - set(WORKLOAD_ORDER))


def ns_of(results: Results) -> list[int]:
    """The numbers of operations measured, ascending."""
    return sorted({m.n for m in results.measurements})


def modes_of(results: Results) -> list[str]:
    """The modes measured, sync first."""
    present = {m.mode for m in results.measurements}
    return [mode for mode in ("sync", "async") if mode in present]


def median_note(results: Results) -> str:
    """``" (median of 3 rounds)"`` for a repeated run (its lookups return the median
    run), else nothing."""
    rounds = len({m.round for m in results.measurements})
    return f" (median of {rounds} rounds)" if rounds > 1 else ""


def is_anchor(results: Results, subject: str) -> bool:
    """Whether ``subject`` is the integration ours replaces."""
    return any(m.anchor for m in results.measurements if m.subject == subject)


def ordered_subjects(results: Results, integration: str) -> list[str]:
    """Ours first, then the integration it replaces."""
    return sorted(results.subjects(integration), key=lambda s: is_anchor(results, s))


def measured_value(
    m: Measurement | None, read: Callable[[Measurement], float | None]
) -> float | None:
    """``read(m)`` if ``m`` succeeded and the value is positive (plottable on a log scale)."""
    if m is None or not m.ok:
        return None
    value = read(m)
    return value if value is not None and value > 0 else None

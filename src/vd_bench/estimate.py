"""How long a benchmark configuration takes, roughly, before running it.

A simple model calibrated on a 2-core machine shared with other work, with embedded
Milvus Lite 3 and the offline embeddings server at 100 ms per request: a sync operation
costs one embedding request (none for delete) plus the store's own work, which grows
with the documents in the collection (Milvus Lite searches them all); an async burst
costs a couple of requests plus a little per operation; every measurement opens a fresh
collection and fills it with its population. A Milvus server or the real OpenAI service
changes the numbers; the model is for choosing a run size, not for reporting.
"""

from __future__ import annotations

from collections.abc import Iterable

from vd_bench.runner import BenchConfig
from vd_bench.subjects import SUBJECTS, population

__all__ = ["describe", "estimate_seconds", "format_duration"]

#: Store work per sync operation, seconds: (fixed, per document in the collection).
SYNC_WORK = {
    "add": (0.015, 0.0),
    "search": (0.01, 0.00025),
    "delete": (0.01, 0.00022),
    "upsert": (0.012, 0.0),
    "mmr": (0.03, 0.0003),
}
#: Store work per operation of an async burst, seconds: (fixed, per document).
ASYNC_WORK = {
    "add": (0.003, 0.0),
    "search": (0.002, 0.00004),
    "delete": (0.005, 0.00006),
    "upsert": (0.003, 0.0),
    "mmr": (0.01, 0.00005),
}
#: Workloads whose operations embed (delete does not).
EMBEDDING = {"add", "search", "upsert", "mmr"}
#: Opening a fresh collection, and writing one document of its population.
OPEN, PER_ROW = 0.8, 0.0025
#: Interpreter, offline server and store start-up.
STARTUP = 6.0
#: A compared integration's child process; creating its virtualenv the first time.
CHILD, FIRST_INSTALL = 6.0, 120.0


def _measurement(workload: str, n: int, mode: str, config: BenchConfig) -> float:
    latency = config.latency if workload in EMBEDDING else 0.0
    rows = population(workload, n, config.population)
    setup = OPEN + PER_ROW * rows
    if mode == "sync":
        fixed, per_row = SYNC_WORK.get(workload, (0.05, 0.0003))
        return setup + n * (latency + fixed + per_row * rows)
    fixed, per_row = ASYNC_WORK.get(workload, (0.02, 0.0001))
    return setup + 2 * config.latency + n * (fixed + per_row * rows)


def estimate_seconds(
    config: BenchConfig, subjects: Iterable[str] | None = None, *, installs: int = 0
) -> float:
    """Seconds ``config`` should take for ``subjects`` (default: those it runs), with
    ``installs`` compared integrations whose environment must be created first."""
    if subjects is None:
        from vd_bench.bench import subjects_for

        subjects = subjects_for(config)
    names = list(subjects)
    per_subject = sum(
        _measurement(workload, n, mode, config)
        for workload in config.workloads
        for n in config.n
        for mode in config.modes
    )
    children = sum(1 for name in names if SUBJECTS[name].anchor)
    return STARTUP + per_subject * len(names) + CHILD * children + FIRST_INSTALL * installs


def format_duration(seconds: float) -> str:
    """``about 40 s``, ``about 2 min``, ``about 1.5 h``."""
    if seconds < 90:
        return f"about {max(10, round(seconds / 10) * 10):.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {minutes:.0f} min" if minutes >= 10 else f"about {minutes:.1f} min"
    return f"about {minutes / 60:.1f} h"


def describe(config: BenchConfig, subjects: Iterable[str] | None = None) -> str:
    """One line: what ``config`` runs and how long it should take."""
    if subjects is None:
        from vd_bench.bench import subjects_for

        subjects = subjects_for(config)
    names = list(subjects)
    ops = sum(config.n) * len(config.workloads) * len(config.modes) * len(names)
    return (
        f"{len(names)} stores x {len(config.workloads)} workloads "
        f"({' '.join(config.workloads)}) x N {' '.join(map(str, config.n))} x "
        f"{'+'.join(config.modes)}, population {config.population}: {ops:,} operations, "
        f"{format_duration(estimate_seconds(config, names))}"
    )

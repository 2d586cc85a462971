"""How long a benchmark configuration takes, roughly, before running it.

A simple model calibrated on a 2-core machine shared with other work, with embedded
Milvus Lite 3 and the offline embeddings server at 100 ms per request: a sync operation
costs one embedding request (none for delete) plus the store's own work, which grows
with the documents in the collection (Milvus Lite searches them all); an async burst
costs a couple of requests plus a little per operation; a bulk call of N documents, in
either mode, costs a request per 1,000 texts (the tutorial's embeddings' batch) plus the
store's work per document; every measurement opens a fresh collection and fills it with
its population. A Milvus server or the real OpenAI service
changes the numbers; the model is for choosing a run size, not for reporting. A run of
``repeat`` rounds does it all that many times (start-up and installs once).
"""

from __future__ import annotations

from collections.abc import Iterable

from vd_bench.runner import BenchConfig, operations_planned, service_runs
from vd_bench.subjects import ONE_CALL_WORKLOADS, SERVICE, SUBJECTS, population

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
    "bulk": (0.0016, 0.0),  # per document, for its floor (its raw requests, each twice)
}
#: Workloads whose operations embed (delete does not).
EMBEDDING = {"add", "search", "upsert", "mmr", "bulk"}
#: A bulk call: the store's work per document (embedding decoded, rows built and
#: inserted), and the texts one embedding request of the slowest client carries.
BULK_PER_DOC, BULK_BATCH = 0.0018, 1000
#: Opening a fresh collection, and writing one document of its population.
OPEN, PER_ROW = 0.8, 0.0025
#: Interpreter, offline server and store start-up.
STARTUP = 6.0
#: A compared integration's child process; creating its virtualenv the first time.
CHILD, FIRST_INSTALL = 6.0, 120.0
#: The physical floor: its collection, once per subject; its raw server requests (two),
#: as a share of an async burst's store work (two embedding requests come on top).
FLOOR_SETUP, FLOOR_SHARE = 2.0, 1.0
#: The service: starting its app (store, population, floor), per store and mode; the
#: seconds one request holds a client beyond its pause, in embedding round trips (async:
#: about two, as a call waits for the merged request before it; sync: one) plus a little.
SERVICE_START = 8.0
SERVICE_ROUND_TRIPS = {"async": 2.0, "sync": 1.0}
SERVICE_WORK = 0.01
#: What bounds the service on embedded Lite instead: the server's work per request (one
#: search or insert per call; ours merges concurrent async calls into few).
SERVICE_SERVER = {"sync": 0.028, "async": 0.028, "ours async": 0.009}
#: Starlette's thread pool (sync endpoints).
THREADS = 40


def _floor(workload: str, n: int, config: BenchConfig) -> float:
    if not config.floor:
        return 0.0
    latency = config.latency if workload in EMBEDDING else 0.0
    fixed, per_row = ASYNC_WORK.get(workload, (0.02, 0.0001))
    return 2 * latency + FLOOR_SHARE * n * (fixed + per_row * config.population)


def _measurement(workload: str, n: int, mode: str, config: BenchConfig) -> float:
    latency = config.latency if workload in EMBEDDING else 0.0
    rows = population(workload, n, config.population)
    setup = OPEN + PER_ROW * rows + _floor(workload, n, config)
    if workload in ONE_CALL_WORKLOADS:
        return setup + -(-n // BULK_BATCH) * config.latency + n * BULK_PER_DOC
    if mode == "sync":
        fixed, per_row = SYNC_WORK.get(workload, (0.05, 0.0003))
        return setup + n * (latency + fixed + per_row * rows)
    fixed, per_row = ASYNC_WORK.get(workload, (0.02, 0.0001))
    return setup + 2 * config.latency + n * (fixed + per_row * rows)


def _service(mode: str, config: BenchConfig, *, anchor: bool) -> float:
    """One store's service run in ``mode``: start-up, then every request's pause and
    round trips, ``clients`` (sync: at most the thread pool) at a time, or the server's
    work per request if that takes longer."""
    requests = config.service_searches + config.service_adds
    clients = config.service_clients
    if mode == "sync":
        clients = min(clients, THREADS)
    per_request = (
        config.service_pause / 2 + SERVICE_ROUND_TRIPS[mode] * config.latency + SERVICE_WORK
    )
    server = SERVICE_SERVER["ours async" if mode == "async" and not anchor else mode]
    busy = requests * max(per_request / clients, server)
    # the ceiling: the same requests against an endpoint that sleeps one round trip
    ceiling = requests * (config.service_pause / 2 + config.latency) / config.service_clients
    return SERVICE_START + PER_ROW * config.population + busy + (ceiling if config.floor else 0)


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
        for workload in config.operations
        for n in config.n
        for mode in config.modes
    )
    if config.operations and config.floor:
        per_subject += FLOOR_SETUP
    one_round = 0.0
    for name in names:
        anchor = SUBJECTS[name].anchor
        if config.operations:
            one_round += per_subject + (CHILD if anchor else 0.0)
        if service_runs(config, name):
            one_round += sum(_service(mode, config, anchor=anchor) for mode in config.modes)
    return STARTUP + FIRST_INSTALL * installs + one_round * config.repeat


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
    ops = operations_planned(config, names)
    parts = []
    if config.operations:
        parts.append(
            f"{len(names)} stores x {len(config.operations)} workloads "
            f"({' '.join(config.operations)}) x N {' '.join(map(str, config.n))} x "
            f"{'+'.join(config.modes)}"
        )
    served = [name for name in names if service_runs(config, name)]
    if served:
        parts.append(
            f"service: {len(served)} LangChain store{'s' if len(served) > 1 else ''} x "
            f"{'+'.join(config.modes)} endpoints, "
            f"{config.service_clients} HTTP clients, {config.service_searches:,} searches "
            f"then {config.service_adds:,} adds"
        )
    elif SERVICE in config.workloads:
        parts.append("service: no LangChain store to serve (--integrations langchain)")
    if config.repeat > 1:
        parts.append(f"{config.repeat} interleaved rounds")
    return (
        "; ".join(parts)
        + f", population {config.population}: {ops:,} operations, "
        + format_duration(estimate_seconds(config, names))
    )

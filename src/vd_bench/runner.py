"""Measure N independent single-item operations, sync one by one and async all at once.

This is the tutorial's method: the sync run calls ``op(i)`` for ``i`` in ``range(n)``;
the async run creates ``n`` coroutines and gathers them. Every operation's own latency
is recorded (for async, from the moment all were started, so queueing counts), and
each measurement runs on a fresh collection holding the workload's population.

The ``bulk`` workload (:data:`vd_bench.subjects.ONE_CALL_WORKLOADS`) is one call of N
documents instead: sync and async each time one ``bulk_op`` / ``abulk_op``, whose latency is
the only one recorded; its ops/s counts documents and the progress advances by N.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from vd_bench.corpus import POPULATION
from vd_bench.floor import FLOOR_COLLECTION, FloorMeter
from vd_bench.measurement import Measurement, percentile
from vd_bench.subjects import (
    ALL_WORKLOADS,
    EMBEDDINGS,
    ONE_CALL_WORKLOADS,
    SERVICE,
    SUBJECTS,
    Endpoint,
    Subject,
)

__all__ = [
    "FULL",
    "MAX_REPEAT",
    "MODES",
    "QUICK",
    "BenchConfig",
    "EmbeddingCounter",
    "LoopRunner",
    "Measurement",
    "error_text",
    "operations_planned",
    "percentile",
    "run_subject",
    "service_runs",
    "summarise",
]

T = TypeVar("T")
MODES = ("sync", "async")
#: The most rounds ``BenchConfig.repeat`` accepts.
MAX_REPEAT = 20
log = logging.getLogger(__name__)

#: The default, a first run of a couple of minutes: the tutorial's three studies (add,
#: search, delete) at its N of 10 and 100, on collections of 100 documents. The service
#: workload is not in it; asked for alone (``--workloads service``) it sends fewer requests.
QUICK: dict[str, Any] = {
    "n": (10, 100),
    "workloads": ("add", "search", "delete"),
    "population": 100,
    "service_searches": 500,
    "service_adds": 125,
}
#: The full study (``--full``): every workload (the service included), N up to 1000, the
#: tutorial's 1000 documents, and the service's 2,000 searches then 500 adds.
FULL: dict[str, Any] = {
    "n": (10, 100, 1000),
    "workloads": ALL_WORKLOADS,
    "population": POPULATION,
    "service_searches": 2000,
    "service_adds": 500,
}


@dataclass
class BenchConfig:
    """What to measure. The defaults are :data:`QUICK`, a first run of a couple of minutes
    (both integrations, sync and async); :meth:`full` gives the whole study."""

    n: tuple[int, ...] = QUICK["n"]
    workloads: tuple[str, ...] = QUICK["workloads"]
    integrations: tuple[str, ...] = ("langchain", "llama_index")
    modes: tuple[str, ...] = MODES
    compare: bool = False
    #: Milvus URI; None means an embedded Milvus Lite file per subject in ``out_dir``.
    uri: str | None = None
    out_dir: str = "bench_results"
    #: Offline embeddings server: seconds per request and vector size.
    latency: float = 0.1
    dim: int = 1536
    #: Documents a search, MMR, delete or upsert workload runs against (the tutorial's 1000
    #: in the full study).
    population: int = QUICK["population"]
    #: The LangChain subjects' embedding client (see :data:`vd_bench.subjects.EMBEDDINGS`).
    embeddings: str = "langchain-openai"
    #: The service workload (:mod:`vd_bench.service`, LangChain stores): concurrent HTTP
    #: clients, the searches then the adds they send in all, the longest random pause
    #: (seconds) each client takes before each request, and the pauses' seed.
    service_clients: int = 50
    service_searches: int = QUICK["service_searches"]
    service_adds: int = QUICK["service_adds"]
    service_pause: float = 0.05
    service_seed: int = 0
    #: Measure each workload's physical floor next to it (:mod:`vd_bench.floor`).
    floor: bool = True
    #: Rounds of the whole run (1-20), interleaved: every subject once per round, its
    #: workloads of N operations then its service; the report gives each measurement's
    #: median over the rounds and their spread (:class:`vd_bench.report.BenchResults`).
    repeat: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.n = tuple(int(x) for x in self.n)
        if self.population < 1:
            raise ValueError(f"population must be positive, got {self.population!r}")
        if not self.n or any(x < 1 for x in self.n):
            raise ValueError(f"n must be positive integers, got {self.n!r}")
        unknown = set(self.workloads) - set(ALL_WORKLOADS)
        if unknown:
            raise ValueError(f"unknown workloads {sorted(unknown)}; choose from {ALL_WORKLOADS}")
        if self.service_clients < 1:
            raise ValueError(f"service_clients must be positive, got {self.service_clients!r}")
        if self.service_searches < 0 or self.service_adds < 0:
            raise ValueError("service_searches and service_adds must be >= 0")
        if not 0 <= self.service_pause <= 10:
            raise ValueError(f"service_pause must be 0-10 seconds, got {self.service_pause!r}")
        if (
            isinstance(self.repeat, bool)
            or not isinstance(self.repeat, int)
            or not 1 <= self.repeat <= MAX_REPEAT
        ):
            raise ValueError(f"repeat must be 1-{MAX_REPEAT} rounds, got {self.repeat!r}")
        unknown = set(self.modes) - set(MODES)
        if unknown:
            raise ValueError(f"unknown modes {sorted(unknown)}; choose from {MODES}")
        if self.embeddings not in EMBEDDINGS:
            raise ValueError(f"unknown embeddings {self.embeddings!r}; choose from {EMBEDDINGS}")
        unknown = set(self.integrations) - {"langchain", "llama_index"}
        if unknown:
            raise ValueError(f"unknown integrations {sorted(unknown)}: langchain, llama_index")

    @classmethod
    def full(cls, **overrides: Any) -> BenchConfig:
        """The full study (:data:`FULL`: every workload, N 10/100/1000, 1000 documents, the
        service's 2,000 searches and 500 adds), with ``overrides`` applied."""
        return cls(**{**FULL, **overrides})

    @property
    def operations(self) -> tuple[str, ...]:
        """The workloads the runner measures (every one but the service): N single-item
        operations, or for ``bulk`` one call of N documents."""
        return tuple(w for w in self.workloads if w != SERVICE)

    @property
    def is_full(self) -> bool:
        """Whether this covers the full study's workloads, N and population."""
        return (
            set(FULL["workloads"]) <= set(self.workloads)
            and set(FULL["n"]) <= set(self.n)
            and self.population >= FULL["population"]
        )


class EmbeddingCounter:
    """Reads the offline embeddings server's request counter (no-op for the real service)."""

    def __init__(self, base_url: str | None, offline: bool) -> None:
        self._root = base_url.rstrip("/").removesuffix("/v1") if offline and base_url else None

    def _call(self, path: str, method: str) -> dict[str, Any]:
        request = urllib.request.Request(f"{self._root}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def reset(self) -> None:
        if self._root:
            self._call("/stats/reset", "POST")

    def read(self) -> dict[str, Any] | None:
        return self._call("/stats", "GET") if self._root else None


class LoopRunner:
    """Runs coroutines on one event loop for a whole subject run, like the tutorial's
    ``loop.run_until_complete``. In Jupyter, where a loop is already running, it uses
    that loop, which needs ``nest_asyncio.apply()`` first."""

    def __init__(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._owned = False
        except RuntimeError:
            self._loop = asyncio.new_event_loop()
            self._owned = True

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._owned and self._loop.is_running() and not hasattr(self._loop, "_nest_patched"):
            coro.close()
            raise RuntimeError(
                "An event loop is already running in this thread (Jupyter?). "
                "Call nest_asyncio.apply() before running the benchmark."
            )
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        if self._owned and not self._loop.is_closed():
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def __enter__(self) -> LoopRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summarise(m: Measurement, seconds: float, latencies: list[float]) -> None:
    """Fill ``m``'s time, throughput and latency percentiles."""
    m.seconds = seconds
    m.ops_per_s = m.n / seconds if seconds > 0 else None
    m.p50_ms = percentile(latencies, 50) * 1000
    m.p99_ms = percentile(latencies, 99) * 1000
    m.mean_ms = statistics.fmean(latencies) * 1000


def error_text(exc: BaseException) -> str:
    """``Type: message``, cut to 300 characters (what a measurement records)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def _failed(m: Measurement, exc: Exception) -> None:
    m.failures += 1
    m.error = m.error or error_text(exc)


def _one_call_done(m: Measurement, start: float, tick: Callable[[], None]) -> None:
    """Summarise a one-call workload: its one latency; the progress advances by N."""
    seconds = time.perf_counter() - start
    for _ in range(m.n):
        tick()
    summarise(m, seconds, [seconds])


def _measure_sync(subject: Subject, store: Any, m: Measurement, tick: Callable[[], None]) -> None:
    latencies = []
    start = time.perf_counter()
    if m.workload in ONE_CALL_WORKLOADS:  # one call of N documents, one latency
        try:
            subject.bulk_op(store, m.n)
        except Exception as exc:
            _failed(m, exc)
        _one_call_done(m, start, tick)
        return
    for i in range(m.n):
        began = time.perf_counter()
        try:
            subject.sync_op(m.workload, store, i)
        except Exception as exc:
            _failed(m, exc)
        latencies.append(time.perf_counter() - began)
        tick()
    summarise(m, time.perf_counter() - start, latencies)


async def _measure_async(
    subject: Subject, store: Any, m: Measurement, tick: Callable[[], None]
) -> None:
    latencies = []
    start = time.perf_counter()
    if m.workload in ONE_CALL_WORKLOADS:  # one call of N documents, one latency
        try:
            await subject.abulk_op(store, m.n)
        except Exception as exc:
            _failed(m, exc)
        _one_call_done(m, start, tick)
        return

    async def one(i: int) -> None:
        try:
            await subject.async_op(m.workload, store, i)
        except Exception as exc:
            _failed(m, exc)
        finally:
            latencies.append(time.perf_counter() - start)
            tick()

    await asyncio.gather(*(one(i) for i in range(m.n)))
    summarise(m, time.perf_counter() - start, latencies)


def _measure_once(
    subject: Subject,
    m: Measurement,
    loop: LoopRunner,
    counter: EmbeddingCounter,
    tick: Callable[[], None],
    *,
    precreate: bool = False,
) -> None:
    collection = f"bench_{subject.name}_{m.workload}_{m.mode}_{m.n}"
    store = None
    try:
        store = subject.open(m.workload, collection)
        if precreate:
            subject.precreate(store, m.workload)
        subject.populate(store, m.workload, m.n)
        _check_population(subject, store, m)
        counter.reset()
        if m.mode == "sync":
            _measure_sync(subject, store, m, tick)
        else:
            loop.run(_measure_async(subject, store, m, tick))
        stats = counter.read()
        if stats is not None:
            m.embedding_requests = stats.get("requests")
            m.embedding_inputs = stats.get("inputs")
        m.rows_expected = subject.expected_count(m.workload, m.n)
        if m.rows_expected is not None:
            m.rows_after = subject.count(store)
            if m.rows_after != m.rows_expected and m.error is None:
                m.error = f"collection holds {m.rows_after} rows, expected {m.rows_expected}"
    except Exception as exc:  # setup or verification failed: record it, keep going
        m.error = m.error or error_text(exc)
    finally:
        if store is not None:
            _release(subject, store, loop, async_used=m.mode == "async")


def _check_population(subject: Subject, store: Any, m: Measurement) -> None:
    """Count the rows populating wrote, with strong consistency, before the timing starts.

    The count also keeps the server's catching up with those writes out of the timing: on
    Milvus 2.3, a ``Session`` read right after a client's writes waits for the next time
    tick (about 200 ms, for every store alike), which is setup, not the measured work."""
    expected = subject.population(m.workload, m.n)
    if not expected:
        return
    rows = subject.count(store)
    if rows != expected:
        raise RuntimeError(f"populating left {rows} rows, expected {expected}")


def _release(subject: Subject, store: Any, loop: LoopRunner, *, async_used: bool) -> None:
    """Drop the collection, then close the store (its async clients on their own loop)."""
    name = subject.collection_of(store)
    try:
        if async_used:
            loop.run(subject.settle(store))
        subject.drop(store)
    except Exception as exc:
        log.warning("dropping %s failed: %s", name, exc)
    try:
        if async_used:
            loop.run(subject.aclose(store))
        subject.close(store)
    except Exception as exc:
        log.warning("closing the store of %s failed: %s", name, exc)


def _floor_meter(subject: Subject, config: BenchConfig) -> FloorMeter | None:
    """A prepared :class:`~vd_bench.floor.FloorMeter` on the subject's server, or None
    (floors off, or it could not be set up: logged, and the run goes on without floors)."""
    if not config.floor:
        return None
    endpoint = subject.endpoint
    try:
        return FloorMeter(
            endpoint.uri,
            embeddings_base_url=endpoint.embeddings_base_url,
            embeddings_api_key=endpoint.embeddings_api_key,
            model=endpoint.embeddings_model,
            population=subject.base_population,
            collection=f"{FLOOR_COLLECTION}_{subject.name}",
        ).prepare()
    except Exception as exc:
        log.warning("the physical floor cannot be measured: %s", error_text(exc))
        return None


def _measure_floor(meter: FloorMeter | None, m: Measurement, loop: LoopRunner) -> None:
    if meter is None:
        return
    try:
        sample = loop.run(meter.measure(m.workload, m.n))
    except Exception as exc:  # a floor that failed is reported, never fails the measurement
        m.floor_error = error_text(exc)
        return
    m.floor_s = sample.seconds
    m.floor_embedding_s = sample.embedding_s
    m.floor_server_s = sample.server_s
    m.floor_round_trips = sample.round_trips


def run_subject(
    subject: Subject,
    config: BenchConfig,
    *,
    offline: bool,
    on_op: Callable[[], None] = lambda: None,
    on_measurement: Callable[[Measurement], None] = lambda m: None,
) -> list[Measurement]:
    """Every configured workload, N and mode for one subject, in the tutorial's order, each
    followed by its physical floor measured on the same server (:mod:`vd_bench.floor`).
    The service workload is not run here (see :func:`vd_bench.service.run_service`)."""
    counter = EmbeddingCounter(subject.endpoint.embeddings_base_url, offline)
    results: list[Measurement] = []
    if not config.operations:
        return results
    meter = _floor_meter(subject, config)
    with LoopRunner() as loop:
        try:
            for workload in config.operations:
                for n in config.n:
                    for mode in config.modes:
                        m = _new(subject, workload, n, mode)
                        _measure_once(subject, m, loop, counter, on_op)
                        _measure_floor(meter, m, loop)
                        results.append(m)
                        on_measurement(m)
                        if not m.ok and subject.population(workload, n) == 0:
                            # A fresh collection failed concurrent first writes
                            # (langchain-milvus 0.4.0 does): measure again on a collection
                            # that already exists.
                            retry = _new(subject, workload, n, mode, precreated=True)
                            _measure_once(
                                subject, retry, loop, counter, lambda: None, precreate=True
                            )
                            _measure_floor(meter, retry, loop)
                            results.append(retry)
                            on_measurement(retry)
        finally:
            if meter is not None:
                try:
                    loop.run(meter.aclose())
                except Exception as exc:
                    log.warning("dropping the floor collection failed: %s", error_text(exc))
    return results


def _new(subject: Subject, workload: str, n: int, mode: str, **kw: Any) -> Measurement:
    return Measurement(
        subject=subject.name,
        label=subject.label,
        integration=subject.integration,
        anchor=subject.anchor,
        workload=workload,
        n=n,
        mode=mode,
        **kw,
    )


def service_runs(config: BenchConfig, subject: str) -> bool:
    """Whether the service workload runs for ``subject`` (LangChain stores only)."""
    return SERVICE in config.workloads and SUBJECTS[subject].integration == "langchain"


def operations_planned(config: BenchConfig, subjects: Iterable[str]) -> int:
    """Operations the progress bar counts for these subjects (retries not included), over
    all ``config.repeat`` rounds: each service request counts as one, and each document
    of a bulk call (its measurement advances the bar by N, as N operations would)."""
    per_subject = sum(config.n) * len(config.operations) * len(config.modes)
    service = (config.service_searches + config.service_adds) * len(config.modes)
    once = sum(per_subject + (service if service_runs(config, name) else 0) for name in subjects)
    return once * config.repeat


def endpoint_for(
    subject_name: str, config: BenchConfig, base_url: str | None, api_key: str | None
) -> Endpoint:
    """Where ``subject_name`` stores data: ``config.uri`` or its own embedded Lite file."""
    if config.uri:
        uri = config.uri
    else:
        folder = Path(config.out_dir).resolve() / "milvus_lite"
        folder.mkdir(parents=True, exist_ok=True)
        uri = str(folder / f"{subject_name}.db")
    return Endpoint(
        uri=uri,
        embeddings_base_url=base_url,
        embeddings_api_key=api_key,
        embeddings_client=config.embeddings,
    )

"""Run the whole benchmark: our stores, and with ``compare`` the integrations they replace."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vd_bench.isolation import python_for, run_isolated
from vd_bench.meta import machine, package_versions
from vd_bench.report import BenchResults
from vd_bench.runner import (
    BenchConfig,
    Measurement,
    endpoint_for,
    operations_planned,
    run_subject,
    service_runs,
)
from vd_bench.subjects import SUBJECTS, make_subject
from vd_integrations import VdIntegrationsError

__all__ = [
    "MissingDependencyError",
    "arun_benchmark",
    "check_dependencies",
    "missing_dependencies",
    "run_benchmark",
    "subjects_for",
]

OURS = {"langchain": "langchain_vd", "llama_index": "llama_index_vd"}
ANCHORS = {"langchain": "langchain_milvus", "llama_index": "llama_index_milvus"}


class MissingDependencyError(VdIntegrationsError, ImportError):
    """An optional package the chosen run needs is not installed (raised before measuring)."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_dependencies(
    config: BenchConfig, *, plots: bool = True, progress: bool = True
) -> list[tuple[str, str, str]]:
    """``(module, what it is for, our extra that installs it)`` for each package the run
    needs that is not importable: plots, the progress bar, the tutorial's LangChain
    embeddings, LlamaIndex."""
    needed = []
    if plots:
        needed.append(("matplotlib", "the plots", "bench"))
    if progress:
        needed.append(("tqdm", "the progress bar (or pass --no-progress)", "bench"))
    if "langchain" in config.integrations and config.embeddings == "langchain-openai":
        needed.append(
            ("langchain_openai", "the tutorial's embeddings (or pass --embeddings vd)", "bench")
        )
    if "llama_index" in config.integrations:
        needed.append(
            (
                "llama_index.core",
                "the LlamaIndex stores (or --integrations langchain)",
                "llama-index",
            )
        )
    if any(service_runs(config, name) for name in subjects_for(config)):
        for module, what in (
            ("starlette", "the service workload's web app"),
            ("uvicorn", "the service workload's web server"),
            ("httpx", "the service workload's HTTP clients"),
        ):
            needed.append((module, what, "service"))
    return [entry for entry in needed if not _installed(entry[0])]


def check_dependencies(config: BenchConfig, *, plots: bool = True, progress: bool = True) -> None:
    """Raise :class:`MissingDependencyError`, naming the pip extra, if the run would fail
    for want of an optional package."""
    missing = missing_dependencies(config, plots=plots, progress=progress)
    if not missing:
        return
    extras = ",".join(dict.fromkeys(["bench", *(extra for _, _, extra in missing)]))
    lines = [f"  {module}: for {purpose}" for module, purpose, _ in missing]
    raise MissingDependencyError(
        "The benchmark needs packages that are not installed:\n"
        + "\n".join(lines)
        + f'\nInstall them with:  pip install "vd-integrations[{extras}]"'
        + f'\n(from a checkout:   pip install -e ".[{extras}]")'
    )


def subjects_for(config: BenchConfig) -> list[str]:
    """Subjects in run order: per integration, ours then (with ``compare``) theirs."""
    names = []
    for integration in config.integrations:
        names.append(OURS[integration])
        if config.compare:
            names.append(ANCHORS[integration])
    return names


class _Progress:
    """A tqdm bar when tqdm is installed and ``enabled``; otherwise silent."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, unit="op", dynamic_ncols=True)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description(text)

    def tick(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_benchmark(
    config: BenchConfig | None = None,
    *,
    progress: bool = True,
    on_measurement: Callable[[Measurement], None] | None = None,
    venvs_dir: str | Path | None = None,
) -> BenchResults:
    """Measure every configured subject, workload, N and mode; returns the results.

    Embeddings come from the real OpenAI service when ``OPENAI_API_KEY`` is set, else from
    an offline OpenAI-compatible server started here (``config.latency`` per request).
    Missing optional packages are reported before anything is measured. Called where an
    event loop is running (a notebook cell), it runs in a helper thread and blocks; in a
    notebook prefer ``await arun_benchmark(config)``.
    """
    config = config or BenchConfig()
    check_dependencies(config, plots=False, progress=False)
    if not _loop_running_here():
        return _run(config, progress, on_measurement, venvs_dir)
    found: list[BenchResults] = []
    failure: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            found.append(_run(config, progress, on_measurement, venvs_dir, stop))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=work, name="vd-bench", daemon=True)
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:  # an interrupted cell: end the run at its next operation
        stop.set()
        thread.join(timeout=60)
        raise
    if failure:
        raise failure[0]
    return found[0]


async def arun_benchmark(
    config: BenchConfig | None = None,
    *,
    progress: bool = True,
    on_measurement: Callable[[Measurement], None] | None = None,
    venvs_dir: str | Path | None = None,
) -> BenchResults:
    """:func:`run_benchmark` without blocking the running loop (``await`` it in Jupyter or
    Colab): the benchmark runs its own event loop in a worker thread, so the sync and
    async measurements are the same as from the command line, with or without
    ``nest_asyncio`` applied."""
    config = config or BenchConfig()
    check_dependencies(config, plots=False, progress=False)
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_run, config, progress, on_measurement, venvs_dir, stop)
    except asyncio.CancelledError:  # an interrupted cell: end the run at its next operation
        stop.set()
        raise


class _Cancelled(BaseException):
    """Ends a run from inside (a BaseException, so no measurement records it as a failure)."""


def _run(
    config: BenchConfig,
    progress: bool,
    on_measurement: Callable[[Measurement], None] | None,
    venvs_dir: str | Path | None,
    stop: threading.Event | None = None,
) -> BenchResults:
    from vd_integrations.testing.embedding_server import embedding_endpoint

    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    names = subjects_for(config)
    venvs = Path(venvs_dir or os.environ.get("VD_BENCH_VENVS", ".venv-bench")).resolve()
    out = Path(config.out_dir)
    bar = _Progress(operations_planned(config, names), progress)
    measurements: list[Measurement] = []
    versions: dict[str, dict[str, str]] = {}

    def tick() -> None:
        if stop is not None and stop.is_set():
            raise _Cancelled("the benchmark was cancelled")
        bar.tick()

    def record(m: Measurement) -> None:
        if not m.ok:
            bar.write(f"{m.label} {m.workload} N={m.n} {m.mode}: {m.error}")
        if on_measurement is not None:
            on_measurement(m)

    started = time.time()
    try:
        with embedding_endpoint(latency=config.latency, dim=config.dim) as embeddings:
            pythons: dict[str, str] = {}
            for round_ in range(config.repeat):
                for name in names:
                    found = _run_one(
                        name,
                        round_,
                        config,
                        embeddings,
                        pythons,
                        venvs,
                        out,
                        bar,
                        tick,
                        record,
                        versions,
                    )
                    measurements.extend(found)
            embedding_info = _describe_embeddings(embeddings, config)
    finally:
        bar.close()
    meta: dict[str, Any] = {
        "config": {k: v for k, v in vars(config).items() if k != "extra"},
        "milvus": config.uri or "embedded Milvus Lite (one .db file per store)",
        "embeddings": embedding_info,
        "versions": versions,
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
    }
    return BenchResults(measurements, meta)


def _run_one(
    name: str,
    round_: int,
    config: BenchConfig,
    embeddings: Any,
    pythons: dict[str, str],
    venvs: Path,
    out: Path,
    bar: _Progress,
    tick: Callable[[], None],
    record: Callable[[Measurement], None],
    versions: dict[str, dict[str, str]],
) -> list[Measurement]:
    """One subject in one round: its workloads of N operations, then its service. The
    measurements carry ``round_``; with several rounds each round logs to its own files."""
    label = SUBJECTS[name].label
    if config.repeat > 1:
        label = f"round {round_ + 1}/{config.repeat}: {label}"
    bar.describe(label)
    service = service_runs(config, name)
    if not (config.operations or service):
        return []
    if name not in pythons:
        pythons[name] = (
            python_for(name, venvs, log=bar.write) if SUBJECTS[name].anchor else sys.executable
        )
    python = pythons[name]
    logs = out / "logs" if config.repeat == 1 else out / "logs" / f"round{round_}"

    def record_round(m: Measurement) -> None:
        m.round = round_
        record(m)

    measurements: list[Measurement] = []
    if config.operations and SUBJECTS[name].anchor:
        found, child_versions = run_isolated(
            name,
            config,
            python=python,
            embeddings_base_url=embeddings.base_url,
            offline=embeddings.offline,
            log_path=logs / f"{name}.log",
            on_op=tick,
            on_measurement=record_round,
        )
        versions.setdefault(name, child_versions)
        measurements.extend(found)
    elif config.operations:
        endpoint = endpoint_for(name, config, embeddings.base_url, None)
        found = run_subject(
            make_subject(name, endpoint, config.population),
            config,
            offline=embeddings.offline,
            on_op=tick,
            on_measurement=record_round,
        )
        versions.setdefault(name, package_versions())
        measurements.extend(found)
    if service:
        from vd_bench.service import run_service

        bar.describe(f"{label}: service")
        found, child_versions = run_service(
            name,
            config,
            python=python,
            embeddings_base_url=embeddings.base_url,
            offline=embeddings.offline,
            log_dir=logs,
            on_op=tick,
            on_measurement=record_round,
        )
        versions.setdefault(name, child_versions)
        measurements.extend(found)
    for m in measurements:
        m.round = round_
    return measurements


def _describe_embeddings(embeddings: Any, config: BenchConfig) -> str:
    service = (
        f"offline OpenAI-compatible server, {config.latency * 1000:.0f} ms per request, "
        f"dim {config.dim}"
        if embeddings.offline
        else "OpenAI service (OPENAI_API_KEY)"
    )
    client = {
        "langchain-openai": "langchain_openai.OpenAIEmbeddings",
        "vd": "langchain_vd.embeddings.OpenAIEmbeddings (merges concurrent calls)",
    }[config.embeddings]
    return f"{service}; LangChain stores embed with {client}"

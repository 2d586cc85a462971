"""Run the whole benchmark: our stores, and with ``compare`` the integrations they replace."""

from __future__ import annotations

import logging
import os
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
)
from vd_bench.subjects import SUBJECTS, make_subject

__all__ = ["run_benchmark", "subjects_for"]

OURS = {"langchain": "langchain_vd", "llama_index": "llama_index_vd"}
ANCHORS = {"langchain": "langchain_milvus", "llama_index": "llama_index_milvus"}


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
    """
    from vd_integrations.embedding_server import embedding_endpoint

    config = config or BenchConfig()
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    names = subjects_for(config)
    venvs = Path(venvs_dir or os.environ.get("VD_BENCH_VENVS", ".venv-bench")).resolve()
    out = Path(config.out_dir)
    bar = _Progress(operations_planned(config, names), progress)
    measurements: list[Measurement] = []
    versions: dict[str, dict[str, str]] = {}

    def record(m: Measurement) -> None:
        if not m.ok:
            bar.write(f"{m.label} {m.workload} N={m.n} {m.mode}: {m.error}")
        if on_measurement is not None:
            on_measurement(m)

    started = time.time()
    try:
        with embedding_endpoint(latency=config.latency, dim=config.dim) as embeddings:
            for name in names:
                bar.describe(SUBJECTS[name].label)
                if SUBJECTS[name].anchor:
                    python = python_for(name, venvs, log=bar.write)
                    found, versions[name] = run_isolated(
                        name,
                        config,
                        python=python,
                        embeddings_base_url=embeddings.base_url,
                        offline=embeddings.offline,
                        log_path=out / "logs" / f"{name}.log",
                        on_op=bar.tick,
                        on_measurement=record,
                    )
                else:
                    endpoint = endpoint_for(name, config, embeddings.base_url, None)
                    found = run_subject(
                        make_subject(name, endpoint, config.population),
                        config,
                        offline=embeddings.offline,
                        on_op=bar.tick,
                        on_measurement=record,
                    )
                    versions[name] = package_versions()
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

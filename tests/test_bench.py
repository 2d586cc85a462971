"""The benchmark command: measurements, checks, reports, plots, and the comparison path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vd_bench import BenchConfig, BenchResults, Measurement, run_benchmark
from vd_bench.__main__ import main as bench_main
from vd_bench.bench import subjects_for
from vd_bench.runner import percentile
from vd_bench.subjects import WORKLOADS, population

FAST = {"latency": 0.01, "dim": 32, "population": 40}


def measurement(subject: str, workload: str, n: int, mode: str, seconds: float | None, **kw):
    anchor = subject in ("langchain_milvus", "llama_index_milvus")
    integration = "langchain" if subject.startswith("langchain") else "llama_index"
    return Measurement(
        subject=subject,
        label=subject,
        integration=integration,
        anchor=anchor,
        workload=workload,
        n=n,
        mode=mode,
        seconds=seconds,
        ops_per_s=None if seconds is None else n / seconds,
        p50_ms=10.0,
        p99_ms=20.0,
        mean_ms=12.0,
        **kw,
    )


# ----- pure parts --------------------------------------------------------------------------------


def test_percentile_interpolates():
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 99) == 99.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": ()}, "positive"),
        ({"n": (0,)}, "positive"),
        ({"workloads": ("add", "fly")}, "unknown workloads"),
        ({"modes": ("sometimes",)}, "unknown modes"),
        ({"integrations": ("haystack",)}, "unknown integrations"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BenchConfig(**kwargs)


def test_subjects_in_run_order():
    assert subjects_for(BenchConfig()) == ["langchain_vd", "llama_index_vd"]
    assert subjects_for(BenchConfig(compare=True, integrations=("llama_index",))) == [
        "llama_index_vd",
        "llama_index_milvus",
    ]


def test_populations_cover_every_operation():
    assert population("add", 1000) == 0
    assert population("search", 10) == 1000
    assert population("delete", 5000) == 5000  # every delete hits a document


def synthetic() -> BenchResults:
    rows = [
        measurement("langchain_vd", "add", 100, "sync", 10.0, embedding_requests=100),
        measurement("langchain_vd", "add", 100, "async", 0.5, embedding_requests=2),
        measurement("langchain_milvus", "add", 100, "sync", 12.0),
        measurement(
            "langchain_milvus",
            "add",
            100,
            "async",
            None,
            failures=3,
            error="MilvusException: collection not found",
        ),
        measurement("langchain_milvus", "add", 100, "async", 2.0, precreated=True),
    ]
    return BenchResults(rows, {"milvus": "test", "embeddings": "fake"})


def test_speedups_and_ratios_use_the_precreated_rerun():
    results = synthetic()
    assert results.speedup("langchain_vd", "add", 100) == pytest.approx(20.0)
    assert results.speedup("langchain_milvus", "add", 100) == pytest.approx(6.0)
    assert results.ratio_vs_anchor("langchain_vd", "add", 100, "async") == pytest.approx(4.0)
    assert results.ratio_vs_anchor("langchain_vd", "add", 100, "sync") == pytest.approx(1.2)
    table = results.table()
    assert "20.0x" in table and "failed on a fresh collection" in table
    comparison = results.comparison_table()
    assert "4.00x" in comparison and "pre-created" in comparison


def test_save_writes_json_table_and_plots(tmp_path):
    results = synthetic()
    paths = results.save(tmp_path)
    assert set(paths) >= {"json", "table", "time", "speedup", "latency", "throughput"}
    for key in ("time", "speedup", "latency", "throughput"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = BenchResults.load(paths["json"])
    assert loaded.measurements == results.measurements
    assert json.loads(paths["json"].read_text())["meta"]["milvus"] == "test"


def test_loop_runner_refuses_a_running_loop_without_nest_asyncio():
    # In a fresh interpreter: nest_asyncio patches the loop class for the whole process once
    # any test applies it, after which every loop counts as patched.
    code = """
import asyncio
from vd_bench.runner import LoopRunner

async def inside():
    async def nothing():
        return 1
    try:
        LoopRunner().run(nothing())
    except RuntimeError as exc:
        assert "nest_asyncio" in str(exc), exc
        print("refused")

with LoopRunner() as outer:
    outer.run(inside())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"


def test_compared_integrations_get_an_interpreter_that_can_import_them(tmp_path):
    import sys

    from vd_bench.isolation import package_spec, python_for

    # langchain-milvus is installed in the test environment: no virtualenv is needed
    assert python_for("langchain_milvus", tmp_path) == sys.executable
    assert not list(tmp_path.iterdir())
    # from a checkout, the spec is the checkout (installed editable in other venvs)
    assert (Path(package_spec()) / "pyproject.toml").exists()


# ----- real runs ---------------------------------------------------------------------------------


def test_every_workload_runs_and_checks_its_result(milvus_uri, tmp_path):
    config = BenchConfig(n=(4,), uri=milvus_uri, out_dir=str(tmp_path), **FAST)
    seen = []
    results = run_benchmark(config, progress=False, on_measurement=seen.append)
    assert len(results.measurements) == 2 * len(WORKLOADS) * 2 == len(seen)
    for m in results.measurements:
        assert m.ok, (m.subject, m.workload, m.mode, m.error)
        assert m.seconds > 0 and m.p99_ms >= m.p50_ms > 0
        assert m.rows_after == m.rows_expected
    adds = [m for m in results.measurements if m.workload in ("add", "search")]
    assert all(m.embedding_requests and m.embedding_requests >= 1 for m in adds)
    deletes = [m for m in results.measurements if m.workload == "delete"]
    assert all(m.embedding_requests == 0 for m in deletes)
    assert results.meta["embeddings"].startswith("offline")
    assert "langchain_vd" in results.meta["versions"]


def test_compare_runs_the_replaced_integration_in_its_own_process(milvus_uri, tmp_path):
    config = BenchConfig(
        n=(3,),
        workloads=("add", "search"),
        integrations=("langchain",),
        compare=True,
        uri=milvus_uri,
        out_dir=str(tmp_path),
        **FAST,
    )
    results = run_benchmark(config, progress=False)
    theirs = [m for m in results.measurements if m.subject == "langchain_milvus"]
    assert {(m.workload, m.mode) for m in theirs} == {
        ("add", "sync"),
        ("add", "async"),
        ("search", "sync"),
        ("search", "async"),
    }
    # Whatever failed on a fresh collection was measured again on a pre-created one.
    for m in theirs:
        if not m.ok and not m.precreated:
            assert results.get(m.subject, m.workload, m.n, m.mode).precreated
    assert results.ratio_vs_anchor("langchain_vd", "search", 3, "sync") is not None
    assert "langchain-milvus" in results.meta["versions"]["langchain_milvus"]
    assert (tmp_path / "logs" / "langchain_milvus.log").exists()


def test_command_line_writes_results(milvus_uri, tmp_path, capsys):
    code = bench_main(
        [
            "-n",
            "3",
            "--workloads",
            "search",
            "--integrations",
            "llama_index",
            "--uri",
            milvus_uri,
            "--out",
            str(tmp_path),
            "--no-progress",
            "--latency",
            "0.01",
            "--dim",
            "32",
            "--population",
            "40",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "llama_index_vd.MilvusVectorStore | search | 3" in out
    assert (tmp_path / "results.json").exists() and (tmp_path / "speedup.png").exists()

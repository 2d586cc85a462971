"""The ``bulk`` workload: ONE call adding N documents, sync and async (issue 18's "bulk
adds of 1,000"), next to the workloads of N single-item operations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vd_bench import BenchConfig, BenchResults, Measurement, run_benchmark
from vd_bench.__main__ import config_from, parse_args
from vd_bench.estimate import estimate_seconds
from vd_bench.floor import MAX_INPUTS, round_trips
from vd_bench.runner import FULL, QUICK, _measure_async, _measure_sync, operations_planned
from vd_bench.subjects import ALL_WORKLOADS, BULK, ONE_CALL_WORKLOADS, SUBJECTS, population

FAST = {"latency": 0.01, "dim": 32, "population": 40}


def _measurement(subject: str, mode: str, n: int = 5, **kw: Any) -> Measurement:
    return Measurement(
        subject=subject,
        label=subject,
        integration="langchain" if subject.startswith("langchain") else "llama_index",
        anchor=subject.endswith("milvus"),
        workload=BULK,
        n=n,
        mode=mode,
        **kw,
    )


# ----- pure parts --------------------------------------------------------------------------------


def test_bulk_is_a_one_call_workload_in_full_not_in_the_default():
    assert BULK in ALL_WORKLOADS and BULK in ONE_CALL_WORKLOADS
    assert BULK not in QUICK["workloads"] and BULK in FULL["workloads"]
    assert BULK in BenchConfig.full().operations
    assert config_from(parse_args(["--workloads", "bulk"])).workloads == (BULK,)
    assert population(BULK, 1000) == 0  # an empty collection, as add
    for cls in SUBJECTS.values():
        subject = cls.__new__(cls)  # no embeddings client needed for the counts
        subject.base_population = 100
        assert subject.population(BULK, 7) == 0 and subject.expected_count(BULK, 7) == 7
    # the progress bar counts its documents, as it would N operations
    config = BenchConfig(n=(10, 100), workloads=(BULK,))
    assert operations_planned(config, ["langchain_vd", "llama_index_vd"]) == 2 * 110 * 2
    # one call is far cheaper than N single adds, in the estimate too
    assert estimate_seconds(config) < estimate_seconds(BenchConfig(n=(10, 100), workloads=("add",)))


def test_bulk_floor_is_adds_with_a_request_per_2048_texts():
    assert MAX_INPUTS == 2048
    assert [round_trips(BULK, n) for n in (1, 1000, 2048, 2049, 5000)] == [1, 1, 1, 2, 3]
    assert round_trips("add", 4096) == 2 and round_trips("delete", 5000) == 0


class _FakeSubject:
    """Records the calls the runner makes (no store, no server)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail = fail

    def bulk_op(self, store: Any, n: int) -> None:
        self.calls.append(("bulk_op", n))
        if self.fail:
            raise RuntimeError("refused")

    async def abulk_op(self, store: Any, n: int) -> None:
        self.calls.append(("abulk_op", n))
        if self.fail:
            raise RuntimeError("refused")

    def sync_op(self, workload: str, store: Any, i: int) -> None:
        raise AssertionError("a bulk measurement makes no single-item calls")

    async def async_op(self, workload: str, store: Any, i: int) -> None:
        raise AssertionError("a bulk measurement makes no single-item calls")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("fail", [False, True])
def test_the_runner_makes_one_call_records_one_latency_and_ticks_n(mode, fail):
    subject, ticks = _FakeSubject(fail), []
    m = _measurement("langchain_vd", mode, n=7)
    if mode == "sync":
        _measure_sync(subject, None, m, lambda: ticks.append(1))  # type: ignore[arg-type]
    else:
        asyncio.run(_measure_async(subject, None, m, lambda: ticks.append(1)))  # type: ignore[arg-type]
    assert subject.calls == [("bulk_op" if mode == "sync" else "abulk_op", 7)]
    assert len(ticks) == 7
    assert m.p50_ms == m.p99_ms == m.mean_ms == pytest.approx(m.seconds * 1000)
    assert m.ops_per_s == pytest.approx(7 / m.seconds)  # documents per second
    assert (m.failures, m.ok) == ((1, False) if fail else (0, True))
    if fail:
        assert m.error == "RuntimeError: refused"


def test_the_report_lists_bulk_and_says_ops_count_documents():
    rows = [
        _measurement(s, mode, seconds=0.5, ops_per_s=10.0, p50_ms=500.0, p99_ms=500.0)
        for s in ("langchain_vd", "langchain_milvus")
        for mode in ("sync", "async")
    ]
    results = BenchResults(rows, {"milvus": "test", "embeddings": "fake"})
    assert "| langchain_vd | bulk | 5 |" in results.table()
    assert "| LangChain | bulk | 5 | sync |" in results.comparison_table()
    note = "bulk: one call of N documents; ops/s counts documents"
    assert note in results.summary()
    adds = [Measurement(**{**m.to_dict(), "workload": "add"}) for m in rows]
    assert note not in BenchResults(adds, results.meta).summary()


# ----- a tiny real run ---------------------------------------------------------------------------


def test_bulk_adds_n_documents_in_one_call_through_both_integrations(milvus_uri, tmp_path):
    config = BenchConfig(
        n=(5,), workloads=(BULK,), uri=milvus_uri, out_dir=str(tmp_path), floor=False, **FAST
    )
    results = run_benchmark(config, progress=False)
    assert {(m.subject, m.mode) for m in results.measurements} == {
        (subject, mode)
        for subject in ("langchain_vd", "llama_index_vd")
        for mode in ("sync", "async")
    }
    for m in results.measurements:
        assert m.ok, (m.subject, m.mode, m.error)
        assert m.rows_after == m.rows_expected == 5
        # one call: its latency is the only one, and the whole measurement's time
        assert m.p50_ms == m.p99_ms == m.mean_ms == pytest.approx(m.seconds * 1000)
        assert m.embedding_inputs == 5
        if m.integration == "llama_index":  # one batch embedding call
            assert 1 <= m.embedding_requests <= 2, (m.mode, m.embedding_requests)
    assert "ops/s counts documents" in results.summary()


def test_bulk_floor_is_measured_next_to_it(milvus_uri, tmp_path):
    config = BenchConfig(
        n=(5,),
        workloads=(BULK,),
        integrations=("llama_index",),
        modes=("sync",),
        uri=milvus_uri,
        out_dir=str(tmp_path),
        **FAST,
    )
    (m,) = run_benchmark(config, progress=False).measurements
    assert m.ok and m.floor_error is None, (m.error, m.floor_error)
    assert m.floor_round_trips == 1 and m.floor_embedding_s > 0 and m.floor_server_s > 0

"""``--repeat R``: interleaved rounds, the median run reported, every round kept (issue 18)."""

from __future__ import annotations

import json

import pytest

from tests.bench_measurements import measurement as base_measurement
from vd_bench import BenchConfig, BenchResults, Measurement
from vd_bench.__main__ import config_from, parse_args
from vd_bench.__main__ import main as bench_main
from vd_bench.estimate import describe, estimate_seconds
from vd_bench.runner import operations_planned


def measurement(
    subject: str, workload: str, n: int, mode: str, seconds: float | None, round_: int, **kw
) -> Measurement:
    """A measurement of round ``round_``; its latencies are ``seconds``, to tell which run
    a table reports."""
    return base_measurement(
        subject,
        workload,
        n,
        mode,
        seconds,
        p50_ms=seconds,
        p99_ms=seconds,
        mean_ms=seconds,
        round=round_,
        **kw,
    )


# ----- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("repeat", [0, -1, 21, 2.5, True, "3"])
def test_repeat_must_be_1_to_20_rounds(repeat):
    with pytest.raises(ValueError, match="repeat must be 1-20"):
        BenchConfig(repeat=repeat)


def test_repeat_is_one_by_default_and_scales_operations_and_the_estimate():
    assert BenchConfig().repeat == 1 and BenchConfig.full().repeat == 1
    assert config_from(parse_args(["--full"])).repeat == 1
    assert config_from(parse_args(["--repeat", "3"])) == BenchConfig(repeat=3)
    for bad in ("0", "21", "x"):
        with pytest.raises(SystemExit):
            parse_args(["--repeat", bad])
    names = ["langchain_vd", "llama_index_vd"]
    once, thrice = BenchConfig(), BenchConfig(repeat=3)
    assert operations_planned(thrice, names) == 3 * operations_planned(once, names)
    service = {"workloads": ("search", "service"), "integrations": ("langchain",)}
    assert operations_planned(BenchConfig(repeat=2, **service), ["langchain_vd"]) == 2 * (
        operations_planned(BenchConfig(**service), ["langchain_vd"])
    )
    assert 2.5 * estimate_seconds(once) < estimate_seconds(thrice) < 3 * estimate_seconds(once)
    assert "3 interleaved rounds" in describe(thrice)
    assert "rounds" not in describe(once)


# ----- the median run --------------------------------------------------------------------------


def test_the_median_round_is_reported_and_every_number_comes_from_it():
    rows = [
        measurement("langchain_vd", "search", 10, "sync", s, r, floor_s=f)
        for r, (s, f) in enumerate([(3.0, 0.4), (1.0, 0.2), (2.0, 0.3)])
    ] + [
        measurement("langchain_vd", "search", 10, "async", s, r, floor_s=f)
        for r, (s, f) in enumerate([(0.5, 0.25), (0.4, 0.35), (0.9, 0.15)])
    ]
    results = BenchResults(rows)
    assert results.repeat == 3
    sync = results.get("langchain_vd", "search", 10, "sync")
    async_ = results.get("langchain_vd", "search", 10, "async")
    assert (sync.seconds, sync.round, sync.p50_ms) == (2.0, 2, 2.0)
    assert (async_.seconds, async_.round) == (0.5, 0)
    assert results.speedup("langchain_vd", "search", 10) == pytest.approx(4.0)
    assert results.spread("langchain_vd", "search", 10, "sync") == (1.0, 3.0)
    # the floor is the lowest of every round and both modes (a lower bound)
    assert results.floor("langchain_vd", "search", 10).floor_s == 0.15
    assert results.floor_ratio("langchain_vd", "search", 10, "async") == pytest.approx(0.5 / 0.15)
    table = results.table()
    assert "median of 3 interleaved rounds" in results.summary()
    assert "sync s (range)" in table and "async speed-up (medians)" in table
    assert "| 2.00 (1.00-3.00) | 0.50 (0.40-0.90) | 4.0x |" in table


def test_an_even_count_takes_the_lower_middle_and_failed_rounds_are_ignored():
    rows = [
        measurement("langchain_vd", "add", 10, "sync", 4.0, 0),
        measurement("langchain_vd", "add", 10, "sync", 0.1, 1, failures=3, error="boom"),
        measurement("langchain_vd", "add", 10, "sync", 2.0, 2),
        measurement("langchain_vd", "add", 10, "sync", 3.0, 3),
        measurement("langchain_vd", "add", 10, "sync", 1.0, 4),
    ]
    results = BenchResults(rows)
    # usable: 1, 2, 3, 4 seconds; the lower middle is 2
    assert results.get("langchain_vd", "add", 10, "sync").seconds == 2.0
    assert results.spread("langchain_vd", "add", 10, "sync") == (1.0, 4.0)
    assert "sync: 1 of 5 rounds failed (boom)" in results.table()
    # no usable round: the last round's failure is reported
    failed = [
        measurement("langchain_vd", "add", 10, "async", 1.0, r, failures=1, error=f"e{r}")
        for r in range(3)
    ]
    assert BenchResults(failed).get("langchain_vd", "add", 10, "async").error == "e2"
    assert BenchResults(failed).spread("langchain_vd", "add", 10, "async") is None


def test_a_round_that_failed_on_a_fresh_collection_counts_with_its_precreated_rerun():
    fail = {"failures": 2, "error": "fresh failed"}
    rows = [
        measurement("langchain_milvus", "add", 10, "async", 0.3, 0, **fail),
        measurement("langchain_milvus", "add", 10, "async", 5.0, 0, precreated=True),
        measurement("langchain_milvus", "add", 10, "async", 1.0, 1),
        measurement("langchain_milvus", "add", 10, "async", 0.2, 2, **fail),
        measurement("langchain_milvus", "add", 10, "async", 3.0, 2, precreated=True),
        measurement("langchain_milvus", "add", 10, "sync", 9.0, 0),
        measurement("langchain_milvus", "add", 10, "sync", 9.0, 1),
        measurement("langchain_milvus", "add", 10, "sync", 9.0, 2),
    ]
    results = BenchResults(rows)
    runs = results.runs("langchain_milvus", "add", 10, "async")
    assert [(m.round, m.seconds) for m in runs] == [(0, 5.0), (1, 1.0), (2, 3.0)]
    reported = results.get("langchain_milvus", "add", 10, "async")
    assert (reported.round, reported.seconds, reported.precreated) == (2, 3.0, True)
    fresh = results.failed_fresh("langchain_milvus", "add", 10, "async")
    assert (fresh.round, fresh.seconds) == (2, 0.2)  # the reported round's own failure
    assert "failed on a fresh collection (fresh failed)" in results.table()
    # a round whose rerun succeeded is not a failed round
    assert "rounds failed" not in results.table()


def test_the_service_takes_the_median_throughput():
    rows = [
        measurement("langchain_vd", "service search", 40, "async", s, r, clients=4)
        for r, s in enumerate([2.0, 4.0, 1.0, 8.0])
    ] + [
        measurement("langchain_milvus", "service search", 40, "async", s, r, clients=4)
        for r, s in enumerate([4.0, 5.0, 4.5, 4.2])
    ]
    results = BenchResults(rows)
    ours = results.get("langchain_vd", "service search", 40, "async")
    # 40, 20, 10, 5 req/s: the higher middle throughput (20), the lower middle by seconds
    assert ours.ops_per_s == 20.0 and ours.seconds == 2.0
    assert results.spread("langchain_vd", "service search", 40, "async") == (5.0, 40.0)
    service = results.service_table()
    lines = [line for line in service.splitlines() if line.startswith("| langchain")]
    assert len(lines) == 2 and "req/s (range)" in service
    assert "| 2.00 | 20 (5-40) |" in lines[0]
    assert results.ratio_vs_anchor("langchain_vd", "service search", 40, "async") == pytest.approx(
        4.2 / 2.0
    )
    assert "ours faster by (medians)" in results.comparison_table()


def test_one_round_reads_as_before():
    rows = [
        measurement("langchain_vd", "search", 10, "sync", 1.0, 0),
        measurement("langchain_vd", "search", 10, "async", 0.5, 0),
    ]
    results = BenchResults(rows)
    assert results.repeat == 1
    assert "range" not in results.table() and "median" not in results.summary()
    assert "| 1.00 | 0.50 | 2.0x |" in results.table()


def test_results_json_keeps_every_round_and_old_files_load(tmp_path):
    rows = [
        measurement("langchain_vd", "search", 10, mode, s, r)
        for r, s in enumerate([1.0, 3.0, 2.0])
        for mode in ("sync", "async")
    ]
    results = BenchResults(rows, {"milvus": "test", "embeddings": "fake"})
    paths = results.save(tmp_path)
    data = json.loads(paths["json"].read_text())
    assert [m["round"] for m in data["measurements"]] == [0, 0, 1, 1, 2, 2]
    loaded = BenchResults.load(paths["json"])
    assert loaded.measurements == rows
    assert loaded.get("langchain_vd", "search", 10, "sync").round == 2
    assert "median of 3 interleaved rounds" in paths["table"].read_text()
    # a file written before rounds existed
    for m in data["measurements"]:
        del m["round"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"meta": {}, "measurements": data["measurements"][:2]}))
    assert [m.round for m in BenchResults.load(old).measurements] == [0, 0]


# ----- a real run --------------------------------------------------------------------------------


def test_rounds_run_interleaved(milvus_uri, tmp_path):
    pytest.importorskip("langchain_milvus")  # the compared store runs on this interpreter
    code = bench_main(
        [
            "-n",
            "2",
            "--workloads",
            "search",
            "--integrations",
            "langchain",
            "--modes",
            "async",
            "--compare",  # langchain-milvus is importable here: its worker uses this interpreter
            "--repeat",
            "2",
            "--uri",
            milvus_uri,
            "--out",
            str(tmp_path),
            "--no-floor",
            "--no-progress",
            "--latency",
            "0.01",
            "--dim",
            "32",
            "--population",
            "20",
        ]
    )
    assert code == 0
    results = BenchResults.load(tmp_path / "results.json")
    order = [(m.round, m.subject) for m in results.measurements if not m.precreated]
    # round 0 of every subject before round 1 of any
    assert order == [
        (0, "langchain_vd"),
        (0, "langchain_milvus"),
        (1, "langchain_vd"),
        (1, "langchain_milvus"),
    ]
    assert all(m.ok for m in results.measurements if m.subject == "langchain_vd")
    assert results.meta["config"]["repeat"] == 2
    assert "median of 2 interleaved rounds" in (tmp_path / "results.md").read_text()
    for round_ in (0, 1):
        assert (tmp_path / "logs" / f"round{round_}" / "langchain_milvus.log").exists()

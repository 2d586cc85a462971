"""The runner counts what populating wrote before it times anything: a short population
fails the measurement with a clear error, and the count (a strong read, which on Milvus
2.3 waits out the server's catching up with those writes) happens before the first op."""

from __future__ import annotations

from typing import Any

from vd_bench.measurement import Measurement
from vd_bench.runner import EmbeddingCounter, LoopRunner, _measure_once


class _CountingSubject:
    """A subject without a server: it records the runner's calls in order."""

    name = "langchain_vd"

    def __init__(self, written: int) -> None:
        self.written = written
        self.rows = 0
        self.calls: list[str] = []

    def open(self, workload: str, collection: str) -> dict[str, Any]:
        return {"collection": collection}

    def population(self, workload: str, n: int) -> int:
        return 0 if workload == "add" else 10

    def populate(self, store: Any, workload: str, n: int) -> None:
        self.calls.append("populate")
        self.rows = self.written if self.population(workload, n) else 0

    def count(self, store: Any) -> int:
        self.calls.append("count")
        return self.rows

    def expected_count(self, workload: str, n: int) -> int | None:
        return self.population(workload, n) if workload == "search" else n

    def sync_op(self, workload: str, store: Any, i: int) -> None:
        self.calls.append("op")
        self.rows += workload == "add"

    def collection_of(self, store: Any) -> str:
        return store["collection"]

    def drop(self, store: Any) -> None:
        self.calls.append("drop")

    def close(self, store: Any) -> None:
        self.calls.append("close")


def _measurement(workload: str, n: int = 3) -> Measurement:
    return Measurement(
        subject="langchain_vd",
        label="langchain_vd",
        integration="langchain",
        anchor=False,
        workload=workload,
        n=n,
        mode="sync",
    )


def _run(subject: _CountingSubject, m: Measurement) -> None:
    with LoopRunner() as loop:
        _measure_once(subject, m, loop, EmbeddingCounter(None, offline=True), lambda: None)  # type: ignore[arg-type]


def test_a_short_population_fails_the_measurement_before_any_op():
    subject, m = _CountingSubject(written=7), _measurement("search")
    _run(subject, m)
    assert m.error == "RuntimeError: populating left 7 rows, expected 10"
    assert "op" not in subject.calls
    assert subject.calls[-2:] == ["drop", "close"]  # the collection is still dropped


def test_the_population_is_counted_before_the_first_op():
    subject, m = _CountingSubject(written=10), _measurement("search")
    _run(subject, m)
    assert m.error is None and m.failures == 0
    assert subject.calls[:5] == ["populate", "count", "op", "op", "op"]
    assert m.rows_after == m.rows_expected == 10


def test_an_empty_population_is_not_counted_before_the_ops():
    subject, m = _CountingSubject(written=0), _measurement("add")
    _run(subject, m)
    assert m.error is None
    assert subject.calls[:2] == ["populate", "op"]

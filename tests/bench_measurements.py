"""Hand-made benchmark measurements for the vd_bench tests (no store is run)."""

from __future__ import annotations

from typing import Any

from vd_bench import Measurement

__all__ = ["measurement"]


def measurement(
    subject: str, workload: str, n: int, mode: str, seconds: float | None = None, **fields: Any
) -> Measurement:
    """A measurement of ``subject`` (its integration and anchor follow from the name):
    ``ops_per_s`` from ``seconds``, latencies 10/20/12 ms unless ``fields`` say otherwise."""
    values: dict[str, Any] = {
        "subject": subject,
        "label": subject,
        "integration": "langchain" if subject.startswith("langchain") else "llama_index",
        "anchor": subject in ("langchain_milvus", "llama_index_milvus"),
        "workload": workload,
        "n": n,
        "mode": mode,
        "seconds": seconds,
        "ops_per_s": None if seconds is None else n / seconds,
        "p50_ms": 10.0,
        "p99_ms": 20.0,
        "mean_ms": 12.0,
    }
    values.update(fields)
    return Measurement(**values)

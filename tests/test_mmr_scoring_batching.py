"""Unit tests for vd_integrations.core.mmr, .scoring and .batching (no Milvus server needed)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import pytest

from vd_integrations.core.batching import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_BATCH_BYTES,
    batched,
    estimate_row_bytes,
    estimate_value_bytes,
    iter_row_batches,
    split_rows,
)
from vd_integrations.core.mmr import maximal_marginal_relevance, similarity_matrix
from vd_integrations.core.scoring import (
    bm25_relevance,
    higher_is_better,
    normalize_metric,
    relevance_fn,
    relevance_score,
)

# --------------------------------------------------------------------------- MMR reference


def _ref_sim(a: list[float], b: list[float], metric: str) -> float:
    if metric == "IP":
        return sum(x * y for x, y in zip(a, b, strict=True))
    if metric == "L2":
        return -sum((x - y) ** 2 for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def _ref_mmr(
    query: list[float], cands: list[list[float]], k: int, lam: float, metric: str
) -> list[int]:
    """Slow, obviously-correct MMR: recompute every similarity from scratch each step."""
    if not cands:
        return []
    qs = [_ref_sim(query, c, metric) for c in cands]
    best = max(range(len(cands)), key=lambda i: (qs[i], -i))
    selected = [best]
    while len(selected) < min(k, len(cands)):
        best_i, best_score = None, -math.inf
        for i in range(len(cands)):
            if i in selected:
                continue
            redundancy = max(_ref_sim(cands[i], cands[s], metric) for s in selected)
            score = lam * qs[i] - (1 - lam) * redundancy
            if score > best_score:
                best_i, best_score = i, score
        selected.append(best_i)
    return selected


@pytest.mark.parametrize("metric", ["COSINE", "IP", "L2"])
@pytest.mark.parametrize("lam", [0.0, 0.25, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mmr_matches_reference(metric: str, lam: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, dim = int(rng.integers(5, 40)), int(rng.integers(2, 12))
    cands = rng.normal(size=(n, dim))
    query = rng.normal(size=dim)
    k = int(rng.integers(1, n + 3))  # sometimes k > n
    got = maximal_marginal_relevance(query, cands, k=k, lambda_mult=lam, metric=metric)
    want = _ref_mmr(query.tolist(), cands.tolist(), k, lam, metric)
    assert got == want
    assert len(got) == min(k, n)
    assert len(set(got)) == len(got)


@pytest.mark.parametrize("metric", ["COSINE", "IP", "L2"])
def test_mmr_lambda_one_is_similarity_ranking(metric: str) -> None:
    rng = np.random.default_rng(42)
    cands = rng.normal(size=(25, 6))
    query = rng.normal(size=6)
    sims = similarity_matrix(query, cands, metric)[0]
    expected = np.argsort(-sims, kind="stable")[:10].tolist()
    got = maximal_marginal_relevance(query, cands, k=10, lambda_mult=1.0, metric=metric)
    assert got == expected


def test_mmr_lambda_zero_prefers_diversity() -> None:
    query = [1.0, 0.0]
    cands = [[1.0, 0.0], [0.99, 0.1], [0.98, -0.1], [0.0, 1.0]]
    assert maximal_marginal_relevance(query, cands, k=2, lambda_mult=0.0) == [0, 3]
    # Pure relevance picks the near-duplicate instead.
    assert maximal_marginal_relevance(query, cands, k=2, lambda_mult=1.0) == [0, 1]


def test_mmr_l2_uses_squared_distance_for_both_terms() -> None:
    query = [0.0, 0.0]
    cands = [[1.0, 0.0], [1.1, 0.0], [0.0, 1.2]]
    # relevance: -1, -1.21, -1.44; after picking 0 the redundancy is -0.01 and -2.44.
    # lambda=0.5: idx1 -> -0.605 + 0.005 = -0.6; idx2 -> -0.72 + 1.22 = 0.5 -> pick 2.
    assert maximal_marginal_relevance(query, cands, k=3, metric="l2") == [0, 2, 1]


def test_mmr_k_larger_than_n_and_empty() -> None:
    cands = np.eye(3)
    assert sorted(maximal_marginal_relevance([1, 0, 0], cands, k=10)) == [0, 1, 2]
    assert maximal_marginal_relevance([1, 0, 0], [], k=3) == []
    assert maximal_marginal_relevance([1, 0, 0], np.empty((0, 3)), k=3) == []


def test_mmr_accepts_single_row_2d_query() -> None:
    cands = np.eye(3)
    assert maximal_marginal_relevance([[0, 1, 0]], cands, k=1) == [1]


def test_mmr_zero_norm_vectors_cosine_no_nan() -> None:
    cands = [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = maximal_marginal_relevance([1.0, 0.0], cands, k=4, lambda_mult=0.5)
        assert got[0] == 1
        assert sorted(got) == [0, 1, 2, 3]
        # Zero query: every similarity is 0, ties go to the lowest index.
        assert maximal_marginal_relevance([0.0, 0.0], cands, k=2) == [0, 1]
        sims = similarity_matrix(cands, cands, "COSINE")
    assert not np.isnan(sims).any()
    assert sims[0, 0] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"k": 0}, ValueError),
        ({"k": -2}, ValueError),
        ({"k": 2.0}, TypeError),
        ({"k": 2, "lambda_mult": -0.01}, ValueError),
        ({"k": 2, "lambda_mult": 1.01}, ValueError),
        ({"k": 2, "lambda_mult": float("nan")}, ValueError),
        ({"k": 2, "metric": "HAMMING"}, ValueError),
        ({"k": 2, "metric": "BM25"}, ValueError),
    ],
)
def test_mmr_argument_errors(kwargs: dict, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        maximal_marginal_relevance([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], **kwargs)


def test_mmr_shape_errors() -> None:
    with pytest.raises(ValueError, match="dimension"):
        maximal_marginal_relevance([1.0, 0.0, 0.0], [[1.0, 0.0]], k=1)
    with pytest.raises(ValueError, match="2-D"):
        maximal_marginal_relevance([1.0, 0.0], [1.0, 0.0], k=1)
    with pytest.raises(ValueError, match="1-D"):
        maximal_marginal_relevance([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0]], k=1)
    with pytest.raises(ValueError, match="finite"):
        maximal_marginal_relevance([1.0, float("nan")], [[1.0, 0.0]], k=1)


# --------------------------------------------------------------------------- scoring


def test_normalize_metric() -> None:
    assert normalize_metric("cosine") == "COSINE"
    assert normalize_metric(" l2 ") == "L2"
    assert normalize_metric("Ip") == "IP"
    assert normalize_metric("bm25") == "BM25"
    with pytest.raises(ValueError, match=r"L2, IP, COSINE, BM25"):
        normalize_metric("HAMMING")
    with pytest.raises(TypeError):
        normalize_metric(None)  # type: ignore[arg-type]


def test_higher_is_better() -> None:
    assert higher_is_better("L2") is False
    assert all(higher_is_better(m) for m in ("IP", "cosine", "BM25"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0.0, 1.0), (1.0, 0.75), (2.0, 0.5), (4.0, 0.0), (5.0, 0.0), (-0.5, 1.0), (math.inf, 0.0)],
)
def test_relevance_l2(raw: float, expected: float) -> None:
    assert relevance_score(raw, "L2") == pytest.approx(expected)


@pytest.mark.parametrize("metric", ["IP", "COSINE", "cosine"])
@pytest.mark.parametrize(
    ("raw", "expected"),
    [(1.0, 1.0), (0.0, 0.5), (-1.0, 0.0), (0.5, 0.75), (3.0, 1.0), (-3.0, 0.0)],
)
def test_relevance_similarity(metric: str, raw: float, expected: float) -> None:
    assert relevance_score(raw, metric) == pytest.approx(expected)


def test_relevance_fn_and_errors() -> None:
    fn = relevance_fn("l2")
    assert [fn(x) for x in (0.0, 2.0, 4.0)] == [1.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="bm25_relevance"):
        relevance_fn("BM25")
    with pytest.raises(ValueError, match="BM25"):
        relevance_score(3.2, "bm25")
    with pytest.raises(ValueError, match="unsupported metric"):
        relevance_score(0.5, "JACCARD")
    with pytest.raises(ValueError, match="NaN"):
        relevance_score(float("nan"), "COSINE")


def test_bm25_relevance() -> None:
    assert bm25_relevance([1.0, 3.0, 2.0]) == [0.0, 1.0, 0.5]
    assert bm25_relevance([7.0, 7.0]) == [1.0, 1.0]
    assert bm25_relevance([4.2]) == [1.0]
    assert bm25_relevance([]) == []
    with pytest.raises(ValueError):
        bm25_relevance([1.0, math.inf])


# --------------------------------------------------------------------------- batching


def test_defaults() -> None:
    assert DEFAULT_MAX_BATCH_BYTES == 16 * 1024 * 1024
    assert DEFAULT_BATCH_SIZE == 1000


def test_estimate_value_bytes() -> None:
    assert estimate_value_bytes([0.5] * 768) >= 768 * 4
    assert estimate_value_bytes(np.zeros(768, dtype=np.float32)) >= 768 * 4
    assert estimate_value_bytes(np.zeros(768, dtype=np.float64)) >= 768 * 4
    assert estimate_value_bytes(np.zeros(16, dtype=np.int8)) >= 16
    assert estimate_value_bytes("héllo") == 6
    assert estimate_value_bytes(b"\x00" * 32) == 32
    assert estimate_value_bytes(42) == 8
    assert estimate_value_bytes(np.float32(1.5)) == 8
    assert estimate_value_bytes(3.14) == 8
    assert estimate_value_bytes(True) == 1
    assert estimate_value_bytes(None) == 1
    doc = {"título": "ü", "n": [1, 2]}
    assert estimate_value_bytes(doc) == len('{"título": "ü", "n": [1, 2]}'.encode())
    assert estimate_value_bytes(["a", "b"]) == len(b'["a", "b"]')
    assert estimate_value_bytes({1: 0.5, 7: 0.25}) > 0  # sparse vector


def test_estimate_row_bytes() -> None:
    row = {"id": 1, "vector": [0.1] * 128, "text": "abc", "meta": {"a": 1}}
    size = estimate_row_bytes(row)
    assert size >= 8 + 128 * 4 + 3 + len(b'{"a": 1}')
    assert size >= sum(len(k) + 8 for k in row)
    assert estimate_row_bytes({}) == 0
    assert estimate_row_bytes({"text": "a" * 1000}) > estimate_row_bytes({"text": "a"})


def _rows(sizes: list[int]) -> list[dict]:
    return [{"id": i, "text": "x" * s} for i, s in enumerate(sizes)]


def _check_slices(rows: list[dict], slices: list[tuple[int, int]], max_rows: int, max_bytes: int):
    covered = [i for start, stop in slices for i in range(start, stop)]
    assert covered == list(range(len(rows)))
    for start, stop in slices:
        assert 0 < stop - start <= max_rows
        total = sum(estimate_row_bytes(r) for r in rows[start:stop])
        assert total <= max_bytes or stop - start == 1
    # Greedy: a slice could not have absorbed the next row.
    for start, stop in slices[:-1]:
        total = sum(estimate_row_bytes(r) for r in rows[start : stop + 1])
        assert stop - start == max_rows or total > max_bytes


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("max_rows", "max_bytes"), [(1, 10_000), (7, 2_000), (1000, 500)])
def test_split_rows_random(seed: int, max_rows: int, max_bytes: int) -> None:
    rng = np.random.default_rng(seed)
    rows = _rows(rng.integers(0, 400, size=int(rng.integers(0, 120))).tolist())
    slices = split_rows(rows, max_rows=max_rows, max_bytes=max_bytes)
    _check_slices(rows, slices, max_rows, max_bytes)
    batches = list(iter_row_batches(rows, max_rows=max_rows, max_bytes=max_bytes))
    assert batches == [rows[a:b] for a, b in slices]


def test_split_rows_huge_row_gets_own_slice() -> None:
    rows = _rows([10, 10, 5000, 10, 10])
    slices = split_rows(rows, max_rows=100, max_bytes=200)
    assert slices == [(0, 2), (2, 3), (3, 5)]
    assert split_rows(_rows([5000]), max_bytes=200) == [(0, 1)]
    assert split_rows(_rows([5000, 5000]), max_bytes=200) == [(0, 1), (1, 2)]


def test_split_rows_edge_cases() -> None:
    assert split_rows([]) == []
    assert list(iter_row_batches([])) == []
    rows = _rows([1] * 2500)
    assert split_rows(rows) == [(0, 1000), (1000, 2000), (2000, 2500)]
    for bad in ({"max_rows": 0}, {"max_bytes": 0}, {"max_rows": -1}):
        with pytest.raises(ValueError):
            split_rows(rows, **bad)
        with pytest.raises(ValueError):
            iter_row_batches(rows, **bad)  # raised eagerly, before iteration


class _Recorder:
    """Wraps a generator of rows and records how many were pulled."""

    def __init__(self, n: int, text_len: int = 10) -> None:
        self.consumed = 0
        self.n = n
        self.text_len = text_len

    def __iter__(self) -> Iterator[dict]:
        for i in range(self.n):
            self.consumed += 1
            yield {"id": i, "text": "x" * self.text_len}


def test_iter_row_batches_streams_lazily() -> None:
    src = _Recorder(10_000)
    it = iter_row_batches(iter(src), max_rows=50)
    assert src.consumed == 0
    first = next(it)
    assert len(first) == 50
    assert src.consumed == 50  # row-limited batch yielded without reading ahead
    next(it)
    assert src.consumed == 100

    row_bytes = estimate_row_bytes({"id": 0, "text": "x" * 10})
    src = _Recorder(10_000)
    it = iter_row_batches(iter(src), max_rows=1000, max_bytes=row_bytes * 3 + 1)
    assert len(next(it)) == 3
    assert src.consumed == 4  # needed exactly one row of look-ahead
    assert len(next(it)) == 3
    assert src.consumed == 7


def test_batched() -> None:
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []
    assert list(batched("ab", 5)) == [["a", "b"]]
    for bad in (0, -1):
        with pytest.raises(ValueError):
            batched(range(3), bad)  # raised eagerly
    with pytest.raises(TypeError):
        batched(range(3), 2.5)  # type: ignore[arg-type]


def test_batched_streams_lazily() -> None:
    src = _Recorder(1_000_000)
    it = batched(iter(src), 4)
    assert src.consumed == 0
    assert [r["id"] for r in next(it)] == [0, 1, 2, 3]
    assert src.consumed == 4
    next(it)
    assert src.consumed == 8


def test_clients_do_not_ping_idle_channels_unless_asked():
    """pymilvus pings every 10 s even when idle; gRPC's default server policy (Milvus Lite)
    answers with GOAWAY "too_many_pings", failing calls in flight. We turn idle pings off."""
    from vd_integrations.milvus.config import ConnectionConfig

    kwargs = ConnectionConfig.from_connection_args({"uri": "http://127.0.0.1:1"}).client_kwargs()
    assert kwargs["grpc_options"] == {"grpc.keepalive_permit_without_calls": 0}
    mine = {"grpc.keepalive_permit_without_calls": 1, "grpc.keepalive_time_ms": 30_000}
    kwargs = ConnectionConfig.from_connection_args(
        {"uri": "http://127.0.0.1:1", "grpc_options": mine}
    ).client_kwargs()
    assert kwargs["grpc_options"] == mine

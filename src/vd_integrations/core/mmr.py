"""Maximal marginal relevance (MMR) re-ranking with numpy.

Similarity is measured in the index's own metric so that both MMR terms share one scale:

* ``COSINE``: cosine similarity (a zero-norm vector has similarity 0 to everything).
* ``IP``: inner product.
* ``L2``: *negative squared* euclidean distance (higher = more similar).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vd_integrations.core.scoring import normalize_metric

__all__ = ["maximal_marginal_relevance", "similarity_matrix"]

_VECTOR_METRICS = ("COSINE", "IP", "L2")


def _vector_metric(metric: str) -> str:
    m = normalize_metric(metric)
    if m not in _VECTOR_METRICS:
        raise ValueError(f"MMR needs a dense-vector metric ({', '.join(_VECTOR_METRICS)}), got {m}")
    return m


def _unit_rows(x: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    safe = np.where(norms > 0.0, norms, 1.0)
    return np.where(norms > 0.0, x / safe, 0.0)


def similarity_matrix(a: ArrayLike, b: ArrayLike, metric: str = "COSINE") -> NDArray[np.float64]:
    """Pairwise similarity ``(len(a), len(b))`` between the rows of 2-D ``a`` and ``b``.

    ``COSINE`` -> cosine similarity (0 for zero-norm rows), ``IP`` -> inner product,
    ``L2`` -> negative squared euclidean distance.
    """
    m = _vector_metric(metric)
    x = np.atleast_2d(np.asarray(a, dtype=np.float64))
    y = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: {x.shape[1]} != {y.shape[1]}")
    if m == "COSINE":
        return _unit_rows(x) @ _unit_rows(y).T
    if m == "IP":
        return x @ y.T
    sq = (x * x).sum(axis=1)[:, None] + (y * y).sum(axis=1)[None, :] - 2.0 * (x @ y.T)
    return -np.maximum(sq, 0.0)


def maximal_marginal_relevance(
    query: ArrayLike,
    candidates: ArrayLike,
    *,
    k: int,
    lambda_mult: float = 0.5,
    metric: str = "COSINE",
) -> list[int]:
    """Select up to ``k`` candidate indices by maximal marginal relevance, in selection order.

    The first pick is the candidate most similar to ``query``; each next pick maximises
    ``lambda_mult * sim(query, c) - (1 - lambda_mult) * max(sim(c, s) for s in selected)``.
    ``lambda_mult=1`` is plain similarity ranking, ``0`` is maximum diversity. Ties go to the
    lowest index. If ``k`` exceeds the number of candidates, all of them are returned.

    ``query`` is a 1-D vector (a single-row 2-D array is accepted); ``candidates`` is 2-D
    ``(n, dim)``. Raises ``ValueError`` for ``k <= 0``, ``lambda_mult`` outside ``[0, 1]``,
    mismatched dimensions, non-finite values, or a non-vector metric.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")
    lam = float(lambda_mult)
    if not (0.0 <= lam <= 1.0):  # also rejects NaN
        raise ValueError(f"lambda_mult must be in [0, 1], got {lambda_mult}")
    m = _vector_metric(metric)

    q = np.asarray(query, dtype=np.float64)
    if q.ndim == 2 and q.shape[0] == 1:
        q = q[0]
    if q.ndim != 1:
        raise ValueError(f"query must be a 1-D vector, got shape {q.shape}")
    c = np.asarray(candidates, dtype=np.float64)
    if c.size == 0:
        return []
    if c.ndim != 2:
        raise ValueError(f"candidates must be a 2-D array (n, dim), got shape {c.shape}")
    if c.shape[1] != q.shape[0]:
        raise ValueError(
            f"dimension mismatch: query has {q.shape[0]}, candidates have {c.shape[1]}"
        )
    if not (np.isfinite(q).all() and np.isfinite(c).all()):
        raise ValueError("query and candidates must contain only finite values")

    n = c.shape[0]
    k = min(int(k), n)
    query_sim = similarity_matrix(q[None, :], c, m)[0]
    pair_sim = similarity_matrix(c, c, m)

    first = int(np.argmax(query_sim))
    selected = [first]
    chosen = np.zeros(n, dtype=bool)
    chosen[first] = True
    max_sim = pair_sim[first].copy()
    relevance = lam * query_sim
    redundancy_weight = 1.0 - lam

    while len(selected) < k:
        scores = relevance - redundancy_weight * max_sim
        scores[chosen] = -math.inf
        idx = int(np.argmax(scores))
        selected.append(idx)
        chosen[idx] = True
        np.maximum(max_sim, pair_sim[idx], out=max_sim)
    return selected

"""Metric-aware relevance scores for Milvus search results.

Raw Milvus scores depend on the index metric:

* ``"L2"``: pymilvus returns the *squared* euclidean distance; lower is better.
* ``"IP"``: inner product; higher is better.
* ``"COSINE"``: cosine similarity in ``[-1, 1]``; higher is better.
* ``"BM25"``: full-text relevance; higher is better, but with no fixed scale.

:func:`relevance_score` maps a raw score to ``[0, 1]`` (higher = more relevant) with the
same conventions as langchain-milvus, which assume unit-normalised embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = [
    "VALID_METRICS",
    "bm25_relevance",
    "higher_is_better",
    "normalize_metric",
    "relevance_fn",
    "relevance_score",
]

VALID_METRICS: tuple[str, ...] = ("L2", "IP", "COSINE", "BM25")


def normalize_metric(metric: str) -> str:
    """Return ``metric`` upper-cased and stripped; raise ``ValueError`` if it is not supported."""
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a str, got {type(metric).__name__}")
    normalized = metric.strip().upper()
    if normalized not in VALID_METRICS:
        raise ValueError(
            f"unsupported metric type {metric!r}; expected one of {', '.join(VALID_METRICS)}"
        )
    return normalized


def higher_is_better(metric: str) -> bool:
    """Whether a larger raw score means a closer match (``False`` only for ``"L2"``)."""
    return normalize_metric(metric) != "L2"


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def _l2_relevance(raw: float) -> float:
    # Squared L2 distance between unit vectors lies in [0, 4].
    return _clamp01(1.0 - raw / 4.0)


def _similarity_relevance(raw: float) -> float:
    # Cosine similarity (and IP between unit vectors) lies in [-1, 1].
    return _clamp01((raw + 1.0) / 2.0)


def _checked(fn: Callable[[float], float]) -> Callable[[float], float]:
    def score(raw: float) -> float:
        raw = float(raw)
        if math.isnan(raw):
            raise ValueError("raw score is NaN")
        return fn(raw)

    score.__name__ = fn.__name__.lstrip("_")
    score.__doc__ = fn.__doc__
    return score


_L2_FN = _checked(_l2_relevance)
_SIM_FN = _checked(_similarity_relevance)


def relevance_fn(metric: str) -> Callable[[float], float]:
    """Return the raw-score -> ``[0, 1]`` relevance function for ``metric``.

    * ``L2`` (squared distance): ``1 - raw / 4``, clamped to ``[0, 1]``.
    * ``IP`` / ``COSINE``: ``(raw + 1) / 2``, clamped to ``[0, 1]``.
    * ``BM25``: ``ValueError`` -- BM25 scores have no fixed scale; use
      :func:`bm25_relevance` on a whole result list instead.

    The returned function raises ``ValueError`` for a NaN score.
    """
    m = normalize_metric(metric)
    if m == "L2":
        return _L2_FN
    if m in ("IP", "COSINE"):
        return _SIM_FN
    raise ValueError(
        "BM25 scores have no fixed scale, so a per-score relevance cannot be computed; "
        "use bm25_relevance(scores) to min-max normalise a result list"
    )


def relevance_score(raw: float, metric: str) -> float:
    """Map one raw Milvus score to ``[0, 1]`` (higher = more relevant); see :func:`relevance_fn`."""
    return relevance_fn(metric)(raw)


def bm25_relevance(scores: Sequence[float]) -> list[float]:
    """Min-max normalise a list of BM25 scores to ``[0, 1]`` (best score -> 1.0).

    Scores are only comparable within one result list. If all scores are equal (including a
    single score), every result gets ``1.0``. An empty input gives ``[]``.
    """
    values = [float(s) for s in scores]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("BM25 scores must be finite")
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [1.0] * len(values)
    span = hi - lo
    return [(v - lo) / span for v in values]

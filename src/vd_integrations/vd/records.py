"""What a vd backend hands back, in the engine's terms: search hits and documents as
:class:`~vd_integrations.milvus.schema.Record`, and vd scores as [0, 1] relevance."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from vd_integrations.core.validation import as_float_list
from vd_integrations.milvus.schema import Record

__all__ = ["MMR_METRIC", "record_from_doc", "record_from_hit", "relevance_fn"]

#: The metric name :func:`~vd_integrations.core.mmr.maximal_marginal_relevance` takes for
#: each vd metric.
MMR_METRIC = {"cosine": "COSINE", "dot": "IP", "l2": "L2"}


def record_from_hit(hit: Mapping[str, Any]) -> Record:
    """A vd search hit (``id``, ``text``, ``metadata``, ``score``) as a scored Record."""
    return Record(
        id=str(hit["id"]),
        text=hit.get("text") or "",
        metadata=copy.deepcopy(dict(hit.get("metadata") or {})),
        score=float(hit["score"]),
    )


def record_from_doc(doc: Any, *, with_vector: bool = False) -> Record:
    """A ``vd.Document`` as a Record (with its vector when ``with_vector``)."""
    vector = as_float_list(doc.vector) if with_vector and doc.vector is not None else None
    return Record(
        id=str(doc.id),
        text=doc.text or "",
        metadata=copy.deepcopy(dict(doc.metadata or {})),
        vector=vector,
    )


def relevance_fn(metric: str) -> Callable[[float], float]:
    """Map a raw vd score to [0, 1]: cosine/dot ``(s + 1) / 2`` (clamped), l2 ``s``."""
    return _l2_relevance if metric == "l2" else _similarity_relevance


def _clamp01(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def _similarity_relevance(score: float) -> float:
    return _clamp01((float(score) + 1.0) / 2.0)


def _l2_relevance(score: float) -> float:
    return _clamp01(score)

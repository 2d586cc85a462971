"""How a hybrid search fuses its two legs: :class:`Ranker` and :func:`make_ranker`, which
validates a caller's choice (``"rrf"`` with ``k``, or ``"weighted"`` with ``weights`` or
``alpha``) before any I/O. Pure code."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vd_integrations.core.errors import InvalidInputError

__all__ = ["DEFAULT_RRF_K", "MAX_TOPK", "Ranker", "make_ranker"]

DEFAULT_RRF_K = 60
#: Milvus' largest ``limit`` (topk) for one search leg.
MAX_TOPK = 16_384
_RANKER_NAMES = {
    "rrf": "rrf",
    "rrfranker": "rrf",
    "weighted": "weighted",
    "weightedranker": "weighted",
}
_RANKER_KEYS = {"rrf": {"k"}, "weighted": {"weights", "alpha", "norm_score"}}


@dataclass(frozen=True)
class Ranker:
    """How the two legs are fused: ``rrf`` (constant ``k``) or ``weighted`` (``weights``
    for the dense and the sparse leg, each leg's scores normalised when ``norm_score``).
    ``native`` carries a pymilvus ranker object passed as is."""

    kind: str = "rrf"
    k: int = DEFAULT_RRF_K
    weights: tuple[float, ...] = (0.5, 0.5)
    norm_score: bool = True
    native: Any = None

    def to_pymilvus(self) -> Any:
        """The pymilvus ranker for ``hybrid_search``."""
        if self.native is not None:
            return self.native
        from pymilvus import RRFRanker, WeightedRanker

        if self.kind == "rrf":
            return RRFRanker(self.k)
        return WeightedRanker(*self.weights, norm_score=self.norm_score)


def make_ranker(
    ranker: Any = "rrf",
    params: Mapping[str, Any] | None = None,
    *,
    alpha: float | None = None,
    ranker_arg: str = "ranker",
    params_arg: str = "ranker_params",
    legs: int = 2,
) -> Ranker:
    """Validate a ranker choice into a :class:`Ranker`; :class:`InvalidInputError` (a
    ``ValueError``) naming the bad parameter and how to fix it otherwise.

    ``ranker``: ``"rrf"`` / ``"weighted"`` (LlamaIndex's ``"RRFRanker"`` /
    ``"WeightedRanker"`` too), a :class:`Ranker`, or a pymilvus ranker object.
    ``params``: ``{"k": 60}`` for RRF; ``{"weights": [dense, sparse]}`` or
    ``{"alpha": a}`` (weights ``[a, 1 - a]``), optionally ``"norm_score"``, for weighted.
    ``alpha`` (a per-query override, as LlamaIndex's ``VectorStoreQuery.alpha``) selects
    weighted fusion with weights ``[alpha, 1 - alpha]``. ``legs``: how many searches are
    fused (one weight each; a pymilvus ``Function`` of type RERANK is passed as is too).
    """
    if isinstance(ranker, Ranker):
        if params:
            raise InvalidInputError(f"{params_arg} cannot be combined with a Ranker object.")
        base = ranker
    elif ranker is not None and not isinstance(ranker, str):
        if not (
            hasattr(ranker, "dict")
            or hasattr(ranker, "function_type")
            or getattr(getattr(ranker, "type", None), "name", None) == "RERANK"
        ):
            raise InvalidInputError(
                f"{ranker_arg} must be 'rrf' or 'weighted' (or a pymilvus ranker), got {ranker!r}."
            )
        if params:
            raise InvalidInputError(
                f"{params_arg} cannot be combined with a pymilvus ranker object; configure "
                f"the object itself."
            )
        base = Ranker(kind="native", native=ranker)
    else:
        base = _ranker_from_name(ranker, params, ranker_arg, params_arg, legs)
    if alpha is None:
        return base
    if legs != 2:
        raise InvalidInputError(
            f"alpha weighs two searches (dense and sparse), but this search fuses {legs}; "
            f"pass {params_arg}={{'weights': [...]}} with {legs} weights."
        )
    weight = _unit_float(alpha, "alpha", "e.g. alpha=0.5 weighs both legs equally")
    return Ranker(kind="weighted", weights=(weight, 1.0 - weight), norm_score=base.norm_score)


def _ranker_from_name(
    name: Any, params: Mapping[str, Any] | None, ranker_arg: str, params_arg: str, legs: int
) -> Ranker:
    kind = _RANKER_NAMES.get(str(name).strip().lower()) if isinstance(name, str) else None
    if kind is None:
        raise InvalidInputError(
            f"{ranker_arg} must be 'rrf' (reciprocal rank fusion) or 'weighted' (weighted "
            f"scores), got {name!r}."
        )
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidInputError(
            f"{params_arg} must be a dict, e.g. {{'k': 60}} for 'rrf' or {{'weights': [0.7, "
            f"0.3]}} for 'weighted'; got {params!r}."
        )
    unknown = sorted(set(params) - _RANKER_KEYS[kind])
    if unknown:
        hint = (
            f"; weights/alpha need {ranker_arg}='weighted'"
            if kind == "rrf" and set(unknown) & {"weights", "alpha"}
            else f"; k needs {ranker_arg}='rrf'"
            if kind == "weighted" and "k" in unknown
            else ""
        )
        raise InvalidInputError(
            f"{params_arg} has unknown key(s) {unknown} for {ranker_arg}={kind!r}, which "
            f"accepts {sorted(_RANKER_KEYS[kind])}{hint}."
        )
    if kind == "rrf":
        k = params.get("k", DEFAULT_RRF_K)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 < k < MAX_TOPK:
            raise InvalidInputError(
                f"{params_arg}['k'] (the RRF smoothing constant) must be an integer in "
                f"[1, {MAX_TOPK - 1}], got {k!r}; 60 is the usual value."
            )
        return Ranker(kind="rrf", k=k)
    norm = params.get("norm_score", True)
    if not isinstance(norm, bool):
        raise InvalidInputError(f"{params_arg}['norm_score'] must be True or False, got {norm!r}.")
    if "weights" in params and "alpha" in params:
        raise InvalidInputError(
            f"{params_arg} takes 'weights' or 'alpha', not both (alpha=a means weights [a, 1 - a])."
        )
    if "alpha" in params:
        if legs != 2:
            raise InvalidInputError(
                f"{params_arg}['alpha'] weighs two searches, but this search fuses {legs}; "
                f"pass 'weights' with {legs} numbers."
            )
        a = _unit_float(params["alpha"], f"{params_arg}['alpha']", "e.g. 0.5")
        return Ranker(kind="weighted", weights=(a, 1.0 - a), norm_score=norm)
    weights = params.get("weights", (1.0 / legs,) * legs)
    if (
        isinstance(weights, (str, bytes))
        or not isinstance(weights, Sequence)
        or len(weights) != legs
    ):
        what = (
            "two numbers [dense_weight, sparse_weight]"
            if legs == 2
            else f"{legs} numbers, one per vector field in order"
        )
        raise InvalidInputError(
            f"{params_arg}['weights'] must be {what}, got {weights!r}; e.g. "
            f"{{'weights': {[0.7, 0.3] if legs == 2 else [round(1.0 / legs, 2)] * legs}}}."
        )
    checked = tuple(
        _unit_float(w, f"{params_arg}['weights'][{i}]", "Milvus accepts weights in [0, 1]")
        for i, w in enumerate(weights)
    )
    return Ranker(kind="weighted", weights=checked, norm_score=norm)


def _unit_float(value: Any, name: str, hint: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or not 0.0 <= float(value) <= 1.0
    ):
        raise InvalidInputError(f"{name} must be a number in [0, 1], got {value!r}; {hint}.")
    return float(value)

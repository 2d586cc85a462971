"""Input validation shared by every engine: run before anything is written."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from vd_integrations.errors import InvalidInputError

__all__ = ["check_positive_int", "check_same_length", "check_vectors"]


def check_positive_int(k: Any, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidInputError(f"{name} must be a positive integer, got {k!r}.")
    return k


def check_vectors(vectors: Sequence[Any], *, dim: int | None, what: str) -> list[list[float]]:
    """Coerce to lists of finite floats of one dimension (``dim`` when known)."""
    out: list[list[float]] = []
    for i, vector in enumerate(vectors):
        tolist = getattr(vector, "tolist", None)
        values = tolist() if tolist is not None else vector
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise InvalidInputError(f"{what} #{i} is not a sequence of numbers: {vector!r:.80}.")
        try:
            floats = [float(x) for x in values]
        except (TypeError, ValueError):
            raise InvalidInputError(f"{what} #{i} contains a non-number.") from None
        if not floats:
            raise InvalidInputError(f"{what} #{i} is empty.")
        if not all(math.isfinite(x) for x in floats):
            raise InvalidInputError(f"{what} #{i} contains NaN or infinity.")
        if dim is None:
            dim = len(floats)
        elif len(floats) != dim:
            raise InvalidInputError(
                f"{what} #{i} has dimension {len(floats)}, expected {dim}. The collection's "
                f"dimension is fixed by its first vectors; use the same embedding model, or "
                f"a new collection_name for a different one."
            )
        out.append(floats)
    return out


def check_same_length(**columns: Sequence[Any] | None) -> int:
    sizes = {name: len(col) for name, col in columns.items() if col is not None}
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{name}={size}" for name, size in sizes.items())
        raise InvalidInputError(f"Input lengths differ ({detail}); pass one entry per text.")
    return next(iter(sizes.values()), 0)

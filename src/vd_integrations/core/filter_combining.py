"""Combining Milvus filter expressions: :func:`combine` folds the translator's own parts,
:func:`and_exprs` / :func:`or_exprs` join expressions that may come from a user.

Every part is parenthesised, so composition never changes precedence. A raw part is
checked alone first (:func:`~vd_integrations.core.expressions.check_raw_expression`):
wrapping ``a) or (b`` in parentheses would make it valid and change its meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from vd_integrations.core.expressions import check_raw_expression
from vd_integrations.core.filter_literals import FALSE, TRUE

__all__ = ["and_exprs", "combine", "or_exprs"]


def combine(op: Literal["and", "or"], parts: Iterable[str]) -> str:
    """Combine already-parenthesised parts, folding the ``true``/``false`` constants."""
    identity, absorbing = (TRUE, FALSE) if op == "and" else (FALSE, TRUE)
    kept: list[str] = []
    for part in parts:
        if part == absorbing:
            return absorbing
        if part != identity and part not in kept:
            kept.append(part)
    if not kept:
        return identity
    if len(kept) == 1:
        return kept[0]
    return "(" + f" {op} ".join(kept) + ")"


def _join(op: str, exprs: Sequence[str | None]) -> str | None:
    # Each part is checked alone first: wrapping "a) or (b" in parentheses would make it
    # valid and change its meaning (see vd_integrations.core.expressions).
    kept = [check_raw_expression(e) for e in exprs if e is not None and e.strip()]
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    return "(" + f" {op} ".join(f"({e})" for e in kept) + ")"


def and_exprs(*exprs: str | None) -> str | None:
    """AND together the non-empty expressions (each parenthesised); ``None`` if none."""
    return _join("and", exprs)


def or_exprs(*exprs: str | None) -> str | None:
    """OR together the non-empty expressions (each parenthesised); ``None`` if none."""
    return _join("or", exprs)

"""The atoms of a Milvus filter expression, each with a positive and a negated form that
match :func:`vd.matches_filter`: ``exists``, ``eq``/``ne``, ordered comparisons, ``$in``,
and a primary-key list (:func:`ids_expr`).

Milvus evaluates a comparison on a missing key (or a key holding JSON ``null``) to NULL,
and ``not NULL`` is still NULL, so ``not (x == 1)`` would drop rows that lack ``x`` while
``vd`` keeps them. Every atom therefore has an explicit negated form guarded by ``not
exists`` (``$ne: 1`` is ``((not exists x) or (x != 1))``); the only ``not`` emitted is in
front of ``exists`` and ``json_contains_any``, which are never NULL.

The ``*_at`` functions are the same atoms for a translator: their errors name the
position ``where`` in the filter being translated.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vd_integrations.core.filter_fields import FieldRef
from vd_integrations.core.filter_literals import (
    FALSE,
    TRUE,
    filter_error,
    is_safe_identifier,
    literal,
    scalar_literal,
)

__all__ = [
    "compare",
    "compare_at",
    "eq",
    "eq_at",
    "exists",
    "ids_expr",
    "is_in",
    "is_in_at",
    "ne",
]

_COMPARE_OPS = {
    "gt": ">", "$gt": ">", ">": ">",
    "gte": ">=", "$gte": ">=", ">=": ">=",
    "lt": "<", "$lt": "<", "<": "<",
    "lte": "<=", "$lte": "<=", "<=": "<=",
}  # fmt: skip
_NEGATED_COMPARE = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}


def _present(ref: FieldRef) -> str:
    return f"(exists {ref.expr})" if ref.kind == "json" else f"({ref.expr} is not null)"


def _absent(ref: FieldRef) -> str:
    return f"(not exists {ref.expr})" if ref.kind == "json" else f"({ref.expr} is null)"


def _eq_operand(value: Any, where: str) -> str:
    if isinstance(value, (list, tuple, set, frozenset, Mapping)):
        raise filter_error(
            f"Equality with a {type(value).__name__} value ({value!r}) cannot be expressed "
            "in Milvus. To match any of several values use {'$in': [...]}",
            where,
        )
    return scalar_literal(value, where)


def exists(ref: FieldRef, negate: bool = False) -> str:
    """Field present (``$exists: True``); ``negate`` gives ``$exists: False``."""
    return _absent(ref) if negate else _present(ref)


def eq_at(ref: FieldRef, value: Any, negate: bool, where: str) -> str:
    """:func:`eq`, with errors naming the position ``where`` in the filter."""
    lit = _eq_operand(value, where)
    if negate:
        return f"({_absent(ref)} or ({ref.expr} != {lit}))"
    return f"({ref.expr} == {lit})"


def eq(ref: FieldRef, value: Any, negate: bool = False) -> str:
    """``$eq``: present and equal. Negated: missing or not equal (i.e. ``$ne``)."""
    return eq_at(ref, value, negate, "")


def ne(ref: FieldRef, value: Any, negate: bool = False) -> str:
    """``$ne``: missing or not equal. Negated: present and equal."""
    return eq_at(ref, value, not negate, "")


def compare_at(ref: FieldRef, op: str, value: Any, negate: bool, where: str) -> str:
    """:func:`compare`, with errors naming the position ``where`` in the filter."""
    symbol = _COMPARE_OPS.get(op) if isinstance(op, str) else None
    if symbol is None:
        raise filter_error(
            f"Unknown comparison operator {op!r}; use one of gt, gte, lt, lte", where
        )
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise filter_error(
            f"Ordered comparison needs a str, int or float operand, got "
            f"{type(value).__name__} {value!r}",
            where,
        )
    lit = scalar_literal(value, where)
    if negate:
        return f"({_absent(ref)} or ({ref.expr} {_NEGATED_COMPARE[symbol]} {lit}))"
    return f"({ref.expr} {symbol} {lit})"


def compare(ref: FieldRef, op: str, value: Any, negate: bool = False) -> str:
    """Ordered comparison; ``op`` is ``gt/gte/lt/lte`` (also ``$gt`` or ``>``).

    Positive: present and ``field op value``. Negated: missing or the flipped
    comparison (see :mod:`vd_integrations.core.filters` about mismatched types).
    """
    return compare_at(ref, op, value, negate, "")


def _in_literals(values: Any, where: str) -> list[str]:
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise filter_error(
            f"$in / $nin expects a list of values, got {type(values).__name__} {values!r}. "
            "Wrap a single value in a list, e.g. {'$in': [value]}",
            where,
        )
    out = []
    for item in values:
        if isinstance(item, (list, tuple, set, frozenset, Mapping)):
            raise filter_error(
                f"$in / $nin values must be str, int, float or bool, got "
                f"{type(item).__name__} {item!r}",
                where,
            )
        out.append(scalar_literal(item, where))
    return out


def is_in_at(ref: FieldRef, values: Any, negate: bool, where: str) -> str:
    """:func:`is_in`, with errors naming the position ``where`` in the filter."""
    lits = _in_literals(values, where)
    if not lits:
        return TRUE if negate else FALSE
    array = "[" + ", ".join(lits) + "]"
    if ref.kind == "scalar":
        if negate:
            return f"({_absent(ref)} or ({ref.expr} not in {array}))"
        return f"({ref.expr} in {array})"
    if negate:
        terms = [f"{ref.expr} != {lit}" for lit in lits]
        if ref.name_for_functions is not None:
            terms.append(f"not json_contains_any({ref.name_for_functions}, {array})")
        return f"({_absent(ref)} or ({' and '.join(terms)}))"
    terms = [f"{ref.expr} == {lit}" for lit in lits]
    if ref.name_for_functions is not None:
        terms.append(f"json_contains_any({ref.name_for_functions}, {array})")
    return f"({' or '.join(terms)})"


def is_in(ref: FieldRef, values: Iterable[Any], negate: bool = False) -> str:
    """``$in``: present and equal to one of ``values`` (list values match on overlap).

    Negated (``$nin``): missing, or different from every value with no overlap.
    """
    return is_in_at(ref, values, negate, "")


def ids_expr(pk_field: str, ids: Sequence[str | int]) -> str:
    """``(pk in ["a", "b"])`` / ``(pk in [1, 2])``; ``false`` for no ids."""
    if not is_safe_identifier(pk_field):
        raise ValueError(f"Primary key field {pk_field!r} is not a plain, non-keyword identifier")
    id_list = list(ids)
    if not id_list:
        return FALSE
    if all(isinstance(i, str) for i in id_list) or all(
        isinstance(i, int) and not isinstance(i, bool) for i in id_list
    ):
        return f"({pk_field} in {literal(id_list)})"
    raise ValueError(f"ids must be all str or all int (not bool), got {id_list!r}")

"""The ``vd`` dict-filter language, validated and translated into one Milvus expression
(:func:`translate_filter`).

The language is that of :func:`vd.matches_filter`: ``$eq $ne $gt $gte $lt $lte $in $nin
$exists`` on fields, ``$and $or $not`` to combine, bare values as ``$eq`` sugar, several
top-level keys or several operators in one field dict as an implicit AND. ``$not`` is
pushed down to the atoms (negation normal form, De Morgan for ``$and``/``$or``), because
Milvus' three-valued logic would otherwise drop rows that lack a field. A filter is
validated completely before anything is returned; every problem raises
:class:`vd.UnsupportedFilterError` naming where in the filter it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from vd.filters import FIELD_OPERATORS, LOGICAL_OPERATORS

from vd_integrations.core.filter_atoms import compare_at, eq_at, exists, is_in_at
from vd_integrations.core.filter_combining import combine
from vd_integrations.core.filter_fields import FieldRef, FieldResolver, dynamic_field
from vd_integrations.core.filter_literals import filter_error

__all__ = ["translate_filter"]


def _sub(where: str, step: str) -> str:
    return f"{where}{step}" if where else step.lstrip(".")


def _field_condition(ref: FieldRef, name: str, condition: Any, negate: bool, where: str) -> str:
    if not isinstance(condition, Mapping):
        return eq_at(ref, condition, negate, where)
    parts = []
    for op, operand in condition.items():
        at = _sub(where, f".{op}")
        if op not in FIELD_OPERATORS:
            hint = (
                " Logical operators go at the filter level, e.g. {'$or': [{...}, {...}]}."
                if op in LOGICAL_OPERATORS
                else " Dict values cannot be compared; only scalar values."
                if isinstance(op, str) and not op.startswith("$")
                else ""
            )
            raise filter_error(
                f"Unknown filter operator {op!r} for field {name!r}. "
                f"Supported field operators: {sorted(FIELD_OPERATORS)}.{hint}",
                at,
            )
        if op == "$eq":
            parts.append(eq_at(ref, operand, negate, at))
        elif op == "$ne":
            parts.append(eq_at(ref, operand, not negate, at))
        elif op == "$in":
            parts.append(is_in_at(ref, operand, negate, at))
        elif op == "$nin":
            parts.append(is_in_at(ref, operand, not negate, at))
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise filter_error(
                    f"$exists expects True or False, got {type(operand).__name__} {operand!r}",
                    at,
                )
            parts.append(exists(ref, negate=(operand == negate)))
        else:
            parts.append(compare_at(ref, op, operand, negate, at))
    # A field dict is an AND of its operators; its negation an OR of the negations.
    return combine("or" if negate else "and", parts)


def _translate(node: Any, resolve: FieldResolver, negate: bool, where: str) -> str:
    if not isinstance(node, Mapping):
        raise filter_error(
            f"A filter must be a dict, got {type(node).__name__} {node!r}", where or "top level"
        )
    parts = []
    for key, condition in node.items():
        if not isinstance(key, str):
            raise filter_error(
                f"Filter keys must be strings (field names or '$and', '$or', '$not'), "
                f"got {type(key).__name__} {key!r}",
                where or "top level",
            )
        at = _sub(where, f".{key}") if key.startswith("$") else _sub(where, f"[{key!r}]")
        if key in ("$and", "$or"):
            if not isinstance(condition, (list, tuple)):
                raise filter_error(
                    f"{key} expects a list of filter dicts, got {type(condition).__name__} "
                    f"{condition!r}; e.g. {{'{key}': [{{'a': 1}}, {{'b': 2}}]}}",
                    at,
                )
            subs = [
                _translate(sub, resolve, negate, f"{at}[{i}]") for i, sub in enumerate(condition)
            ]
            # De Morgan: under negation AND becomes OR and vice versa.
            op: Literal["and", "or"] = "and" if (key == "$and") != negate else "or"
            parts.append(combine(op, subs))
        elif key == "$not":
            if not isinstance(condition, Mapping):
                raise filter_error(
                    f"$not expects a single filter dict, got {type(condition).__name__} "
                    f"{condition!r}; e.g. {{'$not': {{'a': 1}}}} (use $and/$or to combine)",
                    at,
                )
            parts.append(_translate(condition, resolve, not negate, at))
        elif key.startswith("$"):
            raise filter_error(
                f"Unknown logical operator {key!r}. Supported logical operators: "
                f"{sorted(LOGICAL_OPERATORS)}; field operators such as $eq go inside a "
                "field, e.g. {'field': {'$eq': 1}}",
                at,
            )
        elif not key:
            raise filter_error(
                "Field names must be non-empty strings, got ''", where or "top level"
            )
        else:
            parts.append(_field_condition(resolve(key), key, condition, negate, at))
    # The keys of a filter dict form an implicit AND (an OR when negated).
    return combine("or" if negate else "and", parts)


def translate_filter(
    filter: Mapping[str, Any] | None, *, resolve: FieldResolver = dynamic_field
) -> str | None:
    """Translate a ``vd`` filter into a Milvus boolean expression.

    Returns ``None`` for ``None``/``{}`` (no filtering); a filter that matches
    everything or nothing yields ``"true"``/``"false"``.  ``resolve`` maps each
    field name to a :class:`FieldRef` (default: keys of the dynamic field).
    Raises :class:`vd.UnsupportedFilterError` for any invalid part.
    """
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise filter_error(
            f"A filter must be a dict or None, got {type(filter).__name__} {filter!r}"
        )
    if not filter:
        return None
    return _translate(filter, resolve, False, "")

"""Translate LlamaIndex ``MetadataFilters`` into Milvus expressions and ``vd`` dict filters.

Both translators implement one semantics (the reference the tests check against):

=========================  ====================================================================
operator                   a node matches when its metadata value ``x`` for ``key`` ...
=========================  ====================================================================
``EQ`` / ``NE``            is present and ``== value`` / is missing or ``!= value``
``GT GTE LT LTE``          is present and compares true (mixed types never match)
``IN`` / ``NIN``           equals one of the values (a list ``x`` matches on overlap) / not so
``CONTAINS``               is a list containing ``value``
``ANY`` / ``ALL``          is a list containing any / all of the values (``ALL`` needs one+)
``TEXT_MATCH``             is a string containing ``value`` (case sensitive) - Milvus only
``TEXT_MATCH_INSENSITIVE`` not expressible in Milvus or vd: a clear error
``IS_EMPTY``               is missing, ``None``, ``""`` or ``[]``
=========================  ====================================================================

Conditions ``AND``/``OR`` combine a group's filters, ``NOT`` matches when *none* of them
match (LlamaIndex's ``not any(...)``); groups nest to any depth and an empty group places
no constraint. Milvus uses three-valued logic (a comparison on a missing key is NULL and
``not NULL`` is NULL), so the Milvus translator never wraps a comparison in ``not``: it
pushes negations down to atoms and uses the explicit negated forms of
:mod:`vd_integrations.core.filters` (e.g. negated ``GT`` is "missing or ``<=``"). The only
``not`` emitted precedes ``exists``, ``json_contains*`` or a ``like`` guarded by
``exists``, which milvus-lite never evaluates to NULL.

Milvus specifics (measured on milvus-lite 3.2.2):

* ``TEXT_MATCH`` is ``key like "%value%"``, which works on dynamic fields and VARCHAR
  columns (Milvus' ``text_match`` needs an analyzer-enabled column, so ``like`` is the
  portable choice). Quotes, tabs, newlines and any Unicode are escaped and match
  literally. Values containing ``%``, ``_`` or a backslash are rejected: Milvus Lite
  honours ``like`` escapes (``\\%``, ``\\_``, ``\\\\``) in plain expressions but ignores them
  when the expression also calls ``json_contains*``, so no encoding is reliable.
* ``TEXT_MATCH_INSENSITIVE`` is rejected: Milvus has no lower-casing function and
  ``like`` is case sensitive. Store a lower-cased copy of the field and use ``TEXT_MATCH``
  with a lower-cased value.
* ``CONTAINS``/``ANY``/``ALL`` use ``json_contains``/``json_contains_any``/
  ``json_contains_all`` and ``IS_EMPTY`` uses ``array_length``; Milvus accepts those only
  on keys that are plain identifiers (not ``$meta["odd key"]``) and not on declared
  scalar columns, so other keys get a clear error.
* Values are rendered by :func:`vd_integrations.core.filters.literal` (escaped, finite,
  int64), so no value can change the structure of the expression.

Every problem raises :class:`vd.UnsupportedFilterError` (a ``ValueError``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from vd_integrations.core.errors import UnsupportedFilterError
from vd_integrations.core.expressions import check_raw_expression
from vd_integrations.core.filters import (
    FieldRef,
    combine,
    compare,
    dynamic_field,
    eq,
    escape_string,
    exists,
    is_in,
    literal,
    ne,
)

__all__ = ["all_of", "to_milvus_expr", "to_vd_filter"]

TRUE = "true"
FALSE = "false"

_LIST_OPERATORS = {FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL}
_COMPARE = {
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
}
_VD_COMPARE = {op: f"${name}" for op, name in _COMPARE.items()}
_SUPPORTED = ", ".join(op.name for op in FilterOperator)

# --------------------------------------------------------------------------------------------
# Validation shared by both translators
# --------------------------------------------------------------------------------------------


def _fail(message: str, where: str) -> UnsupportedFilterError:
    return UnsupportedFilterError(f"{message} (at {where})")


def _operator(flt: MetadataFilter, where: str) -> FilterOperator:
    try:
        return FilterOperator(flt.operator)
    except ValueError:
        raise _fail(
            f"Unknown filter operator {flt.operator!r}; supported operators: {_SUPPORTED}", where
        ) from None


def _condition(group: MetadataFilters, where: str) -> FilterCondition:
    if group.condition is None:
        return FilterCondition.AND
    try:
        return FilterCondition(group.condition)
    except ValueError:
        raise _fail(
            f"Unknown filter condition {group.condition!r}; use FilterCondition.AND, OR or NOT",
            where,
        ) from None


def _is_scalar(value: Any) -> bool:
    """A str, bool, int or finite float (NaN and infinities never compare usefully)."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, (str, bool, numbers.Real))


def _check(flt: MetadataFilter, where: str) -> tuple[str, FilterOperator, Any]:
    """The filter's key, operator and value, with the value's shape checked for the operator."""
    key, op, value = flt.key, _operator(flt, where), flt.value
    if not isinstance(key, str) or not key:
        raise _fail(f"Filter keys must be non-empty strings, got {key!r}", where)
    if op is FilterOperator.IS_EMPTY:
        return key, op, None
    if op in _LIST_OPERATORS:
        if not isinstance(value, (list, tuple)) or not all(_is_scalar(v) for v in value):
            raise _fail(
                f"{op.name} on {key!r} needs a list of str/int/float values (finite), got "
                f"{value!r}; "
                f"e.g. MetadataFilter(key={key!r}, operator=FilterOperator.{op.name}, "
                f"value=[...])",
                where,
            )
        if op is FilterOperator.ALL and not value:
            raise _fail(f"ALL on {key!r} needs at least one value", where)
        return key, op, list(value)
    if value is None:
        raise _fail(
            f"{op.name} on {key!r} has value None; to match a missing or empty value use "
            f"FilterOperator.IS_EMPTY",
            where,
        )
    if not _is_scalar(value):
        hint = " (use IN, ANY or ALL for several values)" if isinstance(value, list) else ""
        raise _fail(
            f"{op.name} on {key!r} needs a single str/int/float value (finite), got "
            f"{type(value).__name__} {value!r}{hint}",
            where,
        )
    if op in _COMPARE and isinstance(value, bool):
        raise _fail(f"{op.name} on {key!r} cannot order booleans; got {value!r}", where)
    if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE) and not isinstance(
        value, str
    ):
        raise _fail(f"{op.name} on {key!r} needs a string value, got {value!r}", where)
    return key, op, value


def _children(node: Any, where: str) -> Sequence[Any]:
    if not isinstance(node, MetadataFilters):
        raise _fail(
            f"Expected MetadataFilters or MetadataFilter, got {type(node).__name__} {node!r}",
            where,
        )
    return list(node.filters or [])


def _check_top(filters: Any) -> MetadataFilters | None:
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise UnsupportedFilterError(
            f"filters must be a llama_index MetadataFilters, got {type(filters).__name__} "
            f"{filters!r}; e.g. MetadataFilters(filters=[MetadataFilter(key='year', "
            f"operator=FilterOperator.GTE, value=2020)])"
        )
    return filters


# --------------------------------------------------------------------------------------------
# Milvus
# --------------------------------------------------------------------------------------------


def all_of(*exprs: str | None) -> str | None:
    """AND Milvus expressions (``None``/empty ones skipped); ``None`` when nothing is left.
    Each is checked alone first, so a raw ``string_expr`` cannot escape the others."""
    parts = [check_raw_expression(e) for e in exprs if e and e.strip()]
    combined = combine("and", [e if e in (TRUE, FALSE) else f"({e})" for e in parts])
    return None if combined == TRUE else combined


def _function_arg(ref: FieldRef, key: str, op: FilterOperator, where: str) -> str:
    if ref.kind == "scalar":
        raise _fail(
            f"{op.name} works on list-valued metadata, but {key!r} is a declared scalar "
            f"column of the collection",
            where,
        )
    if ref.name_for_functions is None:
        raise _fail(
            f"{op.name} on {key!r}: Milvus only accepts metadata keys that are plain "
            f"identifiers (letters, digits, '_', not a keyword) in json_contains*/array_length; "
            f"rename the key",
            where,
        )
    return ref.name_for_functions


def _absent(ref: FieldRef) -> str:
    return exists(ref, negate=True)


def _like_pattern(key: str, value: str, where: str) -> str:
    """``%value%`` for ``like``; values containing ``%``, ``_`` or a backslash are rejected.

    Milvus Lite 3.2.2 applies ``like`` escapes (``\\%``, ``\\_``, ``\\``) only sometimes:
    the same pattern matches differently once the expression also calls ``json_contains*``,
    and a backslash before an ordinary character differs from Milvus. No encoding of those
    three characters is reliable, so they are refused rather than matched approximately.
    """
    bad = sorted({char for char in value if char in "%_\\"})
    if bad:
        raise _fail(
            f"TEXT_MATCH value {value!r} on {key!r} contains {', '.join(map(repr, bad))}: "
            f"'like' wildcards and escapes are not evaluated consistently by Milvus Lite, so "
            f"values with '%', '_' or a backslash cannot be matched exactly; match a "
            f"substring without them",
            where,
        )
    return f"%{value}%"


class _MilvusTranslator:
    def __init__(self, resolve: Callable[[str], FieldRef], string_columns: Collection[str]):
        self.resolve = resolve
        self.string_columns = frozenset(string_columns)

    def node(self, node: Any, negate: bool, where: str) -> str:
        if isinstance(node, MetadataFilter):
            return self.atom(node, negate, where)
        children = _children(node, where)
        condition = _condition(node, where)
        if not children:  # an empty group places no constraint
            return FALSE if negate else TRUE
        op: Literal["and", "or"]
        if condition is FilterCondition.NOT:  # none of the children: AND of their negations
            child_negate, op = not negate, "or" if negate else "and"
        else:
            child_negate = negate
            op = "and" if (condition is FilterCondition.AND) != negate else "or"
        parts = [
            self.node(child, child_negate, f"{where}.filters[{i}]")
            for i, child in enumerate(children)
        ]
        return combine(op, parts)

    def atom(self, flt: MetadataFilter, negate: bool, where: str) -> str:
        key, op, value = _check(flt, where)
        ref = self.resolve(key)
        if op is FilterOperator.EQ:
            return eq(ref, value, negate)
        if op is FilterOperator.NE:
            return ne(ref, value, negate)
        if op in _COMPARE:
            return compare(ref, _COMPARE[op], value, negate)
        if op is FilterOperator.IN:
            return is_in(ref, value, negate)
        if op is FilterOperator.NIN:
            return is_in(ref, value, not negate)
        if op is FilterOperator.CONTAINS:
            return self._function("json_contains", ref, key, op, literal(value), negate, where)
        if op is FilterOperator.ANY:
            if not value:
                return TRUE if negate else FALSE
            return self._function("json_contains_any", ref, key, op, literal(value), negate, where)
        if op is FilterOperator.ALL:
            return self._function("json_contains_all", ref, key, op, literal(value), negate, where)
        if op is FilterOperator.TEXT_MATCH:
            return self._like(ref, key, value, negate, where)
        if op is FilterOperator.TEXT_MATCH_INSENSITIVE:
            raise _fail(
                f"TEXT_MATCH_INSENSITIVE on {key!r} cannot be expressed in Milvus (no "
                f"lower-casing function, and 'like' is case sensitive). Store a lower-cased "
                f"copy of the field and use TEXT_MATCH with a lower-cased value",
                where,
            )
        return self._is_empty(ref, key, negate, where)  # IS_EMPTY

    def _function(
        self, name: str, ref: FieldRef, key: str, op: FilterOperator, arg: str, negate: bool, w: str
    ) -> str:
        call = f"{name}({_function_arg(ref, key, op, w)}, {arg})"
        return f"(not {call})" if negate else f"({call})"

    def _like(self, ref: FieldRef, key: str, value: str, negate: bool, where: str) -> str:
        match = f"({ref.expr} like {escape_string(_like_pattern(key, value, where))})"
        if negate:
            return f"({_absent(ref)} or (not {match}))"
        return match

    def _is_empty(self, ref: FieldRef, key: str, negate: bool, where: str) -> str:
        if ref.kind == "scalar":
            empty_string = key in self.string_columns
            if negate:
                parts = [exists(ref), *([f'({ref.expr} != "")'] if empty_string else [])]
                return combine("and", parts)
            return combine("or", [_absent(ref), *([f'({ref.expr} == "")'] if empty_string else [])])
        name = _function_arg(ref, key, FilterOperator.IS_EMPTY, where)
        if negate:
            return (
                f'({exists(ref)} and ({ref.expr} != "") and '
                f"((not json_contains_all({name}, [])) or (array_length({name}) > 0)))"
            )
        return (
            f'({_absent(ref)} or ({ref.expr} == "") or '
            f"(json_contains_all({name}, []) and (array_length({name}) == 0)))"
        )


def to_milvus_expr(
    filters: MetadataFilters | None,
    resolve: Callable[[str], FieldRef] = dynamic_field,
    *,
    string_columns: Collection[str] = (),
) -> str | None:
    """A Milvus boolean expression for ``filters``; ``None`` when they place no constraint.

    ``resolve`` maps a metadata key to a :class:`FieldRef` (a collection layout's
    ``field_ref``); ``string_columns`` names declared VARCHAR columns (for ``IS_EMPTY``).
    A filter matching nothing gives ``"false"``.
    """
    top = _check_top(filters)
    if top is None:
        return None
    expr = _MilvusTranslator(resolve, string_columns).node(top, False, "filters")
    return None if expr == TRUE else expr


# --------------------------------------------------------------------------------------------
# vd
# --------------------------------------------------------------------------------------------


def _vd_contains(key: str, value: Any) -> dict[str, Any]:
    # vd's $in matches lists on overlap but also a scalar equal to the value: exclude that.
    return {"$and": [{key: {"$in": [value]}}, {key: {"$ne": value}}]}


def _vd_atom(flt: MetadataFilter, where: str) -> dict[str, Any]:
    key, op, value = _check(flt, where)
    if key.startswith("$"):
        raise _fail(f"vd filter keys cannot start with '$', got {key!r}", where)
    if op is FilterOperator.EQ:
        return {key: {"$eq": value}}
    if op is FilterOperator.NE:
        return {key: {"$ne": value}}
    if op in _VD_COMPARE:
        return {key: {_VD_COMPARE[op]: value}}
    if op is FilterOperator.IN:
        return {key: {"$in": value}}
    if op is FilterOperator.NIN:
        return {key: {"$nin": value}}
    if op is FilterOperator.CONTAINS:
        return _vd_contains(key, value)
    if op is FilterOperator.ANY:
        return {"$and": [{key: {"$in": value}}, *({key: {"$ne": v}} for v in value)]}
    if op is FilterOperator.ALL:
        return {"$and": [_vd_contains(key, v) for v in value]}
    if op is FilterOperator.IS_EMPTY:
        return {
            "$or": [
                {key: {"$exists": False}},
                {key: {"$eq": None}},
                {key: {"$eq": ""}},
                {key: {"$eq": []}},
            ]
        }
    raise _fail(
        f"{op.name} on {key!r} cannot be expressed in the vd filter language (it has no "
        f"substring operator); use MilvusVectorStore for TEXT_MATCH, or filter on exact values",
        where,
    )


def _vd_node(node: Any, where: str) -> dict[str, Any]:
    if isinstance(node, MetadataFilter):
        return _vd_atom(node, where)
    children = _children(node, where)
    condition = _condition(node, where)
    parts = [_vd_node(child, f"{where}.filters[{i}]") for i, child in enumerate(children)]
    if not parts:  # an empty group places no constraint
        return {"$and": []}
    if condition is FilterCondition.AND:
        return {"$and": parts}
    if condition is FilterCondition.OR:
        return {"$or": parts}
    return {"$not": {"$or": parts}}


def to_vd_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """A vd dict filter for ``filters`` (``None`` when there are none)."""
    top = _check_top(filters)
    if top is None or not top.filters:
        return None
    return _vd_node(top, "filters")

"""Translate ``vd`` metadata filters into Milvus boolean expression strings.

The reference semantics are :func:`vd.matches_filter` (MongoDB-style dicts:
``$eq $ne $gt $gte $lt $lte $in $nin $exists`` on fields, ``$and $or $not`` to
combine, bare values as ``$eq`` sugar, several top-level keys or several
operators in one field dict as an implicit AND).  The translator is framework
free; the LangChain and LlamaIndex Milvus stores build on it, and the atom
builders (:func:`eq`, :func:`ne`, :func:`compare`, :func:`is_in`,
:func:`exists`) are public so other filter dialects can reuse them.

How the semantics are preserved
-------------------------------
* **Three-valued logic.** Milvus evaluates a comparison on a missing key (or a
  key holding JSON ``null``) to NULL, and ``not NULL`` is still NULL, so
  ``not (x == 1)`` and ``x != 1`` both drop rows that lack ``x`` while
  ``vd`` keeps them.  The translator never puts ``not`` around a comparison:
  ``$not`` is pushed down to the atoms (negation normal form) and every atom
  has an explicit negated form guarded by ``not exists``, e.g. ``$ne: 1`` is
  ``((not exists x) or (x != 1))``.  The only ``not`` emitted is in front of
  ``exists`` and ``json_contains_any``, which are never NULL.
* **``$in``** is an OR of ``==`` comparisons (``x in [...]`` raises on
  milvus-lite when any row holds a list under ``x``) plus, when the field has
  a name usable in functions, ``json_contains_any(x, [...])`` so list-valued
  metadata matches on overlap as in ``vd``.  ``$in: []`` is ``false`` and
  ``$nin: []`` is ``true``.
* **Escaping.** Strings are emitted in double quotes with exactly ``\\``,
  ``"``, newline, carriage return and tab escaped (the only escapes both
  milvus-lite and Milvus accept); every other character, including control
  characters such as NUL, backspace and ESC and any Unicode, is emitted raw
  and round-trips on milvus-lite.  Strings that cannot be encoded as UTF-8
  (lone surrogates) are rejected.  Keys that are not plain ASCII identifiers,
  or that are Milvus keywords in any letter case (``and``, ``exists``,
  ``true``, ...), are referenced as ``$meta["key"]`` with the same escaping.
  No value can therefore change the structure of the expression.
* Every sub-expression is parenthesised, so composition never changes
  precedence.  Filters are validated completely before anything is returned;
  every problem raises :class:`vd.UnsupportedFilterError` (a ``ValueError``).

Limitations (measured on milvus-lite 3.2.2)
-------------------------------------------
* ``$in``/``$nin`` on keys that must be written ``$meta["..."]`` cannot use
  ``json_contains_any`` (lite rejects ``$meta[...]`` as its argument), so for
  those keys list-valued metadata does not match on overlap; scalar values work.
* Ordered comparisons between mismatched types (string field vs number,
  list vs scalar) are NULL in Milvus: the positive form matches nothing, as in
  ``vd``, but the negated form (under ``$not``) also excludes those rows while
  ``vd`` includes them.  Keep each field's type consistent (equality between
  mismatched types follows Python on lite; it was not verified on real Milvus).
* A stored JSON ``null`` is treated as missing by Milvus (``exists`` is false),
  whereas ``vd`` treats ``{"x": None}`` as present.  ``None`` is rejected as a
  filter value; use ``{"$exists": False}``.
* ``bool`` vs number equality follows the server: lite follows Python
  (``True == 1``), real Milvus does not.  Don't mix bools and numbers in a field.
* Equality with a list value (``{"tags": ["a", "b"]}``) is not expressible in
  Milvus and is rejected; use ``$in``.  Dict values are rejected.
* Integers must fit in int64.  Real Milvus may store JSON numbers beyond
  ``±2**53`` as doubles; lite 3.2.2 compared them exactly in our tests.
* NaN and infinities are rejected.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vd.filters import FIELD_OPERATORS, LOGICAL_OPERATORS

from vd_integrations.core.errors import InvalidInputError, UnsupportedFilterError
from vd_integrations.core.expressions import check_raw_expression, is_literal_true

__all__ = [
    "FieldRef",
    "FieldResolver",
    "FilterLike",
    "and_exprs",
    "combine",
    "compare",
    "dynamic_field",
    "eq",
    "escape_string",
    "exists",
    "ids_expr",
    "is_in",
    "is_safe_identifier",
    "json_field",
    "literal",
    "matches_everything",
    "ne",
    "or_exprs",
    "refuse_delete_of_everything",
    "scalar_field",
    "translate_filter",
]

TRUE = "true"
FALSE = "false"
#: A filter as the stores take it: a raw Milvus expression, a vd dict filter, or none.
FilterLike = str | Mapping[str, Any] | None

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Words of the Milvus expression grammar (Plan.g4) and of milvus-lite's lexer
#: that cannot be used as bare identifiers.  Compared case-insensitively, which
#: is stricter than either grammar and therefore always safe.
MILVUS_KEYWORDS = frozenset(
    {
        "and", "or", "not", "in", "nin", "like", "is", "null", "exists",
        "true", "false", "iso", "interval", "threshold", "minimum_should_match",
        "text_match", "phrase_match", "random_sample", "element_filter",
        "match_all", "match_any", "match_least", "match_most", "match_exact",
        "json_contains", "json_contains_all", "json_contains_any",
        "array_contains", "array_contains_all", "array_contains_any", "array_length",
        "st_equals", "st_touches", "st_overlaps", "st_crosses", "st_contains",
        "st_intersects", "st_within", "st_dwithin", "st_isvalid",
    }
)  # fmt: skip

_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})

# --------------------------------------------------------------------------- #
# Literals
# --------------------------------------------------------------------------- #


def _fail(message: str, where: str = "") -> UnsupportedFilterError:
    return UnsupportedFilterError(f"{message} (at {where})" if where else message)


def escape_string(value: str) -> str:
    """Return ``value`` as a double-quoted Milvus string literal."""
    if not isinstance(value, str):
        raise TypeError(f"escape_string expects a str, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsupportedFilterError(
            f"String {value!r} contains a character that cannot be encoded as UTF-8 "
            f"(a lone surrogate at index {exc.start}); Milvus cannot represent it. "
            "Remove or replace that character."
        ) from None
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def _scalar_literal(value: Any, where: str) -> str:
    if value is None:
        raise _fail(
            "None is not a valid filter value. To match documents where a field is "
            "missing use {'field': {'$exists': False}}",
            where,
        )
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if isinstance(value, str):
        return escape_string(value)
    if isinstance(value, numbers.Integral):
        number = int(value)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise _fail(
                f"Integer {number} is outside the int64 range Milvus supports; "
                "store and filter such numbers as strings",
                where,
            )
        return str(number)
    if isinstance(value, numbers.Real):
        real = float(value)
        if not math.isfinite(real):
            raise _fail(f"{real!r} cannot be used in a Milvus filter; use a finite number", where)
        return repr(real)
    raise _fail(
        f"Unsupported filter value {value!r} of type {type(value).__name__}; "
        "filter values must be str, int, float or bool",
        where,
    )


def literal(value: Any) -> str:
    """Render a str/int/float/bool, or a list/tuple of them, as a Milvus literal."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar_literal(v, "") for v in value) + "]"
    return _scalar_literal(value, "")


# --------------------------------------------------------------------------- #
# Field references
# --------------------------------------------------------------------------- #


def is_safe_identifier(name: str) -> bool:
    """True if ``name`` can be written bare in a Milvus expression."""
    return (
        isinstance(name, str)
        and _IDENTIFIER.fullmatch(name) is not None
        and name.lower() not in MILVUS_KEYWORDS
    )


@dataclass(frozen=True)
class FieldRef:
    """How to reference one field in a Milvus expression.

    ``expr`` is used in comparisons; ``name_for_functions`` is accepted as the
    first argument of ``json_contains_any`` (``None`` when no such form
    exists).  ``kind`` is ``"json"`` for dynamic fields and JSON keys (presence
    tested with ``exists``) or ``"scalar"`` for declared scalar columns
    (presence tested with ``is not null``; ``$in`` uses ``in``).
    """

    expr: str
    name_for_functions: str | None = None
    kind: Literal["json", "scalar"] = "json"


FieldResolver = Callable[[str], FieldRef]


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise UnsupportedFilterError(
            f"Field names must be strings, got {type(key).__name__} {key!r}"
        )
    if not key:
        raise UnsupportedFilterError("Field names must be non-empty strings, got ''")
    return key


def dynamic_field(key: str) -> FieldRef:
    """A key of the dynamic field: bare if a safe identifier, else ``$meta["key"]``.

    A bare name refers to a schema column when one has that name; resolvers for
    collections whose columns may collide with metadata keys must handle those keys.
    """
    _check_key(key)
    if is_safe_identifier(key):
        return FieldRef(expr=key, name_for_functions=key)
    return FieldRef(expr=f"$meta[{escape_string(key)}]", name_for_functions=None)


def json_field(column: str, key: str) -> FieldRef:
    """A key inside the declared JSON column ``column``: ``column["key"]``."""
    if not is_safe_identifier(column):
        raise ValueError(f"JSON column name {column!r} is not a plain, non-keyword identifier")
    _check_key(key)
    expr = f"{column}[{escape_string(key)}]"
    return FieldRef(expr=expr, name_for_functions=expr)


def scalar_field(name: str) -> FieldRef:
    """A declared scalar (non-JSON, non-array) schema column, referenced bare."""
    if not is_safe_identifier(name):
        raise ValueError(f"Column name {name!r} is not a plain, non-keyword identifier")
    return FieldRef(expr=name, name_for_functions=None, kind="scalar")


# --------------------------------------------------------------------------- #
# Atoms: each has a positive and a negated form matching vd.matches_filter
# --------------------------------------------------------------------------- #

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
        raise _fail(
            f"Equality with a {type(value).__name__} value ({value!r}) cannot be expressed "
            "in Milvus. To match any of several values use {'$in': [...]}",
            where,
        )
    return _scalar_literal(value, where)


def exists(ref: FieldRef, negate: bool = False) -> str:
    """Field present (``$exists: True``); ``negate`` gives ``$exists: False``."""
    return _absent(ref) if negate else _present(ref)


def _eq(ref: FieldRef, value: Any, negate: bool, where: str) -> str:
    lit = _eq_operand(value, where)
    if negate:
        return f"({_absent(ref)} or ({ref.expr} != {lit}))"
    return f"({ref.expr} == {lit})"


def eq(ref: FieldRef, value: Any, negate: bool = False) -> str:
    """``$eq``: present and equal. Negated: missing or not equal (i.e. ``$ne``)."""
    return _eq(ref, value, negate, "")


def ne(ref: FieldRef, value: Any, negate: bool = False) -> str:
    """``$ne``: missing or not equal. Negated: present and equal."""
    return _eq(ref, value, not negate, "")


def _compare(ref: FieldRef, op: str, value: Any, negate: bool, where: str) -> str:
    symbol = _COMPARE_OPS.get(op) if isinstance(op, str) else None
    if symbol is None:
        raise _fail(f"Unknown comparison operator {op!r}; use one of gt, gte, lt, lte", where)
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise _fail(
            f"Ordered comparison needs a str, int or float operand, got "
            f"{type(value).__name__} {value!r}",
            where,
        )
    lit = _scalar_literal(value, where)
    if negate:
        return f"({_absent(ref)} or ({ref.expr} {_NEGATED_COMPARE[symbol]} {lit}))"
    return f"({ref.expr} {symbol} {lit})"


def compare(ref: FieldRef, op: str, value: Any, negate: bool = False) -> str:
    """Ordered comparison; ``op`` is ``gt/gte/lt/lte`` (also ``$gt`` or ``>``).

    Positive: present and ``field op value``. Negated: missing or the flipped
    comparison (see the module docstring about mismatched types).
    """
    return _compare(ref, op, value, negate, "")


def _in_literals(values: Any, where: str) -> list[str]:
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise _fail(
            f"$in / $nin expects a list of values, got {type(values).__name__} {values!r}. "
            "Wrap a single value in a list, e.g. {'$in': [value]}",
            where,
        )
    out = []
    for item in values:
        if isinstance(item, (list, tuple, set, frozenset, Mapping)):
            raise _fail(
                f"$in / $nin values must be str, int, float or bool, got "
                f"{type(item).__name__} {item!r}",
                where,
            )
        out.append(_scalar_literal(item, where))
    return out


def _is_in(ref: FieldRef, values: Any, negate: bool, where: str) -> str:
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
    return _is_in(ref, values, negate, "")


# --------------------------------------------------------------------------- #
# Combining expressions
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# The translator
# --------------------------------------------------------------------------- #


def _sub(where: str, step: str) -> str:
    return f"{where}{step}" if where else step.lstrip(".")


def _field_condition(ref: FieldRef, name: str, condition: Any, negate: bool, where: str) -> str:
    if not isinstance(condition, Mapping):
        return _eq(ref, condition, negate, where)
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
            raise _fail(
                f"Unknown filter operator {op!r} for field {name!r}. "
                f"Supported field operators: {sorted(FIELD_OPERATORS)}.{hint}",
                at,
            )
        if op == "$eq":
            parts.append(_eq(ref, operand, negate, at))
        elif op == "$ne":
            parts.append(_eq(ref, operand, not negate, at))
        elif op == "$in":
            parts.append(_is_in(ref, operand, negate, at))
        elif op == "$nin":
            parts.append(_is_in(ref, operand, not negate, at))
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise _fail(
                    f"$exists expects True or False, got {type(operand).__name__} {operand!r}",
                    at,
                )
            parts.append(exists(ref, negate=(operand == negate)))
        else:
            parts.append(_compare(ref, op, operand, negate, at))
    # A field dict is an AND of its operators; its negation an OR of the negations.
    return combine("or" if negate else "and", parts)


def _translate(node: Any, resolve: FieldResolver, negate: bool, where: str) -> str:
    if not isinstance(node, Mapping):
        raise _fail(
            f"A filter must be a dict, got {type(node).__name__} {node!r}", where or "top level"
        )
    parts = []
    for key, condition in node.items():
        if not isinstance(key, str):
            raise _fail(
                f"Filter keys must be strings (field names or '$and', '$or', '$not'), "
                f"got {type(key).__name__} {key!r}",
                where or "top level",
            )
        at = _sub(where, f".{key}") if key.startswith("$") else _sub(where, f"[{key!r}]")
        if key in ("$and", "$or"):
            if not isinstance(condition, (list, tuple)):
                raise _fail(
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
                raise _fail(
                    f"$not expects a single filter dict, got {type(condition).__name__} "
                    f"{condition!r}; e.g. {{'$not': {{'a': 1}}}} (use $and/$or to combine)",
                    at,
                )
            parts.append(_translate(condition, resolve, not negate, at))
        elif key.startswith("$"):
            raise _fail(
                f"Unknown logical operator {key!r}. Supported logical operators: "
                f"{sorted(LOGICAL_OPERATORS)}; field operators such as $eq go inside a "
                "field, e.g. {'field': {'$eq': 1}}",
                at,
            )
        elif not key:
            raise _fail("Field names must be non-empty strings, got ''", where or "top level")
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
        raise _fail(f"A filter must be a dict or None, got {type(filter).__name__} {filter!r}")
    if not filter:
        return None
    return _translate(filter, resolve, False, "")


def matches_everything(filter: str | Mapping[str, Any] | None) -> bool:
    """Whether ``filter`` is trivially true: none, empty, the constant ``true``, or a dict
    filter that folds to it (``{"tenant": {}}``, ``{"$and": []}``, ``{"x": {"$nin": []}}``).
    A dict this translator cannot handle is not trivially true (it is refused elsewhere)."""
    if filter is None:
        return True
    if isinstance(filter, str):
        return not filter.strip() or is_literal_true(filter)
    if not isinstance(filter, Mapping):
        return False
    try:
        compiled = translate_filter(filter)
    except UnsupportedFilterError:
        return False
    return compiled is None or compiled == TRUE


def refuse_delete_of_everything(filter: str | Mapping[str, Any] | None, *, clear: str) -> None:
    """The one rule for deletes by filter: one that matches every row is refused, so no
    delete removes more than it was asked to; ``clear`` names the method that does."""
    if matches_everything(filter):
        raise InvalidInputError(
            f"delete refused: the filter {filter!r} matches every row. Nothing was deleted. "
            f"To delete everything, call {clear}; otherwise fix the filter."
        )

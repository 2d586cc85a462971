"""How a filter's field names are referenced in a Milvus expression: :class:`FieldRef` and
the resolvers for dynamic-field keys, keys of a JSON column and scalar columns.

Keys that are not plain ASCII identifiers, or that are Milvus keywords in any letter case
(``and``, ``exists``, ``true``, ...), are referenced as ``$meta["key"]`` with the string
escaping of :func:`~vd_integrations.core.filter_literals.escape_string`, so no key can
change the structure of the expression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from vd_integrations.core.errors import UnsupportedFilterError
from vd_integrations.core.filter_literals import escape_string, is_safe_identifier

__all__ = ["FieldRef", "FieldResolver", "dynamic_field", "json_field", "scalar_field"]


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


#: Maps a filter's field name to how the expression references it.
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

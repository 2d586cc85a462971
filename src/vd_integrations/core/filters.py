"""Filters for Milvus: ``vd`` dict filters translated into boolean expression strings, and the
rules for combining them (the public module; the pieces live in the modules listed below).

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

Where the pieces live
---------------------
* :mod:`~vd_integrations.core.filter_literals`: escaped literals, keywords, safe identifiers.
* :mod:`~vd_integrations.core.filter_fields`: :class:`FieldRef` and the field resolvers.
* :mod:`~vd_integrations.core.filter_atoms`: the atoms and their negated forms, :func:`ids_expr`.
* :mod:`~vd_integrations.core.filter_combining`: :func:`combine`, :func:`and_exprs`,
  :func:`or_exprs`.
* :mod:`~vd_integrations.core.filter_translation`: the dict-filter language,
  :func:`translate_filter`.
* :mod:`~vd_integrations.core.filter_safety`: :func:`matches_everything` and the delete rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vd_integrations.core.filter_atoms import compare, eq, exists, ids_expr, is_in, ne
from vd_integrations.core.filter_combining import and_exprs, combine, or_exprs
from vd_integrations.core.filter_fields import (
    FieldRef,
    FieldResolver,
    dynamic_field,
    json_field,
    scalar_field,
)
from vd_integrations.core.filter_literals import (
    FALSE,
    MILVUS_KEYWORDS,
    TRUE,
    escape_string,
    is_safe_identifier,
    literal,
)
from vd_integrations.core.filter_safety import matches_everything, refuse_delete_of_everything
from vd_integrations.core.filter_translation import translate_filter

__all__ = [
    "FALSE",
    "MILVUS_KEYWORDS",
    "TRUE",
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

#: A filter as the stores take it: a raw Milvus expression, a vd dict filter, or none.
FilterLike = str | Mapping[str, Any] | None

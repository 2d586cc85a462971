"""Values and names as they are written in a Milvus filter expression: escaped literals,
the ``true``/``false`` constants, Milvus' keywords and which names may be written bare.

Strings are emitted in double quotes with exactly ``\\``, ``"``, newline, carriage return
and tab escaped (the only escapes both milvus-lite and Milvus accept); every other
character, including control characters and any Unicode, is emitted raw. Strings that
cannot be encoded as UTF-8 (lone surrogates), ``None``, NaN, infinities and integers
outside int64 are refused with :class:`vd.UnsupportedFilterError`.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from vd_integrations.core.errors import UnsupportedFilterError

__all__ = [
    "FALSE",
    "MILVUS_KEYWORDS",
    "TRUE",
    "escape_string",
    "filter_error",
    "is_safe_identifier",
    "literal",
    "scalar_literal",
]

TRUE = "true"
FALSE = "false"

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


def filter_error(message: str, where: str = "") -> UnsupportedFilterError:
    """The error for an invalid filter, naming the position ``where`` in it when known."""
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


def scalar_literal(value: Any, where: str) -> str:
    """A str/int/float/bool as a Milvus literal; errors name the position ``where``."""
    if value is None:
        raise filter_error(
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
            raise filter_error(
                f"Integer {number} is outside the int64 range Milvus supports; "
                "store and filter such numbers as strings",
                where,
            )
        return str(number)
    if isinstance(value, numbers.Real):
        real = float(value)
        if not math.isfinite(real):
            raise filter_error(
                f"{real!r} cannot be used in a Milvus filter; use a finite number", where
            )
        return repr(real)
    raise filter_error(
        f"Unsupported filter value {value!r} of type {type(value).__name__}; "
        "filter values must be str, int, float or bool",
        where,
    )


def literal(value: Any) -> str:
    """Render a str/int/float/bool, or a list/tuple of them, as a Milvus literal."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(scalar_literal(v, "") for v in value) + "]"
    return scalar_literal(value, "")


def is_safe_identifier(name: str) -> bool:
    """True if ``name`` can be written bare in a Milvus expression."""
    return (
        isinstance(name, str)
        and _IDENTIFIER.fullmatch(name) is not None
        and name.lower() not in MILVUS_KEYWORDS
    )

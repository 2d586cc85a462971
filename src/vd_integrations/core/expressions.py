"""Checks on raw Milvus expression strings before they are combined with anything else.

A user's raw expression is pasted between parentheses when it is ANDed with ids, tenant
conditions or other filters, or ORed with a concurrent caller's delete. That is only
safe when the expression is *one syntactic unit*: ``x == 1) or (x >= 0`` is invalid on
its own but becomes "match everything" once wrapped. :func:`check_raw_expression`
refuses any string whose brackets or string literals are not balanced, so wrapping it
can never change where it ends.

Written by hand because no Python library parses Milvus' expression grammar (Plan.g4);
only the part of the lexer that decides where an expression ends is needed: string
literals (``"..."`` or ``'...'`` with backslash escapes, no raw line breaks) and the
brackets ``()``, ``[]``, ``{}`` outside them. The check is conservative: anything it
cannot be sure of is refused, never passed on.
"""

from __future__ import annotations

from vd_integrations.core.errors import InvalidFilterExpressionError

__all__ = ["check_raw_expression", "is_literal_true"]

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = frozenset(_OPENERS.values())
_QUOTES = frozenset({'"', "'"})


def _refuse(expr: str, why: str) -> InvalidFilterExpressionError:
    shown = expr if len(expr) <= 200 else expr[:200] + "..."
    return InvalidFilterExpressionError(
        f"The filter expression {shown!r} is not one complete expression: {why}. Nothing "
        f"was sent to Milvus. Balance its parentheses and quotes (see "
        f"https://milvus.io/docs/boolean.md), or pass a dict filter."
    )


def check_raw_expression(expr: str) -> str:
    """``expr`` stripped, if its brackets and string literals are balanced; otherwise an
    :class:`InvalidFilterExpressionError` (a ``ValueError``) saying where it breaks."""
    if not isinstance(expr, str):
        raise InvalidFilterExpressionError(
            f"A filter expression must be a str, got {type(expr).__name__}."
        )
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for position, char in enumerate(expr):
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            elif char in "\r\n":
                raise _refuse(expr, f"a line break inside the string literal at {position}")
        elif char in _QUOTES:
            quote = char
        elif char in _OPENERS:
            stack.append(_OPENERS[char])
        elif char in _CLOSERS:
            if not stack:
                raise _refuse(expr, f"{char!r} at {position} closes a bracket it did not open")
            expected = stack.pop()
            if char != expected:
                raise _refuse(expr, f"{char!r} at {position} where {expected!r} was expected")
        elif char == "\x00":
            raise _refuse(expr, f"a NUL character at {position}")
    if quote is not None:
        raise _refuse(expr, f"the string literal opened with {quote} is never closed")
    if stack:
        raise _refuse(expr, f"{len(stack)} bracket(s) are never closed")
    return expr.strip()


def is_literal_true(expr: str) -> bool:
    """Whether ``expr`` is the constant ``true`` (any case, any parentheses around it)."""
    text = expr.strip()
    while text.startswith("(") and text.endswith(")"):
        inner = text[1:-1].strip()
        try:
            check_raw_expression(inner)
        except InvalidFilterExpressionError:
            break  # "(a) or (b)": the outer parentheses are not one group
        text = inner
    return text.lower() == "true"

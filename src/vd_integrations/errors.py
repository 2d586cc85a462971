"""Errors raised by the core. Every message says what was wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterator

from vd import UnsupportedFilterError

__all__ = [
    "CollectionNotFoundError",
    "InvalidFilterExpressionError",
    "InvalidInputError",
    "MilvusOperationError",
    "StoreClosedError",
    "UnsupportedFilterError",
    "error_chain",
]


class InvalidInputError(ValueError):
    """Input rejected before anything was written (lengths, ids, vectors, metadata, k...)."""


class InvalidFilterExpressionError(UnsupportedFilterError):
    """Milvus could not parse or evaluate a filter expression."""


class MilvusOperationError(RuntimeError):
    """A Milvus call failed for a reason other than bad input."""


class CollectionNotFoundError(LookupError):
    """The collection does not exist and cannot be created from what the caller gave."""


class StoreClosedError(RuntimeError):
    """The store was used after ``close()`` / ``aclose()``."""


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__

"""Errors raised by the core. Every message says what was wrong and how to fix it.

Every exception class this project defines derives from :class:`VdIntegrationsError`, and
each also keeps its standard base, so ``except ValueError`` (or ``RuntimeError``,
``LookupError``) still catches what it caught before::

    VdIntegrationsError
    ├── InvalidInputError             (ValueError)    bad texts, ids, vectors, metadata, k...
    │   └── IdMismatchError           (AssertionError too) ids vs texts/nodes, duplicate ids
    ├── UnsupportedFilterError        (vd.UnsupportedFilterError, a ValueError)
    │   └── InvalidFilterExpressionError              Milvus rejected a filter expression
    ├── MilvusOperationError          (RuntimeError)  any other failed Milvus call
    ├── CollectionNotFoundError       (LookupError)
    ├── StoreClosedError              (RuntimeError)  used after close() / aclose()
    ├── OperationTimeoutError         (TimeoutError)  a call's timeout= ran out
    ├── ServerUnreachableError        (ConnectionError) nothing answers at the URI
    ├── RetryError                    (RuntimeError)  vd_integrations.core.retry
    └── UnsupportedEventLoopError     (RuntimeError)  vd_integrations.core.loops (e.g. trio)

Some checks of plain Python arguments raise ``TypeError`` / ``ValueError`` directly, and a
dict filter the ``vd`` library itself rejects raises ``vd.UnsupportedFilterError``; catch
``ValueError`` to cover those too.
"""

from __future__ import annotations

from collections.abc import Iterator

import vd

from vd_integrations.core.base_error import VdIntegrationsError

__all__ = [
    "CollectionNotFoundError",
    "IdMismatchError",
    "InvalidFilterExpressionError",
    "InvalidInputError",
    "MilvusOperationError",
    "OperationTimeoutError",
    "ServerUnreachableError",
    "StoreClosedError",
    "UnsupportedFilterError",
    "VdIntegrationsError",
    "error_chain",
]


class InvalidInputError(VdIntegrationsError, ValueError):
    """Input rejected before anything was written (lengths, ids, vectors, metadata, k...)."""


class IdMismatchError(InvalidInputError, AssertionError):
    """Ids that do not fit the call: a different number of ids than texts, documents or
    nodes, or the same id twice in one call. Also an ``AssertionError``, which
    ``langchain_milvus.Milvus`` and LlamaIndex's ``MilvusVectorStore`` raise for these
    (``assert len(set(ids)) == len(texts)``), so code written against either still catches
    it; and an :class:`InvalidInputError` (a ``ValueError``) like every other bad input."""


class UnsupportedFilterError(VdIntegrationsError, vd.UnsupportedFilterError):
    """A filter (dict, ``MetadataFilters``) that cannot be translated; a
    ``vd.UnsupportedFilterError`` and so a ``ValueError``."""


class InvalidFilterExpressionError(UnsupportedFilterError):
    """Milvus could not parse or evaluate a filter expression."""


class MilvusOperationError(VdIntegrationsError, RuntimeError):
    """A Milvus call failed for a reason other than bad input."""


class CollectionNotFoundError(VdIntegrationsError, LookupError):
    """The collection does not exist and cannot be created from what the caller gave."""


class StoreClosedError(VdIntegrationsError, RuntimeError):
    """The store was used after ``close()`` / ``aclose()``."""


class OperationTimeoutError(VdIntegrationsError, TimeoutError):
    """A call did not finish within its ``timeout`` (setup and connecting included)."""


class ServerUnreachableError(VdIntegrationsError, ConnectionError):
    """No Milvus server answers at the URI (the first connection was refused or hung)."""


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__

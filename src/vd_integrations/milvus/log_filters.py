"""Logging filters for pymilvus records about failures the stores handle themselves.

pymilvus' ``error_handler`` decorator logs every failed RPC at ERROR on
``pymilvus.decorators`` (pymilvus 3 adds the whole traceback, about 30 lines) before
raising. For the two failures below the stores either recover or raise their own clear
exception, so the record only alarms (or drowns) the user. Each filter drops exactly its
records and nothing else; :func:`install` adds them once.

- :class:`HandledIndexWaitFilter` -- the index wait milvus-lite 3.x does not implement
  (UNIMPLEMENTED, pymilvus#3711); the engine confirms the index exists and carries on.
- :class:`HandledFilterErrorFilter` -- a ``query``/``search``/``delete``/``hybrid_search``
  whose filter expression Milvus could not parse; the engine raises
  :class:`~vd_integrations.core.errors.InvalidFilterExpressionError` naming the expression, with
  the server's message, and pymilvus' ``MilvusException`` chained as its cause.

The filters sit on a pymilvus logger, so they also apply to pymilvus clients used
directly in the same process once a store module is imported; the exception those calls
raise is unchanged.
"""

from __future__ import annotations

import logging
import re

__all__ = ["HandledFilterErrorFilter", "HandledIndexWaitFilter", "install"]

#: The logger pymilvus' RPC decorators write to.
PYMILVUS_RPC_LOGGER = "pymilvus.decorators"


class HandledIndexWaitFilter(logging.Filter):
    """Drop pymilvus' ERROR records for the index wait that milvus-lite 3.x lacks.

    ``_ensure_index`` recovers from that UNIMPLEMENTED error (pymilvus#3711), so the
    traceback pymilvus logs for it would only alarm users. Nothing else is filtered.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            "UNIMPLEMENTED" in message
            and ("[wait_for_creating_index]" in message or "[create_index]" in message)
        )


#: pymilvus' decorator record of a failed RPC that takes a filter: "RPC error: [search],
#: <MilvusException: (code=..., message=...)>, ..." (same prefix in pymilvus 2.4 to 3.x).
_FILTERED_RPC = re.compile(
    r"RPC error: \[(?:query|search|delete|hybrid_search)\], <MilvusException: \(code="
)
#: Milvus' messages for a filter it cannot parse: servers 2.3+ ("failed to create query
#: plan: cannot parse expression: ...", "invalid expression: ...", "predicate is not a
#: boolean expression: ...", a 2.3 delete's "failed to create expr plan, expr = ...") and
#: Milvus Lite 3.x, which points at the position ("unexpected character '=' at column 7",
#: then a line with the expression and one with a caret). Each is also a marker by which
#: the engine recognises a filter error (``_is_filter_error``).
_PARSE_ERROR = re.compile(
    r"cannot parse expression"
    r"|failed to create expr plan"
    r"|invalid expression"
    r"|predicate is not a boolean expression"
    r"|\bat column \d+\n",
    re.IGNORECASE,
)


class HandledFilterErrorFilter(logging.Filter):
    """Drop pymilvus' ERROR record of a query, search or delete whose filter Milvus could
    not parse: the store raises ``InvalidFilterExpressionError`` for it instead.

    Only that record is dropped: other RPCs, other failures of these RPCs (a missing
    collection, a timeout, an unavailable server) and other levels pass through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.ERROR:
            return True
        message = record.getMessage()
        if not _FILTERED_RPC.match(message):
            return True
        # pymilvus 3 appends "\nTraceback:\n..."; the traceback repeats the message (and
        # holds source lines), so only the part before it is examined.
        head = message.split("\nTraceback:\n", 1)[0]
        return _PARSE_ERROR.search(head) is None


def install() -> None:
    """Add both filters to pymilvus' RPC logger (once, however often it is called)."""
    logger = logging.getLogger(PYMILVUS_RPC_LOGGER)
    present = {type(f) for f in logger.filters}
    for cls in (HandledIndexWaitFilter, HandledFilterErrorFilter):
        if cls not in present:
            logger.addFilter(cls())

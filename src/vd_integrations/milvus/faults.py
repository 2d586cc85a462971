"""Which Milvus failures are transient, and which requests may be sent again (pure).

pymilvus surfaces one failure in several shapes: a ``grpc.RpcError`` with a status code,
a ``MilvusException`` raised while it tried to reconnect (with the ``RpcError`` as its
``__context__``), or a ``MilvusException`` carrying a Milvus error code. The predicates
here look at the whole exception chain, so each shape is classified the same way.

- :func:`is_transient`: worth retrying (server restarting, connection reset or refused,
  deadline exceeded, rate limited).
- :func:`certainly_not_sent`: the request never reached a server (the connection was
  refused), so even a non-idempotent request may be sent again.
- :func:`rejected_by_server`: Milvus refused the request, so none of it was applied.
- :func:`safe_to_retry`: the policy for one RPC -- reads, deletes and writes with primary
  keys are idempotent (an insert is re-sent as an upsert); an insert into an ``auto_id``
  collection is re-sent only when :func:`certainly_not_sent`.
"""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    _HAS_FLOCK = False
else:
    _HAS_FLOCK = True

from vd_integrations.core.errors import (
    CollectionNotFoundError,
    InvalidFilterExpressionError,
    InvalidInputError,
    MilvusOperationError,
    OperationTimeoutError,
    ServerUnreachableError,
    StoreClosedError,
    error_chain,
)
from vd_integrations.milvus.rpc import Rpc, Step
from vd_integrations.milvus.server_versions import is_milvus_lite

__all__ = [
    "already_exists",
    "certainly_not_sent",
    "collection_not_loaded",
    "embedded_file_in_use",
    "embedded_open_failed",
    "grpc_code_name",
    "is_milvus_lite",
    "is_transient",
    "is_unimplemented",
    "rejected_by_server",
    "safe_to_retry",
    "translate_error",
]

#: gRPC status codes that mean "try again later".
TRANSIENT_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})
#: Codes after which a request may or may not have been applied.
UNCERTAIN_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN", "ABORTED"})
#: Milvus error codes for rate limiting (``ErrorCode.RATE_LIMIT`` and the legacy ``RateLimit``).
_RATE_LIMIT_CODES = frozenset({8, 49})

_TRANSIENT_MARKERS = (
    "fail connecting to server",
    "failed to connect to all addresses",
    "connection refused",
    "connection reset",
    "socket closed",
    "broken pipe",
    "stream removed",
    "goaway",
    "too_many_pings",
    "server unavailable",
    "statuscode.unavailable",
    "deadline exceeded",
    "deadline_exceeded",
    "rate limit",
    "ratelimit",
)
_NOT_SENT_MARKERS = (
    "fail connecting to server",
    "failed to connect to all addresses",
    "connection refused",
)
#: Methods whose repetition cannot change the result.
_IDEMPOTENT = frozenset(
    {
        "query",
        "search",
        "get",
        "describe_collection",
        "has_collection",
        "list_collections",
        "list_indexes",
        "describe_index",
        "get_load_state",
        "load_collection",
        "create_index",
        "delete",
        "delete_ids",
        "query_in",
        "upsert",
        "drop_collection",
        "flush",
        "hybrid_search",
    }
)


def grpc_code_name(exc: BaseException) -> str:
    """The gRPC status code name of ``exc`` (``"UNAVAILABLE"``), or ``""``."""
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            code = code()
        except Exception:  # pragma: no cover - defensive
            return ""
    name = getattr(code, "name", None)
    return name if isinstance(name, str) else ""


def _text(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    extra = ""
    if callable(details):
        try:
            extra = str(details() or "")
        except Exception:  # pragma: no cover - defensive
            extra = ""
    return f"{exc} {extra}".lower()


def _is_rpc_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("grpc") and callable(getattr(exc, "code", None))


#: Our own verdicts that another attempt cannot change (a timeout that ran out, a server
#: that never answered, bad input).
_FINAL_ERRORS = (InvalidInputError, OperationTimeoutError, ServerUnreachableError)


def is_transient(exc: BaseException) -> bool:
    """True for failures that another attempt may not meet: the server is down or
    restarting, the connection broke, a deadline passed, or Milvus is rate limiting."""
    if isinstance(exc, _FINAL_ERRORS) or embedded_open_failed(exc):
        return False
    for err in error_chain(exc):
        if isinstance(err, (ConnectionError, TimeoutError)):
            return True
        if grpc_code_name(err) in TRANSIENT_CODES:
            return True
        if getattr(err, "code", None) in _RATE_LIMIT_CODES and not _is_rpc_error(err):
            return True
        if getattr(err, "compatible_code", None) in _RATE_LIMIT_CODES:
            return True
        if type(err).__module__.startswith(("pymilvus", "grpc")):
            text = _text(err)
            if any(marker in text for marker in _TRANSIENT_MARKERS):
                return True
    return False


def embedded_open_failed(exc: BaseException) -> bool:
    """pymilvus could not start embedded Milvus Lite on a database file (not transient)."""
    return any(
        type(err).__name__ == "DataDirLockedError" or "Open local milvus failed" in str(err)
        for err in error_chain(exc)
    )


def embedded_file_in_use(db_path: str) -> bool:
    """Whether another process holds milvus-lite's lock on the database ``db_path`` (a
    directory with a ``LOCK`` file that milvus-lite flocks while it has it open)."""
    lock = os.path.join(db_path, "LOCK")
    if not _HAS_FLOCK or not os.path.exists(lock):
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def certainly_not_sent(exc: BaseException) -> bool:
    """True when the failure happened before the request reached any server.

    That is the case when connecting failed, and no RPC in the chain failed for another
    reason (a reset or lost reply may come after the server applied the request).
    """
    connect_failed = False
    for err in error_chain(exc):
        text = _text(err)
        refused = any(marker in text for marker in _NOT_SENT_MARKERS)
        if _is_rpc_error(err) and not refused:
            return False
        connect_failed = connect_failed or refused
    return connect_failed


def rejected_by_server(exc: BaseException) -> bool:
    """True when Milvus (or pymilvus' own checks) refused a request, so nothing of it was
    applied and its parts may be sent again one by one. Transport failures are not."""
    if isinstance(exc, InvalidInputError):
        return True
    if not type(exc).__module__.startswith("pymilvus"):
        return False
    if is_transient(exc):
        return False
    return grpc_code_name(exc) not in UNCERTAIN_CODES


def collection_not_loaded(exc: BaseException) -> bool:
    """True when a read failed because the collection is not loaded (Milvus Lite forgets
    loaded collections when its server restarts)."""
    for err in error_chain(exc):
        if type(err).__module__.startswith("pymilvus"):
            if getattr(err, "code", None) == 101:
                return True
            text = _text(err)
            if "not loaded" in text or "call load()" in text:
                return True
    return False


def safe_to_retry(method: str, exc: BaseException, *, auto_id: bool) -> bool:
    """Whether the failed RPC ``method`` may be sent again after the transient ``exc``.

    An ``insert`` with primary keys is re-sent as an upsert by the caller, so it is safe;
    into an ``auto_id`` collection Milvus would assign new keys and duplicate the rows,
    unless the first request never arrived.
    """
    if method in _IDEMPOTENT:
        return True
    if method == "insert":
        return not auto_id or certainly_not_sent(exc)
    return certainly_not_sent(exc)


# ----- translation into our errors --------------------------------------------------------


def is_unimplemented(exc: BaseException) -> bool:
    return grpc_code_name(exc) == "UNIMPLEMENTED" or "UNIMPLEMENTED" in str(exc)


def already_exists(exc: BaseException) -> bool:
    """Another writer created the collection or index first."""
    text = str(exc).lower()
    # real Milvus says "already exist(s)"; milvus-lite 3.x may surface "[Errno 17] File exists"
    return any(
        marker in text for marker in ("already exist", "at most one distinct index", "file exists")
    )


def _is_filter_error(exc: BaseException, step: Step | None) -> bool:
    if not isinstance(step, Rpc) or "filter" not in step.kwargs or not step.kwargs["filter"]:
        return False
    text = str(exc).lower()
    return any(
        marker in text
        for marker in (
            "parse",
            "expression",
            "unexpected",
            "unknown",
            "column",
            "invalid expr",
            "expr plan",  # Milvus 2.3 delete: "failed to create expr plan, expr = ..."
        )
    )


def translate_error(exc: Exception, step: Step | None, collection: str) -> Exception:
    """A clear, typed error for a failed step (the original stays as ``__cause__``)."""
    if isinstance(exc, (InvalidInputError, CollectionNotFoundError, StoreClosedError)):
        return exc
    if isinstance(exc, RuntimeError) and "no running event loop" in str(exc):
        from vd_integrations.core.loops import unsupported_loop_error  # e.g. awaited under trio

        return unsupported_loop_error()
    if not _looks_like_milvus_error(exc):
        return exc
    message = getattr(exc, "message", None) or getattr(exc, "details", lambda: None)() or str(exc)
    if _is_filter_error(exc, step):
        assert isinstance(step, Rpc)
        return InvalidFilterExpressionError(
            f"Milvus could not evaluate the filter expression {step.kwargs['filter']!r} on "
            f"collection {collection!r}: {message}. Check field names, quoting and operators "
            f"(see https://milvus.io/docs/boolean.md), or pass a dict filter."
        )
    method = step.method if isinstance(step, Rpc) else type(step).__name__
    return MilvusOperationError(f"Milvus {method} on collection {collection!r} failed: {message}")


def _looks_like_milvus_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("pymilvus", "grpc"))

"""The Milvus step (:class:`Rpc`) that operations yield, and how it maps to a client call.

Pure: no I/O, no state. The connection performs these steps; coalescing merges them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vd_integrations.core.filters import ids_expr
from vd_integrations.core.ops import Background, EmbedDocuments, EmbedQuery, Exclusive

__all__ = [
    "READS",
    "WRITES",
    "Rpc",
    "Step",
    "client_call",
    "is_write",
    "load_kwargs",
    "result_ids",
    "with_timeout",
]

#: Reads that need the collection loaded (loaded again after a server restart).
READS = frozenset({"search", "query", "query_in", "get", "hybrid_search"})
#: Writes that go one at a time on Milvus Lite (see :mod:`.lite_writes`).
WRITES = frozenset({"insert", "upsert", "delete"})


def is_write(method: str) -> bool:
    """Whether an :class:`Rpc` of ``method`` writes (``delete_ids`` is sent as a delete)."""
    return method in WRITES or method == "delete_ids"


@dataclass(frozen=True, slots=True)
class Rpc:
    """Call ``client.<method>(**kwargs)`` on the pymilvus client."""

    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


Step = Rpc | EmbedDocuments | EmbedQuery | Exclusive | Background


def client_call(step: Rpc) -> tuple[str, dict[str, Any]]:
    """The pymilvus method and arguments for ``step``.

    ``delete_ids`` is a delete by primary keys, sent as our escaped ``pk in [...]`` filter:
    pymilvus' own ``delete(ids=...)`` pastes string ids between quotes unescaped, so an id
    containing a quote could change which rows are deleted. ``query_in`` is a query for the
    rows whose scalar ``field`` holds one of ``values`` (``field in [...]``, escaped alike);
    concurrent ones merge into one query (:mod:`.coalescing`).
    """
    if step.method == "delete_ids":
        kwargs = dict(step.kwargs)
        kwargs["filter"] = ids_expr(kwargs.pop("pk_field"), kwargs.pop("ids"))
        return "delete", kwargs
    if step.method == "query_in":
        kwargs = dict(step.kwargs)
        kwargs["filter"] = ids_expr(kwargs.pop("field"), kwargs.pop("values"))
        return "query", kwargs
    return step.method, step.kwargs


def load_kwargs(step: Rpc) -> dict[str, Any]:
    """Arguments of the ``load_collection`` that lets a failed read of ``step`` go again."""
    kwargs = {"collection_name": step.kwargs["collection_name"]}
    if step.kwargs.get("timeout") is not None:
        kwargs["timeout"] = step.kwargs["timeout"]
    return kwargs


def with_timeout(step: Step, timeout: float | None) -> Step:
    """``step`` with a gRPC ``timeout`` if it is an RPC without one."""
    if timeout is None or not isinstance(step, Rpc) or "timeout" in step.kwargs:
        return step
    return Rpc(step.method, {**step.kwargs, "timeout": timeout})


def result_ids(result: Any) -> list[Any]:
    """The primary keys an insert or upsert reports."""
    if isinstance(result, Mapping):
        return list(result.get("ids", []))
    return list(getattr(result, "primary_keys", []) or [])

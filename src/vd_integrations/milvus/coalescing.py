"""Which Milvus requests can be merged, how to merge them, and how to split the answer.

Pure functions over :class:`~vd_integrations.milvus.engine.Rpc` steps, used by the
engine's async shell with a :class:`~vd_integrations.core.coalesce.Coalescer`:

- ``insert`` / ``upsert`` into the same collection and partition: rows concatenated;
  the returned primary keys are sliced back per caller;
- ``search`` with identical parameters (collection, field, limit, filter, output fields,
  search params, partitions): query vectors concatenated (``nq``), hits sliced per caller
  (a large one that returns vectors goes as a key search plus row queries:
  :mod:`.search_fetch`);
- ``delete_ids`` (the engine's delete by primary keys): one ``pk in [...]`` delete;
- ``delete`` by ``filter``: one delete of ``(f1) or (f2) or ...``, which removes exactly
  the union of what the separate deletes would have removed;
- ``query_in`` (rows whose scalar field holds one of some values, e.g. the nodes of
  LlamaIndex documents being deleted): one query for every caller's values, rows handed
  back to each caller whose values they match. A merged answer that fills the query's
  ``limit`` may be cut short, so it is not split: each part goes again on its own
  (:class:`IncompleteMerge`).

Anything else is not merged (``merge_key`` returns None).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from vd_integrations.core.base_error import VdIntegrationsError
from vd_integrations.core.batching import DEFAULT_MAX_BATCH_BYTES, estimate_row_bytes
from vd_integrations.core.filters import or_exprs

__all__ = ["IncompleteMerge", "MergeKind", "merge_key", "merge_steps", "part_size", "split_result"]

MergeKind = str
#: Bytes that count as one item against ``CoalescingSettings.max_batch`` for writes, so a
#: merged write of ``max_batch`` (512) items stays within 16 MiB.
WRITE_UNIT_BYTES = DEFAULT_MAX_BATCH_BYTES // 512


class IncompleteMerge(VdIntegrationsError):
    """A merged request's answer cannot be split back exactly: send each part alone."""


def _freeze(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Hashable):
        return value
    return repr(value)


def merge_kind(method: str, kwargs: Mapping[str, Any]) -> MergeKind | None:
    """The kind of merge an RPC allows, or None."""
    if method in ("insert", "upsert"):
        return "write"
    if method == "search":
        return "search"
    if method == "delete_ids":
        return "delete_ids"
    if method == "delete" and kwargs.get("filter") and kwargs.get("ids") is None:
        return "delete_filter"
    if method == "query_in":
        return "lookup"
    return None


def merge_key(method: str, kwargs: Mapping[str, Any]) -> Hashable | None:
    """Requests with equal keys can be merged into one; None means never merge."""
    kind = merge_kind(method, kwargs)
    if kind is None:
        return None
    payload = {
        "write": "data",
        "search": "data",
        "delete_ids": "ids",
        "delete_filter": "filter",
        "lookup": "values",
    }
    rest = {k: v for k, v in kwargs.items() if k != payload[kind]}
    return (kind, method, _freeze(rest))


def part_size(method: str, kwargs: Mapping[str, Any]) -> int:
    """How many items a request carries, against the coalescer's ``max_batch``."""
    kind = merge_kind(method, kwargs)
    if kind == "write":
        rows = kwargs["data"]
        data_bytes = sum(estimate_row_bytes(row) for row in rows)
        return max(len(rows), math.ceil(data_bytes / WRITE_UNIT_BYTES))
    if kind == "search":
        return len(kwargs["data"])
    if kind == "delete_ids":
        return len(kwargs["ids"])
    if kind == "lookup":
        return len(kwargs["values"])
    return 1


def merge_steps(method: str, parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The kwargs of one request doing the work of every request in ``parts``."""
    first = parts[0]
    kind = merge_kind(method, first)
    merged = dict(first)
    if kind in ("write", "search"):
        merged["data"] = [item for part in parts for item in part["data"]]
    elif kind == "delete_ids":
        merged["ids"] = list(dict.fromkeys(pk for part in parts for pk in part["ids"]))
    elif kind == "delete_filter":
        merged["filter"] = or_exprs(*(part["filter"] for part in parts))
    elif kind == "lookup":
        merged["values"] = list(dict.fromkeys(v for part in parts for v in part["values"]))
    else:  # pragma: no cover - callers only merge mergeable requests
        raise ValueError(f"{method} requests cannot be merged")
    return merged


def split_result(method: str, parts: Sequence[Mapping[str, Any]], result: Any) -> list[Any]:
    """Each part's share of the merged request's ``result``, in order."""
    kind = merge_kind(method, parts[0])
    out: list[Any] = []
    start = 0
    if kind == "search":
        for part in parts:
            stop = start + len(part["data"])
            out.append([result[i] for i in range(start, stop)])
            start = stop
        return out
    if kind == "write":
        sizes = [len(part["data"]) for part in parts]
        count_key = "upsert_count" if method == "upsert" else "insert_count"
        ids = list(result.get("ids", []) or []) if isinstance(result, Mapping) else []
        for size in sizes:
            share: dict[str, Any] = {count_key: size}
            if len(ids) == sum(sizes):
                share["ids"] = ids[start : start + size]
            out.append(share)
            start += size
        return out
    if kind == "delete_ids":
        return [{"delete_count": len(part["ids"])} for part in parts]
    if kind == "lookup":
        limit = parts[0].get("limit")
        rows = list(result)
        if limit is not None and len(rows) >= limit:
            raise IncompleteMerge(f"a merged query returned its limit of {limit} rows")
        field = parts[0]["field"]
        return [[row for row in rows if row.get(field) in set(part["values"])] for part in parts]
    # delete_filter: Milvus reports one count for the union; per caller it is unknown.
    return [{"delete_count": None} for _ in parts]

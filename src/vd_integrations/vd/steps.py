"""The vd engine's own step, :class:`VdCall`, and how a collection call is performed on a
sync ``vd.Collection`` and on a ``vd.AsyncCollection``.

A :class:`VdCall` is one call on the vd collection (or, for setup, on the vd client),
performed on the sync ``vd.Collection`` / the ``vd.AsyncCollection`` like this:

- ``add_documents``: ``col.add_documents(docs)`` / ``await acol.add_documents(docs)``
- ``get``: ``col[key]`` / ``await acol.get(key)``
- ``delete``: ``del col[key]`` / ``await acol.delete(key)``
- ``keys``: ``list(col)`` / ``[k async for k in acol.keys()]``
- ``count``: ``len(col)`` / ``await acol.count()``
- ``search``: ``list(col.search(vector, limit=, filter=))`` /
  ``[h async for h in acol.search(vector, limit=, filter=)]``

plus ``open_collection`` / ``create_collection`` / ``delete_collection`` on the client
(:data:`CLIENT_METHODS`, performed by :class:`~vd_integrations.vd.connection.VdConnection`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vd_integrations.core.ops import EmbedDocuments, EmbedQuery, Exclusive

__all__ = ["CLIENT_METHODS", "Step", "VdCall", "acall_collection", "call_collection"]

#: The :class:`VdCall` methods performed on the vd client rather than the collection.
CLIENT_METHODS = frozenset({"open_collection", "create_collection", "delete_collection"})


@dataclass(frozen=True, slots=True)
class VdCall:
    """One call on the vd collection (or the client, for setup); see the module table."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


#: Every step a vd engine operation yields.
Step = VdCall | EmbedDocuments | EmbedQuery | Exclusive


def call_collection(col: Any, step: VdCall) -> Any:
    """Perform a collection step on a sync ``vd.Collection``."""
    method, args, kwargs = step.method, step.args, step.kwargs
    if method == "add_documents":
        (docs,) = args
        if hasattr(col, "add_documents"):
            return col.add_documents(docs, **kwargs)
        for doc in docs:  # the minimal Collection protocol has no batch method
            col[doc.id] = doc
        return None
    if method == "get":
        return col[args[0]]
    if method == "delete":
        del col[args[0]]
        return None
    if method == "keys":
        return list(col)
    if method == "count":
        return len(col)
    if method == "search":
        return list(col.search(*args, **kwargs))
    raise ValueError(f"unknown vd collection call {method!r}")  # pragma: no cover


async def acall_collection(acol: Any, step: VdCall) -> Any:
    """Perform a collection step on a ``vd.AsyncCollection``."""
    method, args, kwargs = step.method, step.args, step.kwargs
    if method == "add_documents":
        (docs,) = args
        if hasattr(acol, "add_documents"):
            return await acol.add_documents(docs, **kwargs)
        for doc in docs:
            await acol.set(doc.id, doc)
        return None
    if method == "get":
        return await acol.get(args[0])
    if method == "delete":
        return await acol.delete(args[0])
    if method == "keys":
        return [key async for key in acol.keys()]  # noqa: SIM118 - an async iterator
    if method == "count":
        return await acol.count()
    if method == "search":
        return [hit async for hit in acol.search(*args, **kwargs)]
    raise ValueError(f"unknown vd collection call {method!r}")  # pragma: no cover

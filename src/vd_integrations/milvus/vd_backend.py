"""A native async ``vd`` backend for Milvus: ``await vd.connect_async("milvus", uri=...)``.

Importing this module registers :func:`connect` with :func:`vd.register_async_backend`,
so :func:`vd.connect_async` returns a :class:`MilvusAsyncClient` (with
``native_async = True``) instead of vd's ``asyncio.to_thread`` wrapper. It takes
the same keyword arguments as ``vd.connect("milvus", ...)`` (``uri``, ``token``,
``path``, ``embedder``).

All I/O goes through :class:`~vd_integrations.milvus.engine.MilvusEngine` (one per
collection), driven by :meth:`~MilvusEngine.arun` on the running loop's own
``AsyncMilvusClient``, so one client works across many ``asyncio.run`` calls. The
pieces:

- :mod:`.vd_layout`: vd's collection layout (the exact one of vd's sync milvus backend,
  so both clients read and write each other's collections), given to the engine by its
  spec, :class:`VdCollectionSpec`; vd's metrics and scores; which vd filters Milvus can
  evaluate;
- :mod:`.vd_collection`: :class:`MilvusAsyncCollection`, vd's collection contract and
  native hybrid search;
- :mod:`.vd_client`: :class:`MilvusAsyncClient`, vd's client contract.

Unlike the sync backend (which over-fetches and filters in Python), vd filters are
translated to Milvus expressions on ``metadata["key"]`` and evaluated server-side;
a valid vd filter Milvus cannot express (e.g. equality with ``None`` or a list)
falls back to the sync backend's over-fetch + client-side filtering. Scores follow
vd's conventions: cosine similarity, raw inner product for ``dot``, and
``1 / (1 + euclidean distance)`` for ``l2`` (Milvus reports squared L2 distance).
"""

from __future__ import annotations

import asyncio
from typing import Any

from vd.asynchronous import register_async_backend

from vd_integrations.milvus.config import ConnectionConfig
from vd_integrations.milvus.vd_client import MilvusAsyncClient
from vd_integrations.milvus.vd_collection import MilvusAsyncCollection
from vd_integrations.milvus.vd_layout import METRICS as METRICS
from vd_integrations.milvus.vd_layout import VdCollectionSpec, VdLayout
from vd_integrations.milvus.vd_layout import milvus_metric as milvus_metric
from vd_integrations.milvus.vd_layout import vd_score as vd_score

__all__ = [
    "MilvusAsyncClient",
    "MilvusAsyncCollection",
    "VdCollectionSpec",
    "VdLayout",
    "connect",
]


def _start_milvus_lite(connection: ConnectionConfig) -> None:
    """Start (or find) the Milvus Lite server for an embedded ``.db`` path; blocking."""
    uri = connection.client_kwargs()["uri"]
    if not uri.endswith(".db"):
        return  # pymilvus reports the problem on first use
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # pragma: no cover - pymilvus raises a clear error on first use
        return
    server_manager_instance.start_and_get_uri(uri)


async def connect(**kwargs: Any) -> MilvusAsyncClient:
    """The ``vd.connect_async("milvus", ...)`` factory: same arguments as ``vd.connect``.

    For an embedded Milvus Lite database it starts the server in a worker thread:
    ``AsyncMilvusClient`` would otherwise start it, blocking, on the event loop.
    """
    client = MilvusAsyncClient(**kwargs)
    if client.connection.is_embedded:
        await asyncio.to_thread(_start_milvus_lite, client.connection)
    return client


register_async_backend("milvus", connect)

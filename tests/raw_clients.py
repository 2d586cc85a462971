"""Raw pymilvus clients for tests, on the channel options our stores use.

pymilvus' default channel pings every 10 s even when idle, and the Milvus Lite server
(gRPC's default ping policy) answers with GOAWAY "too many pings" after a few: the next
call on a shared, default channel then fails with UNAVAILABLE. A test's own client would
fail that way, not the store under test, so every raw client here is built as ours are
(:meth:`ConnectionConfig.client_kwargs`: no idle pings, a dedicated channel).
"""

from __future__ import annotations

from typing import Any

from pymilvus import AsyncMilvusClient, MilvusClient

from vd_integrations.milvus.config import ConnectionConfig

__all__ = ["raw_async_client", "raw_client", "raw_client_kwargs"]


def raw_client_kwargs(uri: str) -> dict[str, Any]:
    """``MilvusClient`` keyword arguments for ``uri``, as our stores pass them."""
    return ConnectionConfig(uri=uri).client_kwargs()


def raw_client(uri: str) -> MilvusClient:
    """A sync pymilvus client of its own for ``uri``; close it when done."""
    return MilvusClient(**raw_client_kwargs(uri))


def raw_async_client(uri: str) -> AsyncMilvusClient:
    """An async pymilvus client of its own for ``uri``; close it when done."""
    return AsyncMilvusClient(**raw_client_kwargs(uri))

"""The native async vd client for Milvus (:class:`MilvusAsyncClient`): vd's client contract
(create, get, delete and list collections) over one ``MilvusEngine`` per collection."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Any

from vd import Vector
from vd.asynchronous import AsyncAbstractClient

from vd_integrations.milvus.config import ConnectionConfig
from vd_integrations.milvus.engine import MilvusEngine, Op, Rpc
from vd_integrations.milvus.vd_collection import MilvusAsyncCollection
from vd_integrations.milvus.vd_layout import VD_METRICS, VdCollectionSpec, milvus_metric

__all__ = ["MilvusAsyncClient"]


def _call(method: str, **kwargs: Any) -> Op[Any]:
    """An operation making one client-level RPC (``list_collections``, ``has_collection``)."""
    return (yield Rpc(method, kwargs))


class MilvusAsyncClient(AsyncAbstractClient):
    """Native async vd client for Milvus (a server, Zilliz Cloud, or Milvus Lite).

    Parameters are those of ``vd.connect("milvus", ...)``: ``uri`` (a server or
    Zilliz endpoint), ``token``, ``path`` (a Milvus Lite database; takes precedence
    over ``uri``; with neither, a temporary one), ``embedder`` (``text -> vector``).
    Other keyword arguments are kept in ``config`` and ignored, as in the sync backend.
    Nothing connects until the first call. Prefer :func:`connect` (what
    ``vd.connect_async("milvus", ...)`` calls), which starts an embedded Milvus Lite
    server off the event loop.
    """

    backend_name = "milvus"

    def __init__(
        self,
        *,
        embedder: Callable[[str], Vector] | None = None,
        uri: str | None = None,
        token: str | None = None,
        path: str | None = None,
        **config: Any,
    ) -> None:
        super().__init__(embedder=embedder, **config)
        if path is not None:
            connection = ConnectionConfig(uri=str(path))
        elif uri is not None:
            connection = ConnectionConfig(uri=str(uri), token=str(token or ""))
        else:
            directory = tempfile.mkdtemp(prefix="vd_milvus_")
            connection = ConnectionConfig(uri=os.path.join(directory, "milvus.db"))
        self.connection = connection
        #: Opens a collection handle: ``(name, engine, *, dimension, metric)``, with this
        #: client's embedder.
        self._collection = functools.partial(MilvusAsyncCollection, embedder=embedder)
        self._engines: dict[str, MilvusEngine] = {}
        self._all_engines: list[MilvusEngine] = []
        #: Collections created here without a dimension, not yet materialised: name -> metric.
        self._pending: dict[str, str] = {}
        # Runs client-level RPCs (has/list collections); its name only appears in errors.
        self._admin = self._new_engine(VdCollectionSpec.for_vd("(client)"))

    def __repr__(self) -> str:
        return f"MilvusAsyncClient({self.connection!r})"

    @property
    def client(self) -> Any:
        """The running loop's raw ``AsyncMilvusClient`` (call from a coroutine)."""
        return self._admin.aclient

    # ----- helpers --------------------------------------------------------------------------

    def _new_engine(self, spec: VdCollectionSpec) -> MilvusEngine:
        engine = MilvusEngine(spec, self.connection)
        self._all_engines.append(engine)
        return engine

    def _engine(self, name: str, metric: str = "cosine", *, lexical: bool = True) -> MilvusEngine:
        engine = self._engines.get(name)
        if engine is None:
            engine = self._new_engine(VdCollectionSpec.for_vd(name, metric, lexical=lexical))
            self._engines[name] = engine
        return engine

    async def _exists(self, name: str) -> bool:
        return bool(await self._admin.arun(_call("has_collection", collection_name=name)))

    # ----- AsyncClient contract -------------------------------------------------------------

    async def create_collection(
        self,
        name: str,
        *,
        dimension: int | None = None,
        metric: str = "cosine",
        lexical: bool = True,
        **index_config: Any,
    ) -> MilvusAsyncCollection:
        """Create collection ``name``; ``ValueError`` if it exists.

        Without ``dimension`` it is created by the first write (once, even under
        concurrent writes). ``lexical=False`` stores ``text`` unbounded, without the
        BM25 field (as in the sync backend). ``index_config`` is accepted and unused.
        """
        milvus_metric(metric)
        if name in self._pending or await self._exists(name):
            raise ValueError(f"Collection {name!r} already exists")
        engine = self._new_engine(VdCollectionSpec.for_vd(name, metric, lexical=lexical))
        self._engines[name] = engine
        if dimension is not None:
            await engine.arun(engine.ready(int(dimension)))
        else:
            self._pending[name] = metric
        return self._collection(name, engine, dimension=dimension, metric=metric)

    async def get_collection(self, name: str) -> MilvusAsyncCollection:
        """Return collection ``name``; ``KeyError`` if it does not exist."""
        if not await self._exists(name):
            if name in self._pending:
                engine = self._engine(name, self._pending[name])
                if engine.layout is None:  # still not written
                    metric = self._pending[name]
                    return self._collection(name, engine, dimension=None, metric=metric)
            self._pending.pop(name, None)
            self._engines.pop(name, None)
            raise KeyError(f"Collection {name!r} does not exist")
        self._pending.pop(name, None)
        engine = self._engine(name)
        layout = await engine.arun(engine.ready())
        if layout is None:  # dropped concurrently
            self._engines.pop(name, None)
            raise KeyError(f"Collection {name!r} does not exist")
        metric = VD_METRICS.get(layout.metric, "cosine")
        return self._collection(name, engine, dimension=layout.dim or None, metric=metric)

    async def delete_collection(self, name: str) -> None:
        """Drop collection ``name``; ``KeyError`` if it does not exist."""
        pending = self._pending.pop(name, None) is not None
        engine = self._engines.pop(name, None)
        if await self._exists(name):
            engine = engine or self._new_engine(VdCollectionSpec.for_vd(name))
            await engine.arun(engine.drop())
        elif not pending:
            raise KeyError(f"Collection {name!r} does not exist")

    async def list_collections(self) -> AsyncIterator[str]:
        """Yield collection names (in Milvus, plus ones created here and not yet written)."""
        names = set(await self._admin.arun(_call("list_collections")))
        names |= set(self._pending)
        for name in sorted(names):
            yield name

    async def close(self) -> None:
        """Close this loop's connections; the client cannot be used afterwards."""
        engines, self._all_engines = self._all_engines, []
        self._engines.clear()
        errors: list[BaseException] = []
        for engine in engines:
            try:
                await engine.aclose()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]

"""Collection lifecycle as operations: describe, create, index, load and drop.

:class:`CollectionSetup` holds what is known of one collection (its layout once read or
created, a pending ``drop_old``, a load still to finish) and yields the steps that make
it ready; the engine drives them under its setup lock
(:class:`~vd_integrations.core.ops.Exclusive`).
How a collection is laid out is the spec's business
(:meth:`~vd_integrations.milvus.schema.CollectionSpec.layout_from_description`), so other
layouts (vd's) plug in through their spec.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from vd_integrations.core.errors import MilvusOperationError
from vd_integrations.core.ops import Background, Exclusive, Op, Sleep
from vd_integrations.milvus import faults
from vd_integrations.milvus.hybrid import full_text_support_problem
from vd_integrations.milvus.rpc import Rpc
from vd_integrations.milvus.schema import CollectionLayout, CollectionSpec

__all__ = ["CollectionSetup"]


class CollectionSetup:
    """The setup state and operations of one collection (see the module docstring)."""

    def __init__(self, spec: CollectionSpec, rpc: Callable[..., Rpc], *, drop_old: bool) -> None:
        """``rpc(method, **kwargs)`` builds each step (with the store's default timeout)."""
        self.spec = spec
        self.rpc = rpc
        #: The collection's layout once known (after the first call that touched Milvus).
        self.layout: CollectionLayout | None = None
        self.drop_pending = bool(drop_old)
        #: A collection created here is still to be loaded (see :meth:`ready`).
        self.load_pending = False

    def ready(self, dim: int | None = None, *, loaded: bool = False) -> Op[CollectionLayout | None]:
        """The collection's layout; with ``dim``, create the collection if it is missing.

        A collection this engine creates is loaded in the background: inserts and upserts
        do not need it loaded, so the first write does not wait for it (seconds on a real
        server). Reads and deletes by filter do: they pass ``loaded=True`` and wait.
        """
        layout = self.layout
        if layout is None or self.drop_pending:
            layout = yield Exclusive(self._setup(dim), key=("setup", dim))
        if loaded:
            yield from self.loaded()
        return layout

    def loaded(self) -> Op[None]:
        """Wait until a collection this engine created is loaded (a no-op otherwise)."""
        if self.load_pending:
            yield Exclusive(self.finish_load(), key="load")

    def _setup(self, dim: int | None) -> Op[CollectionLayout | None]:
        if self.drop_pending:
            yield from self.drop_now()
            self.drop_pending = False
        if self.layout is not None:
            return self.layout
        layout = yield from self.describe()
        if layout is None and dim is not None:
            layout = yield from self.create(dim)
        elif layout is not None:
            if self.spec.index_existing:  # LlamaIndex's index_management="create_if_not_exists"
                fields = {f for f in (layout.vector_field, layout.sparse_field) if f}
                yield from self._ensure_index(fields)
            if self.spec.properties:
                yield from self._apply_properties()
            yield from self._ensure_loaded()
        self.layout = layout
        return layout

    def _apply_properties(self) -> Op[None]:
        """The spec's properties on an existing collection, as both upstream stores set them
        when they open one. Some (``mmap.enabled``) cannot change while the collection is
        loaded: then it is released (as LlamaIndex's store does), altered, and loaded again
        by :meth:`_ensure_loaded`."""
        kwargs = {"collection_name": self.spec.name, "properties": dict(self.spec.properties or {})}
        try:
            yield self.rpc("alter_collection_properties", **kwargs)
        except Exception as exc:
            state = yield self.rpc("get_load_state", collection_name=self.spec.name)
            state = state.get("state") if isinstance(state, Mapping) else state
            if getattr(state, "name", str(state)) != "Loaded":
                raise exc
            yield self.rpc("release_collection", collection_name=self.spec.name)
            yield self.rpc("alter_collection_properties", **kwargs)

    def _ensure_loaded(self) -> Op[None]:
        """Load an existing collection that is not loaded, or wait for a load in progress.

        Milvus refuses searches and queries on an unloaded collection (one released, made
        by another tool, or -- on a real server -- still loading because another loop,
        thread or process is creating it right now); langchain-milvus loads it too.
        Failures are left to the read that needs the collection loaded.
        """
        name = self.spec.name
        try:
            state = yield self.rpc("get_load_state", collection_name=name)
            state = state.get("state") if isinstance(state, Mapping) else state
            if getattr(state, "name", str(state)) == "Loaded":  # pymilvus LoadState
                return
            load_kwargs: dict[str, Any] = {"collection_name": name}
            if self.spec.replica_number != 1:
                load_kwargs["replica_number"] = self.spec.replica_number
            yield self.rpc("load_collection", **load_kwargs)
        except Exception as exc:  # e.g. no vector index yet: reads will report it
            logging.getLogger(__name__).debug("could not load %r: %s", name, exc)

    def describe(self) -> Op[CollectionLayout | None]:
        name = self.spec.name
        if not (yield self.rpc("has_collection", collection_name=name)):
            return None
        description = yield self.rpc("describe_collection", collection_name=name)
        metric = yield from self.vector_metric(description)
        return self.spec.layout_from_description(description, metric)

    def vector_metric(self, description: Mapping[str, Any]) -> Op[str | None]:
        name = self.spec.name
        for index_name in (yield self.rpc("list_indexes", collection_name=name)) or ():
            info = yield self.rpc("describe_index", collection_name=name, index_name=index_name)
            info = info or {}
            vector_fields = {self.spec.vector_field} | {
                f["name"] for f in description.get("fields", []) if "dim" in (f.get("params") or {})
            }
            if info.get("field_name") in vector_fields and info.get("metric_type"):
                metric = str(info["metric_type"]).upper()
                if metric in {"L2", "IP", "COSINE"}:
                    return metric
        return None

    def create(self, dim: int) -> Op[CollectionLayout]:
        spec = self.spec
        if spec.sparse is not None:  # a clear error on servers without BM25 / sparse fields
            yield from self._check_sparse_support(spec.sparse.bm25)
        try:
            yield self.rpc("create_collection", **spec.create_kwargs(dim))
        except Exception as exc:
            if not faults.already_exists(exc):
                raise
            yield from self._await_created_elsewhere()
        yield from self._ensure_index()
        if spec.properties:
            yield self.rpc(
                "alter_collection_properties",
                collection_name=spec.name,
                properties=dict(spec.properties),
            )
        layout = yield from self.describe()
        if layout is None:  # pragma: no cover - dropped concurrently
            raise MilvusOperationError(f"Collection {spec.name!r} vanished while being created.")
        self.load_pending = True
        yield Background(self.finish_load(), key="load")
        return layout

    def _check_sparse_support(self, bm25: bool) -> Op[None]:
        """Refuse, before creating the collection, a server that lacks BM25 (``bm25``) or
        sparse vector fields."""
        try:
            version = yield self.rpc("get_server_version")
        except Exception:  # an unknown server or proxy: creation itself will tell
            return
        problem = full_text_support_problem(str(version), bm25=bm25)
        if problem:
            raise MilvusOperationError(
                f"Cannot create collection {self.spec.name!r} with a sparse field: {problem}. "
                f"Use a newer Milvus (or Milvus Lite 3.x: pip install 'milvus-lite>=3'), or a "
                f"store without builtin_function / enable_sparse for dense search only."
            )

    def finish_load(self) -> Op[None]:
        """Load the collection :meth:`_create` made (a no-op once done). A failure is
        raised to the reader waiting for it; the next one tries again."""
        if not self.load_pending:
            return
        load_kwargs: dict[str, Any] = {"collection_name": self.spec.name}
        if self.spec.replica_number != 1:
            load_kwargs["replica_number"] = self.spec.replica_number
        yield self.rpc("load_collection", **load_kwargs)
        self.load_pending = False

    def _await_created_elsewhere(self, timeout: float = 10.0) -> Op[None]:
        """Another writer (loop, thread or process) is creating the collection: wait until it
        and its index are visible. Past ``timeout`` the caller creates the index itself."""
        name, delay, waited = self.spec.name, 0.02, 0.0
        while waited < timeout:
            if (yield self.rpc("has_collection", collection_name=name)) and (
                yield self.rpc("list_indexes", collection_name=name)
            ):
                return
            yield Sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.5)
        if not (yield self.rpc("has_collection", collection_name=name)):
            raise MilvusOperationError(
                f"Collection {name!r} was reported as existing but did not appear within "
                f"{timeout:.0f}s."
            )

    def _ensure_index(self, fields: set[str] | None = None) -> Op[None]:
        """Create the spec's missing indexes (with ``fields``: only on those fields)."""
        # One create_index call per field (the vector, and a sparse field if any): on
        # milvus-lite the async client's call fails after creating the first index.
        name = self.spec.name
        for field_name, params in self.spec.field_indexes():
            if fields is not None and field_name not in fields:
                continue
            listed = {"collection_name": name, "field_name": field_name}
            if (yield self.rpc("list_indexes", **listed)):
                continue
            try:
                yield self.rpc("create_index", collection_name=name, index_params=params)
            except Exception as exc:
                if faults.is_unimplemented(exc):
                    # milvus-lite 3.x: the async client's index call creates the index, then
                    # fails waiting for it with UNIMPLEMENTED (pymilvus#3711). Confirm it.
                    if not (yield self.rpc("list_indexes", **listed)):
                        raise
                elif not faults.already_exists(exc):
                    raise

    def drop_now(self) -> Op[None]:
        if (yield self.rpc("has_collection", collection_name=self.spec.name)):
            yield self.rpc("drop_collection", collection_name=self.spec.name)
        self.layout = None
        self.load_pending = False

    def drop(self) -> Op[None]:
        """Drop the collection (a later write creates it again)."""
        yield Exclusive(self.drop_now())

    def prospective_layout(self) -> CollectionLayout:
        """The layout a new collection would get: used to validate before it exists."""
        return self.spec.prospective_layout()

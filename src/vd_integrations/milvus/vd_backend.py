"""A native async ``vd`` backend for Milvus: ``await vd.connect_async("milvus", uri=...)``.

Importing this module registers :class:`MilvusAsyncClient` with
:func:`vd.register_async_backend`, so :func:`vd.connect_async` returns it (with
``native_async = True``) instead of vd's ``asyncio.to_thread`` wrapper. It takes
the same keyword arguments as ``vd.connect("milvus", ...)`` (``uri``, ``token``,
``path``, ``embedder``).

All I/O goes through :class:`~vd_integrations.milvus.engine.MilvusEngine` (one per
collection), driven by :meth:`~MilvusEngine.arun` on the running loop's own
``AsyncMilvusClient``, so one client works across many ``asyncio.run`` calls.

Collections use the exact layout of vd's sync milvus backend, so both clients read
and write each other's collections:

- ``id``: ``VARCHAR(512)`` primary key; ``vector``: ``FLOAT_VECTOR``;
- ``text``: an analyzed ``VARCHAR(65535)`` feeding a BM25 function into
  ``text_sparse`` (``lexical=True``, the default) or a dynamic field
  (``lexical=False``, unbounded text);
- ``metadata``: one dynamic field holding the metadata dict.

Unlike the sync backend (which over-fetches and filters in Python), vd filters are
translated to Milvus expressions on ``metadata["key"]`` and evaluated server-side;
a valid vd filter Milvus cannot express (e.g. equality with ``None`` or a list)
falls back to the sync backend's over-fetch + client-side filtering. Scores follow
vd's conventions: cosine similarity, raw inner product for ``dot``, and
``1 / (1 + euclidean distance)`` for ``l2`` (Milvus reports squared L2 distance).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient
from vd import Document, Filter, SearchResult, UnsupportedFilterError, Vector
from vd.asynchronous import AsyncAbstractClient, AsyncAbstractCollection, register_async_backend
from vd.filters import matches_filter

from vd_integrations.core.errors import InvalidInputError, MilvusOperationError
from vd_integrations.core.filters import FieldRef, json_field, literal, translate_filter
from vd_integrations.core.scoring import normalize_metric
from vd_integrations.core.validation import as_float_list
from vd_integrations.milvus import hybrid
from vd_integrations.milvus.config import ConnectionConfig
from vd_integrations.milvus.engine import (
    MilvusEngine,
    Op,
    Rpc,
)
from vd_integrations.milvus.schema import CollectionLayout, CollectionSpec, Record

__all__ = [
    "MilvusAsyncClient",
    "MilvusAsyncCollection",
    "VdCollectionSpec",
    "VdLayout",
    "connect",
]

#: vd metric name -> Milvus metric_type (as in vd's sync backend).
METRICS: dict[str, str] = {"cosine": "COSINE", "dot": "IP", "l2": "L2"}
_VD_METRIC: dict[str, str] = {v: k for k, v in METRICS.items()}

# The constants of vd's sync milvus backend (vd.backends.milvus).
_ID_MAX_LENGTH = 512
_TEXT_MAX_LENGTH = 65_535
_SPARSE_FIELD = "text_sparse"
_BM25_FUNCTION = "text_bm25"
_METADATA = "metadata"
_TEXT = "text"

#: Ids fetched per ``query`` while iterating keys.
_KEYS_PAGE = 1000
#: Over-fetch factor when a filter must be evaluated client-side (vd's value).
_OVERFETCH = 10
#: ``text`` stored in a dynamic field has no VARCHAR limit.
_UNBOUNDED = sys.maxsize


def milvus_metric(metric: str) -> str:
    """The Milvus ``metric_type`` for a vd metric name; ``ValueError`` if unknown."""
    try:
        return METRICS[metric]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown metric {metric!r}. Valid values are: {', '.join(sorted(METRICS))}."
        ) from None


def vd_score(raw: float, metric: str) -> float:
    """vd's canonical, higher-is-better score for a raw Milvus score under ``metric``."""
    if normalize_metric(metric) == "L2":  # Milvus returns the squared distance
        return 1.0 / (1.0 + math.sqrt(max(float(raw), 0.0)))
    return float(raw)  # COSINE: similarity in [-1, 1]; IP: the inner product


def _metadata_ref(key: str) -> FieldRef:
    return json_field(_METADATA, key)


# --------------------------------------------------------------------------------------------
# Spec and layout: vd's sync schema, expressed for the engine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VdCollectionSpec(CollectionSpec):
    """A collection as vd's sync milvus backend creates it (``lexical`` adds BM25)."""

    lexical: bool = True

    @classmethod
    def for_vd(cls, name: str, metric: str = "cosine", *, lexical: bool = True) -> VdCollectionSpec:
        """The spec of vd collection ``name`` with vd metric ``metric``."""
        return cls(
            name=name,
            primary_field="id",
            text_field=_TEXT,
            vector_field="vector",
            metadata_field=_METADATA,
            enable_dynamic_field=True,
            consistency_level="Strong",
            index_params={"index_type": "AUTOINDEX", "metric_type": milvus_metric(metric)},
            lexical=lexical,
        )

    def layout_from_description(
        self, description: Mapping[str, Any], metric: str | None
    ) -> CollectionLayout:
        """An existing collection read in vd's layout (see :class:`VdLayout`)."""
        return VdLayout.from_vd_description(self, description, metric)

    def prospective_layout(self) -> CollectionLayout:
        """The layout vd's backend gives a new collection."""
        return VdLayout(
            name=self.name,
            primary_field=self.primary_field,
            pk_is_int=False,
            auto_id=False,
            text_field=_TEXT,
            vector_field=self.vector_field,
            dim=0,
            metric=self.index["metric_type"],
            dynamic=True,
            metadata_field=_METADATA,
            pk_max_length=_ID_MAX_LENGTH,
            text_max_length=_TEXT_MAX_LENGTH if self.lexical else _UNBOUNDED,
        )

    def build_schema(self, dim: int) -> Any:
        """vd's schema: ``id``, ``vector``, dynamic fields, and BM25 ``text`` if lexical."""
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field(
            self.primary_field, DataType.VARCHAR, is_primary=True, max_length=_ID_MAX_LENGTH
        )
        schema.add_field(self.vector_field, DataType.FLOAT_VECTOR, dim=dim)
        if self.lexical:
            schema.add_field(
                self.text_field,
                DataType.VARCHAR,
                max_length=_TEXT_MAX_LENGTH,
                enable_analyzer=True,
            )
            schema.add_field(_SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name=_BM25_FUNCTION,
                    input_field_names=[self.text_field],
                    output_field_names=[_SPARSE_FIELD],
                    function_type=FunctionType.BM25,
                )
            )
        return schema

    def field_indexes(self) -> list[tuple[str, Any]]:
        """One ``(field, IndexParams)`` per indexed field: the vector, and BM25 if lexical."""
        index = self.index
        vector = MilvusClient.prepare_index_params()
        vector.add_index(
            field_name=self.vector_field,
            index_type=index["index_type"],
            metric_type=index["metric_type"],
            params=index["params"],
        )
        out = [(self.vector_field, vector)]
        if self.lexical:
            sparse = MilvusClient.prepare_index_params()
            sparse.add_index(
                field_name=_SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25"
            )
            out.append((_SPARSE_FIELD, sparse))
        return out


@dataclass(frozen=True)
class VdLayout(CollectionLayout):
    """vd's row shape: ``text`` (column or dynamic) and one ``metadata`` dict (dynamic or JSON).

    Filters address ``metadata["key"]``; metadata keys are free (they are nested, so
    nothing is reserved), values must be JSON.
    """

    @classmethod
    def from_vd_description(
        cls, spec: CollectionSpec, description: Mapping[str, Any], metric: str | None
    ) -> VdLayout:
        """Interpret ``describe_collection`` output of a vd-layout collection."""
        fields = list(description.get("fields", []))
        by_name = {f["name"]: f for f in fields}
        primary = next((f for f in fields if f.get("is_primary")), None)
        if primary is None:
            raise InvalidInputError(f"Collection {spec.name!r} has no primary field.")
        dense = [f for f in fields if f.get("type") == DataType.FLOAT_VECTOR]
        vector = by_name.get(spec.vector_field) or (dense[0] if len(dense) == 1 else None)
        if vector is None:
            raise InvalidInputError(
                f"Collection {spec.name!r} has no float vector field {spec.vector_field!r}; "
                f"it was not created by vd."
            )
        dynamic = bool(description.get("enable_dynamic_field"))
        text = by_name.get(_TEXT)
        if not dynamic and (text is None or _METADATA not in by_name):
            raise InvalidInputError(
                f"Collection {spec.name!r} has no dynamic field and no {_TEXT!r}/{_METADATA!r} "
                f"columns, so it cannot hold vd documents; it was not created by vd."
            )
        hidden = {f["name"] for f in fields if "dim" in (f.get("params") or {})}
        hidden |= {f["name"] for f in fields if f.get("is_function_output")}
        return cls(
            name=spec.name,
            primary_field=primary["name"],
            pk_is_int=primary.get("type") in (DataType.INT64, DataType.INT32),
            auto_id=bool(description.get("auto_id") or primary.get("auto_id")),
            text_field=_TEXT,
            vector_field=vector["name"],
            dim=int((vector.get("params") or {}).get("dim", 0)),
            metric=normalize_metric(metric or spec.index["metric_type"]),
            dynamic=dynamic,
            metadata_field=_METADATA,
            pk_max_length=int((primary.get("params") or {}).get("max_length", _ID_MAX_LENGTH)),
            text_max_length=(
                int((text.get("params") or {}).get("max_length", _TEXT_MAX_LENGTH))
                if text is not None
                else _UNBOUNDED
            ),
            hidden_fields=frozenset(hidden),
            sparse_field=_SPARSE_FIELD if _SPARSE_FIELD in by_name else None,
            sparse_bm25=_SPARSE_FIELD in by_name,
        )

    @property
    def reserved_keys(self) -> frozenset[str]:
        """None: metadata is one nested dict, so any key is allowed."""
        return frozenset()

    def field_ref(self, key: str) -> FieldRef:
        """Every filter key is a key of the ``metadata`` dict."""
        return _metadata_ref(key)

    def output_fields(self, *, with_vector: bool = False) -> list[str]:
        """``text`` and ``metadata`` (static or dynamic), plus the vector if asked."""
        fields = [_TEXT, _METADATA]
        if with_vector:
            fields.append(self.vector_field)
        return fields

    def build_row(
        self, pk: str | int | None, text: str, vector: list[float], metadata: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The row vd's sync backend writes: ``{id, vector, text, metadata}``."""
        return {
            self.primary_field: pk,
            self.vector_field: vector,
            _TEXT: text,
            _METADATA: dict(metadata),
        }

    def record_from_entity(
        self, pk: Any, entity: Mapping[str, Any], score: float | None = None
    ) -> Record:
        """A :class:`Record` whose metadata is the stored ``metadata`` dict."""
        vector = entity.get(self.vector_field)
        return Record(
            id=str(pk),
            text=entity.get(_TEXT) or "",
            metadata=dict(entity.get(_METADATA) or {}),
            vector=None if vector is None else as_float_list(vector),
            score=score,
        )

    def check_metadata(self, index: int, metadata: Any) -> None:
        """Metadata must be a dict with string keys that survives a JSON round trip."""
        if not isinstance(metadata, Mapping):
            raise InvalidInputError(
                f"metadata #{index} must be a dict, got {type(metadata).__name__}."
            )
        for key in metadata:
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"metadata #{index} has key {key!r}; metadata keys must be strings."
                )
        try:
            json.dumps(metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"metadata #{index} cannot be stored in Milvus ({exc}); use str, int, float, "
                f"bool, None, or lists/dicts of those (no NaN or infinity)."
            ) from None


# --------------------------------------------------------------------------------------------
# Engine: vd's layout, and one index call per field
# --------------------------------------------------------------------------------------------


class _VdEngine(MilvusEngine):
    """A :class:`MilvusEngine` that reads and creates collections in vd's layout."""

    spec: VdCollectionSpec

    def key_page(self, after: Any, limit: int) -> Op[list[Any]]:
        """Up to ``limit`` primary keys greater than ``after`` (all if ``None``), ascending."""
        layout = yield from self.ready(loaded=True)
        if layout is None:
            return []
        pk = layout.primary_field
        expr = f"{pk} > {literal(after)}" if after is not None else ""
        rows = yield self.rpc(
            "query",
            collection_name=layout.name,
            filter=expr,
            output_fields=[pk],
            limit=limit,
            # Iterator mode makes Milvus return primary keys in ascending order (what
            # pymilvus' QueryIterator relies on), so keyset pagination sees every key.
            iterator="True",
            reduce_stop_for_best="True",
        )
        keys = [row[pk] for row in rows]
        if keys != sorted(keys):
            raise MilvusOperationError(
                f"Milvus ignored iterator mode while listing the keys of {layout.name!r} "
                f"(primary keys came back unordered); this server is too old (< 2.3)."
            )
        return keys


# --------------------------------------------------------------------------------------------
# vd collection and client
# --------------------------------------------------------------------------------------------


def _translatable(filter: Filter | None) -> bool:
    """Whether Milvus can evaluate ``filter`` (a vd filter already validated by vd)."""
    if not filter:
        return True
    try:
        translate_filter(filter, resolve=_metadata_ref)
    except UnsupportedFilterError:
        return False
    return True


def _hybrid_ranker_args(kwargs: dict[str, Any], rrf_k: int) -> tuple[str, Mapping[str, Any] | None]:
    """``(ranker, ranker_params)`` from ``hybrid_search``'s Milvus-specific kwargs."""
    ranker = kwargs.pop("ranker", None)
    params = kwargs.pop("ranker_params", None)
    shortcuts = {key: kwargs.pop(key) for key in ("weights", "alpha") if key in kwargs}
    if kwargs:
        raise TypeError(
            f"Unexpected hybrid_search arguments {sorted(kwargs)}; the milvus backend accepts "
            f"ranker='rrf'|'weighted', ranker_params={{...}}, weights=[dense, sparse], alpha=."
        )
    if shortcuts:
        if params is not None:
            raise ValueError("Pass weights/alpha or ranker_params, not both.")
        ranker, params = ranker or "weighted", shortcuts
    ranker = ranker or "rrf"
    if params is None and hybrid.make_ranker(ranker).kind == "rrf":
        params = {"k": rrf_k}
    return ranker, params


class MilvusAsyncCollection(AsyncAbstractCollection):
    """A vd collection over one Milvus collection, with non-blocking I/O.

    Satisfies :class:`vd.AsyncCollection` (``get``/``set``/``delete``/``keys``/
    ``count``/``search``/``add_documents``/``upsert``). ``native`` is the
    :class:`~vd_integrations.milvus.engine.MilvusEngine` (its ``aclient`` is the
    running loop's ``AsyncMilvusClient``).
    """

    def __init__(
        self,
        name: str,
        engine: _VdEngine,
        *,
        embedder: Callable[[str], Vector] | None = None,
        dimension: int | None = None,
        metric: str = "cosine",
    ) -> None:
        self.name = name
        self._engine = engine
        self._native = engine
        self._embedder = embedder
        self.dimension = dimension
        self.metric = metric

    def __repr__(self) -> str:
        return f"MilvusAsyncCollection(name={self.name!r}, metric={self.metric!r})"

    @property
    def engine(self) -> _VdEngine:
        """The engine doing this collection's I/O."""
        return self._engine

    # ----- raw primitives -------------------------------------------------------------------

    async def _write_many(self, docs: list[Document]) -> None:
        """Upsert ``docs``; for an id given twice the last document wins."""
        latest = list({doc.id: doc for doc in docs}.values())
        engine = self._engine
        await engine.arun(
            engine.add(
                [doc.text for doc in latest],
                vectors=[doc.vector for doc in latest],
                metadatas=[doc.metadata or {} for doc in latest],
                ids=[doc.id for doc in latest],
            )
        )

    async def _read(self, key: str) -> Document:
        if not isinstance(key, str):
            raise KeyError(key)
        engine = self._engine
        records = await engine.arun(engine.query(ids=[key], with_vectors=True))
        if not records:
            raise KeyError(key)
        record = records[0]
        return Document(
            id=record.id, text=record.text, vector=record.vector, metadata=record.metadata
        )

    async def _drop(self, key: str) -> None:
        if not isinstance(key, str):
            raise KeyError(key)
        engine = self._engine
        if not await engine.arun(engine.query(ids=[key], output_fields=[])):
            raise KeyError(key)
        await engine.arun(engine.delete(ids=[key]))

    async def _keys(self) -> AsyncIterator[str]:
        engine = self._engine
        after: Any = None
        while True:
            page = await engine.arun(engine.key_page(after, _KEYS_PAGE))
            for key in page:
                yield str(key)
            if len(page) < _KEYS_PAGE:
                return
            after = max(page)

    async def _count(self) -> int:
        return await self._engine.arun(self._engine.count())

    async def _query(
        self,
        vector: Vector,
        *,
        limit: int,
        filter: Filter | None,
        **kwargs: Any,
    ) -> list[SearchResult]:
        """Nearest neighbours, filtered server-side (client-side if Milvus cannot)."""
        search_params = kwargs.pop("search_params", None)
        if kwargs:
            raise TypeError(
                f"Unexpected search arguments {sorted(kwargs)}; the milvus backend accepts "
                f"search_params={{...}} (Milvus search parameters)."
            )
        if limit == 0:
            return []
        server_side = _translatable(filter)
        engine = self._engine
        hits = (
            await engine.arun(
                engine.search(
                    [vector],
                    k=limit if server_side or not filter else limit * _OVERFETCH,
                    filter=filter if server_side else None,
                    search_params=search_params,
                )
            )
        )[0]
        layout = engine.layout
        metric = layout.metric if layout is not None else milvus_metric(self.metric)
        results: list[SearchResult] = []
        for hit in hits:
            if not server_side and not matches_filter(hit.metadata, filter):
                continue
            results.append(
                {
                    "id": hit.id,
                    "text": hit.text,
                    "score": vd_score(hit.score or 0.0, metric),
                    "metadata": hit.metadata,
                }
            )
            if len(results) >= limit:
                break
        return results

    # ----- native hybrid search (vd.SupportsHybrid) -----------------------------------------

    async def hybrid_search(
        self,
        query: str | Vector,
        *,
        query_text: str | None = None,
        limit: int = 10,
        filter: Filter | None = None,
        k_dense: int | None = None,
        k_lexical: int | None = None,
        rrf_k: int = 60,
        egress: Callable[[SearchResult], Any] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[SearchResult]:
        """Dense + BM25 search fused by Milvus (``vd.hybrid_search_async`` dispatches here).

        The contract of :class:`vd.SupportsHybrid`; scores are fused RRF scores (vd's
        formula). Milvus-specific knobs: ``ranker="weighted"`` with ``weights=[dense,
        sparse]`` or ``alpha=a`` (weights ``[a, 1 - a]``), or ``ranker_params={...}``.
        A collection without the BM25 field (``lexical=False``), or a filter Milvus cannot
        express, falls back to vd's client-side BM25 and reciprocal rank fusion.
        """
        from vd.filters import validate_filter

        validate_filter(filter, supported=self.supported_filter_operators)
        ranker, params = _hybrid_ranker_args(kwargs, rrf_k)
        hybrid.make_ranker(ranker, params)  # bad knobs fail before any I/O
        if isinstance(query, str):
            text = query_text if query_text is not None else query
            vector = self._vet_vector(await self._embed_off_loop(query))
        elif query_text is None:
            raise ValueError(
                "hybrid_search needs a `query_text` for the lexical side when `query` is a "
                "vector. Either pass query_text=..., or pass `query` as a string and let the "
                "embedder handle both."
            )
        else:
            text, vector = query_text, self._vet_vector(query)
        if not isinstance(text, str) or not text.strip():
            raise ValueError("hybrid_search needs a non-empty lexical query string.")
        if limit <= 0:
            return
        k_dense = k_dense or hybrid.default_fetch_k(limit)
        k_lexical = k_lexical or hybrid.default_fetch_k(limit)
        engine = self._engine
        layout = await engine.arun(engine.ready(loaded=True))
        if layout is None:
            return
        if layout.sparse_field is not None and _translatable(filter):
            records = await engine.arun(
                engine.hybrid_search(
                    text,
                    vector=vector,
                    k=limit,
                    dense_k=k_dense,
                    sparse_k=k_lexical,
                    ranker=ranker,
                    ranker_params=params,
                    filter=filter,
                )
            )
            hits: list[SearchResult] = [
                {"id": r.id, "text": r.text, "score": r.score, "metadata": r.metadata}
                for r in records
            ]
        else:
            hits = await self._client_side_hybrid(
                vector, text, limit, filter, k_dense, k_lexical, ranker, params
            )
        for hit in hits:
            yield egress(hit) if egress is not None else hit

    async def _client_side_hybrid(
        self,
        vector: Vector,
        text: str,
        limit: int,
        filter: Filter | None,
        k_dense: int,
        k_lexical: int,
        ranker: Any,
        params: Mapping[str, Any] | None,
    ) -> list[SearchResult]:
        """vd's fallback: dense search + BM25 (Milvus' if the field exists, else vd's own
        over every document), fused client-side by reciprocal rank fusion."""
        import vd

        fusion = hybrid.make_ranker(ranker, params)
        if fusion.kind != "rrf":
            raise ValueError(
                "Weighted fusion needs Milvus' own hybrid search, which this collection or "
                "filter cannot use (no BM25 field, or a filter Milvus cannot express); use "
                "ranker='rrf'."
            )
        dense = await self._query(vector, limit=k_dense, filter=filter)
        engine = self._engine
        layout = engine.layout
        if layout is not None and layout.sparse_field is not None:
            fetch = k_lexical * _OVERFETCH if filter else k_lexical
            records = await engine.arun(engine.full_text_search(text, k=fetch))
            lexical = [
                {"id": r.id, "text": r.text, "score": r.score, "metadata": r.metadata}
                for r in records
                if not filter or matches_filter(r.metadata, filter)
            ][:k_lexical]
        else:
            docs = {key: await self.get(key) async for key in self.keys()}
            lexical = vd.BM25Index(docs, filter=filter).search(text, limit=k_lexical)
        fused = vd.reciprocal_rank_fusion([dense, lexical], k=fusion.k)[:limit]
        return [
            {**{k: v for k, v in hit.items() if k != "rrf_score"}, "score": hit["rrf_score"]}
            for hit in fused
        ]


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
        self._engines: dict[str, _VdEngine] = {}
        self._all_engines: list[_VdEngine] = []
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

    def _new_engine(self, spec: VdCollectionSpec) -> _VdEngine:
        engine = _VdEngine(spec, self.connection)
        self._all_engines.append(engine)
        return engine

    def _engine(self, name: str, metric: str = "cosine", *, lexical: bool = True) -> _VdEngine:
        engine = self._engines.get(name)
        if engine is None:
            engine = self._new_engine(VdCollectionSpec.for_vd(name, metric, lexical=lexical))
            self._engines[name] = engine
        return engine

    async def _exists(self, name: str) -> bool:
        return bool(await self._admin.arun(_call("has_collection", collection_name=name)))

    def _collection(
        self, name: str, engine: _VdEngine, *, dimension: int | None, metric: str
    ) -> MilvusAsyncCollection:
        return MilvusAsyncCollection(
            name, engine, embedder=self._embedder, dimension=dimension, metric=metric
        )

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
        metric = _VD_METRIC.get(layout.metric, "cosine")
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

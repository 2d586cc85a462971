"""A vd collection over one Milvus collection (:class:`MilvusAsyncCollection`): vd's raw
primitives, search and native hybrid search, each one operation of a ``MilvusEngine``.

vd filters are translated to Milvus expressions and evaluated server-side; one Milvus
cannot express falls back to over-fetching and filtering client-side (as vd's sync
backend always does). Scores follow vd's conventions (:func:`.vd_layout.vd_score`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from vd import Document, Filter, SearchResult, Vector
from vd.asynchronous import AsyncAbstractCollection
from vd.filters import matches_filter

from vd_integrations.core.errors import MilvusOperationError
from vd_integrations.core.filters import literal
from vd_integrations.milvus.engine import MilvusEngine, Op
from vd_integrations.milvus.hybrid import default_fetch_k
from vd_integrations.milvus.rankers import make_ranker
from vd_integrations.milvus.vd_layout import evaluable_by_milvus, milvus_metric, vd_score

__all__ = ["MilvusAsyncCollection"]

#: Ids fetched per ``query`` while iterating keys.
_KEYS_PAGE = 1000
#: Over-fetch factor when a filter must be evaluated client-side (vd's value).
_OVERFETCH = 10


def _key_page(engine: MilvusEngine, after: Any, limit: int) -> Op[list[Any]]:
    """Up to ``limit`` primary keys greater than ``after`` (all if ``None``), ascending."""
    layout = yield from engine.ready(loaded=True)
    if layout is None:
        return []
    pk = layout.primary_field
    expr = f"{pk} > {literal(after)}" if after is not None else ""
    rows = yield engine.rpc(
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
    if params is None and make_ranker(ranker).kind == "rrf":
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
        engine: MilvusEngine,
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
    def engine(self) -> MilvusEngine:
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
            page = await engine.arun(_key_page(engine, after, _KEYS_PAGE))
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
        server_side = evaluable_by_milvus(filter)
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
        make_ranker(ranker, params)  # bad knobs fail before any I/O
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
        k_dense = k_dense or default_fetch_k(limit)
        k_lexical = k_lexical or default_fetch_k(limit)
        engine = self._engine
        layout = await engine.arun(engine.ready(loaded=True))
        if layout is None:
            return
        if layout.sparse_field is not None and evaluable_by_milvus(filter):
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

        fusion = make_ranker(ranker, params)
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

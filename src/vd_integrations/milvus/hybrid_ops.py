"""The hybrid (dense + sparse, fused by Milvus) and full-text (sparse-only) searches as
operations of the Milvus engine; the requests and hits they build on are :mod:`.hybrid`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymilvus import AnnSearchRequest

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import FilterLike
from vd_integrations.core.ops import EmbedQuery, Op
from vd_integrations.core.validation import check_positive_int, check_vectors
from vd_integrations.milvus import hybrid
from vd_integrations.milvus.reads import ReadOps
from vd_integrations.milvus.schema import Record
from vd_integrations.milvus.vector_fields import one_vector_field

__all__ = ["HybridOps"]


class HybridOps(ReadOps):
    """Hybrid and full-text searches as operations (generators of steps:
    :mod:`vd_integrations.core.ops`). Scores are higher-is-better (see :mod:`.hybrid`)."""

    def hybrid_search(
        self,
        query: str | None = None,
        *,
        k: int,
        vector: Sequence[float] | None = None,
        sparse_vector: Any = None,
        dense_k: int | None = None,
        sparse_k: int | None = None,
        ranker: Any = "rrf",
        ranker_params: Mapping[str, Any] | None = None,
        filter: FilterLike = None,
        search_params: Mapping[str, Any] | None = None,
        sparse_search_params: Mapping[str, Any] | None = None,
    ) -> Op[list[Record]]:
        """Dense + sparse search fused by Milvus (RRF or weighted); ``k`` results, each leg
        fetching ``dense_k`` / ``sparse_k`` candidates (default
        :func:`~.hybrid.default_fetch_k`) under the same ``filter``. The query is embedded
        unless ``vector`` is given; the sparse leg sends ``query`` (BM25) or
        ``sparse_vector`` (user-supplied sparse field). Scores are the fused score."""
        dense_k, sparse_k = hybrid.fetch_sizes(k, dense_k, sparse_k)
        hybrid.check_topk(k=k, dense_k=dense_k, sparse_k=sparse_k)
        fusion = hybrid.make_ranker(ranker, ranker_params)
        hybrid.check_query(query)
        if vector is None and query is None:
            raise InvalidInputError("hybrid_search needs a query string (or a query vector).")
        layout = yield from self.ready(loaded=True)
        if layout is None:
            self.compile_filter(filter)
            return []
        hybrid.require_sparse(layout)
        sparse = hybrid.sparse_query_data(layout, query, sparse_vector)
        if vector is None:
            assert query is not None  # refused above when both are None
            vector = yield EmbedQuery(query)
        (dense,) = check_vectors([vector], dim=layout.dim, what="query vector")
        expr = self.compile_filter(filter, layout)
        request = hybrid.hybrid_request(
            layout,
            dense,
            sparse,
            k=k,
            dense_k=dense_k,
            sparse_k=sparse_k,
            ranker=fusion,
            expr=expr,
            search_params=(self.spec.search_params, search_params),
            sparse_search_params=sparse_search_params,
        )
        try:
            results = yield self.rpc("hybrid_search", **request, **self.partition_kwargs())
        except Exception as exc:  # name the filter in the error, as plain searches do
            raise self.map_error(exc, self.rpc("hybrid_search", filter=expr)) from exc
        return hybrid.parse_hits(layout, results[0] if results else [])

    def full_text_search(
        self,
        query: str | None = None,
        *,
        k: int,
        sparse_vector: Any = None,
        filter: FilterLike = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> Op[list[Record]]:
        """Full-text search: the ``k`` best BM25 matches of ``query`` (or, on a
        user-supplied sparse field, the ``k`` nearest to ``sparse_vector``); scores are
        BM25 scores (inner products), higher is better."""
        check_positive_int(k)
        hybrid.check_topk(k=k)
        hybrid.check_query(query)
        layout = yield from self.ready(loaded=True)
        if layout is None:
            self.compile_filter(filter)
            return []
        hybrid.require_sparse(layout)
        sparse = hybrid.sparse_query_data(layout, query, sparse_vector)
        request = hybrid.sparse_request(
            layout,
            sparse,
            k=k,
            expr=self.compile_filter(filter, layout),
            search_params=search_params,
        )
        results = yield self.rpc("search", **request, **self.partition_kwargs())
        return hybrid.parse_hits(layout, results[0] if results else [], bm25=layout.sparse_bm25)

    def search_fields(
        self,
        query: str,
        *,
        k: int,
        fetch_k: int | None = None,
        ranker: Any = "rrf",
        ranker_params: Mapping[str, Any] | None = None,
        filter: FilterLike = None,
        search_params: Sequence[Mapping[str, Any] | None] | Mapping[str, Any] | None = None,
    ) -> Op[list[Record]]:
        """Search ``query`` in every vector field of a store with typed vector fields
        (:attr:`CollectionSpec.vectors`): each field the embedding functions fill (the
        query embedded once per function) and the BM25 field (the text), ``fetch_k``
        candidates each, fused by ``ranker`` (one weight per field, in that order) into
        ``k`` results. One field alone is a plain search (BM25 alone: full-text search).
        ``search_params``: one dict per field, in the same order (None: the fields' own)."""
        legs = len(self.spec.vectors or ()) + (self.spec.sparse is not None)
        if isinstance(search_params, Mapping) or search_params is None:
            per_leg: list[Mapping[str, Any] | None] = [search_params] * legs
        else:
            per_leg = list(search_params)
            if len(per_leg) != legs:
                raise InvalidInputError(
                    f"param has {len(per_leg)} search params, but the store searches {legs} "
                    f"vector fields; pass one dict per field, in order (or one dict for all)."
                )
        if legs == 1 and self.spec.sparse is not None:
            return (yield from self.full_text_search(query, k=k, filter=filter))
        if legs == 1:
            check_positive_int(k)
            hybrid.check_query(query)
            vector = yield EmbedQuery(query)
            hits = yield from self.search([vector], k=k, filter=filter, search_params=per_leg[0])
            return hits[0]
        fetch_k, _ = hybrid.fetch_sizes(k, fetch_k, None)
        hybrid.check_topk(k=k, fetch_k=fetch_k)
        fusion = hybrid.make_ranker(ranker, ranker_params, legs=legs)
        hybrid.check_query(query)
        layout = yield from self.ready(loaded=True)
        if layout is None:
            self.compile_filter(filter)
            return []
        fields = layout.vectors or ()
        expr = self.compile_filter(filter, layout)
        reqs = []
        if fields:
            embedded = yield EmbedQuery(query)
            values = embedded if len(fields) > 1 else [embedded]
            if len(values) != len(fields):  # pragma: no cover - one value per embedder
                one_vector_field(layout.name, fields)
            for field, value, extra in zip(fields, values, per_leg, strict=False):
                reqs.append(
                    AnnSearchRequest(
                        data=[field.encode(value, dim=field.dim, what="query vector")],
                        anns_field=field.name,
                        param=field.search_param(extra),
                        limit=fetch_k,
                        expr=expr or None,
                    )
                )
        if layout.sparse_field is not None and self.spec.sparse is not None:
            sparse = hybrid.sparse_query_data(layout, query, None)
            reqs.append(
                AnnSearchRequest(
                    data=[sparse],
                    anns_field=layout.sparse_field,
                    param=hybrid.sparse_params(
                        layout, per_leg[-1] or self.spec.sparse.search_params
                    ),
                    limit=fetch_k,
                    expr=expr or None,
                )
            )
        results = yield self.rpc(
            "hybrid_search",
            collection_name=layout.name,
            reqs=reqs,
            ranker=fusion.to_pymilvus(),
            limit=k,
            output_fields=layout.output_fields(),
            **self.partition_kwargs(),
        )
        return hybrid.parse_hits(layout, results[0] if results else [])

"""Read operations on one Milvus collection: search (nq vectors), search by text, MMR,
scalar queries and count (the hybrid / full-text searches are :mod:`.hybrid_ops`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import FilterLike, and_exprs, ids_expr
from vd_integrations.core.mmr import maximal_marginal_relevance
from vd_integrations.core.ops import EmbedQuery, Op
from vd_integrations.core.validation import check_positive_int, check_vectors
from vd_integrations.milvus.base import EngineBase
from vd_integrations.milvus.result_vectors import take_float_vectors
from vd_integrations.milvus.schema import Record
from vd_integrations.milvus.vector_fields import one_vector_field

__all__ = ["ReadOps"]


class ReadOps(EngineBase):
    """Searches and queries as operations (generators of steps: :mod:`vd_integrations.core.ops`)."""

    def search(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        k: int,
        filter: FilterLike = None,
        with_vectors: bool = False,
        search_params: Mapping[str, Any] | None = None,
    ) -> Op[list[list[Record]]]:
        """Nearest neighbours of each vector (``nq = len(vectors)``), with raw Milvus scores."""
        results = yield from self._search_hits(
            vectors, k=k, filter=filter, with_vectors=with_vectors, search_params=search_params
        )
        return [self._records(hits) for hits in results]

    def _search_hits(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        k: int,
        filter: FilterLike,
        with_vectors: bool,
        search_params: Mapping[str, Any] | None,
    ) -> Op[Sequence[Any]]:
        """One search RPC; its answer as pymilvus gives it (one list of hits per vector)."""
        check_positive_int(k)
        layout = yield from self.ready(loaded=True)
        if layout is None:
            self.compile_filter(filter)
            if self.spec.vectors is None:
                check_vectors(vectors, dim=None, what="query vector")
            else:
                field = one_vector_field(self.spec.name, self.spec.vectors)
                for vector in vectors:
                    field.encode(vector, dim=None, what="query vector")
            return [[] for _ in vectors]
        expr = self.compile_filter(filter, layout)
        if layout.vectors is None:
            data: list[Any] = check_vectors(vectors, dim=layout.dim, what="query vector")
            params: dict[str, Any] = {"metric_type": layout.metric, "params": {}}
            for extra in (self.spec.search_params, search_params):
                if extra:
                    params.update({k2: v for k2, v in extra.items() if k2 != "params"})
                    params["params"] = {**params["params"], **dict(extra.get("params") or {})}
        else:  # typed vector fields: one of them, each query in its type
            field = one_vector_field(layout.name, layout.vectors)
            data = [field.encode(v, dim=field.dim, what="query vector") for v in vectors]
            params = field.search_param(search_params)
        return (
            yield self.rpc(
                "search",
                collection_name=layout.name,
                data=data,
                anns_field=layout.vectors[0].name if layout.vectors else layout.vector_field,
                limit=k,
                filter=expr,
                output_fields=layout.output_fields(with_vector=with_vectors),
                search_params=params,
                **self.partition_kwargs(),
            )
        )

    def _records(self, hits: Any) -> list[Record]:
        """One query's hits as records (``hits`` is empty if the collection does not exist)."""
        layout = self.layout
        if layout is None:
            return []
        pk = layout.primary_field
        return [
            layout.record_from_entity(
                hit[pk] if pk in hit else hit.get("id"),
                hit.get("entity") or {},
                float(hit.get("distance", 0.0)),
            )
            for hit in hits
        ]

    def search_text(
        self, query: str, *, k: int, filter: FilterLike = None, **kwargs: Any
    ) -> Op[list[Record]]:
        """Embed ``query`` and search."""
        check_positive_int(k)
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a str, got {type(query).__name__}.")
        vector = yield EmbedQuery(query)
        return (yield from self.search([vector], k=k, filter=filter, **kwargs))[0]

    def mmr(
        self,
        vector: Sequence[float] | None = None,
        *,
        query: str | None = None,
        k: int,
        fetch_k: int,
        lambda_mult: float = 0.5,
        filter: FilterLike = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> Op[list[Record]]:
        """Maximal marginal relevance over the ``fetch_k`` nearest, in the index's metric."""
        check_positive_int(k)
        check_positive_int(fetch_k, "fetch_k")
        if not 0.0 <= float(lambda_mult) <= 1.0:
            raise InvalidInputError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}.")
        if self.spec.vectors is not None:  # one vector field, checked before any embedding
            one_vector_field(self.spec.name, self.spec.vectors)
        if vector is None:
            if not isinstance(query, str):
                raise InvalidInputError("mmr needs a query string or a query vector.")
            vector = yield EmbedQuery(query)
        found = (
            yield from self._search_hits(
                [vector],
                k=max(fetch_k, k),
                filter=filter,
                with_vectors=True,
                search_params=search_params,
            )
        )[0]
        layout = self.layout
        if layout is None or not found:
            return []
        if layout.vectors is not None and not layout.vectors[0].dtype.name.startswith(
            ("FLOAT", "BFLOAT")
        ):
            raise InvalidInputError(
                f"Max marginal relevance needs a float vector field; {layout.vectors[0].name!r} "
                f"holds {layout.vectors[0].dtype.name}."
            )
        candidates: Any = take_float_vectors(found, layout.vector_field)
        hits = self._records(found)
        if candidates is None:  # read as lists: every hit carries its vector
            candidates = [h.vector for h in hits]
        order = maximal_marginal_relevance(
            list(vector),
            candidates,
            k=k,
            lambda_mult=lambda_mult,
            metric=layout.metric,
        )
        return [hits[i] for i in order]

    def query(
        self,
        filter: FilterLike = None,
        *,
        ids: Sequence[Any] | None = None,
        limit: int | None = None,
        output_fields: Sequence[str] | None = None,
        with_vectors: bool = False,
    ) -> Op[list[Record]]:
        """Scalar query by filter and/or ids. ``output_fields=[]`` returns ids only."""
        if limit is not None:
            check_positive_int(limit, "limit")
        layout = yield from self.ready(loaded=True)
        if layout is None:
            self.compile_filter(filter)
            return []
        parts = []
        if ids is not None:
            ids = list(ids)
            if not ids:
                return []
            parts.append(ids_expr(layout.primary_field, [layout.encode_id(i) for i in ids]))
        parts.append(self.compile_filter(filter, layout))
        expr = and_exprs(*parts) or ""
        if output_fields is None:
            fields = layout.output_fields(with_vector=with_vectors)
        else:
            fields = [layout.primary_field, *output_fields]
        kwargs: dict[str, Any] = {"collection_name": layout.name, "filter": expr}
        kwargs["output_fields"] = fields
        if limit is not None:
            kwargs["limit"] = limit
        elif not expr:
            kwargs["limit"] = 16_384  # Milvus' query window; an empty filter requires a limit
        rows = yield self.rpc("query", **kwargs, **self.partition_kwargs())
        pk = layout.primary_field
        return [layout.record_from_entity(row[pk], row) for row in rows]

    def count(self) -> Op[int]:
        """Number of entities in the collection (0 if it does not exist)."""
        layout = yield from self.ready(loaded=True)
        if layout is None:
            return 0
        rows = yield self.rpc(
            "query", collection_name=layout.name, filter="", output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"]) if rows else 0

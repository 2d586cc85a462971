"""A ``SearchPlan`` run on the Milvus engine: dense, MMR, hybrid (dense + sparse) or sparse only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_vd._search_plan import SearchPlan
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import Op
from vd_integrations.milvus.engine import MilvusEngine
from vd_integrations.milvus.rankers import Ranker, make_ranker
from vd_integrations.milvus.schema import Record

__all__ = ["RANKERS", "check_search_options", "search_records", "store_ranker"]

#: The ``hybrid_ranker`` names MilvusVectorStore takes (LlamaIndex's).
RANKERS = ("RRFRanker", "WeightedRanker")


def store_ranker(hybrid_ranker: Any, hybrid_ranker_params: Mapping[str, Any] | None) -> Ranker:
    """The store's fusion of hybrid results, from its ``hybrid_ranker`` arguments."""
    if hybrid_ranker not in RANKERS:
        raise InvalidInputError(f"hybrid_ranker must be one of {RANKERS}, got {hybrid_ranker!r}.")
    return make_ranker(
        hybrid_ranker,
        hybrid_ranker_params,
        ranker_arg="hybrid_ranker",
        params_arg="hybrid_ranker_params",
    )


def check_search_options(
    plan: SearchPlan,
    query: VectorStoreQuery,
    kwargs: Mapping[str, Any],
    *,
    ranker: Ranker,
    embedding_field: str,
) -> None:
    """Refuse, before any I/O, what the store cannot honour: fusion settings ``ranker``
    rejects, ``milvus_scalar_filters``, a query for another vector field."""
    if plan.hybrid:
        make_ranker(ranker, alpha=plan.alpha)
    if kwargs.get("milvus_scalar_filters") is not None:
        raise NotImplementedError(
            "milvus_scalar_filters is not supported; express the condition with "
            "MetadataFilters or pass a Milvus expression as string_expr."
        )
    if query.embedding_field not in (None, embedding_field):
        raise InvalidInputError(
            f"This store searches its vector field {embedding_field!r}, not "
            f"{query.embedding_field!r}."
        )


def search_records(
    engine: MilvusEngine,
    plan: SearchPlan,
    expr: str | None,
    *,
    ranker: Ranker,
    search_params: Mapping[str, Any] | None,
    sparse_query: Any = None,
) -> Op[list[Record]]:
    """The records ``plan`` finds among the rows matching ``expr``.

    ``ranker`` fuses hybrid results (weighted ``[alpha, 1 - alpha]`` when the plan has an
    ``alpha``); ``sparse_query`` is the query's caller-computed sparse vector, if any.
    """
    if plan.hybrid:
        return (
            yield from engine.hybrid_search(
                plan.query_str,
                vector=plan.vector,
                sparse_vector=sparse_query,
                k=plan.k,
                dense_k=plan.dense_k,
                sparse_k=plan.sparse_k,
                ranker=make_ranker(ranker, alpha=plan.alpha),
                filter=expr,
                search_params=search_params,
            )
        )
    if plan.sparse_only:
        return (
            yield from engine.full_text_search(
                plan.query_str, sparse_vector=sparse_query, k=plan.k, filter=expr
            )
        )
    if plan.mmr:
        return (
            yield from engine.mmr(
                plan.vector,
                k=plan.k,
                fetch_k=plan.fetch_k or plan.k,
                lambda_mult=plan.lambda_mult,
                filter=expr,
                search_params=search_params,
            )
        )
    hits = yield from engine.search(
        [plan.query_vector], k=plan.k, filter=expr, search_params=search_params
    )
    return hits[0]

"""Hybrid (dense + BM25) and full-text search for Milvus as pure code: requests and hits.

Milvus 2.5+ and Milvus Lite 3.x compute BM25 server side: a built-in function turns an
analyzed VARCHAR field into a sparse vector, and ``hybrid_search`` fuses one dense and
one sparse search with an RRF or weighted ranker. This module holds what is pure in that
(no I/O, no engine); the operations that send the requests are
:class:`~vd_integrations.milvus.hybrid_ops.HybridOps` (methods of ``MilvusEngine``), and
the generic vd stores' fallback is :mod:`vd_integrations.vd.hybrid`:

- :class:`SparseSpec` -- the schema addition (see :mod:`.sparse`), and
  :func:`sparse_spec_from_builtin` to read one from a ``BM25BuiltInFunction``;
- :class:`Ranker` / :func:`make_ranker` (from :mod:`.rankers`) -- ``"rrf"`` (``k``) or
  ``"weighted"`` (``weights`` or ``alpha``), validated before any I/O;
- :func:`fetch_sizes`, :func:`hybrid_request`, :func:`sparse_request` -- the requests of
  a hybrid search (a dense and a sparse leg, each with its own limit and the same filter)
  and of a full-text (sparse-only) search; :func:`parse_hits` -- their hits as records;
- :func:`with_sparse_vectors` -- adds caller-computed sparse vectors to written rows;
- :func:`full_text_support_problem` -- whether a server version has BM25 / sparse fields.

Scores are "higher is better" everywhere: a hybrid hit carries the ranker's fused score
(RRF: ``sum(1 / (k + rank))``; weighted: the weighted sum of each leg's normalised
score), a BM25 hit its BM25 score. Milvus Lite 3.x reports BM25 scores negated (as
distances, lower is better); a real server reports them positive. Both become the
positive score here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pymilvus import AnnSearchRequest, FunctionType

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import Op
from vd_integrations.core.validation import check_positive_int
from vd_integrations.milvus.rankers import DEFAULT_RRF_K, MAX_TOPK, Ranker, make_ranker
from vd_integrations.milvus.schema import CollectionLayout, Record
from vd_integrations.milvus.server_versions import is_milvus_lite, release
from vd_integrations.milvus.sparse import SparseSpec, check_sparse_vector

__all__ = [
    "DEFAULT_RRF_K",
    "MAX_TOPK",
    "Ranker",
    "SparseSpec",
    "bm25_score",
    "check_query",
    "check_sparse_vector",
    "check_topk",
    "default_fetch_k",
    "dense_params",
    "fetch_sizes",
    "full_text_support_problem",
    "hybrid_request",
    "make_ranker",
    "parse_hits",
    "require_sparse",
    "sparse_params",
    "sparse_query_data",
    "sparse_request",
    "sparse_spec_from_builtin",
    "with_sparse_vectors",
]

T = TypeVar("T")


def default_fetch_k(k: int) -> int:
    """Candidates each leg fetches before fusion when the caller does not say: ``4 * k``,
    at least 20 (langchain-milvus' fixed 4 starves the fusion)."""
    return min(max(4 * k, 20), MAX_TOPK)


# --------------------------------------------------------------------------------------------
# Schema: the sparse side read from a BM25 built-in function
# --------------------------------------------------------------------------------------------


def sparse_spec_from_builtin(function: Any, *, text_field: str) -> SparseSpec:
    """A :class:`SparseSpec` from a ``BM25BuiltInFunction`` (ours, langchain-milvus' or
    LlamaIndex's: anything with a BM25 pymilvus ``function`` and analyzer attributes)."""
    inner: Any = getattr(function, "function", None)
    if getattr(inner, "type", None) != FunctionType.BM25:
        raise NotImplementedError(
            f"Only the BM25 built-in function is supported, got {type(function).__name__}; "
            f"pass BM25BuiltInFunction(...)."
        )
    inputs = _as_list(inner.input_field_names)
    outputs = _as_list(inner.output_field_names)
    if len(inputs) != 1 or len(outputs) != 1:
        raise InvalidInputError(
            f"A BM25 function reads one text field and writes one sparse field, got inputs "
            f"{inputs} and outputs {outputs}."
        )
    if inputs[0] != text_field:
        raise InvalidInputError(
            f"The BM25 function reads {inputs[0]!r}, but the store's text field is "
            f"{text_field!r}; pass BM25BuiltInFunction(input_field_names={text_field!r}) or "
            f"text_field={inputs[0]!r}."
        )
    return SparseSpec(
        field=outputs[0],
        bm25=True,
        function_name=getattr(inner, "name", None),
        analyzer_params=getattr(function, "analyzer_params", None),
        multi_analyzer_params=getattr(function, "multi_analyzer_params", None),
        enable_match=bool(getattr(function, "enable_match", False)),
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


# --------------------------------------------------------------------------------------------
# Requests: validation, the legs' parameters and the request arguments
# --------------------------------------------------------------------------------------------


def fetch_sizes(k: int, dense_k: int | None, sparse_k: int | None) -> tuple[int, int]:
    """``(dense_k, sparse_k)``: the candidates each leg fetches, checked, or
    :func:`default_fetch_k` of ``k`` (checked too) when not given."""
    check_positive_int(k)
    dense_k = default_fetch_k(k) if dense_k is None else check_positive_int(dense_k, "dense_k")
    sparse_k = default_fetch_k(k) if sparse_k is None else check_positive_int(sparse_k, "sparse_k")
    return dense_k, sparse_k


def check_topk(**limits: int) -> None:
    """Refuse any of ``limits`` (name -> value) above Milvus' topk limit."""
    for name, value in limits.items():
        if value > MAX_TOPK:
            raise InvalidInputError(f"{name} must be at most {MAX_TOPK} (Milvus' topk limit).")


def check_query(query: Any) -> None:
    """``query`` must be a ``str`` or None."""
    if query is not None and not isinstance(query, str):
        raise InvalidInputError(f"query must be a str, got {type(query).__name__}.")


def dense_params(layout: CollectionLayout, *extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Search params for the dense leg: the metric, then ``extra`` dicts merged in order."""
    params: dict[str, Any] = {"metric_type": layout.metric, "params": {}}
    for more in extra:
        if more:
            params.update({k: v for k, v in more.items() if k != "params"})
            params["params"] = {**params["params"], **dict(more.get("params") or {})}
    return params


def sparse_params(layout: CollectionLayout, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Search params for the sparse leg (``BM25`` or ``IP``), with ``extra`` merged in."""
    params: dict[str, Any] = {"metric_type": "BM25" if layout.sparse_bm25 else "IP", "params": {}}
    if extra:
        params.update({k: v for k, v in extra.items() if k not in ("params", "metric_type")})
        params["params"] = dict(extra.get("params") or {})
    return params


def require_sparse(layout: CollectionLayout) -> str:
    """The collection's sparse field, or a clear error saying how to get one."""
    if layout.sparse_field is None:
        raise InvalidInputError(
            f"Collection {layout.name!r} has no sparse (BM25) field, so it cannot do "
            f"full-text or hybrid search. Create it with one: LangChain "
            f"Milvus(..., builtin_function=BM25BuiltInFunction()), LlamaIndex "
            f"MilvusVectorStore(..., enable_sparse=True); an existing collection cannot gain "
            f"one, so use a new collection_name (or drop_old=True / overwrite=True). BM25 "
            f"needs Milvus 2.5+ or Milvus Lite 3.x."
        )
    return layout.sparse_field


def sparse_query_data(
    layout: CollectionLayout, query: str | None, sparse_vector: Any
) -> str | dict[int, float]:
    """What the sparse leg sends: the query text (BM25) or the checked sparse query vector."""
    if layout.sparse_bm25:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(
                "Full-text (BM25) search needs a non-empty query string for the sparse leg."
            )
        return query
    if sparse_vector is None:
        raise InvalidInputError(
            f"The sparse field {layout.sparse_field!r} of collection {layout.name!r} holds "
            f"user-supplied sparse vectors, not a BM25 function; pass sparse_vector= (the "
            f"query encoded by your sparse embedding function)."
        )
    return check_sparse_vector(sparse_vector, "sparse query vector")


def hybrid_request(
    layout: CollectionLayout,
    dense: list[float],
    sparse: str | dict[int, float],
    *,
    k: int,
    dense_k: int,
    sparse_k: int,
    ranker: Ranker,
    expr: str,
    search_params: Sequence[Mapping[str, Any] | None] = (),
    sparse_search_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The arguments of ``hybrid_search`` (partitions aside): a dense leg of ``dense_k``
    candidates (``search_params`` merged in order) and a sparse leg of ``sparse_k`` (the
    text or vector of :func:`sparse_query_data`), both under ``expr``, fused by
    ``ranker`` into ``k`` hits."""
    reqs = [
        AnnSearchRequest(
            data=[dense],
            anns_field=layout.vector_field,
            param=dense_params(layout, *search_params),
            limit=dense_k,
            expr=expr or None,
        ),
        AnnSearchRequest(
            data=[sparse],
            anns_field=require_sparse(layout),
            param=sparse_params(layout, sparse_search_params),
            limit=sparse_k,
            expr=expr or None,
        ),
    ]
    return {
        "collection_name": layout.name,
        "reqs": reqs,
        "ranker": ranker.to_pymilvus(),
        "limit": k,
        "output_fields": layout.output_fields(),
    }


def sparse_request(
    layout: CollectionLayout,
    sparse: str | dict[int, float],
    *,
    k: int,
    expr: str,
    search_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The arguments of the full-text (sparse-only) ``search`` (partitions aside): the
    ``k`` best matches of ``sparse`` (see :func:`sparse_query_data`) under ``expr``."""
    return {
        "collection_name": layout.name,
        "data": [sparse],
        "anns_field": require_sparse(layout),
        "limit": k,
        "filter": expr,
        "output_fields": layout.output_fields(),
        "search_params": sparse_params(layout, search_params),
    }


# --------------------------------------------------------------------------------------------
# Results and servers
# --------------------------------------------------------------------------------------------


def bm25_score(raw: float) -> float:
    """A BM25 hit's score, positive and higher-is-better on any server (Milvus Lite 3.x
    reports it negated)."""
    return abs(float(raw))


def parse_hits(
    layout: CollectionLayout, hits: Iterable[Mapping[str, Any]], *, bm25: bool = False
) -> list[Record]:
    """Search hits as records, scored higher-is-better (``bm25``: the BM25 score)."""
    pk = layout.primary_field
    out = []
    for hit in hits:
        raw = float(hit.get("distance", 0.0))
        out.append(
            layout.record_from_entity(
                hit[pk] if pk in hit else hit.get("id"),
                hit.get("entity") or {},
                bm25_score(raw) if bm25 else raw,
            )
        )
    return out


def full_text_support_problem(version: str, *, bm25: bool = True) -> str | None:
    """Why a server of ``version`` (``get_server_version()``) cannot hold a BM25 (or, with
    ``bm25=False``, a sparse vector) field, or None when it can or the version is unknown."""
    text = str(version).strip()
    found = release(text)
    if found is None:
        return None  # e.g. Zilliz Cloud: let the server decide
    if is_milvus_lite(text):
        needed, name = ((2, 5), "Milvus Lite 3.x") if bm25 else ((2, 4), "Milvus Lite 2.4+")
    else:
        needed, name = ((2, 5), "Milvus 2.5+") if bm25 else ((2, 4), "Milvus 2.4+")
    if found >= needed:
        return None
    what = "BM25 full-text search (a built-in function)" if bm25 else "sparse vector fields"
    return f"this server ({text}) has no {what}; it needs {name}"


# --------------------------------------------------------------------------------------------
# Writes: caller-computed sparse vectors
# --------------------------------------------------------------------------------------------


def with_sparse_vectors(op: Op[T], field: str, pk_field: str, vectors: Mapping[Any, Any]) -> Op[T]:
    """Run ``op`` (a write), adding ``vectors[row[pk_field]]`` as ``row[field]`` to every
    row of its ``insert`` / ``upsert`` steps (caller-computed sparse vectors)."""
    checked = {
        key: check_sparse_vector(v, f"sparse vector of {key!r}") for key, v in vectors.items()
    }
    try:
        step = next(op)
        while True:
            if getattr(step, "method", None) in ("insert", "upsert"):
                rows = [
                    {**row, field: checked[row[pk_field]]} if row.get(pk_field) in checked else row
                    for row in step.kwargs["data"]
                ]
                step = dataclasses.replace(step, kwargs={**step.kwargs, "data": rows})
            try:
                result = yield step
            except Exception as exc:
                step = op.throw(exc)
            else:
                step = op.send(result)
    except StopIteration as stop:
        return stop.value
    finally:
        op.close()

"""Hybrid (dense + BM25) and full-text search for the Milvus engine, written once.

Milvus 2.5+ and Milvus Lite 3.x compute BM25 server side: a built-in function turns an
analyzed VARCHAR field into a sparse vector, and ``hybrid_search`` fuses one dense and
one sparse search with an RRF or weighted ranker. This module holds every piece of
that, pure or as engine operations (generators of steps, driven sync by
``MilvusEngine.run`` and natively async by ``MilvusEngine.arun``):

- :class:`SparseSpec` -- the schema addition: the analyzed text field's options, the
  sparse field, the BM25 function (or none, for sparse vectors the caller computes)
  and the sparse index;
- :class:`Ranker` / :func:`make_ranker` -- ``"rrf"`` (``k``) or ``"weighted"``
  (``weights`` or ``alpha``), validated before any I/O;
- :func:`hybrid_search` -- a dense leg and a sparse leg, each with its own limit and
  the same filter, fused by Milvus; :func:`sparse_search` -- full-text (BM25-only);
- :func:`with_sparse_vectors` -- adds caller-computed sparse vectors to written rows;
- :func:`vd_hybrid_search` / :func:`vd_text_search` -- the generic stores' fallback
  (vd's client-side BM25 + reciprocal rank fusion) over a ``VdEngine``.

Scores are "higher is better" everywhere: a hybrid hit carries the ranker's fused score
(RRF: ``sum(1 / (k + rank))``; weighted: the weighted sum of each leg's normalised
score), a BM25 hit its BM25 score. Milvus Lite 3.x reports BM25 scores negated (as
distances, lower is better); a real server reports them positive. Both become the
positive score here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pymilvus import AnnSearchRequest, FunctionType

from vd_integrations.core.errors import InvalidInputError, MilvusOperationError
from vd_integrations.core.filters import FilterLike
from vd_integrations.core.ops import EmbedQuery, Op
from vd_integrations.core.validation import (
    FLOAT32_MAX,
    check_positive_int,
    check_vectors,
    fits_float32,
)
from vd_integrations.milvus.schema import CollectionLayout, CollectionSpec, Record
from vd_integrations.milvus.sparse import SparseSpec

if TYPE_CHECKING:
    from vd_integrations.vd.engine import VdEngine


class SearchEngine(Protocol):
    """What the hybrid and full-text searches need of a Milvus engine
    (:class:`~vd_integrations.milvus.reads.ReadOps` provides it)."""

    spec: CollectionSpec

    def ready(
        self, dim: int | None = None, *, loaded: bool = False
    ) -> Op[CollectionLayout | None]: ...
    def compile_filter(self, filter: FilterLike, layout: CollectionLayout | None = None) -> str: ...
    def rpc(self, method: str, **kwargs: Any) -> Any: ...
    def partition_kwargs(self, *, single: bool = False) -> dict[str, Any]: ...
    def map_error(self, exc: Exception, step: Any) -> Exception: ...


__all__ = [
    "DEFAULT_RRF_K",
    "MAX_TOPK",
    "Ranker",
    "SparseSpec",
    "bm25_score",
    "check_sparse_vector",
    "default_fetch_k",
    "full_text_support_problem",
    "hybrid_search",
    "make_ranker",
    "sparse_search",
    "sparse_spec_from_builtin",
    "vd_hybrid_search",
    "vd_text_search",
    "with_sparse_vectors",
]

T = TypeVar("T")

DEFAULT_RRF_K = 60
#: Milvus' largest ``limit`` (topk) for one search leg.
MAX_TOPK = 16_384
_RANKER_NAMES = {
    "rrf": "rrf",
    "rrfranker": "rrf",
    "weighted": "weighted",
    "weightedranker": "weighted",
}
_RANKER_KEYS = {"rrf": {"k"}, "weighted": {"weights", "alpha", "norm_score"}}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def default_fetch_k(k: int) -> int:
    """Candidates each leg fetches before fusion when the caller does not say: ``4 * k``,
    at least 20 (langchain-milvus' fixed 4 starves the fusion)."""
    return min(max(4 * k, 20), MAX_TOPK)


# --------------------------------------------------------------------------------------------
# Schema: the analyzed text field, the sparse field, the BM25 function and the sparse index
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
# Rankers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranker:
    """How the two legs are fused: ``rrf`` (constant ``k``) or ``weighted`` (``weights``
    for the dense and the sparse leg, each leg's scores normalised when ``norm_score``).
    ``native`` carries a pymilvus ranker object passed as is."""

    kind: str = "rrf"
    k: int = DEFAULT_RRF_K
    weights: tuple[float, float] = (0.5, 0.5)
    norm_score: bool = True
    native: Any = None

    def to_pymilvus(self) -> Any:
        """The pymilvus ranker for ``hybrid_search``."""
        if self.native is not None:
            return self.native
        from pymilvus import RRFRanker, WeightedRanker

        if self.kind == "rrf":
            return RRFRanker(self.k)
        return WeightedRanker(*self.weights, norm_score=self.norm_score)


def make_ranker(
    ranker: Any = "rrf",
    params: Mapping[str, Any] | None = None,
    *,
    alpha: float | None = None,
    ranker_arg: str = "ranker",
    params_arg: str = "ranker_params",
) -> Ranker:
    """Validate a ranker choice into a :class:`Ranker`; :class:`InvalidInputError` (a
    ``ValueError``) naming the bad parameter and how to fix it otherwise.

    ``ranker``: ``"rrf"`` / ``"weighted"`` (LlamaIndex's ``"RRFRanker"`` /
    ``"WeightedRanker"`` too), a :class:`Ranker`, or a pymilvus ranker object.
    ``params``: ``{"k": 60}`` for RRF; ``{"weights": [dense, sparse]}`` or
    ``{"alpha": a}`` (weights ``[a, 1 - a]``), optionally ``"norm_score"``, for weighted.
    ``alpha`` (a per-query override, as LlamaIndex's ``VectorStoreQuery.alpha``) selects
    weighted fusion with weights ``[alpha, 1 - alpha]``.
    """
    if isinstance(ranker, Ranker):
        if params:
            raise InvalidInputError(f"{params_arg} cannot be combined with a Ranker object.")
        base = ranker
    elif ranker is not None and not isinstance(ranker, str):
        if not (hasattr(ranker, "dict") or hasattr(ranker, "function_type")):
            raise InvalidInputError(
                f"{ranker_arg} must be 'rrf' or 'weighted' (or a pymilvus ranker), got {ranker!r}."
            )
        if params:
            raise InvalidInputError(
                f"{params_arg} cannot be combined with a pymilvus ranker object; configure "
                f"the object itself."
            )
        base = Ranker(kind="native", native=ranker)
    else:
        base = _ranker_from_name(ranker, params, ranker_arg, params_arg)
    if alpha is None:
        return base
    weight = _unit_float(alpha, "alpha", "e.g. alpha=0.5 weighs both legs equally")
    return Ranker(kind="weighted", weights=(weight, 1.0 - weight), norm_score=base.norm_score)


def _ranker_from_name(
    name: Any, params: Mapping[str, Any] | None, ranker_arg: str, params_arg: str
) -> Ranker:
    kind = _RANKER_NAMES.get(str(name).strip().lower()) if isinstance(name, str) else None
    if kind is None:
        raise InvalidInputError(
            f"{ranker_arg} must be 'rrf' (reciprocal rank fusion) or 'weighted' (weighted "
            f"scores), got {name!r}."
        )
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidInputError(
            f"{params_arg} must be a dict, e.g. {{'k': 60}} for 'rrf' or {{'weights': [0.7, "
            f"0.3]}} for 'weighted'; got {params!r}."
        )
    unknown = sorted(set(params) - _RANKER_KEYS[kind])
    if unknown:
        hint = (
            f"; weights/alpha need {ranker_arg}='weighted'"
            if kind == "rrf" and set(unknown) & {"weights", "alpha"}
            else f"; k needs {ranker_arg}='rrf'"
            if kind == "weighted" and "k" in unknown
            else ""
        )
        raise InvalidInputError(
            f"{params_arg} has unknown key(s) {unknown} for {ranker_arg}={kind!r}, which "
            f"accepts {sorted(_RANKER_KEYS[kind])}{hint}."
        )
    if kind == "rrf":
        k = params.get("k", DEFAULT_RRF_K)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 < k < MAX_TOPK:
            raise InvalidInputError(
                f"{params_arg}['k'] (the RRF smoothing constant) must be an integer in "
                f"[1, {MAX_TOPK - 1}], got {k!r}; 60 is the usual value."
            )
        return Ranker(kind="rrf", k=k)
    norm = params.get("norm_score", True)
    if not isinstance(norm, bool):
        raise InvalidInputError(f"{params_arg}['norm_score'] must be True or False, got {norm!r}.")
    if "weights" in params and "alpha" in params:
        raise InvalidInputError(
            f"{params_arg} takes 'weights' or 'alpha', not both (alpha=a means weights [a, 1 - a])."
        )
    if "alpha" in params:
        a = _unit_float(params["alpha"], f"{params_arg}['alpha']", "e.g. 0.5")
        return Ranker(kind="weighted", weights=(a, 1.0 - a), norm_score=norm)
    weights = params.get("weights", (0.5, 0.5))
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != 2:
        raise InvalidInputError(
            f"{params_arg}['weights'] must be two numbers [dense_weight, sparse_weight], got "
            f"{weights!r}; e.g. {{'weights': [0.7, 0.3]}}."
        )
    checked = tuple(
        _unit_float(w, f"{params_arg}['weights'][{i}]", "Milvus accepts weights in [0, 1]")
        for i, w in enumerate(weights)
    )
    return Ranker(kind="weighted", weights=(checked[0], checked[1]), norm_score=norm)


def _unit_float(value: Any, name: str, hint: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or not 0.0 <= float(value) <= 1.0
    ):
        raise InvalidInputError(f"{name} must be a number in [0, 1], got {value!r}; {hint}.")
    return float(value)


# --------------------------------------------------------------------------------------------
# Pure request building and result parsing
# --------------------------------------------------------------------------------------------


def bm25_score(raw: float) -> float:
    """A BM25 hit's score, positive and higher-is-better on any server (Milvus Lite 3.x
    reports it negated)."""
    return abs(float(raw))


def check_sparse_vector(vector: Any, what: str = "sparse vector") -> dict[int, float]:
    """A ``{dimension: weight}`` dict of non-negative int keys and finite float values."""
    if hasattr(vector, "tocoo"):  # a scipy sparse row
        coo = vector.tocoo()
        vector = {int(c): float(v) for c, v in zip(coo.col, coo.data, strict=True)}
    if not isinstance(vector, Mapping) or not vector:
        raise InvalidInputError(
            f"{what} must be a non-empty dict {{dimension: weight}}, got {vector!r:.80}."
        )
    out: dict[int, float] = {}
    for key, value in vector.items():
        if isinstance(key, bool) or not isinstance(key, numbers.Integral) or key < 0:
            raise InvalidInputError(f"{what} has key {key!r}; keys must be non-negative ints.")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidInputError(f"{what} has value {value!r}; values must be numbers.")
        if not math.isfinite(float(value)):
            raise InvalidInputError(f"{what} contains NaN or infinity.")
        if not fits_float32(float(value)):
            raise InvalidInputError(
                f"{what} has weight {value!r} for dimension {key!r}, outside the float32 range "
                f"(magnitude at most {FLOAT32_MAX:.8g}) in which Milvus stores it."
            )
        out[int(key)] = float(value)
    return out


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


def _sparse_data(
    layout: CollectionLayout, query: str | None, sparse_vector: Any
) -> str | dict[int, float]:
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
    match = re.search(r"(\d+)\.(\d+)", text)
    if match is None:
        return None  # e.g. Zilliz Cloud: let the server decide
    found = (int(match.group(1)), int(match.group(2)))
    if "lite" in text.lower():
        needed, name = ((2, 5), "Milvus Lite 3.x") if bm25 else ((2, 4), "Milvus Lite 2.4+")
    else:
        needed, name = ((2, 5), "Milvus 2.5+") if bm25 else ((2, 4), "Milvus 2.4+")
    if found >= needed:
        return None
    what = "BM25 full-text search (a built-in function)" if bm25 else "sparse vector fields"
    return f"this server ({text}) has no {what}; it needs {name}"


# --------------------------------------------------------------------------------------------
# Operations over a MilvusEngine
# --------------------------------------------------------------------------------------------


def check_server(rpc: Callable[..., Any], collection: str, spec: SparseSpec) -> Op[None]:
    """Refuse, before creating a collection, a server that lacks BM25 / sparse vectors."""
    try:
        version = yield rpc("get_server_version")
    except Exception:  # an unknown server or proxy: creation itself will tell
        return
    problem = full_text_support_problem(str(version), bm25=spec.bm25)
    if problem:
        raise MilvusOperationError(
            f"Cannot create collection {collection!r} with a sparse field: {problem}. "
            f"Use a newer Milvus (or Milvus Lite 3.x: pip install 'milvus-lite>=3'), or a "
            f"store without builtin_function / enable_sparse for dense search only."
        )


def hybrid_search(
    engine: SearchEngine,
    query: str | None = None,
    *,
    vector: Sequence[float] | None = None,
    sparse_vector: Any = None,
    k: int,
    dense_k: int | None = None,
    sparse_k: int | None = None,
    ranker: Any = "rrf",
    ranker_params: Mapping[str, Any] | None = None,
    filter: FilterLike = None,
    search_params: Mapping[str, Any] | None = None,
    sparse_search_params: Mapping[str, Any] | None = None,
) -> Op[list[Record]]:
    """Dense + sparse search fused by Milvus; ``k`` results, each leg fetching
    ``dense_k`` / ``sparse_k`` candidates (default :func:`default_fetch_k`) under the same
    ``filter``. The query is embedded unless ``vector`` is given; the sparse leg sends
    ``query`` (BM25) or ``sparse_vector`` (user-supplied sparse field)."""
    check_positive_int(k)
    dense_k = default_fetch_k(k) if dense_k is None else check_positive_int(dense_k, "dense_k")
    sparse_k = default_fetch_k(k) if sparse_k is None else check_positive_int(sparse_k, "sparse_k")
    for name, value in (("k", k), ("dense_k", dense_k), ("sparse_k", sparse_k)):
        if value > MAX_TOPK:
            raise InvalidInputError(f"{name} must be at most {MAX_TOPK} (Milvus' topk limit).")
    fusion = make_ranker(ranker, ranker_params)
    if query is not None and not isinstance(query, str):
        raise InvalidInputError(f"query must be a str, got {type(query).__name__}.")
    if vector is None and query is None:
        raise InvalidInputError("hybrid_search needs a query string (or a query vector).")
    layout = yield from engine.ready(loaded=True)
    if layout is None:
        engine.compile_filter(filter)
        return []
    sparse_field = require_sparse(layout)
    sparse_data = _sparse_data(layout, query, sparse_vector)
    if vector is None:
        assert query is not None  # refused above when both are None
        vector = yield EmbedQuery(query)
    (dense,) = check_vectors([vector], dim=layout.dim, what="query vector")
    expr = engine.compile_filter(filter, layout)
    reqs = [
        AnnSearchRequest(
            data=[dense],
            anns_field=layout.vector_field,
            param=dense_params(layout, engine.spec.search_params, search_params),
            limit=dense_k,
            expr=expr or None,
        ),
        AnnSearchRequest(
            data=[sparse_data],
            anns_field=sparse_field,
            param=sparse_params(layout, sparse_search_params),
            limit=sparse_k,
            expr=expr or None,
        ),
    ]
    try:
        results = yield engine.rpc(
            "hybrid_search",
            collection_name=layout.name,
            reqs=reqs,
            ranker=fusion.to_pymilvus(),
            limit=k,
            output_fields=layout.output_fields(),
            **engine.partition_kwargs(),
        )
    except Exception as exc:  # name the filter in the error, as plain searches do
        raise engine.map_error(exc, engine.rpc("hybrid_search", filter=expr)) from exc
    return parse_hits(layout, results[0] if results else [])


def sparse_search(
    engine: SearchEngine,
    query: str | None = None,
    *,
    sparse_vector: Any = None,
    k: int,
    filter: FilterLike = None,
    search_params: Mapping[str, Any] | None = None,
) -> Op[list[Record]]:
    """Full-text search: the ``k`` best BM25 matches of ``query`` (or, on a user-supplied
    sparse field, the ``k`` nearest to ``sparse_vector``), scored higher-is-better."""
    check_positive_int(k)
    if k > MAX_TOPK:
        raise InvalidInputError(f"k must be at most {MAX_TOPK} (Milvus' topk limit).")
    if query is not None and not isinstance(query, str):
        raise InvalidInputError(f"query must be a str, got {type(query).__name__}.")
    layout = yield from engine.ready(loaded=True)
    if layout is None:
        engine.compile_filter(filter)
        return []
    sparse_field = require_sparse(layout)
    data = _sparse_data(layout, query, sparse_vector)
    results = yield engine.rpc(
        "search",
        collection_name=layout.name,
        data=[data],
        anns_field=sparse_field,
        limit=k,
        filter=engine.compile_filter(filter, layout),
        output_fields=layout.output_fields(),
        search_params=sparse_params(layout, search_params),
        **engine.partition_kwargs(),
    )
    return parse_hits(layout, results[0] if results else [], bm25=layout.sparse_bm25)


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


# --------------------------------------------------------------------------------------------
# Generic vd stores: vd's fallback (client-side BM25 + reciprocal rank fusion)
# --------------------------------------------------------------------------------------------


class _Snapshot:
    """A read-only vd collection over what an operation already fetched: the dense leg's
    hits and the documents (matching the filter) for vd's client-side BM25."""

    def __init__(self, dense: list[dict[str, Any]], docs: Sequence[Record]) -> None:
        self._dense = dense
        self._docs = {doc.id: doc for doc in docs}

    def search(self, query: Any, *, limit: int, filter: Any = None, **kwargs: Any) -> Any:
        return iter(self._dense[:limit])

    def __iter__(self) -> Any:
        return iter(self._docs)

    def __getitem__(self, key: str) -> Record:
        return self._docs[key]

    def __len__(self) -> int:
        return len(self._docs)


def _vd_result(record: Record) -> dict[str, Any]:
    return {
        "id": record.id,
        "text": record.text,
        "score": record.score,
        "metadata": record.metadata,
    }


def _vd_record(hit: Mapping[str, Any]) -> Record:
    return Record(
        id=str(hit["id"]),
        text=hit.get("text") or "",
        metadata=dict(hit.get("metadata") or {}),
        score=float(hit["score"]),
    )


def vd_hybrid_search(
    engine: VdEngine,
    query: str,
    *,
    vector: Sequence[float] | None = None,
    k: int,
    dense_k: int | None = None,
    sparse_k: int | None = None,
    ranker: Any = "rrf",
    ranker_params: Mapping[str, Any] | None = None,
    filter: Any = None,
) -> Op[list[Record]]:
    """``vd.hybrid_search``'s fallback over any vd backend: the dense leg (``dense_k``),
    vd's client-side BM25 over the documents matching ``filter`` (``sparse_k``), fused by
    reciprocal rank fusion; scores are RRF scores. Only ``ranker="rrf"`` is possible."""
    import vd

    check_positive_int(k)
    dense_k = default_fetch_k(k) if dense_k is None else check_positive_int(dense_k, "dense_k")
    sparse_k = default_fetch_k(k) if sparse_k is None else check_positive_int(sparse_k, "sparse_k")
    fusion = make_ranker(ranker, ranker_params)
    if fusion.kind != "rrf":
        raise InvalidInputError(
            "Generic vd stores fuse with reciprocal rank fusion only (vd's client-side "
            "fallback); use ranker='rrf' (ranker_params={'k': ...}), or langchain_vd.Milvus "
            "/ llama_index_vd.MilvusVectorStore for weighted fusion."
        )
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("hybrid_search needs a non-empty query string.")
    if vector is None:
        vector = yield EmbedQuery(query)
    dense = (yield from engine.search([vector], k=dense_k, filter=filter))[0]
    docs = yield from engine.query(filter)
    snapshot = _Snapshot([_vd_result(r) for r in dense], docs)
    hits = vd.hybrid_search(
        snapshot,
        list(vector),
        query_text=query,
        limit=k,
        filter=None,  # the snapshot holds only matching documents
        k_dense=dense_k,
        k_lexical=sparse_k,
        rrf_k=fusion.k,
    )
    return [_vd_record(hit) for hit in hits]


def vd_text_search(engine: VdEngine, query: str, *, k: int, filter: Any = None) -> Op[list[Record]]:
    """Full-text search over any vd backend: vd's client-side BM25 over the documents
    matching ``filter`` (every matching document is read)."""
    import vd

    check_positive_int(k)
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("Full-text search needs a non-empty query string.")
    docs = yield from engine.query(filter)
    hits = vd.BM25Index(_Snapshot([], docs)).search(query, limit=k)
    return [_vd_record(hit) for hit in hits]

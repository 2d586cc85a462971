"""Hybrid and full-text search for the generic vd stores, as operations over a ``VdEngine``:
vd's client-side fallback (BM25 computed here, fused with the dense leg by reciprocal rank
fusion), for backends without a server-side BM25."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import EmbedQuery, Op
from vd_integrations.core.validation import check_positive_int
from vd_integrations.milvus.hybrid import fetch_sizes
from vd_integrations.milvus.rankers import make_ranker
from vd_integrations.milvus.schema import Record

if TYPE_CHECKING:
    from vd_integrations.vd.engine import VdEngine

__all__ = ["vd_hybrid_search", "vd_text_search"]


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

    dense_k, sparse_k = fetch_sizes(k, dense_k, sparse_k)
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

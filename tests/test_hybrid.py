"""Hybrid (dense + BM25) and full-text search: core, LangChain, LlamaIndex, generic stores.

The corpus holds product sheets whose only distinctive content is an exact product code.
Fake dense embeddings (a hash of the text) cannot relate a query for a code to the sheet
that contains it; BM25 can. So hybrid search finds each code and dense search alone does
not. Every Milvus test runs against the session's Milvus Lite server.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
import vd
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from langchain_vd import BM25BuiltInFunction, Milvus
from langchain_vd import VDVectorStore as LCVDStore
from llama_index_vd import MilvusVectorStore
from llama_index_vd import VDVectorStore as LIVDStore
from vd_integrations.core.errors import MilvusOperationError
from vd_integrations.milvus.hybrid import (
    SparseSpec,
    full_text_support_problem,
    make_ranker,
)
from vd_integrations.milvus.vd_backend import connect as vd_milvus_connect

DIM = 16
CODES = ["ZQ7731", "KX2048", "PV9015", "TR4402", "MB6630", "LW1187"]
CATEGORIES = ["tools", "garden"]


def corpus() -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """40 sheets: 6 carry a product code, the rest are filler; two categories alternate."""
    fillers = [
        "sturdy steel frame with a matte finish",
        "lightweight design for everyday use",
        "weatherproof coating and rubber grip",
        "compact size fits any workshop shelf",
        "includes a two year limited warranty",
    ]
    texts, metas, ids = [], [], []
    for i in range(40):
        text = f"Product sheet {i}: {fillers[i % len(fillers)]}."
        if i < len(CODES):
            text = f"Product sheet {i}: order code {CODES[i]}, {fillers[i % len(fillers)]}."
        texts.append(text)
        metas.append({"category": CATEGORIES[i % 2], "n": i})
        ids.append(f"doc{i}")
    return texts, metas, ids


TEXTS, METAS, IDS = corpus()
CODE_DOC = {code: f"doc{i}" for i, code in enumerate(CODES)}


def embeddings() -> DeterministicFakeEmbedding:
    return DeterministicFakeEmbedding(size=DIM)


def rrf_reference(legs: list[list[str]], k: int = 60) -> dict[str, float]:
    """Reciprocal rank fusion of ranked id lists: sum over legs of 1 / (k + rank)."""
    scores: dict[str, float] = {}
    for ids in legs:
        for rank, doc_id in enumerate(ids, 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    return scores


def assert_ranked_by(scored: list[tuple[str, float]], reference: dict[str, float]) -> None:
    """Each result's score equals the reference, results come best first, and no document
    outside the returned ones scores higher than the last one returned."""
    assert scored
    for doc_id, score in scored:
        assert math.isclose(score, reference[doc_id], rel_tol=1e-5), (doc_id, score)
    values = [s for _, s in scored]
    assert values == sorted(values, reverse=True)
    returned = {doc_id for doc_id, _ in scored}
    floor = min(values)
    assert all(s <= floor + 1e-9 for d, s in reference.items() if d not in returned)


@pytest.fixture(scope="module")
def lc_store(milvus_server: Any) -> Iterator[Milvus]:
    """One hybrid LangChain store over the corpus, shared by the read-only tests."""
    store = Milvus(
        embeddings(),
        collection_name="hybrid_shared",
        connection_args={"uri": milvus_server.uri},
        builtin_function=BM25BuiltInFunction(),
        vector_field=["dense", "sparse"],
        consistency_level="Strong",
        drop_old=True,
    )
    store.add_texts(TEXTS, METAS, ids=IDS)
    yield store
    store.drop()
    store.close()


# ----- core --------------------------------------------------------------------------------


def test_rankers_and_schema_validate_with_clear_errors() -> None:
    assert make_ranker("RRFRanker", {"k": 10}).k == 10
    assert make_ranker("weighted", {"alpha": 0.25}).weights == (0.25, 0.75)
    assert make_ranker("rrf", alpha=0.4).weights == (0.4, 0.6)
    cases = [
        (("magic", None), "ranker must be 'rrf'"),
        (("rrf", {"k": 0}), r"ranker_params\['k'\]"),
        (("rrf", {"k": 2.5}), r"ranker_params\['k'\]"),
        (("rrf", {"weights": [0.5, 0.5]}), "ranker='weighted'"),
        (("weighted", {"k": 60}), "ranker='rrf'"),
        (("weighted", {"weights": [0.2, 0.3, 0.5]}), r"two numbers \[dense_weight"),
        (("weighted", {"weights": [1.5, 0.5]}), r"\[0, 1\]"),
        (("weighted", {"alpha": -1}), r"ranker_params\['alpha'\]"),
        (("weighted", {"alpha": 0.5, "weights": [1, 0]}), "not both"),
        (("weighted", "0.5"), "must be a dict"),
    ]
    for (ranker, params), message in cases:
        with pytest.raises(ValueError, match=message):
            make_ranker(ranker, params)
    with pytest.raises(ValueError, match="alpha"):
        make_ranker("rrf", alpha=2)
    with pytest.raises(ValueError, match="metric"):
        SparseSpec(index_params={"metric_type": "IP"})
    with pytest.raises(ValueError, match="not both"):
        SparseSpec(analyzer_params={"type": "english"}, multi_analyzer_params={})
    assert full_text_support_problem("v2.3.5") and "2.5" in full_text_support_problem("v2.3.5")
    assert full_text_support_problem("v2.4.10") is not None
    assert full_text_support_problem("v2.4.10", bm25=False) is None
    assert full_text_support_problem("2.5.4") is None
    assert full_text_support_problem("milvus_lite-3.2.2") is None
    assert full_text_support_problem("Zilliz Cloud") is None


def test_schema_gets_analyzer_bm25_function_and_sparse_index(lc_store: Milvus) -> None:
    client = lc_store.client
    description = client.describe_collection("hybrid_shared")
    fields = {f["name"]: f for f in description["fields"]}
    assert fields["text"]["params"].get("enable_analyzer") in (True, "true")
    assert "dense" in fields and "sparse" in fields
    assert [f["type"].name for f in description["functions"]] == ["BM25"] or [
        getattr(f.get("type"), "name", f.get("type")) for f in description["functions"]
    ] == ["BM25"]
    index = client.describe_index(
        "hybrid_shared", client.list_indexes("hybrid_shared", "sparse")[0]
    )
    assert (index["index_type"], index["metric_type"]) == ("SPARSE_INVERTED_INDEX", "BM25")
    layout = lc_store.engine.layout
    assert layout is not None and (layout.sparse_field, layout.sparse_bm25) == ("sparse", True)


# ----- LangChain -----------------------------------------------------------------------------


def test_hybrid_finds_product_codes_dense_alone_does_not(lc_store: Milvus) -> None:
    emb = embeddings()
    for code, doc_id in CODE_DOC.items():
        dense = lc_store.similarity_search_by_vector(emb.embed_query(code), k=3)
        assert doc_id not in [d.id for d in dense], code
        hybrid = lc_store.hybrid_search(code, k=3)  # BM25 rank 1 ties dense rank 1 in RRF
        assert doc_id in [d.id for d in hybrid[:2]], code
        assert any(code in d.page_content for d in hybrid)
        full_text = lc_store.full_text_search_with_score(code, k=3)
        assert [d.id for d, _ in full_text] == [doc_id]
        assert full_text[0][1] > 0  # Milvus Lite's negated BM25 distance, made a score


def test_rrf_fusion_equals_reference_of_both_legs(lc_store: Milvus) -> None:
    query, fetch_k = "ZQ7731 steel frame warranty", 10
    vector = embeddings().embed_query(query)
    dense = [d.id for d in lc_store.similarity_search_by_vector(vector, k=fetch_k)]
    sparse = [d.id for d, _ in lc_store.full_text_search_with_score(query, k=fetch_k)]
    assert len(dense) == fetch_k and len(sparse) == fetch_k
    for rrf_k in (60, 5):
        fused = lc_store.hybrid_search_with_score(
            query, k=8, fetch_k=fetch_k, ranker="rrf", ranker_params={"k": rrf_k}
        )
        assert len(fused) == 8
        assert_ranked_by([(d.id, s) for d, s in fused], rrf_reference([dense, sparse], rrf_k))


def test_filters_apply_to_both_legs(lc_store: Milvus) -> None:
    query, fetch_k = "KX2048 ZQ7731 rubber grip", 8
    codes = "KX2048 ZQ7731"
    flt = {"category": "garden"}  # doc1 (KX2048) is garden, doc0 (ZQ7731) is tools
    vector = embeddings().embed_query(query)
    dense = [d.id for d in lc_store.similarity_search_by_vector(vector, k=fetch_k, filter=flt)]
    sparse = [d.id for d, _ in lc_store.full_text_search_with_score(query, k=fetch_k, filter=flt)]
    fused = lc_store.hybrid_search_with_score(query, k=6, fetch_k=fetch_k, filter=flt)
    assert {d.metadata["category"] for d, _ in fused} == {"garden"}
    assert "doc0" not in [d.id for d, _ in fused]
    by_code = [d.id for d in lc_store.hybrid_search(codes, k=3, filter=flt)]
    assert "doc1" in by_code[:2] and "doc0" not in by_code
    assert_ranked_by([(d.id, s) for d, s in fused], rrf_reference([dense, sparse]))
    as_expr = lc_store.hybrid_search(query, k=6, fetch_k=fetch_k, expr="category == 'garden'")
    assert [d.id for d in as_expr] == [d.id for d, _ in fused]


def test_sync_and_async_agree(lc_store: Milvus) -> None:
    query = "PV9015 compact workshop"
    kwargs: dict[str, Any] = {"k": 5, "fetch_k": 12, "filter": {"n": {"$lt": 30}}}

    async def run_async() -> tuple[Any, ...]:
        return await asyncio.gather(
            lc_store.ahybrid_search_with_score(query, **kwargs),
            lc_store.ahybrid_search_with_score(query, ranker="weighted", **kwargs),
            lc_store.afull_text_search_with_score(query, k=5),
            lc_store.asimilarity_search_with_score(query, k=5),  # hybrid, as langchain-milvus
            lc_store.as_retriever(search_type="hybrid", search_kwargs={"k": 3}).ainvoke(query),
        )

    sync = (
        lc_store.hybrid_search_with_score(query, **kwargs),
        lc_store.hybrid_search_with_score(query, ranker="weighted", **kwargs),
        lc_store.full_text_search_with_score(query, k=5),
        lc_store.similarity_search_with_score(query, k=5),
        lc_store.as_retriever(search_type="hybrid", search_kwargs={"k": 3}).invoke(query),
    )
    results = asyncio.run(run_async())
    for got, want in zip(results[:4], sync[:4], strict=True):
        assert [(d.id, round(s, 6)) for d, s in got] == [(d.id, round(s, 6)) for d, s in want]
    assert [d.id for d in results[4]] == [d.id for d in sync[4]]
    default_hybrid = lc_store.hybrid_search_with_score(query, k=5)
    assert [d.id for d, _ in sync[3]] == [d.id for d, _ in default_hybrid]


def test_weighted_alpha_moves_between_the_legs(lc_store: Milvus) -> None:
    query = "TR4402"
    vector = embeddings().embed_query(query)
    dense = [d.id for d in lc_store.similarity_search_by_vector(vector, k=4)]
    sparse = [d.id for d, _ in lc_store.full_text_search_with_score(query, k=4)]
    params = {"ranker": "weighted", "fetch_k": 4}
    only_dense = lc_store.hybrid_search(query, k=4, ranker_params={"alpha": 1.0}, **params)
    only_sparse = lc_store.hybrid_search(query, k=4, ranker_params={"alpha": 0.0}, **params)
    assert [d.id for d in only_dense] == dense
    assert sparse == [CODE_DOC["TR4402"]] and only_sparse[0].id == sparse[0]


def test_bad_ranker_params_fail_before_io(milvus_uri: str, collection_name: str) -> None:
    store = Milvus(
        embeddings(),
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        builtin_function=BM25BuiltInFunction(),
    )
    with pytest.raises(ValueError, match=r"ranker_params\['k'\].*60 is the usual value"):
        store.hybrid_search("q", ranker_params={"k": -3})
    with pytest.raises(ValueError, match=r"ranker='weighted'"):
        asyncio.run(store.ahybrid_search("q", ranker_params={"weights": [0.5, 0.5]}))
    with pytest.raises(ValueError, match="ranker must be"):
        store.as_retriever(search_type="hybrid", search_kwargs={"ranker": "best"}).invoke("q")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        store.hybrid_search("q", k=0)
    assert not store.client.has_collection(collection_name)
    assert store.hybrid_search("q") == []  # no collection yet: nothing to find
    store.close()


def test_store_without_bm25_says_how_to_get_it(milvus_uri: str, collection_name: str) -> None:
    with Milvus(
        embeddings(), collection_name=collection_name, connection_args={"uri": milvus_uri}
    ) as store:
        store.add_texts(["one text"], ids=["a"])
        for call in (store.hybrid_search, store.full_text_search):
            with pytest.raises(ValueError, match="builtin_function=BM25BuiltInFunction"):
                call("one")
        with pytest.raises(ValueError, match="enable_sparse=True"):
            asyncio.run(store.ahybrid_search("one"))
        store.drop()
    # a BM25-only store (no embedding function) is a store (test_langchain_multi_vector.py);
    # more vector fields than embedding functions is a clear error
    assert Milvus(None, builtin_function=BM25BuiltInFunction()).vector_fields == ["sparse"]
    with pytest.raises(ValueError, match="needs an embedding function"):
        Milvus(embeddings(), vector_field=["a", "b"], builtin_function=BM25BuiltInFunction())
    with pytest.raises(ValueError, match="text_field"):
        Milvus(embeddings(), builtin_function=BM25BuiltInFunction(input_field_names="body"))


def test_langchain_milvus_function_and_async_first_write(
    milvus_uri: str, collection_name: str
) -> None:
    from langchain_milvus import BM25BuiltInFunction as TheirBM25

    async def main() -> list[Document]:
        store = Milvus(
            embeddings(),
            collection_name=collection_name,
            connection_args={"uri": milvus_uri},
            builtin_function=TheirBM25(
                analyzer_params={"tokenizer": "standard", "filter": ["lowercase"]}
            ),
            vector_field=["vector", "sparse"],
            consistency_level="Strong",
        )
        await asyncio.gather(  # concurrent first writes on the async client (both indexes)
            *(
                store.aadd_texts(TEXTS[i : i + 10], METAS[i : i + 10], ids=IDS[i : i + 10])
                for i in range(0, 40, 10)
            )
        )
        found = await store.ahybrid_search("LW1187", k=2)
        assert await store.acount() == 40
        await store.adrop()
        await store.aclose()
        return found

    found = asyncio.run(main())
    assert CODE_DOC["LW1187"] in [d.id for d in found]


# ----- LlamaIndex ----------------------------------------------------------------------------


def nodes() -> list[TextNode]:
    emb = embeddings()
    return [
        TextNode(id_=doc_id, text=text, metadata=meta, embedding=emb.embed_query(text))
        for doc_id, text, meta in zip(IDS, TEXTS, METAS, strict=True)
    ]


def li_query(text: str, mode: VectorStoreQueryMode, **kwargs: Any) -> VectorStoreQuery:
    kwargs.setdefault("similarity_top_k", 5)
    return VectorStoreQuery(
        query_embedding=embeddings().embed_query(text), query_str=text, mode=mode, **kwargs
    )


class HashingSparse:
    """A user-supplied sparse embedding function: one dimension per lowercased token."""

    @staticmethod
    def _encode(text: str) -> dict[int, float]:
        out: dict[int, float] = {}
        for token in re.findall(r"\w+", text.lower()):
            dim = sum(ord(c) * 31**i for i, c in enumerate(token)) % 100_003
            out[dim] = out.get(dim, 0.0) + 1.0
        return out

    def encode_documents(self, texts: list[str]) -> list[dict[int, float]]:
        return [self._encode(t) for t in texts]

    def encode_queries(self, texts: list[str]) -> list[dict[int, float]]:
        return [self._encode(t) for t in texts]


def test_llama_index_modes_sync_async(milvus_uri: str, collection_name: str) -> None:
    store = MilvusVectorStore(
        uri=milvus_uri,
        collection_name=collection_name,
        dim=DIM,
        enable_sparse=True,
        similarity_metric="COSINE",
        consistency_level="Strong",
    )
    store.add(nodes())
    code = "MB6630"
    target = CODE_DOC[code]
    dense = store.query(li_query(code, VectorStoreQueryMode.DEFAULT, similarity_top_k=3))
    assert target not in dense.ids
    hybrid = store.query(li_query(code, VectorStoreQueryMode.HYBRID, similarity_top_k=3))
    assert target in hybrid.ids[:2]  # BM25's rank 1 ties the dense rank 1 under RRF
    for mode in (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.TEXT_SEARCH):
        assert store.query(li_query(code, mode)).ids == [target]

    # sparse_top_k / hybrid_top_k / similarity_top_k: each leg's limit and the result count
    query = "LW1187 lightweight everyday"
    shaped = li_query(
        query, VectorStoreQueryMode.HYBRID, similarity_top_k=6, sparse_top_k=9, hybrid_top_k=4
    )
    result = store.query(shaped)
    assert len(result.ids) == 4
    legs = [
        store.query(li_query(query, VectorStoreQueryMode.DEFAULT, similarity_top_k=6)).ids,
        store.query(li_query(query, VectorStoreQueryMode.SPARSE, sparse_top_k=9)).ids,
    ]
    assert len(legs[1]) == 9
    assert_ranked_by(list(zip(result.ids, result.similarities, strict=True)), rrf_reference(legs))
    # alpha: weighted fusion, 1 = dense only, 0 = BM25 only
    assert store.query(li_query(code, VectorStoreQueryMode.HYBRID, alpha=1.0)).ids == (
        store.query(li_query(code, VectorStoreQueryMode.DEFAULT)).ids
    )
    assert store.query(li_query(code, VectorStoreQueryMode.HYBRID, alpha=0.0)).ids[0] == target
    # filters reach both legs
    garden = MetadataFilters(filters=[MetadataFilter(key="category", value="garden")])
    filtered = store.query(li_query("ZQ7731 KX2048", VectorStoreQueryMode.HYBRID, filters=garden))
    assert CODE_DOC["KX2048"] in filtered.ids and CODE_DOC["ZQ7731"] not in filtered.ids

    async def run_async() -> list[Any]:
        return list(
            await asyncio.gather(
                store.aquery(shaped),
                store.aquery(li_query(code, VectorStoreQueryMode.TEXT_SEARCH)),
                store.aquery(
                    li_query("ZQ7731 KX2048", VectorStoreQueryMode.HYBRID, filters=garden)
                ),
            )
        )

    got = asyncio.run(run_async())
    assert got[0].ids == result.ids and got[0].similarities == pytest.approx(result.similarities)
    assert got[1].ids == [target] and got[2].ids == filtered.ids
    with pytest.raises(ValueError, match="alpha must be a number"):
        store.query(li_query(code, VectorStoreQueryMode.HYBRID, alpha=3))
    with pytest.raises(ValueError, match="query_str"):
        store.query(VectorStoreQuery(query_embedding=[0.1] * DIM, mode="hybrid"))
    store.clear()
    store.close()


def test_llama_index_ranker_settings_and_user_sparse(milvus_uri: str, collection_name: str) -> None:
    with pytest.raises(ValueError, match=r"hybrid_ranker_params\['weights'\]"):
        MilvusVectorStore(
            uri=milvus_uri, hybrid_ranker="WeightedRanker", hybrid_ranker_params={"weights": [2, 1]}
        )
    with pytest.raises(ValueError, match=r"hybrid_ranker='weighted'"):
        MilvusVectorStore(uri=milvus_uri, hybrid_ranker_params={"weights": [0.5, 0.5]})
    with pytest.raises(ValueError, match="encode_documents"):
        MilvusVectorStore(uri=milvus_uri, enable_sparse=True, sparse_embedding_function=object())
    store = MilvusVectorStore(
        uri=milvus_uri,
        collection_name=collection_name,
        enable_sparse=True,
        sparse_embedding_function=HashingSparse(),
        hybrid_ranker="WeightedRanker",
        hybrid_ranker_params={"weights": [0.3, 0.7]},
        consistency_level="Strong",
    )

    async def run() -> list[Any]:
        await store.async_add(nodes())
        return list(
            await asyncio.gather(
                store.aquery(li_query("KX2048", VectorStoreQueryMode.HYBRID)),
                store.aquery(li_query("KX2048", VectorStoreQueryMode.SPARSE)),
            )
        )

    hybrid, sparse = asyncio.run(run())
    assert hybrid.ids[0] == CODE_DOC["KX2048"] and sparse.ids[0] == CODE_DOC["KX2048"]
    assert store.query(li_query("KX2048", VectorStoreQueryMode.HYBRID)).ids == hybrid.ids
    layout = store.engine.layout
    assert layout is not None and (layout.sparse_field, layout.sparse_bm25) == (
        "sparse_embedding",
        False,
    )
    store.clear()
    store.close()


# ----- generic stores (vd's fallback) and the vd backend ----------------------------------------


def test_generic_langchain_store_uses_vds_fallback() -> None:
    store = LCVDStore(embeddings(), backend="memory", collection_name="hy_generic")
    store.add_texts(TEXTS, METAS, ids=IDS)
    emb = embeddings()
    query = "ZQ7731 sturdy steel"
    vector = emb.embed_query(query)
    dense = [d.id for d in store.similarity_search_by_vector(vector, k=10)]
    assert CODE_DOC["ZQ7731"] not in dense[:3]
    lexical = [h["id"] for h in vd.BM25Index(_docs()).search(query, limit=10)]
    fused = store.hybrid_search_with_score(query, k=5, fetch_k=10)
    found = [d.id for d in store.hybrid_search("ZQ7731", k=3)]
    code_dense = store.similarity_search_by_vector(emb.embed_query("ZQ7731"), k=3)
    assert CODE_DOC["ZQ7731"] in found[:2] and CODE_DOC["ZQ7731"] not in [d.id for d in code_dense]
    assert_ranked_by([(d.id, s) for d, s in fused], rrf_reference([dense, lexical]))
    text_hits = store.full_text_search("ZQ7731", k=3)
    assert [d.id for d in text_hits] == [CODE_DOC["ZQ7731"]]
    garden = asyncio.run(store.ahybrid_search("ZQ7731 KX2048", k=3, filter={"category": "garden"}))
    assert CODE_DOC["KX2048"] in [d.id for d in garden] and all(
        d.metadata["category"] == "garden" for d in garden
    )
    retrieved = store.as_retriever(search_type="hybrid", search_kwargs={"k": 2}).invoke(query)
    assert len(retrieved) == 2
    with pytest.raises(ValueError, match="reciprocal rank fusion only"):
        store.hybrid_search(query, ranker="weighted")


def _docs() -> dict[str, vd.Document]:
    return {
        i: vd.Document(id=i, text=t, metadata=m) for i, t, m in zip(IDS, TEXTS, METAS, strict=True)
    }


def test_generic_llama_index_store_modes() -> None:
    store = LIVDStore(backend="memory", collection_name="hy_generic_li")
    store.add(nodes())
    query = li_query("PV9015", VectorStoreQueryMode.HYBRID, similarity_top_k=3)
    assert CODE_DOC["PV9015"] in store.query(query).ids[:2]
    assert asyncio.run(store.aquery(query)).ids == store.query(query).ids
    text = store.query(li_query("PV9015", VectorStoreQueryMode.TEXT_SEARCH))
    assert text.ids == [CODE_DOC["PV9015"]]
    tools = MetadataFilters(
        filters=[MetadataFilter(key="category", value="tools", operator=FilterOperator.EQ)]
    )
    filtered = store.query(li_query("PV9015 KX2048", VectorStoreQueryMode.SPARSE, filters=tools))
    assert filtered.ids == [CODE_DOC["PV9015"]]
    with pytest.raises(ValueError, match="alpha"):
        store.query(li_query("PV9015", VectorStoreQueryMode.HYBRID, alpha=0.5))


def test_vd_backend_hybrid_dispatches_natively(milvus_uri: str, collection_name: str) -> None:
    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        client = await vd_milvus_connect(uri=milvus_uri)
        try:
            col = await client.create_collection(collection_name, dimension=DIM)
            emb = embeddings()
            await col.add_documents(
                [
                    vd.Document(id=i, text=t, vector=emb.embed_query(t), metadata=m)
                    for i, t, m in zip(IDS, TEXTS, METAS, strict=True)
                ]
            )
            assert isinstance(col, vd.SupportsHybrid)
            vector = emb.embed_query("TR4402")
            native = [
                h async for h in vd.hybrid_search_async(col, vector, query_text="TR4402", limit=3)
            ]
            weighted = [
                h
                async for h in vd.hybrid_search_async(
                    col, vector, query_text="TR4402", limit=3, ranker="weighted", alpha=0.2
                )
            ]
            client_side = [  # a filter Milvus cannot express: vd's client-side fusion
                h
                async for h in vd.hybrid_search_async(
                    col, vector, query_text="TR4402", limit=3, filter={"n": {"$eq": None}}
                )
            ]
            await client.delete_collection(collection_name)
            return native, weighted, client_side
        finally:
            await client.close()

    native, weighted, client_side = asyncio.run(main())
    assert native[0]["id"] == CODE_DOC["TR4402"] and weighted[0]["id"] == CODE_DOC["TR4402"]
    assert native[0]["score"] == pytest.approx(2 / 61) or native[0]["score"] >= 1 / 61
    assert client_side == []


def test_old_server_gets_a_clear_error() -> None:
    from vd_integrations.milvus.config import ConnectionConfig
    from vd_integrations.milvus.engine import MilvusEngine, Rpc
    from vd_integrations.milvus.schema import CollectionSpec

    engine = MilvusEngine(CollectionSpec("c", sparse=SparseSpec()), ConnectionConfig(uri="x.db"))
    op = engine.setup.create(4)
    step = next(op)
    assert isinstance(step, Rpc) and step.method == "get_server_version"
    with pytest.raises(MilvusOperationError, match=r"v2\.3\.5.*Milvus 2\.5\+"):
        op.send("v2.3.5")

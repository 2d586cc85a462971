"""Deletes of LlamaIndex documents share their key lookups: ``query_in`` steps merged.

``delete(ref_doc_id)`` looks the document's node keys up, then deletes by key. Concurrent
``adelete`` calls used to send one lookup query each (100 documents: 100 queries, slower
than the sync loop); the lookups now merge like the deletes do. Checked here: the merge
and split rules alone, then on the Milvus Lite server that each caller deletes exactly its
own document's nodes, with far fewer queries, including when a merged answer is too big
to split and each lookup goes again alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llama_index_vd import MilvusVectorStore
from tests.test_llama_index_milvus import ALL, make_store, text_node
from vd_integrations.milvus import coalescing


def lookup(values: list[str], limit: int = 100) -> dict[str, Any]:
    return {"collection_name": "c", "field": "doc_id", "values": values, "limit": limit}


def test_lookups_merge_into_one_query_and_split_by_value() -> None:
    parts = [lookup(["d1", "d2"]), lookup(["d2", "d3"]), lookup(["d9"])]
    assert coalescing.merge_key("query_in", parts[0]) == coalescing.merge_key("query_in", parts[1])
    assert coalescing.merge_key("query_in", parts[0]) != coalescing.merge_key(
        "query_in", lookup(["d1"], limit=5)
    )
    merged = coalescing.merge_steps("query_in", parts)
    assert merged["values"] == ["d1", "d2", "d3", "d9"]
    rows = [{"pk": i, "doc_id": d} for i, d in enumerate(["d1", "d2", "d2", "d3"])]
    shares = coalescing.split_result("query_in", parts, rows)
    assert shares == [rows[:3], rows[1:], []]


def test_a_merged_answer_that_fills_the_limit_is_not_split() -> None:
    parts = [lookup(["d1"], limit=2), lookup(["d2"], limit=2)]
    rows = [{"pk": 1, "doc_id": "d1"}, {"pk": 2, "doc_id": "d1"}]
    with pytest.raises(coalescing.IncompleteMerge):
        coalescing.split_result("query_in", parts, rows)


@pytest.fixture
def store(milvus_uri: str, collection_name: str) -> Any:
    store = make_store(milvus_uri, collection_name)
    yield store
    store.close()


def fill(store: MilvusVectorStore, docs: int, per_doc: int) -> None:
    store.add(
        [
            text_node(f"n{d}-{i}", f"apple {d} {i}", f"doc{d}", d=d)
            for d in range(docs)
            for i in range(per_doc)
        ]
    )


def remaining_docs(store: MilvusVectorStore) -> set[str | None]:
    return {node.ref_doc_id for node in store.get_nodes(filters=ALL)}


async def test_concurrent_document_deletes_share_their_lookups(store: MilvusVectorStore) -> None:
    fill(store, docs=30, per_doc=3)
    counts = store.engine.rpc_counts
    before = counts["query"]
    await asyncio.gather(*(store.adelete(f"doc{d}") for d in range(0, 30, 2)))
    assert remaining_docs(store) == {f"doc{d}" for d in range(1, 30, 2)}
    assert len(store.get_nodes(filters=ALL)) == 45
    # 15 lookups in at most max_in_flight merged queries (plus get_nodes' query above)
    assert counts["query"] - before <= store.engine.coalescing.max_in_flight + 1


async def test_lookups_too_big_to_split_go_again_alone(store: MilvusVectorStore) -> None:
    fill(store, docs=6, per_doc=4)
    engine = store.engine
    # pages of 3 keys: a merged lookup of several documents fills its limit
    await asyncio.gather(
        *(engine.arun(engine.delete_where_in("doc_id", [f"doc{d}"], page_size=3)) for d in range(4))
    )
    assert remaining_docs(store) == {"doc4", "doc5"}
    assert len(store.get_nodes(filters=ALL)) == 8


def test_sync_delete_of_several_documents(store: MilvusVectorStore) -> None:
    fill(store, docs=4, per_doc=2)
    store.delete(["doc0", "doc3", "missing"])  # type: ignore[arg-type]
    assert remaining_docs(store) == {"doc1", "doc2"}

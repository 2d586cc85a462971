"""Merged searches that return vectors go as a key search plus row queries
(vd_integrations.milvus.search_fetch), and give callers what the one search gives.

Pure tests of the plan and the join first, then a real collection: merged async MMR
through the two requests chooses the same documents, metadata and scores as sync MMR
(one search each), and a row deleted between the two requests sends the search again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from tests.random_embeddings import RandomEmbeddings
from vd_integrations.milvus import search_fetch
from vd_integrations.milvus.coalescing import IncompleteMerge
from vd_integrations.milvus.result_vectors import take_float_vectors
from vd_integrations.milvus.search_fetch import (
    MAX_KEYS_PER_QUERY,
    MIN_FLOATS,
    FetchedHits,
    join,
    plan_fetch,
    row_queries,
)

DIM = 4
FIELDS = ["text", "$meta", "vector"]


def _merged(nq: int, limit: int = 20, dim: int = DIM, **extra: Any) -> dict[str, Any]:
    data = [[float(q), *([0.5] * (dim - 1))] for q in range(nq)]
    return {
        "collection_name": "c",
        "data": data,
        "anns_field": "vector",
        "limit": limit,
        "filter": "",
        "output_fields": FIELDS,
        **extra,
    }


def _plan(nq: int = 4, **extra: Any) -> search_fetch.FetchPlan:
    plan = plan_fetch(_merged(nq, **extra), nq, pk_field="pk", vector_field="vector")
    assert plan is not None
    return plan


@pytest.fixture(autouse=True)
def _small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dim 4 here: every merged search with vectors is split unless a test sets the
    threshold back (as the threshold's test and the first real-collection test do)."""
    monkeypatch.setattr(search_fetch, "MIN_FLOATS", 1)


def test_a_lone_call_a_search_without_vectors_and_typed_data_stay_one_request() -> None:
    assert plan_fetch(_merged(3), 1, pk_field="pk", vector_field="vector") is None
    no_vectors = {**_merged(3), "output_fields": ["text", "$meta"]}
    assert plan_fetch(no_vectors, 3, pk_field="pk", vector_field="vector") is None
    typed = {**_merged(2), "data": [b"\x00\x01", b"\x02\x03"]}  # e.g. binary vectors
    assert plan_fetch(typed, 2, pk_field="pk", vector_field="vector") is None
    assert plan_fetch({**_merged(2), "data": []}, 2, pk_field="pk", vector_field="vector") is None


def test_only_searches_returning_enough_floats_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_fetch, "MIN_FLOATS", MIN_FLOATS)
    dim, limit = 1536, 20
    below = MIN_FLOATS // (limit * dim)  # 17 queries: 522,240 floats
    merged = _merged(below, limit=limit, dim=dim)
    assert plan_fetch(merged, below, pk_field="pk", vector_field="vector") is None
    merged = _merged(below + 1, limit=limit, dim=dim)
    assert plan_fetch(merged, below + 1, pk_field="pk", vector_field="vector") is not None


def test_the_key_search_asks_for_the_primary_key_only_and_keeps_the_rest() -> None:
    merged = _merged(3, partition_names=["p1"], consistency_level="Session", timeout=2.0)
    plan = plan_fetch(merged, 3, pk_field="pk", vector_field="vector")
    assert plan is not None
    assert plan.search["output_fields"] == ["pk"]  # [] returns every field on Milvus Lite
    assert {k: v for k, v in plan.search.items() if k != "output_fields"} == {
        k: v for k, v in merged.items() if k != "output_fields"
    }
    assert plan.fields == tuple(FIELDS)
    assert merged["output_fields"] == FIELDS  # the caller's request is not changed


def test_row_queries_ask_once_per_distinct_row_with_the_search_settings() -> None:
    plan = _plan(3, partition_names=["p1"], consistency_level="Session", timeout=2.0)
    found = [[{"pk": "a"}, {"pk": "b"}], [{"pk": "b"}, {"pk": "c"}], [{"id": "a"}]]
    [query] = row_queries(plan, found)
    assert query == {
        "collection_name": "c",
        "partition_names": ["p1"],
        "consistency_level": "Session",
        "timeout": 2.0,
        "field": "pk",
        "values": ["a", "b", "c"],
        "output_fields": FIELDS,
        "limit": 3,
    }
    assert row_queries(plan, [[], []]) == []


def test_row_queries_split_many_keys() -> None:
    plan = _plan(2)
    count = MAX_KEYS_PER_QUERY * 2 + 5
    found = [[{"pk": k} for k in range(count)], [{"pk": 0}]]
    queries = row_queries(plan, found)
    assert [len(q["values"]) for q in queries] == [MAX_KEYS_PER_QUERY, MAX_KEYS_PER_QUERY, 5]
    assert [q["limit"] for q in queries] == [MAX_KEYS_PER_QUERY, MAX_KEYS_PER_QUERY, 5]
    assert [v for q in queries for v in q["values"]] == list(range(count))


def _row(key: str, n: int) -> dict[str, Any]:
    return {"pk": key, "text": f"text {key}", "n": n, "vector": [float(n)] * DIM}


def test_join_hands_each_caller_its_hits_rows_and_vectors() -> None:
    parts = [{"data": [[0.0] * DIM]}, {"data": [[1.0] * DIM, [2.0] * DIM]}]
    plan = plan_fetch(
        {**_merged(3), "data": [v for p in parts for v in p["data"]]},
        2,
        pk_field="pk",
        vector_field="vector",
    )
    assert plan is not None
    found = [
        [{"pk": "a", "distance": 0.1}, {"pk": "b", "distance": 0.2}],
        [{"pk": "b", "distance": 0.3}],
        [],
    ]
    rows = [_row("b", 2), _row("a", 1)]  # any order
    shares = join(plan, parts, found, rows)
    assert [len(share) for share in shares] == [1, 2]
    first = shares[0][0]
    assert isinstance(first, FetchedHits)
    assert first == [
        {"id": "a", "distance": 0.1, "entity": {"text": "text a", "n": 1}},
        {"id": "b", "distance": 0.2, "entity": {"text": "text b", "n": 2}},
    ]
    np.testing.assert_array_equal(first.float_vectors, [[1.0] * DIM, [2.0] * DIM])
    assert first.float_vectors.dtype == np.float32
    np.testing.assert_array_equal(take_float_vectors(first, "vector"), first.float_vectors)
    assert shares[1][0] == [{"id": "b", "distance": 0.3, "entity": {"text": "text b", "n": 2}}]
    assert shares[1][1] == [] and shares[1][1].float_vectors.shape == (0, DIM)
    shares[0][0][0]["entity"]["n"] = 99  # callers get their own dicts
    assert shares[1][0][0]["entity"]["n"] == 2 and rows[1]["n"] == 1


def test_a_row_gone_or_without_its_vector_makes_the_merge_incomplete() -> None:
    parts = [{"data": [[0.0] * DIM]}, {"data": [[1.0] * DIM]}]
    plan = _plan(2)
    found = [[{"pk": "a"}], [{"pk": "b"}]]
    with pytest.raises(IncompleteMerge):
        join(plan, parts, found, [_row("a", 1)])  # b was deleted in between
    for bad in (None, [1.0] * (DIM + 1), "not a vector"):
        with pytest.raises(IncompleteMerge):
            join(plan, parts, found, [_row("a", 1), {**_row("b", 2), "vector": bad}])


# ----- a real collection ---------------------------------------------------------------------


class _Calls:
    """The RPCs the store's connection sends (method and kwargs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, connection: Any) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        original = connection.acall

        async def acall(step: Any, *args: Any, **kwargs: Any) -> Any:
            self.sent.append((step.method, dict(step.kwargs)))
            return await original(step, *args, **kwargs)

        monkeypatch.setattr(connection, "acall", acall)

    def methods(self) -> list[str]:
        return [method for method, _ in self.sent]


def _answers(docs_per_query: list[list[Any]]) -> list[list[tuple[str, dict[str, Any]]]]:
    return [[(d.page_content, d.metadata) for d in docs] for docs in docs_per_query]


@pytest.fixture
def store(milvus_uri: str, collection_name: str) -> Any:
    from langchain_vd import Milvus

    store = Milvus(
        RandomEmbeddings(),  # type: ignore[arg-type]
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        consistency_level="Strong",  # reads see the sync client's deletes (the race test)
    )
    texts = [f"document number {i}" for i in range(60)]
    store.add_texts(
        texts,
        metadatas=[{"n": i, "tag": f"t{i % 3}"} for i in range(60)],
        ids=[f"doc_{i}" for i in range(60)],
    )
    yield store
    store.drop()
    store.close()


QUERIES = [f"query {q}" for q in range(30)]


async def _concurrent_mmr(store: Any) -> list[list[Any]]:
    return list(
        await asyncio.gather(
            *(store.amax_marginal_relevance_search(q, k=4, fetch_k=12) for q in QUERIES)
        )
    )


def test_merged_mmr_fetches_rows_once_and_picks_what_one_search_picks(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_fetch, "MIN_FLOATS", MIN_FLOATS)  # the real threshold
    expected = _answers([store.max_marginal_relevance_search(q, k=4, fetch_k=12) for q in QUERIES])
    calls = _Calls(monkeypatch, store._engine.connection)
    found = asyncio.run(_concurrent_mmr(store))
    assert _answers(found) == expected  # 30 x 12 x 32 floats: one search, below the threshold
    assert calls.methods() == ["search"]

    monkeypatch.setattr(search_fetch, "MIN_FLOATS", 1)
    calls.sent.clear()
    found = asyncio.run(_concurrent_mmr(store))
    assert _answers(found) == expected
    assert calls.methods() == ["search", "query_in"]
    search, query = (kwargs for _, kwargs in calls.sent)
    assert search["output_fields"] == ["pk"] and len(search["data"]) == len(QUERIES)
    assert "vector" in query["output_fields"]
    assert len(query["values"]) == len(set(query["values"])) <= 60


def test_merged_mmr_scores_are_the_search_distances(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records' scores come from the key search: equal to one search's."""
    engine = store._engine

    async def merged(fetch: bool) -> list[list[Any]]:
        monkeypatch.setattr(search_fetch, "MIN_FLOATS", 1 if fetch else 1 << 60)
        vectors = [RandomEmbeddings().embed_query(q) for q in QUERIES]
        ops = [engine.mmr(v, k=4, fetch_k=12) for v in vectors]
        return list(await asyncio.gather(*(engine.arun(op) for op in ops)))

    one, two = asyncio.run(merged(False)), asyncio.run(merged(True))
    assert [[(r.id, r.text, r.metadata) for r in rs] for rs in two] == [
        [(r.id, r.text, r.metadata) for r in rs] for rs in one
    ]
    assert [r.score for rs in two for r in rs] == pytest.approx(
        [r.score for rs in one for r in rs], rel=1e-6
    )


def test_a_row_deleted_between_the_requests_sends_the_one_search_again(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real race: the row queries are sent after a caller deleted some of the rows the
    key search found. The merged search goes again as one request; nobody gets a
    deleted document, and every caller still gets its k documents."""
    monkeypatch.setattr(search_fetch, "MIN_FLOATS", 1)
    planned = search_fetch.row_queries
    deleted: list[str] = []

    def delete_then_plan(plan: Any, found: Any) -> Any:
        queries = planned(plan, found)
        victims = [str(key) for key in queries[0]["values"][:5]]
        store.delete(ids=victims)  # sync client: lands before the row queries go
        deleted.extend(victims)
        return queries

    monkeypatch.setattr(search_fetch, "row_queries", delete_then_plan)
    calls = _Calls(monkeypatch, store._engine.connection)
    found = asyncio.run(_concurrent_mmr(store))
    assert calls.methods() == ["search", "query_in", "search"]
    assert calls.sent[2][1]["output_fields"][-1] == "vector"  # the one search, vectors and all
    assert len(deleted) == 5
    returned = {d.id for docs in found for d in docs}
    assert returned.isdisjoint(deleted)
    assert all(len(docs) == 4 for docs in found)

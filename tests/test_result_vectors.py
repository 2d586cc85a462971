"""Search hits' float vectors read as one numpy array (vd_integrations.milvus.result_vectors).

The fast path must give exactly the vectors pymilvus itself decodes, hand each caller of a
merged response its own rows, leave the other fields of the hits intact, and step aside
(return None, hits unchanged) wherever the response is not in the shape it knows.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pymilvus import DataType
from pymilvus.client.search_result import SearchResult
from pymilvus.grpc_gen import schema_pb2

from tests.random_embeddings import RandomEmbeddings
from vd_integrations.milvus.result_vectors import MAX_HELD, held_responses, take_float_vectors

DIM = 5


def _response(topks: list[int], *, dtype: int = DataType.FLOAT_VECTOR) -> SearchResult:
    """A search response as the server sends it: pk, text, $meta and the vector field."""
    total = sum(topks)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((total, DIM)).astype(np.float32)
    data = schema_pb2.SearchResultData(num_queries=len(topks), top_k=max(topks))
    data.primary_field_name = "pk"
    data.topks.extend(topks)
    data.ids.str_id.data.extend(f"id{i}" for i in range(total))
    data.scores.extend(float(i) for i in range(total))
    data.output_fields.extend(["text", "$meta", "vector"])
    text = data.fields_data.add(field_name="text", type=DataType.VARCHAR)
    text.scalars.string_data.data.extend(f"text {i}" for i in range(total))
    meta = data.fields_data.add(field_name="$meta", type=DataType.JSON, is_dynamic=True)
    meta.scalars.json_data.data.extend(json.dumps({"n": i}).encode() for i in range(total))
    vector = data.fields_data.add(field_name="vector", type=dtype)
    vector.vectors.dim = DIM
    if dtype == DataType.FLOAT_VECTOR:
        vector.vectors.float_vector.data.extend(vectors.ravel().tolist())
    else:
        vector.vectors.float16_vector = vectors.astype(np.float16).tobytes()
    return SearchResult(data)


def _expected(topks: list[int]) -> list[list[list[float]]]:
    """What pymilvus decodes for each hit's vector, per query."""
    return [[hit["entity"]["vector"] for hit in hits] for hits in _response(topks)]


def test_each_caller_of_a_merged_response_gets_its_own_rows() -> None:
    topks = [3, 0, 4, 2]
    expected = _expected(topks)
    result = _response(topks)
    for query, hits in enumerate(result):
        rows = take_float_vectors(hits, "vector")
        assert rows is not None
        assert rows.shape == (topks[query], DIM)
        assert rows.dtype == np.float32
        want = np.asarray(expected[query], dtype=np.float32).reshape(-1, DIM)
        np.testing.assert_array_equal(rows, want)


def test_the_other_fields_are_still_read_and_the_vector_is_not() -> None:
    result = _response([2, 3])
    hits = result[1]
    assert take_float_vectors(hits, "vector") is not None
    entities = [hit["entity"] for hit in hits]
    assert [e["text"] for e in entities] == ["text 2", "text 3", "text 4"]
    assert [e["n"] for e in entities] == [2, 3, 4]  # the dynamic field, materialised as before
    assert all("vector" not in e for e in entities)
    assert [hit["pk"] for hit in hits] == ["id2", "id3", "id4"]


def test_a_response_is_forgotten_once_every_share_is_taken() -> None:
    before = held_responses()  # earlier tests may have left shares untaken
    result = _response([2, 2])
    take_float_vectors(result[0], "vector")
    held = held_responses()
    assert held == min(before + 1, MAX_HELD)
    take_float_vectors(result[1], "vector")
    assert held_responses() == held - 1
    for hits in result:  # the vector field is gone from each caller's hits
        assert all(fd.field_name != "vector" for fd in hits.lazy_field_data)


def test_threads_taking_shares_at_once_each_get_their_own_rows() -> None:
    """Sync stores are called from thread pools: the held responses are shared state."""
    from concurrent.futures import ThreadPoolExecutor

    topks = [2, 3, 1]
    expected = [np.asarray(rows, dtype=np.float32) for rows in _expected(topks)]

    def worker(_: int) -> int:
        checked = 0
        for _ in range(50):
            result = _response(topks)
            for query in (2, 0):  # the middle share is left untaken: entries get evicted
                rows = take_float_vectors(result[query], "vector")
                assert rows is not None
                np.testing.assert_array_equal(rows, expected[query])
                checked += 1
        return checked

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(worker, range(8))) == 8 * 50 * 2
    assert held_responses() <= MAX_HELD


def test_the_cache_is_bounded_when_shares_are_never_taken() -> None:
    kept = [_response([1, 1]) for _ in range(10)]
    for result in kept:
        take_float_vectors(result[0], "vector")  # the second share is never taken
    assert held_responses() <= MAX_HELD


@pytest.mark.parametrize(
    "hits",
    [
        [{"pk": "a", "distance": 1.0, "entity": {"vector": [0.0] * DIM}}],  # not pymilvus hits
        [],
    ],
)
def test_other_shapes_are_left_to_the_caller(hits: list) -> None:
    assert take_float_vectors(hits, "vector") is None


def test_hits_already_read_as_lists_are_left_alone() -> None:
    hits = _response([3])[0]
    list(hits)  # materialises every field
    assert take_float_vectors(hits, "vector") is None
    assert all(len(hit["entity"]["vector"]) == DIM for hit in hits)


def test_a_half_precision_field_is_left_to_the_caller() -> None:
    hits = _response([2], dtype=DataType.FLOAT16_VECTOR)[0]
    assert take_float_vectors(hits, "vector") is None
    assert all(len(hit["entity"]["vector"]) for hit in hits)  # still decoded by pymilvus


def test_a_nullable_vector_field_is_left_to_the_caller() -> None:
    result = _response([2])
    hits = result[0]
    for fd in hits.lazy_field_data:
        if fd.field_name == "vector":
            fd.valid_data.extend([True, True])
    assert take_float_vectors(hits, "vector") is None
    assert any(fd.field_name == "vector" for fd in hits.lazy_field_data)


def test_a_missing_field_is_left_to_the_caller() -> None:
    hits = _response([2])[0]
    assert take_float_vectors(hits, "embedding") is None


def test_mmr_on_a_real_collection_picks_what_the_list_path_picks(
    milvus_uri: str, collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Merged async MMR searches (one response shared by 30 callers) and sync ones choose
    the same documents, with the same metadata, as when every vector is read as a list."""
    import asyncio

    from langchain_vd import Milvus
    from vd_integrations.milvus import reads

    store = Milvus(
        RandomEmbeddings(),  # type: ignore[arg-type]
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
    )
    try:
        texts = [f"document number {i}" for i in range(60)]
        store.add_texts(texts, metadatas=[{"n": i, "tag": f"t{i % 3}"} for i in range(60)])
        queries = [f"query {q}" for q in range(30)]

        def answers(docs_per_query: list[list[Any]]) -> list[list[tuple[str, dict]]]:
            return [[(d.page_content, d.metadata) for d in docs] for docs in docs_per_query]

        async def concurrent() -> list[list[Any]]:
            return list(
                await asyncio.gather(
                    *(
                        store.amax_marginal_relevance_search(q, k=4, fetch_k=12, lambda_mult=0.3)
                        for q in queries
                    )
                )
            )

        def sync() -> list[list[Any]]:
            return [
                store.max_marginal_relevance_search(q, k=4, fetch_k=12, lambda_mult=0.3)
                for q in queries
            ]

        taken: list[int] = []

        def spy(hits: Any, field: str) -> Any:
            rows = take_float_vectors(hits, field)
            taken.append(0 if rows is None else len(rows))
            return rows

        monkeypatch.setattr(reads, "take_float_vectors", spy)
        fast_async, fast_sync = answers(asyncio.run(concurrent())), answers(sync())
        assert taken == [12] * 60  # every search read its vectors as one array
        monkeypatch.setattr(reads, "take_float_vectors", lambda hits, field: None)
        slow_async, slow_sync = answers(asyncio.run(concurrent())), answers(sync())
        assert fast_async == slow_async == fast_sync == slow_sync
        assert all(len(a) == 4 and a[0][1]["tag"].startswith("t") for a in fast_async)
    finally:
        store.drop()
        store.close()

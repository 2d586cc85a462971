"""Data safety: no delete removes more than asked, every timeout bounds the whole call,
no client outlives its event loop, and a wrong URI fails at once (issue 14).

Classes covered here (the Lite crash and the stateful model tests have modules of their
own): raw expressions kept one syntactic unit wherever they are combined (1), deletes
that would match everything refused (2), timeouts during setup and connect (4), client
leaks across event loops (5), an unreachable server at first contact and an embedded file
held by another process (10). Every refusal asserts the error type, a message fragment,
and that the stored rows are unchanged.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from langchain_vd import Milvus, VDVectorStore
from llama_index_vd import MilvusVectorStore
from llama_index_vd import VDVectorStore as LlamaVDVectorStore
from vd_integrations.core.errors import (
    InvalidFilterExpressionError,
    InvalidInputError,
    MilvusOperationError,
    OperationTimeoutError,
    ServerUnreachableError,
)
from vd_integrations.core.expressions import check_raw_expression, is_literal_true
from vd_integrations.core.filters import and_exprs, matches_everything, or_exprs
from vd_integrations.core.retry import RetrySettings
from vd_integrations.testing.lite_server import MilvusLiteServer, free_port

DIM = 8
EMBEDDINGS = DeterministicFakeEmbedding(size=DIM)
#: Raw expressions that are not one unit alone but would be valid (and match every row)
#: once wrapped in parentheses next to another condition.
HOSTILE = [
    "x == 1) or (x >= 0",
    "x == 1)) or ((x >= 0",
    "x == 1 or (x >= 0",
    "x >= 0) or (x",
    "x == 1] or [x >= 0",
    'x == "1") or (x >= 0 or x == "',
    "x == 'a\\' ) or (x >= 0",
    'x == "unterminated',
    "x in [1, 2) or (x >= 0]",
]
#: Filters that compile to "match everything".
EVERYTHING = [
    {"tenant": {}},
    {"$and": []},
    {"tenant": {"$nin": []}},
    {"$or": [{"x": {"$nin": []}}, {"x": 1}]},
    {"$not": {"x": {"$in": []}}},
    "true",
    " (TRUE) ",
]
ROWS = 6


def _ids() -> list[str]:
    return [f"id{i}" for i in range(ROWS)]


@pytest.fixture
def store(milvus_uri: str, collection_name: str) -> Iterator[Milvus]:
    store = Milvus(EMBEDDINGS, collection_name=collection_name, connection_args={"uri": milvus_uri})
    store.add_texts(
        [f"text {i}" for i in range(ROWS)],
        metadatas=[{"x": i, "tenant": "a" if i % 2 else "b"} for i in range(ROWS)],
        ids=_ids(),
    )
    yield store
    store.drop()
    store.close()


def _stored(store: Milvus) -> list[str]:
    return sorted(doc.id for doc in store.get_by_ids(_ids()) if doc.id)


# --------------------------------------------------------------------------------------
# 1. raw expressions stay one syntactic unit
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("expr", HOSTILE)
def test_hostile_expressions_are_refused_alone(expr: str) -> None:
    with pytest.raises(InvalidFilterExpressionError, match="not one complete expression"):
        check_raw_expression(expr)
    for combine in (and_exprs, or_exprs):
        with pytest.raises(InvalidFilterExpressionError):
            combine('(pk in ["id3"])', expr)


@pytest.mark.parametrize(
    "expr",
    [
        "x == 1",
        "(x == 1) or (x >= 4)",
        'tag == ")" or tag == "(("',
        "name == 'it\\'s (not) closed'",
        'meta["a)"] == 1',
        "x in [1, 2, 3] and y == {p}",
        'text like "%\\"%"',
    ],
)
def test_balanced_expressions_pass_unchanged(expr: str) -> None:
    assert check_raw_expression(f"  {expr} ") == expr


_EXPRESSION_ALPHABET = st.sampled_from(list("()[]{}\"'\\ xor=1\n"))


@settings(max_examples=2000, deadline=None)
@given(st.lists(_EXPRESSION_ALPHABET, max_size=24).map("".join))
def test_an_accepted_expression_cannot_escape_its_parentheses(expr: str) -> None:
    """Whatever check_raw_expression accepts, "(" + expr + ")" closes only at its end."""
    try:
        check_raw_expression(expr)
    except InvalidFilterExpressionError:
        return
    wrapped, depth, quote, escaped = f"({expr})", 0, None, False
    for position, char in enumerate(wrapped):
        if quote:
            escaped, quote = (
                (False, quote) if escaped else (char == "\\", None if char == quote else quote)
            )
            continue
        if char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            assert depth > 0 or position == len(wrapped) - 1, (expr, position)
    assert depth == 0 and quote is None


@pytest.mark.parametrize("expr", HOSTILE[:3])
def test_delete_with_ids_and_a_hostile_expression_deletes_nothing(store: Milvus, expr: str) -> None:
    with pytest.raises(InvalidFilterExpressionError, match="Nothing was sent"):
        store.delete(ids=["id3"], expr=expr)
    with pytest.raises(InvalidFilterExpressionError):
        asyncio.run(store.adelete(ids=["id3"], expr=expr))
    assert _stored(store) == _ids()


def test_concurrent_deletes_never_merge_a_hostile_expression(store: Milvus) -> None:
    async def deletes() -> list[object]:
        return await asyncio.gather(
            store.adelete(expr="x == 1) or (x >= 0"),
            store.adelete(expr="x == 2"),
            store.adelete(expr={"x": 4}),
            return_exceptions=True,
        )

    results = asyncio.run(deletes())
    assert isinstance(results[0], InvalidFilterExpressionError)
    assert not isinstance(results[1], BaseException)
    assert not isinstance(results[2], BaseException)
    assert _stored(store) == ["id0", "id1", "id3", "id5"]


def test_hostile_search_filter_is_refused(store: Milvus) -> None:
    with pytest.raises(InvalidFilterExpressionError):
        store.similarity_search("text", k=3, expr=HOSTILE[0])
    with pytest.raises(InvalidFilterExpressionError):
        asyncio.run(store.asimilarity_search("text", k=3, expr=HOSTILE[0]))


def test_llama_index_string_expr_cannot_escape_the_filters(
    milvus_uri: str, collection_name: str
) -> None:
    store = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=DIM)
    nodes = [
        TextNode(
            id_=f"n{i}",
            text=f"node {i}",
            embedding=[float(i + 1)] * DIM,
            metadata={"tenant": "a" if i % 2 else "b", "x": i},
        )
        for i in range(ROWS)
    ]
    store.add(nodes)
    tenant_a = MetadataFilters(filters=[MetadataFilter(key="tenant", value="a")])
    query = VectorStoreQuery(query_embedding=[1.0] * DIM, similarity_top_k=ROWS, filters=tenant_a)
    for expr in HOSTILE[:3]:
        with pytest.raises(InvalidFilterExpressionError):
            store.query(query, string_expr=expr)
        with pytest.raises(InvalidFilterExpressionError):
            asyncio.run(store.aquery(query, string_expr=expr))
    scoped = store.query(query, string_expr="x >= 0")
    assert sorted(node.node_id for node in scoped.nodes) == ["n1", "n3", "n5"]
    store.clear()


# --------------------------------------------------------------------------------------
# 2. deletes that would match every row
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("flt", EVERYTHING, ids=repr)
def test_trivially_true_filters_are_recognised(flt: object) -> None:
    assert matches_everything(flt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "flt", [{"x": 1}, {"$or": [{"x": 1}, {"y": 2}]}, "x >= 0", "(a) or (true)"]
)
def test_real_filters_are_not_trivially_true(flt: object) -> None:
    assert not matches_everything(flt)  # type: ignore[arg-type]
    assert not is_literal_true("(a) or (true)")


@pytest.mark.parametrize("flt", EVERYTHING, ids=repr)
def test_milvus_delete_matching_everything_is_refused(store: Milvus, flt: object) -> None:
    with pytest.raises(InvalidInputError, match=r"matches every row.*drop\(\)"):
        store.delete(expr=flt)
    with pytest.raises(InvalidInputError, match="matches every row"):
        asyncio.run(store.adelete(expr=flt))
    assert _stored(store) == _ids()
    # bounded by ids, the same filter deletes just those ids
    store.delete(ids=["id0"], expr=flt)
    assert _stored(store) == _ids()[1:]


@pytest.mark.parametrize("flt", [f for f in EVERYTHING if isinstance(f, dict)], ids=repr)
def test_vd_store_delete_matching_everything_is_refused(flt: dict[str, object]) -> None:
    store = VDVectorStore(EMBEDDINGS, backend="memory", collection_name=f"c{uuid.uuid4().hex}")
    store.add_texts(["a", "b"], metadatas=[{"tenant": "a"}, {"tenant": "b"}], ids=["1", "2"])
    with pytest.raises(InvalidInputError, match="matches every row"):
        store.delete(filter=flt)
    with pytest.raises(InvalidInputError, match="matches every row"):
        asyncio.run(store.adelete(filter=flt))
    assert sorted(d.id for d in store.get_by_ids(["1", "2"]) if d.id) == ["1", "2"]


def test_llama_index_delete_nodes_matching_everything_is_refused(
    milvus_uri: str, collection_name: str
) -> None:
    everything = MetadataFilters(filters=[])
    for store in (
        MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=DIM),
        LlamaVDVectorStore(backend="memory", collection_name=collection_name),
    ):
        store.add([TextNode(id_="n1", text="a", embedding=[1.0] * DIM)])
        with pytest.raises(InvalidInputError, match=r"clear\(\)"):
            store.delete_nodes(filters=everything)
        with pytest.raises(InvalidInputError, match=r"clear\(\)"):
            asyncio.run(store.adelete_nodes(filters=everything))
        assert [n.node_id for n in store.get_nodes(node_ids=["n1"])] == ["n1"]
        store.clear()


# --------------------------------------------------------------------------------------
# 4. timeouts bound the whole call, setup and connect included
# --------------------------------------------------------------------------------------


@pytest.fixture
def hung_server(tmp_path: Path) -> Iterator[MilvusLiteServer]:
    """A Lite server of this test's own (the test freezes it: SIGSTOP)."""
    server = MilvusLiteServer(tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        server.thaw()
        server.kill()


#: Generous bound for "raised soon after its timeout" on a busy 2-core machine; without
#: the fix these calls took 20-60 s.
BOUND = 8.0


@pytest.mark.timeout(120)
def test_timeouts_bound_setup_and_connect_on_a_hung_server(hung_server: MilvusLiteServer) -> None:
    uri = hung_server.uri
    warm = Milvus(EMBEDDINGS, collection_name="warm", connection_args={"uri": uri})
    warm.add_texts(["a"], ids=["1"])  # the server answered once: no first-contact check
    hung_server.freeze()

    def fresh(**kwargs: object) -> Milvus:
        return Milvus(
            EMBEDDINGS,
            collection_name=f"c{uuid.uuid4().hex[:8]}",
            connection_args={"uri": uri},
            **kwargs,  # type: ignore[arg-type]
        )

    for retry in (RetrySettings.disabled(), None):
        start = time.monotonic()
        with pytest.raises(OperationTimeoutError, match=r"within its timeout of 0\.5 s"):
            fresh(retry=retry).similarity_search("q", timeout=0.5)
        assert time.monotonic() - start < BOUND

    async def first_async_call() -> float:
        store = fresh(retry=RetrySettings.disabled())
        start = time.monotonic()
        with pytest.raises(OperationTimeoutError):
            await store.asimilarity_search("q", timeout=0.5)
        elapsed = time.monotonic() - start
        await store.aclose()
        return elapsed

    assert asyncio.run(first_async_call()) < BOUND
    start = time.monotonic()
    with pytest.raises(OperationTimeoutError):
        warm.add_texts(["b"], ids=["2"], timeout=0.5)  # waits for Lite's write lock too
    assert time.monotonic() - start < BOUND


# --------------------------------------------------------------------------------------
# 5. one client per loop, closed when the loop ends
# --------------------------------------------------------------------------------------


def _live_async_handlers() -> int:
    gc.collect()
    return sum(type(o).__name__ in ("AsyncGrpcHandler",) for o in gc.get_objects())


def test_loops_that_end_leave_no_client_behind(store: Milvus, milvus_uri: str) -> None:
    async def search() -> None:
        assert await store.asimilarity_search("text", k=1)

    asyncio.run(search())
    before = _live_async_handlers()
    for _ in range(60):
        asyncio.run(search())
    threads = [threading.Thread(target=asyncio.run, args=(search(),)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _live_async_handlers() <= max(before, 1)

    async def lifetimes() -> None:
        for _ in range(20):
            async with Milvus(
                EMBEDDINGS,
                collection_name=store.collection_name,
                connection_args={"uri": milvus_uri},
            ) as request_store:
                await asyncio.gather(*(request_store.asimilarity_search("text") for _ in range(5)))

    asyncio.run(lifetimes())
    assert _live_async_handlers() <= max(before, 1)


# --------------------------------------------------------------------------------------
# 10. an unreachable server at first contact
# --------------------------------------------------------------------------------------


def test_refused_first_contact_fails_fast_naming_the_uri() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    store = Milvus(EMBEDDINGS, collection_name="c", connection_args={"uri": uri})
    start = time.monotonic()
    with pytest.raises(ServerUnreachableError, match=f"{uri}.*refused"):
        store.add_texts(["a"])
    with pytest.raises(ServerUnreachableError, match="refused"):
        asyncio.run(store.aadd_texts(["a"]))
    assert time.monotonic() - start < BOUND
    assert isinstance(ServerUnreachableError("x"), ConnectionError)


def test_unreachable_uri_keeps_credentials_out_of_the_message() -> None:
    uri = f"http://user:secret-pass@127.0.0.1:{free_port()}"
    store = Milvus(EMBEDDINGS, collection_name="c", connection_args={"uri": uri})
    with pytest.raises(ServerUnreachableError) as info:
        store.similarity_search("q")
    assert "secret-pass" not in str(info.value)


_HOLDER = """
import sys, time
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_vd import Milvus
store = Milvus(DeterministicFakeEmbedding(size=8), collection_name="c",
               connection_args={"uri": sys.argv[1]})
store.add_texts(["a"])
print("opened", flush=True)
sys.stdin.read()  # hold the file until the test closes our stdin
"""


def test_second_process_on_an_embedded_file_is_told_why(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "opened"
        store = Milvus(EMBEDDINGS, collection_name="c", connection_args={"uri": path})
        with pytest.raises(MilvusOperationError, match="Another process has the embedded"):
            store.similarity_search("a")
    finally:
        holder.communicate(timeout=60)


_NESTED_LOOP_CHURN = """
import asyncio, gc, sys, uuid
import nest_asyncio
nest_asyncio.apply()
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_vd import Milvus
for i in range(40):
    store = Milvus(DeterministicFakeEmbedding(size=8), collection_name="c" + uuid.uuid4().hex[:8],
                   connection_args={"uri": sys.argv[1]})
    store.add_texts(["apple", "banana"], metadatas=[{"n": 1}, {"n": 2}], ids=["1", "2"])
    async def ops():
        await store.aadd_texts(["cherry"], ids=["3"])
        await store.asimilarity_search("cherry", k=1)
        await store.adelete(expr="n == 1")
        if i % 2:
            await store.aclose()
    asyncio.run(ops())
    if i % 3 == 0:
        del store  # dropped without aclose(): its loop resources are collected
        gc.collect()
print("done", flush=True)
"""


def test_stores_collected_under_nest_asyncio_never_hang_later_calls(milvus_uri: str) -> None:
    """Regression: a collected store's loop sentinel, closed synchronously where
    nest_asyncio patches the loop, used to stop half-way inside pymilvus' connection lock
    and hang every later connect on that loop."""
    done = subprocess.run(
        [sys.executable, "-c", _NESTED_LOOP_CHURN, milvus_uri],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.stdout.strip() == "done", done.stderr[-3000:]
    assert "ignored GeneratorExit" not in done.stderr

"""Data safety of inputs (issue 14, classes 6, 8 and 9; issue 15, unknown keywords).

- Vector components outside float32 (``1e39``) are refused before anything is written, in
  every write path and for query vectors; ``3.4028235e38`` (float32's max) is stored.
- INT64 primary keys take ints and ASCII decimal strings only: a fullwidth ``'\uff13'`` must not
  delete row 3, ``'\u00b2'`` and ``'--5'`` must not raise a bare ``ValueError``.
- Metadata nested deeper than ``MAX_METADATA_DEPTH`` (64) levels is refused with a message
  naming the limit, without ``RecursionError`` however deep; 64 levels round-trip.
- Misspelled constructor keywords raise ``TypeError`` naming the closest valid one, while
  every argument of the upstream classes is still accepted.

The table-driven rows of ``tests/test_bad_input.py`` cover the same classes for every store,
sync and async, with the contents check; here are the boundaries and what needs a collection
of its own (an INT64 primary key).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.documents import Document
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from pymilvus import DataType, MilvusClient

import langchain_vd
import llama_index_vd
from tests.raw_clients import raw_client
from tests.test_bad_input import DIM, AxisEmbeddings, axis_vector
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.validation import (
    FLOAT32_MAX,
    MAX_METADATA_DEPTH,
    check_int64_id,
    check_known_kwargs,
    check_metadata_depth,
    check_metadata_values,
    check_vectors,
    parameter_names,
)
from vd_integrations.milvus.hybrid import check_sparse_vector
from vd_integrations.vd.engine import VdEngine

FLT_MAX_LITERAL = 3.4028235e38  # how float32's max is usually written; rounds to it


@pytest.fixture(scope="module")
def milvus(milvus_uri: str) -> Iterator[MilvusClient]:
    client = raw_client(milvus_uri)
    yield client
    client.close()


def run(mode: str, sync: Any, coroutine_factory: Any) -> Any:
    """``sync()`` or ``asyncio.run(coroutine_factory())``."""
    return sync() if mode == "sync" else asyncio.run(coroutine_factory())


def rows(milvus: MilvusClient, name: str) -> list[dict[str, Any]]:
    found = milvus.query(name, filter="", output_fields=["*"], limit=1000)
    return sorted(
        (
            {k: (list(v) if k in ("vector", "embedding") else v) for k, v in r.items()}
            for r in found
        ),
        key=lambda r: str(r.get("pk", r.get("id"))),
    )


# ------------------------------------------------------------------------------------------------
# Class 6: float32 range
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [1e39, -1e39, 3.4028236e38, 1e300, 10**39, -(10**400), np.float64(1e39)],
    ids=repr,
)
def test_check_vectors_refuses_components_outside_float32(value: Any) -> None:
    vector = [0.5] * 3 + [value]
    with pytest.raises(InvalidInputError, match=r"embedding #1 has component #3 .*float32"):
        check_vectors([[0.1] * 4, vector], dim=None, what="embedding")
    with pytest.raises(InvalidInputError, match="float32"):
        check_vectors([np.array(vector, dtype=object)], dim=None, what="embedding")


def test_check_vectors_copies_unless_told_not_to() -> None:
    """A write that serialises at once skips the copy of a list of floats; everything
    else is still checked and converted."""
    floats, ints = [0.5, 0.25], [1, 2]
    assert check_vectors([floats], dim=2, what="embedding")[0] is not floats
    assert check_vectors([floats], dim=2, what="embedding", copy=False)[0] is floats
    converted = check_vectors([ints, (0.5, 0.5)], dim=2, what="embedding", copy=False)
    assert converted == [[1.0, 2.0], [0.5, 0.5]] and converted[0] is not ints
    with pytest.raises(InvalidInputError, match="NaN"):
        check_vectors([[0.5, math.nan]], dim=2, what="embedding", copy=False)


def test_check_vectors_keeps_float32_max_and_nan_inf_messages() -> None:
    edge = [FLT_MAX_LITERAL, -FLT_MAX_LITERAL, FLOAT32_MAX, 1e-45, 0.0]
    assert check_vectors([edge], dim=None, what="embedding") == [edge]
    assert float(np.float32(FLT_MAX_LITERAL)) == FLOAT32_MAX  # what Milvus will store
    many_large = [1e37] * 1536  # a norm beyond float32's max, every component within it
    assert check_vectors([many_large], dim=None, what="embedding") == [many_large]
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(InvalidInputError, match="NaN or infinity"):
            check_vectors([[0.0, bad]], dim=None, what="query vector")


def test_sparse_weights_outside_float32_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="float32"):
        check_sparse_vector({3: 1e39})
    assert check_sparse_vector({3: FLT_MAX_LITERAL}) == {3: FLT_MAX_LITERAL}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_float32_max_is_stored_and_1e39_refused_by_langchain_milvus(
    milvus_uri: str, milvus: MilvusClient, collection_name: str, mode: str
) -> None:
    store = langchain_vd.Milvus(
        AxisEmbeddings(), collection_name, connection_args={"uri": milvus_uri}
    )
    store.add_embeddings(["apple"], [axis_vector("apple")], ids=["a"])
    edge = [FLT_MAX_LITERAL] + [0.0] * (DIM - 1)
    before = rows(milvus, collection_name)
    too_big = [1e39] + [0.0] * (DIM - 1)
    calls = {
        "add_embeddings": (["dog", "x"], [axis_vector("dog"), too_big]),
        "similarity_search_by_vector": (too_big,),
        "max_marginal_relevance_search_by_vector": (too_big,),
    }
    for method, args in calls.items():
        with pytest.raises(InvalidInputError, match="float32"):
            run(
                mode,
                lambda m=method, a=args: getattr(store, m)(*a),
                lambda m=method, a=args: getattr(store, "a" + m)(*a),
            )
    assert rows(milvus, collection_name) == before
    store.add_embeddings(["edge"], [edge], ids=["e"])
    (stored,) = store.get_by_ids(["e"])
    assert stored.page_content == "edge"
    vector = milvus.get(collection_name, ids=["e"], output_fields=["vector"])[0]["vector"]
    assert float(vector[0]) == FLOAT32_MAX and math.isfinite(float(vector[0]))
    store.close()


def test_vd_engine_refuses_components_outside_float32() -> None:
    engine = VdEngine(collection_name="f32", metric="cosine")
    with pytest.raises(InvalidInputError, match="float32"):
        engine.run(engine.add(["a", "b"], vectors=[[1.0, 0.0], [1e39, 0.0]]))
    assert engine.run(engine.count()) == 0
    with pytest.raises(InvalidInputError, match="float32"):
        engine.run(engine.search([[1e39, 0.0]], k=1))
    engine.close()


# ------------------------------------------------------------------------------------------------
# Class 9: metadata depth
# ------------------------------------------------------------------------------------------------


def nested(levels: int) -> dict[str, Any]:
    """A metadata dict ``levels`` deep (the dict itself is level 1)."""
    value: Any = "leaf"
    for i in range(levels - 1):
        value = {"k": value} if i % 2 else [value]
    return {"deep": value}


def test_metadata_depth_limit_is_exact_and_iterative() -> None:
    assert MAX_METADATA_DEPTH == 64
    check_metadata_values(0, nested(MAX_METADATA_DEPTH))
    check_metadata_depth(0, nested(MAX_METADATA_DEPTH))
    for levels in (MAX_METADATA_DEPTH + 1, 1000, 200_000):  # far past the recursion limit
        for check in (check_metadata_values, check_metadata_depth):
            with pytest.raises(InvalidInputError, match="more than 64 levels deep"):
                check(3, nested(levels))
    loop: list[Any] = []
    loop.append({"again": loop})
    with pytest.raises(InvalidInputError, match="circular reference"):
        check_metadata_values(0, {"loop": loop})
    shared = {"x": 1}  # the same object twice is no cycle
    check_metadata_values(0, {"a": [shared, shared, {"b": shared}]})


@pytest.mark.parametrize("kind", ["lc_milvus", "lc_vd", "li_milvus", "li_vd"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_deep_metadata_refused_and_64_levels_round_trip(
    milvus_uri: str, collection_name: str, kind: str, mode: str
) -> None:
    if kind.startswith("lc"):
        store = (
            langchain_vd.Milvus(
                AxisEmbeddings(), collection_name, connection_args={"uri": milvus_uri}
            )
            if kind == "lc_milvus"
            else langchain_vd.VDVectorStore(AxisEmbeddings(), collection_name=collection_name)
        )
        store.add_texts(["apple"], [{"n": 1}], ids=["a"])

        def add(meta: dict[str, Any], key: str) -> Any:
            args = (["apple", "dog"], [{"n": 2}, meta])
            kwargs = {"ids": ["x", key], "batch_size": 1}
            return run(
                mode,
                lambda: store.add_texts(*args, **kwargs),
                lambda: store.aadd_texts(*args, **kwargs),
            )

        def contents() -> list[tuple[Any, ...]]:
            docs = store.get_by_ids(["a", "x", "deep"])
            return sorted((d.id, d.page_content, repr(d.metadata)) for d in docs)
    else:
        store = (
            llama_index_vd.MilvusVectorStore(
                uri=milvus_uri, collection_name=collection_name, dim=DIM
            )
            if kind == "li_milvus"
            else llama_index_vd.VDVectorStore(collection_name=collection_name)
        )
        first = TextNode(id_="a", text="apple", metadata={"n": 1}, embedding=axis_vector("apple"))
        store.add([first])

        def add(meta: dict[str, Any], key: str) -> Any:
            nodes = [
                TextNode(id_="x", text="dog", embedding=axis_vector("dog")),
                TextNode(id_=key, text="deep", metadata=meta, embedding=axis_vector("dog")),
            ]
            return run(mode, lambda: store.add(nodes), lambda: store.async_add(nodes))

        def contents() -> list[tuple[Any, ...]]:
            nodes = store.get_nodes(["a", "x", "deep"])
            return sorted((n.node_id, n.get_content(), repr(n.metadata)) for n in nodes)

    before = contents()
    for levels in (MAX_METADATA_DEPTH + 1, 1000):
        with pytest.raises(InvalidInputError, match=f"more than {MAX_METADATA_DEPTH} levels deep"):
            add(nested(levels), "deep")
        assert contents() == before
    add(nested(MAX_METADATA_DEPTH), "deep")  # the limit itself is stored and read back
    stored = {row[0]: row for row in contents()}
    assert stored["deep"][2] == repr(nested(MAX_METADATA_DEPTH))
    store.close()


# ------------------------------------------------------------------------------------------------
# Class 8: INT64 primary keys
# ------------------------------------------------------------------------------------------------

BAD_INT_IDS = [
    "\uff13",  # fullwidth 3: int() reads it as 3
    "\u00b2",  # superscript 2: int() raises a bare ValueError
    "--5",
    "+3",
    " 3",
    "3 ",
    "1_0",
    "",
    "-",
    "0x3",
    True,
    3.0,
    2**63,
    "-9223372036854775809",
]


@pytest.mark.parametrize("bad", BAD_INT_IDS, ids=repr)
def test_check_int64_id_refuses_all_but_ascii_integers(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(repr(bad))):
        check_int64_id(bad, "c")


def test_check_int64_id_accepts_ints_and_ascii_digits() -> None:
    assert check_int64_id("3", "c") == 3
    assert check_int64_id("-3", "c") == -3
    assert check_int64_id("007", "c") == 7
    assert check_int64_id(np.int64(5), "c") == 5
    assert check_int64_id(2**63 - 1, "c") == 2**63 - 1
    assert check_int64_id(str(-(2**63)), "c") == -(2**63)


def _int_pk_collection(milvus: MilvusClient, name: str, pk: str, text: str, vector: str) -> None:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field(pk, DataType.INT64, is_primary=True)
    schema.add_field(text, DataType.VARCHAR, max_length=1000)
    schema.add_field(vector, DataType.FLOAT_VECTOR, dim=DIM)
    if pk == "id":  # LlamaIndex's layout
        schema.add_field("doc_id", DataType.VARCHAR, max_length=1000)
    index = milvus.prepare_index_params()
    index.add_index(vector, index_type="FLAT", metric_type="IP")
    milvus.create_collection(name, schema=schema, index_params=index)
    words = ("apple", "banana", "cherry", "dog", "eagle")
    data = [
        {pk: i, text: w, vector: axis_vector(w), **({"doc_id": f"d{i}"} if pk == "id" else {})}
        for i, w in enumerate(words, start=1)
    ]
    milvus.insert(name, data)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_langchain_int64_ids_accept_only_ascii_integers(
    milvus_uri: str, milvus: MilvusClient, collection_name: str, mode: str
) -> None:
    _int_pk_collection(milvus, collection_name, "pk", "text", "vector")
    store = langchain_vd.Milvus(
        AxisEmbeddings(), collection_name, connection_args={"uri": milvus_uri}
    )
    before = rows(milvus, collection_name)
    assert [r["pk"] for r in before] == [1, 2, 3, 4, 5]
    for bad in BAD_INT_IDS:
        calls = {
            "delete": ([bad],),
            "get_by_ids": ([bad],),
        }
        for method, args in calls.items():
            with pytest.raises(InvalidInputError, match=re.escape(repr(bad))):
                run(
                    mode,
                    lambda m=method, a=args: getattr(store, m)(*a),
                    lambda m=method, a=args: getattr(store, "a" + m)(*a),
                )
        with pytest.raises(InvalidInputError, match=re.escape(repr(bad))):
            run(
                mode,
                lambda b=bad: store.add_texts(["goat", "horse"], ids=["9", b], batch_size=1),
                lambda b=bad: store.aadd_texts(["goat", "horse"], ids=["9", b], batch_size=1),
            )
    assert rows(milvus, collection_name) == before
    run(mode, lambda: store.delete(["3", -7]), lambda: store.adelete(["3", -7]))
    assert [r["pk"] for r in rows(milvus, collection_name)] == [1, 2, 4, 5]
    assert [d.page_content for d in store.get_by_ids(["2"])] == ["banana"]
    store.add_documents([Document("goat", id="10")])
    assert {r["pk"] for r in rows(milvus, collection_name)} == {1, 2, 4, 5, 10}
    store.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_llama_index_int64_ids_accept_only_ascii_integers(
    milvus_uri: str, milvus: MilvusClient, collection_name: str, mode: str
) -> None:
    _int_pk_collection(milvus, collection_name, "id", "text", "embedding")
    store = llama_index_vd.MilvusVectorStore(uri=milvus_uri, collection_name=collection_name)
    before = rows(milvus, collection_name)
    for bad in [b for b in BAD_INT_IDS if isinstance(b, str) and b]:
        for method, coroutine in (("delete_nodes", "adelete_nodes"), ("get_nodes", "aget_nodes")):
            with pytest.raises(InvalidInputError, match=re.escape(repr(bad))):
                run(
                    mode,
                    lambda m=method, b=bad: getattr(store, m)([b]),
                    lambda c=coroutine, b=bad: getattr(store, c)([b]),
                )
    assert rows(milvus, collection_name) == before
    run(mode, lambda: store.delete_nodes(["3"]), lambda: store.adelete_nodes(["3"]))
    assert [r["id"] for r in rows(milvus, collection_name)] == [1, 2, 4, 5]
    store.close()


# ------------------------------------------------------------------------------------------------
# Issue 15: unknown constructor keywords
# ------------------------------------------------------------------------------------------------

#: llama-index-vector-stores-milvus 1.2.0, MilvusVectorStore.__init__ (not installed here:
#: read from its wheel); every one must stay accepted.
LLAMA_INDEX_UPSTREAM_ARGS = [
    "uri",
    "token",
    "collection_name",
    "overwrite",
    "upsert_mode",
    "collection_properties",
    "doc_id_field",
    "text_key",
    "scalar_field_names",
    "scalar_field_types",
    "enable_dense",
    "dim",
    "embedding_field",
    "enable_sparse",
    "sparse_embedding_field",
    "sparse_embedding_function",
    "index_management",
    "batch_size",
    "index_config",
    "sparse_index_config",
    "search_config",
    "similarity_metric",
    "consistency_level",
    "output_fields",
    "hybrid_ranker",
    "hybrid_ranker_params",
    "use_async_client",
]


def test_check_known_kwargs_names_the_closest() -> None:
    with pytest.raises(TypeError, match=r"'similarty_metric' \(did you mean 'similarity_metric'"):
        check_known_kwargs({"similarty_metric": "L2"}, {"similarity_metric", "uri"}, "X()")
    with pytest.raises(TypeError, match="Valid keyword arguments: similarity_metric, uri"):
        check_known_kwargs({"zzz": 1}, {"similarity_metric", "uri"}, "X()")
    check_known_kwargs({"uri": 1}, {"similarity_metric", "uri"}, "X()")


def test_every_upstream_argument_is_accepted(milvus_uri: str, collection_name: str) -> None:
    langchain_milvus = pytest.importorskip("langchain_milvus")
    theirs = set(inspect.signature(langchain_milvus.Milvus.__init__).parameters) - {"self"}
    assert theirs <= parameter_names(langchain_vd.Milvus.__init__)
    ours = parameter_names(llama_index_vd.MilvusVectorStore.__init__)
    assert set(LLAMA_INDEX_UPSTREAM_ARGS) - ours == {"use_async_client"}
    # ... accepted with pymilvus connection settings passed the way LlamaIndex passes them
    store = llama_index_vd.MilvusVectorStore(
        uri=milvus_uri,
        collection_name=collection_name,
        dim=DIM,
        use_async_client=False,
        timeout=30,
        keep_alive=True,
        alias="mine",
        db_name="",
    )
    store.add([TextNode(id_="a", text="apple", embedding=axis_vector("apple"))])
    query = VectorStoreQuery(query_embedding=axis_vector("apple"), similarity_top_k=1)
    assert store.query(query).ids == ["a"]
    store.close()


TYPOS = [
    ("lc_milvus", {"colection_name": "x"}, "collection_name"),
    ("lc_milvus", {"enable_dynamic_fields": True}, "enable_dynamic_field"),
    ("lc_milvus", {"connection_arg": {}}, "connection_args"),
    ("lc_vd", {"metrc": "l2"}, "metric"),
    ("lc_vd", {"similarity_metric": "l2"}, "metric"),
    ("lc_vd_milvus", {"ur": "./x.db"}, "uri"),
    ("li_milvus", {"similarty_metric": "L2"}, "similarity_metric"),
    ("li_milvus", {"upsert": True}, "upsert_mode"),
    ("li_milvus", {"passwrd": "x"}, "password"),
    ("li_vd", {"batch_sise": 3}, "batch_size"),
    ("li_vd", {"colection_name": "x"}, "collection_name"),
]


def _construct(kind: str, uri: str, name: str, extra: dict[str, Any]) -> Any:
    if kind == "lc_milvus":
        return langchain_vd.Milvus(AxisEmbeddings(), **{"collection_name": name, **extra})
    if kind == "lc_vd":
        return langchain_vd.VDVectorStore(AxisEmbeddings(), collection_name=name, **extra)
    if kind == "lc_vd_milvus":
        return langchain_vd.VDVectorStore(AxisEmbeddings(), backend="milvus", **extra)
    if kind == "li_milvus":
        return llama_index_vd.MilvusVectorStore(uri=uri, collection_name=name, **extra)
    return llama_index_vd.VDVectorStore(collection_name=name, **extra)


@pytest.mark.parametrize(("kind", "extra", "closest"), TYPOS, ids=lambda v: str(v)[:30])
def test_misspelled_constructor_keywords_name_the_closest(
    milvus_uri: str, milvus: MilvusClient, collection_name: str, kind: str, extra: Any, closest: str
) -> None:
    (typo,) = extra
    with pytest.raises(TypeError, match=rf"{typo!r} \(did you mean {closest!r}\?\)"):
        _construct(kind, milvus_uri, collection_name, extra)
    assert not milvus.has_collection(collection_name)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_from_texts_with_a_typo_writes_nothing(
    milvus_uri: str, milvus: MilvusClient, collection_name: str, mode: str
) -> None:
    kwargs = {"connection_args": {"uri": milvus_uri}, "colection_name": collection_name}
    with pytest.raises(TypeError, match="did you mean 'collection_name'"):
        run(
            mode,
            lambda: langchain_vd.Milvus.from_texts(["apple"], AxisEmbeddings(), **kwargs),
            lambda: langchain_vd.Milvus.afrom_texts(["apple"], AxisEmbeddings(), **kwargs),
        )
    assert not milvus.has_collection(collection_name)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)),  # surrogates too
)


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value <= 2**63 - 1
    if isinstance(value, float):
        return math.isfinite(value)
    return True


@given(key=_SCALARS.filter(lambda k: isinstance(k, str)), value=_SCALARS)
def test_metadata_scalars_are_refused_exactly_when_they_cannot_be_stored(key, value):
    """The fast path for plain scalars (ASCII strings, int64, finite floats) decides as the
    full walk would: a lone surrogate in a key or value, an int beyond int64, NaN or an
    infinity is refused, anything else passes."""
    if _storable(key) and _storable(value):
        check_metadata_values(0, {key: value})
    else:
        with pytest.raises(InvalidInputError):
            check_metadata_values(0, {key: value})

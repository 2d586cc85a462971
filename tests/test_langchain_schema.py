"""langchain_vd.Milvus' schema surface, as langchain-milvus users rely on it (issue 17).

Covers, on the Lite server, sync and async:

- the attributes upstream users read: ``fields`` (``[]`` before the collection exists, its
  field names after; compared with ``langchain_milvus.Milvus`` built with the same
  arguments), ``col``, ``_primary_field``, ``_text_field``, ``_vector_field``,
  ``vector_fields``, ``_metadata_field``, ``_partition_key_field``;
- ``metadata_schema``: typed columns with the dtype and options given (VARCHAR
  ``max_length``, INT64, ARRAY with an element type, nullable), checked by Milvus'
  own ``describe_collection``; bad schemas refused before a collection exists;
- ``enable_dynamic_field=False``: a column per key of the first document, extra keys
  dropped, missing keys refused before anything is written; ``metadata_field`` as one
  JSON field;
- values that a column cannot hold refused before anything is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from pymilvus import DataType, MilvusClient

from langchain_vd import Milvus
from tests.raw_clients import raw_client, raw_client_kwargs
from vd_integrations.core.errors import InvalidInputError

TEXTS = ["foo", "bar", "baz"]


class IndexEmbeddings(Embeddings):
    """Document i embeds as [1]*9 + [i]; every query is closest to the first document."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] * 9 + [float(i)] for i in range(len(texts))]

    def embed_query(self, text: str) -> list[float]:
        return [1.0] * 9 + [-0.1]


@pytest.fixture
def client(milvus_uri: str) -> Iterator[MilvusClient]:
    client = raw_client(milvus_uri)
    yield client
    client.close()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(
    milvus_uri: str, collection_name: str, mode: str
) -> Iterator[Callable[..., tuple[Milvus, Callable[..., Any]]]]:
    """``make(**store_kwargs)`` -> (store, call): ``call("add_texts", ...)`` runs the sync
    method or its async twin, as the test's mode says."""
    stores: list[Milvus] = []

    def build(**kwargs: Any) -> tuple[Milvus, Callable[..., Any]]:
        store = Milvus(
            IndexEmbeddings(),
            collection_name=collection_name,
            connection_args={"uri": milvus_uri},
            consistency_level="Strong",
            **kwargs,
        )
        stores.append(store)

        def call(name: str, *args: Any, **kw: Any) -> Any:
            if mode == "sync":
                return getattr(store, name)(*args, **kw)
            return asyncio.run(getattr(store, "a" + name)(*args, **kw))

        return store, call

    yield build
    for store in stores:
        store.close()


def described(client: MilvusClient, name: str) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in client.describe_collection(name)["fields"]}


def upstream_fields(milvus_uri: str, name: str, metadatas: list[dict], **kwargs: Any) -> set[str]:
    """The field names langchain_milvus.Milvus gives a collection made from TEXTS."""
    langchain_milvus = pytest.importorskip("langchain_milvus")
    theirs = langchain_milvus.Milvus.from_texts(
        TEXTS,
        IndexEmbeddings(),
        metadatas=metadatas,
        collection_name=name,
        connection_args=raw_client_kwargs(milvus_uri),  # no idle pings: see raw_clients
        drop_old=True,
        **kwargs,
    )
    fields = set(theirs.fields)
    theirs.client.drop_collection(name)
    theirs.client.close()
    return fields


# ------------------------------------------------------------------------------------------------
# The attributes upstream users read
# ------------------------------------------------------------------------------------------------


def test_attributes_before_and_after_the_collection_exists(make: Any, client: Any) -> None:
    store, call = make(primary_field="id_", text_field="body", vector_field="emb")
    assert store.fields == [] and store.col is None  # nothing created by reading them
    assert not client.has_collection(store.collection_name)
    assert (store._primary_field, store._text_field) == ("id_", "body")
    assert (store._vector_field, store.vector_fields) == ("emb", ["emb"])
    assert (store._metadata_field, store._partition_key_field) == (None, None)
    call("add_texts", TEXTS, ids=["1", "2", "3"])
    assert set(store.fields) == {"id_", "body", "emb"}
    col = store.col
    assert col is not None and col.name == store.collection_name
    assert [f.name for f in col.schema.fields] == store.fields
    [index] = col.indexes
    assert index.field_name == "emb" and index.params["metric_type"] == "L2"
    assert index.to_dict()["field"] == "emb"


def test_fields_of_an_existing_collection_without_any_call(make: Any, milvus_uri: str) -> None:
    writer, call = make(partition_key_field="ns")
    call("add_texts", TEXTS, [{"ns": "a"}] * 3)
    reader = Milvus(
        IndexEmbeddings(),
        collection_name=writer.collection_name,
        connection_args={"uri": milvus_uri},
    )
    assert set(reader.fields) == {"pk", "text", "vector", "ns"}
    assert reader.col is not None
    assert reader._partition_key_field is None  # the store's arguments, as langchain-milvus
    reader.close()


def test_bm25_store_lists_both_vector_fields(make: Any) -> None:
    from langchain_vd.milvus import BM25BuiltInFunction

    store, _ = make(builtin_function=BM25BuiltInFunction(), vector_field=["dense", "sparse"])
    assert store._vector_field == ["dense", "sparse"] == store.vector_fields


@pytest.mark.parametrize(
    ("kwargs", "metadatas"),
    [
        ({}, [{"id": i} for i in range(3)]),  # ours: dynamic fields by default
        ({"enable_dynamic_field": True}, [{"id": i} for i in range(3)]),
        ({"enable_dynamic_field": False}, [{"id": i, "tag": "t"} for i in range(3)]),
        ({"metadata_field": "metadata"}, [{"id": i} for i in range(3)]),
        (
            {"enable_dynamic_field": True, "partition_key_field": "namespace"},
            [{"id": i, "namespace": f"n{i}"} for i in range(3)],
        ),
    ],
    ids=["default", "dynamic", "static", "metadata_field", "partition_key"],
)
def test_fields_match_langchain_milvus(
    make: Any, milvus_uri: str, kwargs: dict[str, Any], metadatas: list[dict]
) -> None:
    store, call = make(**kwargs)
    call("add_texts", TEXTS, metadatas, ids=["1", "2", "3"])
    upstream_kwargs = kwargs or {"enable_dynamic_field": True}  # ours: dynamic by default
    expected = upstream_fields(
        milvus_uri, store.collection_name + "_up", metadatas, **upstream_kwargs
    )
    assert set(store.fields) == expected
    assert store._metadata_field == kwargs.get("metadata_field")


# ------------------------------------------------------------------------------------------------
# metadata_schema: typed columns
# ------------------------------------------------------------------------------------------------

SCHEMA = {
    "year": {"dtype": DataType.INT64},
    "title": {"dtype": DataType.VARCHAR, "kwargs": {"max_length": 16}},
    "tags": {"dtype": DataType.ARRAY, "element_type": DataType.INT64, "max_capacity": 4},
    "note": {"dtype": DataType.VARCHAR, "max_length": 32, "nullable": True},
}
ROWS = [
    {"year": 2020 + i, "title": f"t{i}", "tags": [i, i + 1], "note": None, "free": i}
    for i in range(3)
]


@pytest.mark.parametrize("dynamic", [None, False])
def test_metadata_schema_creates_typed_columns(make: Any, client: Any, dynamic: Any) -> None:
    store, call = make(metadata_schema=SCHEMA, enable_dynamic_field=dynamic)
    call("add_texts", TEXTS, ROWS, ids=["1", "2", "3"])
    fields = described(client, store.collection_name)
    assert fields["year"]["type"] == DataType.INT64
    assert fields["title"]["type"] == DataType.VARCHAR
    assert fields["title"]["params"]["max_length"] == 16
    assert fields["tags"]["type"] == DataType.ARRAY
    assert fields["tags"]["element_type"] == DataType.INT64
    assert fields["tags"]["params"]["max_capacity"] == 4
    assert fields["note"].get("nullable") is True
    # the first document's other keys: a column when static (inferred), dynamic otherwise
    assert ("free" in fields) == (dynamic is False)
    found = call("similarity_search", "foo", k=10, expr="ARRAY_CONTAINS(tags, 2)")
    assert sorted(d.id for d in found) == ["2", "3"]
    doc = call("get_by_ids", ["1"])[0]
    assert doc.metadata == ROWS[0]


@pytest.mark.parametrize(
    ("schema", "error", "match"),
    [
        ({"y": {"dtype": "NOPE"}}, InvalidInputError, "must be a pymilvus DataType"),
        ({"y": {"dtype": DataType.FLOAT_VECTOR}}, InvalidInputError, "vector_schema"),
        ({"y": {"dtype": DataType.ARRAY}}, InvalidInputError, "element_type and max_capacity"),
        ({"y": {"dtype": DataType.INT64, "max_lenght": 3}}, TypeError, "max_length"),
        ({"y": {}}, InvalidInputError, "with a 'dtype'"),
        ({"text": {"dtype": DataType.INT64}}, InvalidInputError, "already has"),
        ({"y": {"dtype": DataType.INT8, "default_value": 300}}, InvalidInputError, "default"),
    ],
    ids=["dtype", "vector", "array", "typo", "no-dtype", "reserved", "default"],
)
def test_bad_metadata_schema_is_refused_up_front(
    make: Any, client: Any, collection_name: str, schema: dict, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        make(metadata_schema=schema)
    assert not client.has_collection(collection_name)


def test_metadata_schema_with_a_json_metadata_field_is_refused(make: Any) -> None:
    with pytest.raises(InvalidInputError, match="metadata_field"):
        make(metadata_schema=SCHEMA, metadata_field="meta")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"year": "2020"}, "give an int"),
        ({"year": True}, "give an int"),
        ({"title": "x" * 17}, "at most 16 bytes"),
        ({"tags": [1, "2"]}, "give an int"),
        ({"tags": [1, 2, 3, 4, 5]}, "at most 4 elements"),
        ({"year": None}, "not nullable"),
        ({"year": 2**63}, "give an int in"),
    ],
    ids=["str-int", "bool-int", "long-str", "array-elem", "capacity", "null", "int64"],
)
def test_values_a_column_cannot_hold_are_refused_before_any_write(
    make: Any, bad: dict, match: str
) -> None:
    store, call = make(metadata_schema=SCHEMA)
    call("add_texts", ["first"], [ROWS[0]], ids=["0"])
    rows = [ROWS[1], {**ROWS[2], **bad}]  # the bad row last, one row per batch
    with pytest.raises(InvalidInputError, match=match):
        call("add_texts", TEXTS[:2], rows, ids=["1", "2"], batch_size=1)
    assert store.count() == 1


def test_nullable_column_may_be_left_out(make: Any) -> None:
    store, call = make(metadata_schema=SCHEMA)
    row = {k: v for k, v in ROWS[0].items() if k != "note"}
    call("add_texts", ["foo"], [row], ids=["1"])
    assert store.get_by_ids(["1"])[0].metadata["note"] is None


# ------------------------------------------------------------------------------------------------
# enable_dynamic_field=False: static columns from the first documents
# ------------------------------------------------------------------------------------------------


def test_static_columns_come_from_the_first_document(make: Any, client: Any) -> None:
    store, call = make(enable_dynamic_field=False)
    first = [{"n": i, "x": 0.5, "ok": True, "s": "a", "j": {"k": [1]}} for i in range(3)]
    call("add_texts", TEXTS, first, ids=["1", "2", "3"])
    info = client.describe_collection(store.collection_name)
    assert info["enable_dynamic_field"] is False
    types = {f["name"]: f["type"] for f in info["fields"]}
    assert {k: types[k] for k in first[0]} == {
        "n": DataType.INT64,
        "x": DataType.DOUBLE,
        "ok": DataType.BOOL,
        "s": DataType.VARCHAR,
        "j": DataType.JSON,
    }
    # extra keys are dropped, as langchain-milvus does; the columns are kept
    call("add_texts", ["qux"], [{**first[0], "extra": 1}], ids=["4"])
    assert store.get_by_ids(["4"])[0].metadata == first[0]
    # a missing column is refused before anything is written
    with pytest.raises(InvalidInputError, match="has no key 'n'"):
        call("add_texts", ["a", "b"], [first[0], {"x": 1.0}], ids=["5", "6"], batch_size=1)
    assert store.count() == 4


@pytest.mark.parametrize(
    ("value", "match"), [([1, 2], "metadata_schema="), (None, "None"), ([], "list")]
)
def test_uninferable_first_values_are_refused_before_creating(
    make: Any, client: Any, value: Any, match: str
) -> None:
    store, call = make(enable_dynamic_field=False)
    with pytest.raises(InvalidInputError, match=match):
        call("add_texts", TEXTS, [{"v": value}] * 3, ids=["1", "2", "3"])
    assert not client.has_collection(store.collection_name)


def test_static_columns_with_a_declared_array(make: Any) -> None:
    store, call = make(enable_dynamic_field=False, metadata_schema={"v": SCHEMA["tags"]})
    call("add_texts", TEXTS, [{"v": [i], "n": i} for i in range(3)], ids=["1", "2", "3"])
    assert set(store.fields) == {"pk", "text", "vector", "v", "n"}
    assert [d.id for d in call("similarity_search", "foo", k=3, expr="v[0] < 1")] == ["1"]


# ------------------------------------------------------------------------------------------------
# metadata_field: one JSON field
# ------------------------------------------------------------------------------------------------


def test_metadata_field_is_one_json_field_without_dynamic_fields(make: Any, client: Any) -> None:
    store, call = make(metadata_field="meta")
    call("add_texts", TEXTS, [{"a": 1}, {"b": [2]}, {}], ids=["1", "2", "3"])
    info = client.describe_collection(store.collection_name)
    assert info["enable_dynamic_field"] is False
    assert described(client, store.collection_name)["meta"]["type"] == DataType.JSON
    assert store.get_by_ids(["2"])[0].metadata == {"b": [2]}
    assert [d.id for d in call("similarity_search", "foo", k=3, expr="meta['a'] == 1")] == ["1"]


def test_enable_dynamic_field_true_ignores_metadata_field(make: Any, client: Any) -> None:
    store, call = make(metadata_field="meta", enable_dynamic_field=True)
    assert store._metadata_field is None and store.enable_dynamic_field is True
    call("add_texts", TEXTS, [{"a": 1}] * 3, ids=["1", "2", "3"])
    assert "meta" not in described(client, store.collection_name)


# ------------------------------------------------------------------------------------------------
# index_params, search_params and the other constructor arguments
# ------------------------------------------------------------------------------------------------


def test_index_and_search_params_as_given_or_from_the_collection(
    make: Any, milvus_uri: str
) -> None:
    given, call = make(index_params={"metric_type": "IP", "index_type": "HNSW"})
    assert given.index_params == {"metric_type": "IP", "index_type": "HNSW"}
    assert given.search_params is None  # not given, and no collection yet
    call("add_texts", TEXTS, ids=["1", "2", "3"])
    assert given.search_params == {"metric_type": "IP", "params": {"ef": 10}}
    opened = Milvus(
        IndexEmbeddings(),
        collection_name=given.collection_name,
        connection_args={"uri": milvus_uri},
        search_params={"metric_type": "IP", "params": {"ef": 64}},
    )
    assert opened.index_params == {"metric_type": "IP", "index_type": "HNSW", "params": {}}
    assert opened.search_params == {"metric_type": "IP", "params": {"ef": 64}}
    opened.close()


def test_constructor_arguments_read_back(make: Any) -> None:
    store, _ = make(
        collection_description="d",
        auto_id=True,
        partition_names=["p"],
        replica_number=1,
        timeout=5.0,
        num_shards=1,
    )
    assert (store.consistency_level, store.collection_description) == ("Strong", "d")
    assert (store.auto_id, store.partition_names, store.replica_number) == (True, ["p"], 1)
    assert (store.timeout, store.num_shards, store.num_partitions) == (5.0, 1, None)


@pytest.mark.parametrize(
    ("version", "column", "problem"),
    [
        ("v2.4.13", {"dtype": DataType.INT64, "nullable": True}, "need Milvus 2.5+"),
        ("v2.5.4", {"dtype": DataType.INT64, "nullable": True}, None),
        ("v2.3.21", SCHEMA["tags"], "ARRAY fields"),
        ("milvus_lite-2.4.12", {"dtype": DataType.INT64, "default_value": 1}, "Lite 3.0+"),
        ("milvus_lite-3.2.2", {"dtype": DataType.INT64, "nullable": True}, None),
        ("v2.5.4", {"dtype": DataType.TIMESTAMPTZ}, "TIMESTAMPTZ fields"),
        ("v2.2.0", {"dtype": DataType.INT64}, None),
        ("zilliz", {"dtype": DataType.TIMESTAMPTZ}, None),
    ],
)
def test_server_versions_that_lack_a_column_feature_are_named(
    version: str, column: dict, problem: str | None
) -> None:
    from vd_integrations.milvus.metadata_columns import (
        column_support_problem,
        parse_metadata_schema,
    )

    columns = parse_metadata_schema({"c": column}, reserved=())
    found = column_support_problem(version, columns)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and version in found


def test_metadata_schema_cannot_reuse_a_vector_field_name(milvus_uri: str) -> None:
    with pytest.raises(InvalidInputError, match="already has"):
        Milvus(
            [IndexEmbeddings(), IndexEmbeddings()],
            connection_args={"uri": milvus_uri},
            vector_field=["v1", "v2"],
            metadata_schema={"v2": {"dtype": DataType.INT64}},
        )

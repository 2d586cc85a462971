"""``vector_schema``: vector fields of the type asked for, or a clear error (issue 17, point 3).

langchain-milvus honours ``vector_schema=dict(dtype=DataType.FLOAT16_VECTOR, dim=...)``
(and BFLOAT16, BINARY, INT8 and SPARSE_FLOAT vectors where the server has them). Here: the
schema a new collection gets holds the type and dimension asked for; each value is checked
and encoded for its type (the oracle: numpy's own conversions); a server without the type
(Milvus Lite 3.x has float and sparse vectors only) is refused with an error naming the
server version and the type, before anything is created or written, sync and async. On
a real server (``VD_TEST_MILVUS_URI``) the round trip is tested instead.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from pymilvus import DataType

from langchain_vd import Milvus
from tests.raw_clients import raw_client
from vd_integrations.core.errors import InvalidInputError, MilvusOperationError
from vd_integrations.milvus.schema import CollectionSpec
from vd_integrations.milvus.server_versions import is_milvus_lite
from vd_integrations.milvus.vector_fields import (
    VectorField,
    refuse_unsupported_types,
    vector_type_problem,
)

TEXTS = ["foo", "bar", "baz"]


class Fp16Embeddings(Embeddings):
    """numpy float16 vectors, as langchain-milvus' own fp16 test embedder returns."""

    def embed_documents(self, texts: list[str]) -> list[Any]:
        return [
            np.array([0.25 * d for d in range(7)] + [float(i)], np.float16)
            for i in range(len(texts))
        ]

    def embed_query(self, text: str) -> Any:
        return np.array([0.25 * d for d in range(7)] + [0.0], np.float16)


class Bits(Embeddings):
    def embed_documents(self, texts: list[str]) -> list[Any]:
        return [bytes([i, 255 - i]) for i in range(len(texts))]

    def embed_query(self, text: str) -> Any:
        return bytes([0, 255])


def test_schema_holds_the_type_and_dimension_asked_for() -> None:
    vectors = (
        VectorField.from_schema("half", {"dtype": DataType.FLOAT16_VECTOR, "dim": 8}),
        VectorField.from_schema("brain", {"dtype": "BFLOAT16_VECTOR", "kwargs": {"dim": 4}}),
        VectorField.from_schema("bits", {"dtype": DataType.BINARY_VECTOR, "dim": 16}),
        VectorField.from_schema("small", {"dtype": DataType.INT8_VECTOR, "dim": 2}),
        VectorField.from_schema("words", None, sparse=True),
    )
    spec = CollectionSpec(name="c", vector_field="half", vectors=vectors)
    fields = {f.name: f for f in spec.build_schema(1).fields}
    assert fields["half"].dtype == DataType.FLOAT16_VECTOR and fields["half"].params["dim"] == 8
    assert fields["brain"].dtype == DataType.BFLOAT16_VECTOR and fields["brain"].params["dim"] == 4
    assert fields["bits"].dtype == DataType.BINARY_VECTOR and fields["bits"].params["dim"] == 16
    assert fields["small"].dtype == DataType.INT8_VECTOR
    assert fields["words"].dtype == DataType.SPARSE_FLOAT_VECTOR
    indexed = dict(spec.field_indexes())
    assert set(indexed) == {"half", "brain", "bits", "small", "words"}
    assert vectors[2].metric == "HAMMING" and vectors[4].index["metric_type"] == "IP"
    assert vectors[3].index["index_type"] == "HNSW"  # the only index INT8 vectors take


def test_values_are_checked_and_encoded_for_their_type() -> None:
    half = VectorField("half", DataType.FLOAT16_VECTOR, dim=3)
    encoded = half.encode([0.5, 1.0, 65504.0], dim=None, what="v")
    assert encoded.dtype == np.float16 and encoded.tolist() == [0.5, 1.0, 65504.0]
    brain = VectorField("brain", DataType.BFLOAT16_VECTOR)
    raw = brain.encode([1.0, -2.5, 3.14159], dim=3, what="v")
    assert isinstance(raw, bytes) and len(raw) == 6
    expected = np.array([1.0, -2.5, 3.14159], np.float32)
    assert np.allclose(brain.decode(raw), expected, rtol=2**-8)
    bits = VectorField("bits", DataType.BINARY_VECTOR, dim=16)
    assert bits.encode([1, 0, 0, 0, 0, 0, 0, 0] * 2, dim=None, what="v") == bytes([128, 128])
    assert bits.encode(b"\x01\x02", dim=None, what="v") == b"\x01\x02"
    small = VectorField("small", DataType.INT8_VECTOR, dim=2)
    assert small.encode([-128, 127], dim=None, what="v").dtype == np.int8
    words = VectorField("words", DataType.SPARSE_FLOAT_VECTOR)
    assert words.encode({3: 0.5}, dim=None, what="v") == {3: 0.5}
    for field, bad, message in [
        (half, [1.0, 2.0], "dimension 2, expected 3"),
        (half, [1.0, float("nan"), 2.0], "NaN"),
        (bits, b"\x01", "8 bits, expected 16"),
        (bits, [2] * 16, "0/1 bits"),
        (small, [0, 128], r"\[-128, 127\]"),
        (small, [0.5, 1], "int8"),
        (words, {-1: 1.0}, "non-negative"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            field.encode(bad, dim=None, what="v")
    with pytest.raises(InvalidInputError, match="vector type"):
        VectorField("x", "VARCHAR")
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        VectorField("x", DataType.BINARY_VECTOR, dim=12)


def test_which_servers_hold_which_types() -> None:
    lite = "milvus_lite-3.2.2"
    assert vector_type_problem(lite, DataType.FLOAT_VECTOR) is None
    assert vector_type_problem(lite, DataType.SPARSE_FLOAT_VECTOR) is None
    for dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR, DataType.BINARY_VECTOR):
        problem = vector_type_problem(lite, dtype)
        assert problem is not None and lite in problem and dtype.name in problem
    assert "2.4+" in (vector_type_problem("v2.3.21", DataType.FLOAT16_VECTOR) or "")
    assert vector_type_problem("v2.4.0", DataType.BFLOAT16_VECTOR) is None
    assert "2.6+" in (vector_type_problem("v2.5.4", DataType.INT8_VECTOR) or "")
    assert vector_type_problem("v2.6.0", DataType.INT8_VECTOR) is None
    assert vector_type_problem("cloud", DataType.INT8_VECTOR) is None  # unknown: server decides
    # the PyPI package "milvus" reports "v2.3.5-lite": a Milvus 2.3 standalone, not Milvus Lite
    assert vector_type_problem("v2.3.5-lite", DataType.BINARY_VECTOR) is None
    assert "2.4+" in (vector_type_problem("v2.3.5-lite", DataType.FLOAT16_VECTOR) or "")


def test_several_vector_fields_need_milvus_2_4() -> None:
    fields = [VectorField("a", dim=4), VectorField("b", dim=4)]
    with pytest.raises(MilvusOperationError, match=r"v2\.3\.5-lite\) holds one vector field"):
        refuse_unsupported_types("c", "v2.3.5-lite", fields)
    for version in ("v2.4.0", "milvus_lite-3.2.2", "cloud"):
        refuse_unsupported_types("c", version, fields)  # no error


def test_only_milvus_lite_counts_as_lite() -> None:
    assert is_milvus_lite("milvus_lite-3.2.2")
    assert not is_milvus_lite("v2.3.5-lite")  # PyPI "milvus": a real standalone binary
    assert not is_milvus_lite("v2.5.4")
    assert is_milvus_lite(None) is None


def _server_version(uri: str) -> str:
    client = raw_client(uri)
    try:
        return str(client.get_server_version())
    finally:
        client.close()


CASES = [
    (
        Fp16Embeddings(),
        {"dtype": DataType.FLOAT16_VECTOR, "dim": 8},
        {"metric_type": "L2", "index_type": "FLAT"},
    ),
    (
        Fp16Embeddings(),
        {"dtype": DataType.BFLOAT16_VECTOR, "dim": 8},
        {"metric_type": "L2", "index_type": "FLAT"},
    ),
    (
        Bits(),
        {"dtype": DataType.BINARY_VECTOR, "dim": 16},
        {"metric_type": "HAMMING", "index_type": "BIN_FLAT"},
    ),
]


@pytest.mark.parametrize(("embedder", "schema", "index"), CASES, ids=["fp16", "bf16", "binary"])
def test_types_the_server_lacks_are_refused_before_anything_is_written(
    milvus_uri: str, collection_name: str, embedder: Embeddings, schema: dict, index: dict
) -> None:
    version = _server_version(milvus_uri)
    if vector_type_problem(version, schema["dtype"]) is None:
        pytest.skip(f"{version} has this type: see the round trip test")
    store = Milvus(
        embedder,
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        vector_schema=dict(schema),
        index_params=index,
    )
    name = schema["dtype"].name
    with pytest.raises(MilvusOperationError, match=rf"\({re.escape(version)}\) has no {name}"):
        store.add_texts(TEXTS)
    with pytest.raises(MilvusOperationError, match=f"{name} field 'vector'"):
        asyncio.run(store.aadd_texts(TEXTS))
    assert not store.client.has_collection(collection_name)
    assert store.similarity_search("foo") == []
    store.close()


@pytest.mark.parametrize(
    ("embedder", "schema", "index"), CASES[:1] + CASES[2:], ids=["fp16", "binary"]
)
def test_round_trip_on_a_server_with_the_type(
    milvus_uri: str, collection_name: str, embedder: Embeddings, schema: dict, index: dict
) -> None:
    version = _server_version(milvus_uri)
    if vector_type_problem(version, schema["dtype"]) is not None:
        pytest.skip(f"{version} has no such vector type (refusal tested above)")
    store = Milvus(
        embedder,
        collection_name=collection_name,
        connection_args={"uri": milvus_uri},
        vector_schema=dict(schema),
        index_params=index,
        consistency_level="Strong",
    )
    store.add_texts(TEXTS)
    fields = {
        f["name"]: f["type"] for f in store.client.describe_collection(collection_name)["fields"]
    }
    assert fields["vector"] == schema["dtype"]
    assert store.similarity_search("q", k=1)[0].page_content == "foo"
    assert asyncio.run(store.asimilarity_search("q", k=1))[0].page_content == "foo"
    store.drop()
    store.close()

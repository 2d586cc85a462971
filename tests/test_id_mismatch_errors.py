"""Mismatched or duplicate ids raise ``IdMismatchError``: an ``AssertionError`` as in
``langchain_milvus.Milvus`` and LlamaIndex's ``MilvusVectorStore`` (``assert len(set(ids)) ==
len(texts)``), and an ``InvalidInputError`` (a ``ValueError``) as all our bad input; nothing
is written. Both integrations' Milvus stores, sync and async, on the Lite server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from llama_index.core.schema import TextNode

import vd_integrations
from langchain_vd import Milvus
from llama_index_vd import MilvusVectorStore
from tests.test_langchain_milvus import make_store as make_langchain_store
from vd_integrations import IdMismatchError, InvalidInputError

DIM = 8


def test_the_error_is_both_an_assertion_and_bad_input() -> None:
    assert vd_integrations.IdMismatchError is IdMismatchError
    assert issubclass(IdMismatchError, AssertionError)
    assert issubclass(IdMismatchError, InvalidInputError)
    assert issubclass(IdMismatchError, ValueError)
    for caught in (AssertionError, ValueError, InvalidInputError):
        with pytest.raises(caught):
            raise IdMismatchError("x")


def _run(store: Any, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return getattr(store, name)(*args, **kwargs)
    async_name = {"add": "async_add"}.get(name, f"a{name}")
    return asyncio.run(getattr(store, async_name)(*args, **kwargs))


@pytest.fixture
def langchain_store(milvus_uri: str, collection_name: str) -> Iterator[Milvus]:
    store = make_langchain_store(milvus_uri, collection_name)
    store.add_texts(["apple"], ids=["kept"])  # the collection exists: nothing more is written
    yield store
    store.drop()
    store.close()


STREAMED = object()  # stands for a generator of texts (made fresh for each call)

LANGCHAIN_CASES: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = [
    ("fewer ids than texts", "add_texts", (["apple", "dog"],), {"ids": ["x1"]}),
    ("more ids than texts", "add_texts", (["apple"],), {"ids": ["x1", "x2"]}),
    ("duplicate ids", "add_texts", (["apple", "dog"],), {"ids": ["x1", "x1"]}),
    ("streamed, ids longer", "add_texts", (STREAMED,), {"ids": ["x1", "x2"]}),
    (
        "embeddings, duplicate ids",
        "add_embeddings",
        (["apple", "dog"], [[1.0] + [0.0] * 7] * 2),
        {"ids": ["x1", "x1"]},
    ),
    (
        "documents, duplicate ids",
        "add_documents",
        ([Document("apple", id="d1"), Document("dog", id="d1")],),
        {},
    ),
    ("upsert, fewer ids", "upsert", (), {"ids": ["u1"], "documents": [Document("a")] * 2}),
    (
        "upsert, duplicate ids",
        "upsert",
        (),
        {"ids": ["u1", "u1"], "documents": [Document("a"), Document("b")]},
    ),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("name", "method", "args", "kwargs"), LANGCHAIN_CASES, ids=[c[0] for c in LANGCHAIN_CASES]
)
@pytest.mark.parametrize("caught", [AssertionError, ValueError])
def test_langchain_milvus_id_errors(
    langchain_store: Milvus,
    mode: str,
    name: str,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    caught: type[Exception],
) -> None:
    streamed = STREAMED in args
    args = tuple((t for t in ["apple"]) if a is STREAMED else a for a in args)
    with pytest.raises(caught) as info:
        _run(langchain_store, mode, method, *args, **kwargs)
    assert isinstance(info.value, IdMismatchError)
    if not streamed:  # a stream keeps the batches written before the bad one
        stored = langchain_store.get_by_ids(["kept", "x1", "x2", "d1", "u1"])
        assert [d.id for d in stored] == ["kept"]


def _node(node_id: str, text: str) -> TextNode:
    return TextNode(id_=node_id, text=text, embedding=[1.0] + [0.0] * (DIM - 1))


@pytest.fixture
def llama_store(milvus_uri: str, collection_name: str) -> Iterator[MilvusVectorStore]:
    store = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=DIM)
    store.add([_node("kept", "apple")])
    yield store
    store.clear()
    store.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("caught", [AssertionError, ValueError])
def test_llama_index_milvus_duplicate_node_ids(
    llama_store: MilvusVectorStore, mode: str, caught: type[Exception]
) -> None:
    with pytest.raises(caught, match="Duplicate id") as info:
        _run(llama_store, mode, "add", [_node("n1", "a"), _node("n1", "b")])
    assert isinstance(info.value, IdMismatchError)
    assert [n.node_id for n in llama_store.get_nodes(node_ids=["kept", "n1"])] == ["kept"]


# ----- the generic vd stores (memory backend) ----------------------------------------------


VD_CASES = [
    ("fewer ids than texts", ["apple", "dog"], ["x1"]),
    ("more ids than texts", ["apple"], ["x1", "x2"]),
    ("duplicate ids", ["apple", "dog"], ["x1", "x1"]),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("case", "texts", "ids"), VD_CASES, ids=[c[0] for c in VD_CASES])
def test_langchain_vd_store_ids(mode: str, case: str, texts: list[str], ids: list[str]) -> None:
    from langchain_vd import VDVectorStore
    from tests.test_langchain_vd_store import TableEmbeddings

    store = VDVectorStore(TableEmbeddings(), collection_name=f"ids_{mode}_{len(ids)}")
    store.add_texts(["kept"], ids=["kept"])
    with pytest.raises(IdMismatchError):
        _run(store, mode, "add_texts", texts, ids=ids)
    assert [d.id for d in store.get_by_ids(["kept", "x1", "x2"])] == ["kept"]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("case", "texts", "ids"), VD_CASES[2:], ids=[VD_CASES[2][0]])
def test_llama_index_vd_store_duplicate_node_ids(
    mode: str, case: str, texts: list[str], ids: list[str]
) -> None:
    from llama_index_vd import VDVectorStore

    store = VDVectorStore(collection_name=f"li_ids_{mode}")
    nodes = [TextNode(id_=i, text=t, embedding=[1.0, 0.0]) for t, i in zip(texts, ids, strict=True)]
    with pytest.raises(IdMismatchError):
        _run(store, mode, "add", nodes)
    assert store.get_nodes(node_ids=["x1"]) == []

"""Bad input, table driven, across both integrations: a clear error and no change stored.

Every row of :data:`LANGCHAIN_TABLE` and :data:`LLAMA_TABLE` is one bad input. It runs
against each store it names (``langchain_vd.Milvus`` / ``langchain_vd.VDVectorStore`` or
``llama_index_vd.MilvusVectorStore`` / ``llama_index_vd.VDVectorStore``), through the sync
method and its async twin. Each run asserts the exception type and a message fragment
naming the problem, and that the store's full contents (ids, texts, metadata, vectors,
count) read through the backend's own client are exactly what they were before.

Adds put the bad item *last*, after valid items, and use ``batch_size=1`` where the store
takes it: if validation missed the bad item, the earlier items would already be written
and the contents check would fail.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from pymilvus import MilvusClient
from vd import UnsupportedFilterError

import langchain_vd
import llama_index_vd
from tests.raw_clients import raw_client
from vd_integrations.core.errors import (
    InvalidFilterExpressionError,
    InvalidInputError,
    StoreClosedError,
)

DIM = 8
VOCAB = ("apple", "banana", "cherry", "dog", "eagle", "fish", "goat", "horse")
TOO_LONG = 65_536  # one byte over the text / primary key VARCHAR max_length


def axis_vector(text: str) -> list[float]:
    """Each known word is one axis; unit length; no known word gives the all-ones direction."""
    vector = np.zeros(DIM)
    for word in text.lower().split():
        if word in VOCAB:
            vector[VOCAB.index(word)] += 1.0
    if not vector.any():
        vector[:] = 1.0
    return (vector / np.linalg.norm(vector)).tolist()


class AxisEmbeddings(Embeddings):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [axis_vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return axis_vector(text)


class Opaque:
    """A metadata value no store can serialise."""


def deep(levels: int) -> dict[str, Any]:
    """Metadata nested ``levels`` deep (the dict itself is level 1; the limit is 64)."""
    value: Any = "leaf"
    for _ in range(levels - 1):
        value = {"k": value}
    return {"deep": value}


OVER_FLOAT32 = [1e39] + [0.0] * (DIM - 1)  # stored as inf, it would break scores and MMR


def node(node_id: str, text: str, embedding: Any = None, **metadata: Any) -> TextNode:
    """A TextNode whose ``embedding`` bypasses pydantic, so it is kept exactly as given."""
    result = TextNode(id_=node_id, text=text, metadata=metadata)
    result.__dict__["embedding"] = axis_vector(text) if embedding is None else embedding
    return result


def ok_node(node_id: str = "fresh") -> TextNode:
    return node(node_id, "goat horse")


def flt(*filters: Any, condition: Any = FilterCondition.AND) -> MetadataFilters:
    """MetadataFilters built without pydantic validation, as a caller could still build them."""
    return MetadataFilters.model_construct(filters=list(filters), condition=condition)


def atom(key: Any, op: Any, value: Any = None) -> MetadataFilter:
    return MetadataFilter.model_construct(key=key, operator=op, value=value)


def vq(embedding: Any = None, k: Any = 3, **kwargs: Any) -> VectorStoreQuery:
    """A VectorStoreQuery (a plain dataclass: nothing is validated on construction)."""
    embedding = axis_vector("apple") if embedding is None else embedding
    return VectorStoreQuery(query_embedding=embedding, similarity_top_k=k, **kwargs)


ALL = MetadataFilters(filters=[])

# ------------------------------------------------------------------------------------------------
# The tables
# ------------------------------------------------------------------------------------------------

LC_MILVUS, LC_VD, LI_MILVUS, LI_VD = "lc_milvus", "lc_vd", "li_milvus", "li_vd"
LC = (LC_MILVUS, LC_VD)
LI = (LI_MILVUS, LI_VD)


@dataclass(frozen=True)
class Bad:
    """One bad input: ``store.<method>(*args, **kwargs)`` must raise ``error`` (``match``)."""

    name: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    error: type[Exception] = InvalidInputError
    match: str = ""
    stores: tuple[str, ...] = LC


def add(name: str, texts: Any, match: str, stores: tuple[str, ...] = LC, **kwargs: Any) -> Bad:
    """An ``add_texts`` row (batch_size=1 so a missed bad item shows as a partial write)."""
    return Bad(name, "add_texts", (texts,), {"batch_size": 1, **kwargs}, match=match, stores=stores)


def meta(name: str, bad: Any, match: str, stores: tuple[str, ...] = LC) -> Bad:
    """An ``add_texts`` row whose last metadata is ``bad``."""
    return add(name, ["apple", "dog"], match, stores, metadatas=[{"ok": 1}, bad])


def emb(name: str, vectors: Any, match: str, texts: Any = None) -> Bad:
    """An ``add_embeddings`` row."""
    texts = ["apple", "dog"] if texts is None else texts
    return Bad(name, "add_embeddings", (texts, vectors), {"batch_size": 1}, match=match)


def search(name: str, match: str, *args: Any, method: str = "similarity_search", **kw: Any) -> Bad:
    args = args or ("apple",)
    return Bad(name, method, args, kw, match=match)


def mmr(name: str, match: str, **kwargs: Any) -> Bad:
    return Bad(name, "max_marginal_relevance_search", ("apple",), kwargs, match=match)


def filt(name: str, value: Any, match: str, stores: tuple[str, ...] = LC, **kw: Any) -> Bad:
    """A bad dict/str filter, given to a search as ``filter=``."""
    error = kw.pop("error", UnsupportedFilterError)
    return Bad(name, "similarity_search", ("apple",), {"filter": value}, error, match, stores)


LANGCHAIN_TABLE: list[Bad] = [
    # ----- texts -----
    add("texts is one str", "apple", "texts must be a list"),
    add("texts is None", None, "texts must be a list"),
    add("text not a str", ["apple", 5], "text #1 must be a str"),
    add("text is None", ["apple", None], "text #1 must be a str"),
    add("text lone surrogate", ["apple", "bad \ud800"], "text #1 .*UTF-8"),
    add("text over VARCHAR", ["apple", "x" * TOO_LONG], "max_length", (LC_MILVUS,)),
    add(
        "multibyte text over VARCHAR", ["apple", "é" * (TOO_LONG // 2)], "max_length", (LC_MILVUS,)
    ),
    add("batch_size zero", ["apple"], "batch_size", batch_size=0),
    # ----- lengths -----
    add("metadatas shorter", ["apple", "dog"], "lengths differ", metadatas=[{}]),
    add("ids shorter", ["apple", "dog"], "lengths differ", ids=["x1"]),
    add("ids longer", ["apple"], "lengths differ", ids=["x1", "x2"]),
    emb("embeddings shorter", [axis_vector("apple")], "lengths differ"),
    emb("flat embedding", axis_vector("apple"), "lengths differ", texts=["apple"]),
    # ----- column types -----
    add("metadatas is a dict", ["apple"], "metadatas must be a list", metadatas={"k": 1}),
    add("ids is one str", ["apple", "dog"], "ids must be a list", ids="xy"),
    add("metadatas is a str", ["apple", "dog"], "metadatas must be a list", metadatas="ab"),
    # ----- ids -----
    add("int id", ["apple", "dog"], "must be strings", ids=["x1", 7]),
    add("float id", ["apple", "dog"], "must be strings", ids=["x1", 1.5]),
    add("empty id", ["apple", "dog"], "non-empty", ids=["x1", ""]),
    add("duplicate ids", ["apple", "dog"], "Duplicate id", ids=["x1", "x1"]),
    add("duplicate of a stored id twice", ["apple", "dog"], "Duplicate id", ids=["k1", "k1"]),
    add("id lone surrogate", ["apple", "dog"], "id .*UTF-8", ids=["x1", "\udfff"]),
    add(
        "id over VARCHAR", ["apple", "dog"], "max_length", (LC_MILVUS,), ids=["x1", "i" * TOO_LONG]
    ),
    # ----- metadata -----
    meta("metadata set", {"s": {1, 2}}, "cannot (be )?store"),
    meta("metadata object", {"o": Opaque()}, "cannot (be )?store"),
    meta("metadata bytes", {"b": b"raw"}, "cannot (be )?store"),
    meta("metadata NaN", {"f": math.nan}, "cannot (be )?store"),
    meta("metadata inf", {"f": -math.inf}, "cannot (be )?store"),
    meta("metadata nested set", {"a": [1, {2}]}, "cannot (be )?store"),
    meta("metadata nested tuple key", {"a": {(1, 2): "x"}}, "cannot (be )?store"),
    meta("metadata nested int key", {"a": {"ok": {1: "x"}}}, "keys must be strings"),
    meta("metadata int over int64", {"n": 2**64}, "int64"),
    meta("metadata nested int under int64", {"n": [-(2**63) - 1]}, "int64"),
    meta("metadata surrogate value", {"s": "a\ud800b"}, "UTF-8"),
    meta("metadata nested surrogate", {"s": {"t": ["\udc00"]}}, "UTF-8"),
    meta("metadata surrogate key", {"k\ud800": 1}, "UTF-8"),
    meta("metadata nested 65 deep", deep(65), "more than 64 levels deep"),
    meta("metadata nested 1000 deep", deep(1000), "more than 64 levels deep"),
    meta("metadata not a dict", "topic", "must be a dict"),
    meta("metadata list", [("k", 1)], "must be a dict"),
    meta("metadata empty key", {"": 1}, "non-empty strings"),
    meta("metadata int key", {1: "x"}, "non-empty strings"),
    meta("metadata reserved pk", {"pk": "x"}, "reserved key", (LC_MILVUS,)),
    meta("metadata reserved text", {"text": "x"}, "reserved key", (LC_MILVUS,)),
    meta("metadata reserved vector", {"vector": [1.0]}, "reserved key", (LC_MILVUS,)),
    # ----- vectors -----
    emb("wrong dimension", [axis_vector("apple"), [1.0, 2.0]], "dimension"),
    emb("ragged one call", [[0.5] * DIM, [0.5] * (DIM + 1)], "dimension"),
    emb("NaN vector", [axis_vector("apple"), [math.nan] * DIM], "NaN"),
    emb("inf vector", [axis_vector("apple"), [math.inf] + [0.0] * (DIM - 1)], "infinity"),
    emb("empty vector", [axis_vector("apple"), []], "empty"),
    emb("vector over float32", [axis_vector("apple"), OVER_FLOAT32], "float32"),
    emb(
        "vector int over float32", [axis_vector("apple"), [-(10**39)] + [0] * (DIM - 1)], "float32"
    ),
    emb("None vector", [axis_vector("apple"), None], "not a sequence"),
    emb("str vector", [axis_vector("apple"), "0.5" * DIM], "not a sequence"),
    emb("str numbers", [axis_vector("apple"), ["0.5"] * DIM], "non-number"),
    emb("bool numbers", [axis_vector("apple"), [True] * DIM], "non-number"),
    # ----- upsert / add_documents -----
    Bad(
        "upsert ids mismatch",
        "upsert",
        (),
        {"ids": ["u1"], "documents": [Document("apple"), Document("dog")]},
        match="upsert got 1 ids",
    ),
    Bad(
        "upsert bad metadata",
        "upsert",
        (),
        {"documents": [Document("apple", id="u1"), Document("dog", id="u2", metadata={"s": {1}})]},
        match="cannot (be )?store",
    ),
    Bad(
        "add_documents duplicate ids",
        "add_documents",
        ([Document("apple", id="d1"), Document("dog", id="d1")],),
        match="Duplicate id",
    ),
    # ----- k, fetch_k, lambda_mult, query -----
    search("k zero", "positive integer", k=0),
    search("k negative", "positive integer", k=-1),
    search("k str", "positive integer", k="3"),
    search("k bool", "positive integer", k=True),
    search("k float", "positive integer", k=2.5),
    search("query None", "query must be a str", None),
    search("query bytes", "query must be a str", b"apple"),
    search("query vector dim", "dimension", [1.0, 0.0], method="similarity_search_by_vector"),
    search("query vector NaN", "NaN", [math.nan] * DIM, method="similarity_search_by_vector"),
    search(
        "query vector over float32", "float32", OVER_FLOAT32, method="similarity_search_by_vector"
    ),
    Bad(
        "mmr vector over float32",
        "max_marginal_relevance_search_by_vector",
        (OVER_FLOAT32,),
        match="float32",
    ),
    search("query vector str", "sequence", "apple", method="similarity_search_by_vector"),
    mmr("fetch_k zero", "fetch_k", fetch_k=0),
    mmr("mmr k zero", "positive integer", k=0),
    mmr("lambda over 1", "lambda_mult", lambda_mult=1.5),
    mmr("lambda negative", "lambda_mult", lambda_mult=-0.1),
    mmr("lambda NaN", "lambda_mult", lambda_mult=math.nan),
    mmr("lambda str", "lambda_mult", lambda_mult="high"),
    mmr("lambda None", "lambda_mult", lambda_mult=None),
    mmr("lambda bool", "lambda_mult", lambda_mult=True),
    Bad("metadata limit zero", "search_by_metadata", ({"n": 1},), {"limit": 0}, match="limit"),
    Bad("get_pks without filter", "get_pks", (None,), match="needs a filter"),
    # ----- filters -----
    filt("filter unknown operator", {"n": {"$regex": "x"}}, r"\$regex"),
    filt("filter unknown logical", {"$xor": [{"n": 1}]}, r"\$xor"),
    filt("filter $in scalar", {"n": {"$in": 1}}, "list"),
    filt("filter $and not a list", {"$and": {"n": 1}}, "list"),
    filt("filter int key", {1: 2}, "must be strings"),
    filt("filter list", [{"n": 1}], "dict", error=ValueError),
    filt("filter int", 5, "dict", error=ValueError),
    filt("filter None value", {"n": None}, "None is not a valid", (LC_MILVUS,)),
    filt("filter list equality", {"n": [1, 2]}, r"\$in", (LC_MILVUS,)),
    filt("filter NaN", {"n": {"$gt": math.nan}}, "finite", (LC_MILVUS,)),
    filt("filter surrogate", {"topic": "\ud800"}, "UTF-8", (LC_MILVUS,)),
    filt("filter int over int64", {"n": 2**64}, "int64", (LC_MILVUS,)),
    filt(
        "malformed expression",
        "n = = 1",
        "could not evaluate",
        (LC_MILVUS,),
        error=InvalidFilterExpressionError,
    ),
    filt(
        "unknown function expression",
        "no_such_function(n)",
        "could not evaluate",
        (LC_MILVUS,),
        error=InvalidFilterExpressionError,
    ),
    filt("string filter on vd", "n == 1", "dict filters", (LC_VD,)),
    Bad(
        "expr and filter",
        "similarity_search",
        ("apple",),
        {"expr": {"n": 1}, "filter": {"n": 2}},
        match="not both",
    ),
    # ----- delete / get -----
    Bad("delete nothing", "delete", (), match="ids or a filter"),
    Bad("delete ids is one str", "delete", ("k1",), match="ids must be a list"),
    Bad("delete int ids", "delete", ([1],), match="must be strings"),
    Bad("delete None id", "delete", (["k1", None],), match="must be strings"),
    Bad(
        "delete bad dict filter",
        "delete",
        (["k1"],),
        {"filter": {"n": {"$bogus": 1}}},
        UnsupportedFilterError,
        r"\$bogus",
    ),
    Bad(
        "delete malformed expression",
        "delete",
        (),
        {"expr": "n >> 1"},
        InvalidFilterExpressionError,
        "could not evaluate",
        (LC_MILVUS,),
    ),
    Bad("get_by_ids one str", "get_by_ids", ("k1",), match="ids must be a list"),
    Bad("get_by_ids int ids", "get_by_ids", ([1],), match="must be strings"),
]


def li_add(name: str, nodes: Any, match: str, stores: tuple[str, ...] = LI) -> Bad:
    """An ``add`` row; the bad node comes after a valid one."""
    return Bad(name, "add", (nodes,), match=match, stores=stores)


def li_query(name: str, query: Any, match: str, stores: tuple[str, ...] = LI, **kw: Any) -> Bad:
    error = kw.pop("error", InvalidInputError)
    return Bad(name, "query", (query,), kw, error, match, stores)


def li_filter(name: str, filters: Any, match: str, stores: tuple[str, ...] = LI) -> Bad:
    return li_query(name, vq(filters=filters), match, stores, error=UnsupportedFilterError)


LLAMA_TABLE: list[Bad] = [
    # ----- add -----
    li_add("one node, not a list", ok_node(), "list of nodes"),
    li_add("nodes None", None, "list of nodes"),
    li_add("not a node", [ok_node(), "apple"], "not a llama_index BaseNode"),
    li_add("no embedding", [ok_node(), TextNode(id_="bare", text="dog")], "no embedding"),
    li_add("wrong dimension", [ok_node(), node("w", "dog", [1.0, 0.0])], "dimension"),
    li_add("NaN embedding", [ok_node(), node("w", "dog", [math.nan] * DIM)], "NaN"),
    li_add("inf embedding", [ok_node(), node("w", "dog", [math.inf] * DIM)], "infinity"),
    li_add("embedding over float32", [ok_node(), node("w", "dog", [1e39] * DIM)], "float32"),
    li_add("str embedding values", [ok_node(), node("w", "dog", ["0.1"] * DIM)], "non-number"),
    li_add("duplicate node ids", [ok_node("dup"), node("dup", "dog")], "Duplicate"),
    li_add("empty node id", [ok_node(), node("", "dog")], "non-empty"),
    li_add("node id surrogate", [ok_node(), node("\ud800", "dog")], "UTF-8"),
    li_add("text over VARCHAR", [ok_node(), node("w", "x" * TOO_LONG)], "max_length", (LI_MILVUS,)),
    li_add("text surrogate", [ok_node(), node("w", "dog \ud800")], "UTF-8"),
    li_add("metadata object", [ok_node(), node("w", "dog", o=Opaque())], "metadata"),
    li_add("metadata int over int64", [ok_node(), node("w", "dog", n=2**70)], "int64"),
    li_add("metadata surrogate", [ok_node(), node("w", "dog", s="\udfff")], "UTF-8"),
    li_add("metadata nested 1000 deep", [ok_node(), node("w", "dog", **deep(1000))], "64 levels"),
    # ----- query -----
    li_query("k zero", vq(k=0), "similarity_top_k"),
    li_query("k negative", vq(k=-3), "similarity_top_k"),
    li_query("k bool", vq(k=True), "similarity_top_k"),
    li_query("k str", vq(k="3"), "similarity_top_k"),
    li_query("no query embedding", VectorStoreQuery(query_str="apple"), "query_embedding"),
    li_query("query dimension", vq([1.0, 0.0]), "dimension"),
    li_query("query NaN", vq([math.nan] * DIM), "NaN"),
    li_query("query over float32", vq(OVER_FLOAT32), "float32"),
    li_query("query str embedding", vq("apple"), "list of floats"),
    li_query("not a VectorStoreQuery", {"query_embedding": [0.0] * DIM}, "VectorStoreQuery"),
    li_query("unknown mode", vq(mode="bogus"), "Unknown query mode"),
    li_query("mmr threshold", vq(mode="mmr", mmr_threshold=1.5), "mmr_threshold"),
    li_query("mmr threshold str", vq(mode="mmr", mmr_threshold="x"), "mmr_threshold"),
    li_query(
        "mmr prefetch both", vq(mode="mmr"), "not both", mmr_prefetch_k=4, mmr_prefetch_factor=2
    ),
    li_query("mmr prefetch zero", vq(mode="mmr"), "mmr_prefetch_k", mmr_prefetch_k=0),
    li_query("mmr factor negative", vq(mode="mmr"), "mmr_prefetch_factor", mmr_prefetch_factor=-1),
    li_query("int node_ids", vq(node_ids=[1, 2]), "strings"),
    li_query("int doc_ids", vq(doc_ids=[7]), "strings"),
    li_query("node_ids one str", vq(node_ids="a"), "list of strings"),
    li_query(
        "malformed string_expr",
        vq(),
        "could not evaluate",
        (LI_MILVUS,),
        error=InvalidFilterExpressionError,
        string_expr="n = = 1",
    ),
    li_query(
        "string_expr not a str", vq(), "string_expr must be a str", (LI_MILVUS,), string_expr=1
    ),
    # ----- filters -----
    li_filter("unknown operator", flt(atom("n", "regex", "x")), "Unknown filter operator"),
    li_filter(
        "unknown condition", flt(atom("n", FilterOperator.EQ, 1), condition="xor"), "condition"
    ),
    li_filter("eq None", flt(atom("n", FilterOperator.EQ, None)), "IS_EMPTY"),
    li_filter("eq list", flt(atom("n", FilterOperator.EQ, [1, 2])), "IN, ANY or ALL"),
    li_filter("in scalar", flt(atom("n", FilterOperator.IN, 1)), "list"),
    li_filter("gt NaN", flt(atom("n", FilterOperator.GT, math.nan)), "finite"),
    li_filter("eq huge int", flt(atom("n", FilterOperator.EQ, 2**70)), "int64", (LI_MILVUS,)),
    li_filter("all empty", flt(atom("tags", FilterOperator.ALL, [])), "at least one"),
    li_filter("empty key", flt(atom("", FilterOperator.EQ, 1)), "non-empty"),
    li_filter("int key", flt(atom(5, FilterOperator.EQ, 1)), "non-empty strings"),
    li_filter("dict filters", {"n": 1}, "MetadataFilters"),
    li_filter("str filters", "n == 1", "MetadataFilters"),
    li_filter("nested junk", flt("junk"), "Expected MetadataFilters"),
    li_filter(
        "text match wildcard",
        flt(atom("kind", FilterOperator.TEXT_MATCH, "5%")),
        "'%'",
        (LI_MILVUS,),
    ),
    li_filter(
        "text match on vd",
        flt(atom("kind", FilterOperator.TEXT_MATCH, "x")),
        "TEXT_MATCH",
        (LI_VD,),
    ),
    li_filter(
        "surrogate value", flt(atom("kind", FilterOperator.EQ, "\ud800")), "UTF-8", (LI_MILVUS,)
    ),
    # ----- get / delete -----
    Bad("get_nodes nothing", "get_nodes", (), match="node_ids and/or filters", stores=LI),
    Bad("get_nodes one str", "get_nodes", ("a",), match="list of strings", stores=LI),
    Bad("get_nodes int ids", "get_nodes", ([1],), match="strings", stores=LI),
    Bad("delete_nodes nothing", "delete_nodes", (), match=r"clear\(\)", stores=LI),
    Bad("delete_nodes match-all", "delete_nodes", (None, ALL), match=r"clear\(\)", stores=LI),
    Bad("delete_nodes int ids", "delete_nodes", ([3],), match="strings", stores=LI),
    Bad(
        "delete_nodes bad filter",
        "delete_nodes",
        (["a"], flt(atom("n", "regex", "x"))),
        error=UnsupportedFilterError,
        match="Unknown filter operator",
        stores=LI,
    ),
    Bad("delete int ref_doc_id", "delete", (12,), match="ref_doc_id", stores=LI),
    Bad("delete None ref_doc_id", "delete", (None,), match="ref_doc_id", stores=LI),
]

# ------------------------------------------------------------------------------------------------
# Stores, calls and contents
# ------------------------------------------------------------------------------------------------

ASYNC_NAMES = {"add": "async_add"}


def invoke(store: Any, mode: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` sync, or its async twin under ``asyncio.run``."""
    if mode == "sync":
        return getattr(store, method)(*args, **kwargs)
    coroutine = getattr(store, ASYNC_NAMES.get(method, "a" + method))(*args, **kwargs)
    return asyncio.run(coroutine)


def seed_langchain(store: Any) -> None:
    store.add_texts(
        ["apple banana", "dog eagle", "cherry"],
        [{"n": 1, "topic": "fruit"}, {"n": 2, "nested": {"x": [1, None]}}, {}],
        ids=["k1", "k2", "k3"],
    )


def seed_llama(store: Any) -> None:
    store.add(
        [
            node("a", "apple", kind="fruit", n=1, tags=["red"]),
            node("b", "banana dog", kind="mix", n=2),
            node("c", "cherry"),
        ]
    )


def make_store(kind: str, uri: str, name: str) -> Any:
    if kind == LC_MILVUS:
        return langchain_vd.Milvus(AxisEmbeddings(), name, connection_args={"uri": uri})
    if kind == LC_VD:
        return langchain_vd.VDVectorStore(AxisEmbeddings(), backend="memory", collection_name=name)
    if kind == LI_MILVUS:
        return llama_index_vd.MilvusVectorStore(uri=uri, collection_name=name, dim=DIM)
    return llama_index_vd.VDVectorStore(backend="memory", collection_name=name)


class Contents:
    """Reads a store's full contents through the backend's own client (not the store)."""

    def __init__(self, kind: str, store: Any, name: str, milvus: MilvusClient) -> None:
        self.kind, self.name, self.milvus = kind, name, milvus
        # vd's memory client keeps its data after close(): hold it to read a closed store.
        self.vd_client = None if kind.endswith("milvus") else store.client

    def __call__(self) -> tuple[int, list[tuple[Any, ...]]]:
        if self.vd_client is None:
            rows = self.milvus.query(self.name, filter="", output_fields=["*"], limit=1000)
            (count,) = self.milvus.query(self.name, filter="", output_fields=["count(*)"])
            return int(count["count(*)"]), sorted(_row_key(row) for row in rows)
        col = self.vd_client.get_collection(self.name)
        docs = [col[key] for key in col]
        items = [(d.id, d.text, _canonical(d.metadata), _canonical(list(d.vector))) for d in docs]
        return len(col), sorted(items)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    pk = row.get("pk", row.get("id"))
    return (
        pk,
        _canonical({k: (list(v) if k in ("vector", "embedding") else v) for k, v in row.items()}),
    )


@pytest.fixture(scope="module")
def milvus(milvus_uri: str) -> Iterator[MilvusClient]:
    client = raw_client(milvus_uri)
    yield client
    client.close()


def reseed(kind: str, store: Any) -> None:
    """Drop the store's collection and write the seed documents again."""
    store.engine.run(store.engine.drop())
    (seed_langchain if kind.startswith("lc") else seed_llama)(store)


@dataclass
class Seeded:
    store: Any
    contents: Contents
    initial: tuple[int, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def seeded(milvus_uri: str, milvus: MilvusClient) -> Iterator[dict[str, Seeded]]:
    """One seeded store of each kind, shared by every row (each row checks its own effect)."""
    out = {}
    for kind in (LC_MILVUS, LC_VD, LI_MILVUS, LI_VD):
        name = f"t_bad_{kind}"
        store = make_store(kind, milvus_uri, name)
        reseed(kind, store)
        contents = Contents(kind, store, name, milvus)
        out[kind] = Seeded(store, contents, contents())
        assert out[kind].initial[0] == 3
    yield out
    for entry in out.values():
        entry.store.close()
    for kind in (LC_MILVUS, LI_MILVUS):
        milvus.drop_collection(f"t_bad_{kind}")


def _cases(table: list[Bad]) -> list[Any]:
    return [
        pytest.param(row, kind, mode, id=f"{kind}-{mode}-{row.name}")
        for row in table
        for kind in row.stores
        for mode in ("sync", "async")
    ]


def check(seeded: dict[str, Seeded], row: Bad, kind: str, mode: str) -> None:
    entry = seeded[kind]
    before = entry.contents()
    if before != entry.initial:  # an earlier failing row wrote something: start clean
        reseed(kind, entry.store)
        before = entry.contents()
        assert before == entry.initial
    with pytest.raises(row.error, match=row.match):
        invoke(entry.store, mode, row.method, *row.args, **row.kwargs)
    assert entry.contents() == before, f"{row.name!r} changed the contents of {kind}"


@pytest.mark.parametrize(("row", "kind", "mode"), _cases(LANGCHAIN_TABLE))
def test_langchain_bad_input(seeded: Any, row: Bad, kind: str, mode: str) -> None:
    check(seeded, row, kind, mode)


@pytest.mark.parametrize(("row", "kind", "mode"), _cases(LLAMA_TABLE))
def test_llama_index_bad_input(seeded: Any, row: Bad, kind: str, mode: str) -> None:
    check(seeded, row, kind, mode)


# ------------------------------------------------------------------------------------------------
# Closed stores
# ------------------------------------------------------------------------------------------------

CLOSED_CALLS: dict[str, list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = {
    "lc": [
        ("add_texts", (["goat"],), {"ids": ["new"]}),
        ("similarity_search", ("apple",), {}),
        ("max_marginal_relevance_search", ("apple",), {}),
        ("delete", (["k1"],), {}),
        ("upsert", (), {"documents": [Document("goat", id="k1")]}),
        ("get_by_ids", (["k1"],), {}),
        ("count", (), {}),
        ("drop", (), {}),
    ],
    "li": [
        ("add", ([ok_node()],), {}),
        ("query", (vq(),), {}),
        ("delete", ("None",), {}),
        ("delete_nodes", (["a"],), {}),
        ("get_nodes", (["a"],), {}),
        ("clear", (), {}),
    ],
}
CLOSED_TABLE = [
    (kind, method, args, kwargs)
    for kind in (LC_MILVUS, LC_VD, LI_MILVUS, LI_VD)
    for method, args, kwargs in CLOSED_CALLS[kind[:2]]
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", [LC_MILVUS, LC_VD, LI_MILVUS, LI_VD])
def test_closed_store(
    milvus_uri: str, milvus: MilvusClient, collection_name: str, kind: str, mode: str
) -> None:
    """Every call on a closed store (closed sync or async) raises and writes nothing."""
    store = make_store(kind, milvus_uri, collection_name)
    (seed_langchain if kind.startswith("lc") else seed_llama)(store)
    contents = Contents(kind, store, collection_name, milvus)
    before = contents()
    if mode == "sync":
        store.close()
    else:
        asyncio.run(store.aclose())
    for k, method, args, kwargs in CLOSED_TABLE:
        if k != kind:
            continue
        for call_mode in ("sync", "async"):
            with pytest.raises(StoreClosedError, match="closed"):
                invoke(store, call_mode, method, *args, **kwargs)
    assert contents() == before
    if kind.endswith("milvus"):
        milvus.drop_collection(collection_name)


# ------------------------------------------------------------------------------------------------
# The figures
# ------------------------------------------------------------------------------------------------


def test_table_size(capsys: pytest.CaptureFixture[str]) -> None:
    """At least 40 distinct bad inputs, across both integrations."""
    per_store = {
        kind: sum(kind in row.stores for row in LANGCHAIN_TABLE + LLAMA_TABLE)
        + sum(k == kind for k, *_ in CLOSED_TABLE)
        for kind in (LC_MILVUS, LC_VD, LI_MILVUS, LI_VD)
    }
    rows = len(LANGCHAIN_TABLE) + len(LLAMA_TABLE) + len(CLOSED_TABLE)
    with capsys.disabled():
        print(
            f"\nbad inputs: {rows} rows (langchain {len(LANGCHAIN_TABLE)}, llama_index "
            f"{len(LLAMA_TABLE)}, closed-store calls {len(CLOSED_TABLE)}); per store {per_store}; "
            f"each run sync and async"
        )
    assert len(LANGCHAIN_TABLE) >= 40 and len(LLAMA_TABLE) >= 40
    names = [row.name for row in LANGCHAIN_TABLE]
    assert len(names) == len(set(names))
    names = [row.name for row in LLAMA_TABLE]
    assert len(names) == len(set(names))

"""``llama_index_vd.MilvusVectorStore`` behaves like LlamaIndex's ``MilvusVectorStore`` where
that store's own test suite (``tests/test_vector_stores_milvus.py`` of
llama-index-vector-stores-milvus) relies on it; our own tests of the same behaviours, on the
Lite server, sync and async:

- a collection made elsewhere (``MilvusClient.create_collection(dimension=...,
  primary_field_name="id", vector_field_name="embedding", auto_id=True)``, text and metadata
  in dynamic fields) opens with ``doc_id_field="id"``, ``text_key="custom_text"`` and
  ``output_fields`` and is queried and read (``test_custom_node_format`` upstream);
- with ``dim`` the collection exists right after the constructor, with its index and
  ``consistency_level`` (``test_collection_created_with_expected_consistency_level``), and
  ``overwrite=True`` has dropped the old one by then; async calls that follow do no setup
  and never block the loop; without ``dim`` the constructor touches nothing (ours only);
- mismatched or duplicate ids: see ``test_id_mismatch_errors.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from pymilvus import MilvusClient, MilvusException

from llama_index_vd import MilvusVectorStore
from tests.loop_watch import LoopWatch
from tests.raw_clients import raw_client

DIM = 8
#: ``describe_collection``'s consistency levels.
CONSISTENCY = {"Strong": 0, "Session": 1, "Bounded": 2, "Eventually": 3}


def unit(axis: int, sign: float = 1.0) -> list[float]:
    vector = [0.0] * DIM
    vector[axis] = sign
    return vector


def node(node_id: str, text: str, axis: int, doc: str = "doc") -> TextNode:
    return TextNode(
        id_=node_id,
        text=text,
        embedding=unit(axis),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
    )


def query(axis: int, sign: float = 1.0, k: int = 1) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=unit(axis, sign), similarity_top_k=k)


def run(store: MilvusVectorStore, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return getattr(store, name)(*args, **kwargs)
    async_name = {"add": "async_add"}.get(name, f"a{name}")
    return asyncio.run(getattr(store, async_name)(*args, **kwargs))


@pytest.fixture
def client(milvus_uri: str) -> Iterator[MilvusClient]:
    client = raw_client(milvus_uri)
    yield client
    client.close()


# ----- a collection made elsewhere ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_collection_made_elsewhere_with_dynamic_text(
    milvus_uri: str, collection_name: str, client: MilvusClient, mode: str
) -> None:
    client.create_collection(
        collection_name=collection_name,
        dimension=DIM,
        primary_field_name="id",
        vector_field_name="embedding",
        metric_type="COSINE",
        auto_id=True,
    )
    store = MilvusVectorStore(
        uri=milvus_uri,
        collection_name=collection_name,
        dim=DIM,
        doc_id_field="id",
        embedding_field="embedding",
        text_key="custom_text",
        output_fields=["custom_meta"],
    )
    rows = [
        {"embedding": unit(0), "custom_text": "n1_text", "custom_meta": "n1_meta", "x": 1},
        {"embedding": unit(0, -1.0), "custom_text": "n2_text", "custom_meta": "n2_meta"},
    ]
    inserted = store.client.insert(collection_name, data=rows)
    pks = [str(pk) for pk in inserted["ids"]]

    for sign, text, pk in ((1.0, "n1_text", pks[0]), (-1.0, "n2_text", pks[1])):
        result = run(store, mode, "query", query(0, sign))
        (hit,) = result.nodes
        assert isinstance(hit, TextNode) and hit.text == text
        assert hit.metadata == {"custom_meta": text.replace("text", "meta")}
        assert result.ids == [pk] and hit.node_id == pk

    got = run(store, mode, "get_nodes", node_ids=pks)
    assert [(n.node_id, n.text, n.metadata) for n in got] == [
        (pks[0], "n1_text", {"custom_meta": "n1_meta"}),
        (pks[1], "n2_text", {"custom_meta": "n2_meta"}),
    ]
    assert got[0].embedding == pytest.approx(unit(0))
    # the document id is the primary key: delete(ref_doc_id) deletes the row with that key
    run(store, mode, "delete", pks[0])
    assert [n.node_id for n in run(store, mode, "get_nodes", node_ids=pks)] == [pks[1]]
    run(store, mode, "delete_nodes", [pks[1]])
    assert run(store, mode, "get_nodes", node_ids=pks) == []
    store.close()


def test_dynamic_text_collection_refuses_nothing_it_can_store(
    milvus_uri: str, collection_name: str, client: MilvusClient
) -> None:
    """Nodes added by our store to such a collection keep their text in the dynamic field."""
    client.create_collection(
        collection_name=collection_name,
        dimension=DIM,
        primary_field_name="pk",
        id_type="string",
        max_length=64,
        vector_field_name="embedding",
        metric_type="IP",
    )
    store = MilvusVectorStore(
        uri=milvus_uri, collection_name=collection_name, dim=DIM, text_key="custom_text"
    )
    store.add([node("a", "apple text", 1)])
    (row,) = client.query(collection_name, filter="", limit=5, output_fields=["*"])
    assert row["custom_text"] == "apple text" and row["pk"] == "a"
    (hit,) = store.query(query(1)).nodes
    assert hit.node_id == "a" and hit.get_content() == "apple text"
    store.close()


def test_id_field_is_accepted_when_it_names_the_primary_key(milvus_uri: str) -> None:
    """LlamaIndex's own tests pass ``id_field="id"``, which its store ignores."""
    store = MilvusVectorStore(uri=milvus_uri, collection_name="never_made", id_field="id")
    assert "id_field" not in store.engine.config.client_kwargs()
    store.close()
    with pytest.raises(ValueError, match=r"primary key .* always 'id'"):
        MilvusVectorStore(uri=milvus_uri, collection_name="never_made", id_field="pk")


# ----- the collection is created in the constructor when dim is given ----------------------------


@pytest.mark.parametrize("level", ["Strong", "Bounded"])
def test_dim_creates_the_collection_in_the_constructor(
    milvus_uri: str,
    collection_name: str,
    client: MilvusClient,
    level: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Any] = []
    create = MilvusClient.create_collection

    def spy(self: MilvusClient, *args: Any, **kwargs: Any) -> Any:
        sent.append(kwargs.get("consistency_level"))
        return create(self, *args, **kwargs)

    monkeypatch.setattr(MilvusClient, "create_collection", spy)
    store = MilvusVectorStore(
        uri=milvus_uri, collection_name=collection_name, dim=DIM, consistency_level=level
    )
    assert sent == [level]
    assert collection_name in client.list_collections()
    description = client.describe_collection(collection_name)
    if level == "Strong" or not milvus_uri.startswith("http://127.0.0.1"):
        # Milvus Lite reports every collection as Strong (0), whatever it was created with
        assert description["consistency_level"] == CONSISTENCY[level]
    assert client.list_indexes(collection_name)
    assert str(client.get_load_state(collection_name)["state"]) == "Loaded"
    store.clear()
    store.close()


def test_without_dim_the_constructor_touches_nothing(
    milvus_uri: str, collection_name: str, client: MilvusClient
) -> None:
    store = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name)
    assert collection_name not in client.list_collections()
    assert sum(store.engine.rpc_counts.values()) == 0
    store.add([node("a", "apple", 0)])  # the lazy path: created at the first write
    fields = client.describe_collection(collection_name)["fields"]
    assert {f["name"]: f["params"].get("dim") for f in fields}["embedding"] == DIM
    store.clear()
    store.close()


@pytest.mark.parametrize("with_dim", [True, False])
def test_overwrite(milvus_uri: str, collection_name: str, with_dim: bool) -> None:
    old = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=DIM)
    old.add([node("old", "old", 0)])
    old.close()
    dim = DIM if with_dim else None
    store = MilvusVectorStore(
        uri=milvus_uri, collection_name=collection_name, dim=dim, overwrite=True
    )
    probe = raw_client(milvus_uri)
    if with_dim:  # dropped and created again by the constructor, as LlamaIndex does
        assert probe.query(collection_name, filter="", output_fields=["count(*)"]) == [
            {"count(*)": 0}
        ]
    else:  # ours without dim: dropped on first use (nothing to create it with before)
        assert probe.has_collection(collection_name)
    probe.close()
    store.add([node("new", "new", 1)])
    store.add([node("newer", "newer", 2)])  # the drop happens once, not at every call
    assert [n.node_id for n in store.get_nodes(node_ids=["old", "new", "newer"])] == [
        "new",
        "newer",
    ]
    store.clear()
    store.close()


async def test_async_calls_after_a_sync_constructor_do_no_setup(
    milvus_uri: str, collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MilvusVectorStore(
        uri=milvus_uri, collection_name=collection_name, dim=DIM, consistency_level="Strong"
    )
    before = dict(store.engine.rpc_counts)

    class Forbidden:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"sync MilvusClient.{name} called from an async method")

    monkeypatch.setattr(type(store.engine), "client", property(lambda self: Forbidden()))
    async with LoopWatch() as watch:
        await store.async_add([node("a", "apple", 0), node("b", "banana", 1)])
        assert (await store.aquery(query(1))).ids == ["b"]
        await store.adelete_nodes(node_ids=["a"])
        assert [n.node_id for n in await store.aget_nodes(node_ids=["a", "b"])] == ["b"]
    assert watch.longest_block < 0.5, f"event loop blocked for {watch.longest_block:.3f}s"
    added = {k: v - before.get(k, 0) for k, v in store.engine.rpc_counts.items()}
    setup = {"has_collection", "describe_collection", "create_collection", "create_index"}
    assert not {k for k, v in added.items() if v} & (setup | {"drop_collection"}), added
    monkeypatch.undo()
    await store.aclear()
    await store.aclose()


# ----- index_management --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["constructor", "sync", "async"])
def test_index_management_on_a_collection_without_index(
    milvus_uri: str, collection_name: str, client: MilvusClient, mode: str
) -> None:
    made = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=DIM)
    made.add([node("a", "apple", 0)])
    made.close()
    client.release_collection(collection_name)
    for index_name in client.list_indexes(collection_name):
        client.drop_index(collection_name, index_name)

    dim = DIM if mode == "constructor" else None
    untouched = MilvusVectorStore(
        uri=milvus_uri, collection_name=collection_name, dim=dim, index_management="no_validation"
    )
    if mode != "constructor":
        run(untouched, mode, "get_nodes", node_ids=["a"])  # opens the collection
    assert client.list_indexes(collection_name) == []
    untouched.close()

    store = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=dim)
    if mode != "constructor":  # ours without dim: at first use
        assert client.list_indexes(collection_name) == []
        assert run(store, mode, "query", query(0)).ids == ["a"]
    assert client.list_indexes(collection_name)
    assert store.query(query(0)).ids == ["a"]
    store.clear()
    store.close()


# ----- collection_properties ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["constructor", "sync", "async"])
def test_collection_properties_are_set_on_an_existing_collection(
    milvus_uri: str, collection_name: str, client: MilvusClient, mode: str
) -> None:
    made = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=DIM)
    made.add([node("a", "apple", 0)])
    made.close()
    properties = {"collection.ttl.seconds": 3600, "mmap.enabled": True}  # mmap: released first
    store = MilvusVectorStore(
        uri=milvus_uri,
        collection_name=collection_name,
        dim=DIM if mode == "constructor" else None,
        collection_properties=properties,
    )
    if mode != "constructor":  # ours without dim: when the store opens it, at first use
        assert run(store, mode, "get_nodes", node_ids=["a"])[0].node_id == "a"
    described = client.describe_collection(collection_name)["properties"]
    assert described == {"collection.ttl.seconds": "3600", "mmap.enabled": "True"}
    assert store.query(query(0)).ids == ["a"]  # loaded again
    store.clear()
    store.close()


def test_properties_that_need_a_release(
    milvus_uri: str, collection_name: str, client: MilvusClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server refusing to alter a loaded collection (real Milvus for ``mmap.enabled``; Lite
    allows it): released, altered, loaded again."""
    made = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=DIM)
    made.add([node("a", "apple", 0)])
    made.close()
    alter = MilvusClient.alter_collection_properties

    def refuse_when_loaded(self: MilvusClient, collection_name: str, **kwargs: Any) -> Any:
        state = self.get_load_state(collection_name)["state"]
        if str(state) == "Loaded" and self is not client:
            raise MilvusException(code=1100, message="can not alter mmap of a loaded collection")
        return alter(self, collection_name, **kwargs)

    monkeypatch.setattr(MilvusClient, "alter_collection_properties", refuse_when_loaded)
    store = MilvusVectorStore(
        uri=milvus_uri,
        collection_name=collection_name,
        dim=DIM,
        collection_properties={"mmap.enabled": True},
    )
    assert store.engine.rpc_counts["release_collection"] == 1
    assert client.describe_collection(collection_name)["properties"] == {"mmap.enabled": "True"}
    assert store.query(query(0)).ids == ["a"]
    store.clear()
    store.close()


# ----- per-call partitions: refused before anything is written -----------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_per_call_partitions_are_refused(
    milvus_uri: str, collection_name: str, client: MilvusClient, mode: str
) -> None:
    store = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=DIM)
    store.add([node("a", "apple", 0, doc="d")])
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("add", ([node("b", "banana", 1)],), {"milvus_partition_name": "p"}),
        ("delete", ("d",), {"milvus_partition_name": "p"}),
        ("delete_nodes", (["a"],), {"milvus_partition_name": "p"}),
        ("query", (query(0),), {"milvus_partition_names": ["p"]}),
    ]
    for name, args, kwargs in calls:
        with pytest.raises(NotImplementedError, match="partition"):
            run(store, mode, name, *args, **kwargs)
    assert [n.node_id for n in store.get_nodes(node_ids=["a", "b"])] == ["a"]
    store.clear()
    store.close()

"""``node_metadata`` against LlamaIndex's ``node_to_metadata_dict``: equal dicts, and the same
``_node_content`` string byte for byte, for every node class and any metadata."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.schema import (
    Document,
    ImageDocument,
    ImageNode,
    IndexNode,
    MediaResource,
    Node,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.utils import node_to_metadata_dict

from llama_index_vd._nodes import NODE_CONTENT_KEY, node_metadata

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
metadatas = st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=5)
embeddings = st.none() | st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=8)


def upstream(node: Any) -> dict[str, Any]:
    return node_to_metadata_dict(node, remove_text=True, flat_metadata=False)


def assert_same(node: Any) -> None:
    embedding = None if node.embedding is None else list(node.embedding)
    ours, theirs = node_metadata(node), upstream(node)
    assert ours == theirs
    assert list(ours) == list(theirs)
    assert ours[NODE_CONTENT_KEY] == theirs[NODE_CONTENT_KEY]
    assert node.embedding == embedding  # the caller's node is untouched


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(max_size=40),
    metadata=metadatas,
    embedding=embeddings,
    ref_doc=st.none() | st.text(min_size=1, max_size=8),
    excluded=st.lists(st.text(max_size=5), max_size=2),
)
def test_text_nodes_match_upstream(
    text: str, metadata: dict, embedding: list | None, ref_doc: str | None, excluded: list
) -> None:
    relationships = {}
    if ref_doc is not None:
        relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=ref_doc)
    node = TextNode(
        text=text,
        metadata=metadata,
        embedding=embedding,
        relationships=relationships,
        excluded_llm_metadata_keys=excluded,
        start_char_idx=0,
    )
    assert_same(node)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Document(text="doc ü", metadata={"a": 1}, embedding=[0.5, 0.25]),
        lambda: IndexNode(text="index", index_id="other", embedding=[1.0], metadata={"k": "v"}),
        lambda: ImageNode(text="pic", image="aGVsbG8=", embedding=[0.1, 0.2]),
        lambda: ImageDocument(text="pic doc", image="aGVsbG8=", embedding=[0.3]),
        lambda: Node(text_resource=MediaResource(text="resource text"), embedding=[0.5]),
        lambda: TextNode(text="no embedding", metadata={"x": [1, {"y": None}]}),
    ],
    ids=["document", "index", "image", "image-document", "node", "no-embedding"],
)
def test_every_node_class_matches_upstream(make: Any) -> None:
    assert_same(make())


def test_unserialisable_metadata_fails_like_upstream() -> None:
    node = TextNode(text="t", metadata={"lock": threading.Lock()}, embedding=[1.0])
    errors = []
    for function in (node_metadata, upstream):
        with pytest.raises(Exception) as caught:
            function(node)
        errors.append(type(caught.value))
    assert errors[0] is errors[1]

"""Nodes to and from the engines' rows: node and id checks, node columns, nodes from records."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import VectorStoreQueryResult
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.validation import check_metadata_depth
from vd_integrations.milvus.schema import Record

__all__ = [
    "NODE_CONTENT_KEY",
    "NodeRows",
    "check_doc_ids",
    "check_ids",
    "check_nodes",
    "check_ref_doc_id",
    "in_id_order",
    "node_metadata",
    "node_rows",
    "query_result",
    "record_to_node",
]

NODE_CONTENT_KEY = "_node_content"


def check_ids(ids: Any, what: str) -> list[str] | None:
    """``None``, or a list of string ids (duplicates dropped, order kept)."""
    if ids is None:
        return None
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise InvalidInputError(f"{what} must be a list of strings, got {ids!r}.")
    out = list(dict.fromkeys(ids))
    for value in out:
        if not isinstance(value, str) or not value:
            raise InvalidInputError(
                f"{what} must be non-empty strings, got {value!r} ({type(value).__name__}); "
                f"convert them with str()."
            )
    return out


def check_doc_ids(ref_doc_id: Any) -> list[str] | None:
    """The document ids ``delete`` takes: one id, or a list of them."""
    return check_ids([ref_doc_id] if isinstance(ref_doc_id, str) else ref_doc_id, "ref_doc_id")


def check_ref_doc_id(ref_doc_id: Any) -> None:
    """``delete`` takes a document id or a list of them; ``None`` is a caller's mistake."""
    if ref_doc_id is None:
        raise InvalidInputError(
            "ref_doc_id must be a document id (a non-empty str) or a list of them, got None."
        )


def check_nodes(nodes: Any, dim: int | None) -> list[BaseNode]:
    """The nodes as a list, each a ``BaseNode`` with an embedding (of ``dim`` if given)."""
    if isinstance(nodes, BaseNode) or not isinstance(nodes, Iterable):
        raise InvalidInputError(f"add expects a list of nodes, got {type(nodes).__name__}.")
    nodes = list(nodes)
    for i, node in enumerate(nodes):
        if not isinstance(node, BaseNode):
            raise InvalidInputError(
                f"node #{i} is a {type(node).__name__}, not a llama_index BaseNode."
            )
        if node.embedding is None:
            raise InvalidInputError(
                f"node #{i} ({node.node_id!r}) has no embedding. Embed nodes before adding "
                f"them (VectorStoreIndex does so with its embed_model)."
            )
        if dim is not None and len(node.embedding) != dim:
            raise InvalidInputError(
                f"node #{i} ({node.node_id!r}) has an embedding of dimension "
                f"{len(node.embedding)}, but the store was created with dim={dim}."
            )
    return nodes


def node_metadata(node: BaseNode) -> dict[str, Any]:
    """``node_to_metadata_dict(node, remove_text=True)``, without serialising the embedding.

    LlamaIndex's function dumps the whole node, its embedding's 1,536 floats included, then
    sets ``"embedding": None``: 80-90% of its time (70 of 90 µs a node here). It gets a
    shallow copy whose embedding is already ``None``: the same dict, key for key, and the
    same ``_node_content`` string (``tests/test_llama_index_node_metadata.py``).
    """
    if node.embedding is not None:
        node = node.model_copy(update={"embedding": None})
    return node_to_metadata_dict(node, remove_text=True, flat_metadata=False)


@dataclass(frozen=True)
class NodeRows:
    """Nodes as the engines' columns."""

    texts: list[str]
    vectors: list[list[float]]
    metadatas: list[dict[str, Any]]
    ids: list[str]


def node_rows(
    nodes: Sequence[BaseNode],
    *,
    skip_keys: Iterable[str] = (),
    extra: Callable[[BaseNode], Mapping[str, Any]] | None = None,
) -> NodeRows:
    """Split nodes into text, vector, metadata and id columns.

    The metadata is :func:`node_metadata` (the node, minus text and embedding, as
    ``_node_content`` JSON, plus its metadata and doc ids for filtering). Keys in
    ``skip_keys`` (names of the collection's own fields) are not stored as separate
    fields; they still round-trip inside ``_node_content``. ``extra`` adds fields.
    """
    skip = frozenset(skip_keys)
    metadatas = []
    for i, node in enumerate(nodes):
        check_metadata_depth(i, node.metadata or {})  # names the limit; pydantic would not
        try:
            meta = node_metadata(node)
        except (TypeError, ValueError) as exc:  # pydantic cannot serialise a metadata value
            raise InvalidInputError(
                f"node #{i} ({node.node_id!r}) has metadata that cannot be serialised: {exc}. "
                f"Use str, int, float, bool, None, or lists/dicts of those."
            ) from None
        meta = {k: v for k, v in meta.items() if k not in skip}
        if extra is not None:
            meta.update(extra(node))
        metadatas.append(meta)
    return NodeRows(
        texts=[node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes],
        # not copied: the engine's check_vectors copies them once, checked
        vectors=[node.embedding for node in nodes if node.embedding is not None],
        metadatas=metadatas,
        ids=[node.node_id for node in nodes],
    )


def record_to_node(
    record: Record, *, with_embedding: bool = False, metadata_keys: Sequence[str] = ()
) -> BaseNode:
    """Rebuild a node; rows written by other tools (no ``_node_content``) become TextNodes."""
    if NODE_CONTENT_KEY in record.metadata:
        node = metadata_dict_to_node(dict(record.metadata), text=record.text)
    else:
        metadata = dict(record.metadata)
        if metadata_keys:
            metadata = {k: v for k, v in metadata.items() if k in set(metadata_keys)}
        node = TextNode(id_=record.id, text=record.text, metadata=metadata)
    if with_embedding and record.vector is not None:
        node.embedding = list(record.vector)
    return node


def in_id_order(nodes: list[BaseNode], ids: Sequence[str]) -> list[BaseNode]:
    """``nodes`` sorted in the order of ``ids`` (others last, in their order)."""
    order = {node_id: i for i, node_id in enumerate(ids)}
    return sorted(nodes, key=lambda node: order.get(node.node_id, len(order)))


def query_result(
    records: Sequence[Record], to_node: Callable[[Record], BaseNode]
) -> VectorStoreQueryResult:
    return VectorStoreQueryResult(
        nodes=[to_node(r) for r in records],
        similarities=[float(r.score if r.score is not None else 0.0) for r in records],
        ids=[r.id for r in records],
    )

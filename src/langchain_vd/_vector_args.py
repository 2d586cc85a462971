"""langchain-milvus' vector arguments read into the engine's vector fields.

``embedding_function`` (one, a list, or ``[]``), ``builtin_function`` (a BM25 function),
``vector_field`` (a name or a list), ``vector_schema``, ``index_params`` and
``search_params`` (a dict, or one per field) become a :class:`VectorArgs`: the embedder
the engine calls, the dense field name, the BM25 :class:`SparseSpec` and the typed
:class:`VectorField` list (None for the plain one-float-field store). Field names follow
langchain-milvus: the names given in ``vector_field`` that no built-in function writes go
to the embedding functions in order, and embedding functions left without a name get
``vector_1``, ``vector_2``, ... (their position, counted from 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.milvus.hybrid import SparseSpec, sparse_spec_from_builtin
from vd_integrations.milvus.vector_fields import MultiEmbedder, VectorField, is_sparse_embedder

__all__ = ["VectorArgs", "vector_args"]


@dataclass(frozen=True)
class VectorArgs:
    """What the store's vector arguments mean (see the module docstring)."""

    embedder: Any
    embedders: tuple[Any, ...]
    dense_field: str
    sparse: SparseSpec | None
    vectors: tuple[VectorField, ...] | None
    index_params: Mapping[str, Any] | None
    search_params: Mapping[str, Any] | None
    #: Every vector field, in langchain-milvus' order: embedded ones, then the BM25 one.
    vector_fields: tuple[str, ...]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def vector_args(
    embedding_function: Any,
    builtin_function: Any,
    vector_field: str | Sequence[str],
    text_field: str,
    vector_schema: Any,
    index_params: Any,
    search_params: Any,
) -> VectorArgs:
    """Read langchain-milvus' arguments; :class:`InvalidInputError` for what cannot work."""
    embedders = _as_list(embedding_function)
    functions = _as_list(builtin_function)
    if len(functions) > 1:
        raise NotImplementedError(
            "Only one builtin_function (a BM25BuiltInFunction) is supported; pass one."
        )
    sparse = sparse_spec_from_builtin(functions[0], text_field=text_field) if functions else None
    given = _as_list(vector_field)
    if not given or not all(isinstance(f, str) and f for f in given):
        raise InvalidInputError(f"vector_field must be a name or a list of names, got {given!r}.")
    if len(set(given)) != len(given):
        raise InvalidInputError(f"Vector field names must be unique, got {given}.")
    from_function = [sparse.field] if sparse is not None else []
    named = [f for f in given if f not in from_function]
    # no embedding and no built-in function: a store of the caller's own vectors (or a
    # reader), with one float field
    reader = embedding_function is None and sparse is None
    allowed = len(embedders) if embedders or not reader else 1
    if len(named) > allowed and (embedders or len(named) > 1 or named != ["vector"]):
        raise InvalidInputError(
            f"Too many vector fields {named} for {len(embedders)} embedding function(s): each "
            f"field that no built-in function writes needs an embedding function."
        )
    embedded = named[: len(embedders)] + [
        f"vector_{i + 1}" for i in range(len(named), len(embedders))
    ]
    if reader:
        embedded = [named[0] if named else "vector"]
    all_fields = [*embedded, *from_function]
    schemas = _per_field("vector_schema", vector_schema, given, all_fields, embedded)
    indexes = _per_field("index_params", index_params, given, all_fields, embedded)
    searches = _per_field("search_params", search_params, all_fields, all_fields, embedded)
    if sparse is not None and (indexes.get(sparse.field) or searches.get(sparse.field)):
        sparse = dataclasses.replace(
            sparse,
            index_params=indexes.get(sparse.field) or None,
            search_params=searches.get(sparse.field) or None,
        )
    plain = (
        reader or (len(embedders) == 1 and not is_sparse_embedder(embedders[0]))
    ) and not schemas.get(embedded[0])
    if plain:
        dense = embedded[0]
        return VectorArgs(
            embedder=embedders[0] if embedders else None,
            embedders=tuple(embedders),
            dense_field=dense,
            sparse=sparse,
            vectors=None,
            index_params=indexes.get(dense),
            search_params=searches.get(dense),
            vector_fields=(dense, *from_function),
        )
    vectors = tuple(
        VectorField.from_schema(
            name,
            schemas.get(name),
            sparse=is_sparse_embedder(embedder),
            index_params=indexes.get(name) or None,
            search_params=searches.get(name) or None,
        )
        for name, embedder in zip(embedded, embedders or [None] * len(embedded), strict=True)
    )
    return VectorArgs(
        embedder=None
        if not embedders
        else embedders[0]
        if len(embedders) == 1
        else MultiEmbedder(embedders),
        embedders=tuple(embedders),
        dense_field=embedded[0] if embedded else "vector",
        sparse=sparse,
        vectors=vectors,
        index_params=None,
        search_params=None,
        vector_fields=tuple(all_fields),
    )


def _per_field(
    name: str,
    value: Any,
    names: Sequence[str],
    all_fields: Sequence[str],
    embedded: Sequence[str],
) -> dict[str, Mapping[str, Any]]:
    """A dict (for the one vector field, or the one an embedding fills next to a BM25
    field) or a list (one per name in ``names``, or per field) by field."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        if len(all_fields) != 1 and len(embedded) == 1:
            return {embedded[0]: value}
        if len(all_fields) != 1:
            raise InvalidInputError(
                f"One {name} dict was given, but the store has vector fields {list(all_fields)}; "
                f"pass a list with one dict per field, in that order."
            )
        return {all_fields[0]: value}
    values = list(value) if isinstance(value, (list, tuple)) else None
    if values is None or not all(isinstance(v, Mapping) or v is None for v in values):
        raise InvalidInputError(f"{name} must be a dict or a list of dicts, got {value!r:.80}.")
    if len(values) == len(all_fields):
        names = all_fields
    elif len(values) != len(names):
        raise InvalidInputError(
            f"{len(values)} {name} were given for the vector fields {list(all_fields)}; pass "
            f"one per field, in that order."
        )
    return {field: v for field, v in zip(names, values, strict=True) if v}

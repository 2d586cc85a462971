"""MilvusVectorStore's collection: its columns, its index settings, filters over its columns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llama_index.core.vector_stores.types import MetadataFilters
from pymilvus import DataType

from llama_index_vd.filters import all_of, to_milvus_expr
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import (
    FieldRef,
    dynamic_field,
    ids_expr,
    is_in,
    is_safe_identifier,
    scalar_field,
)
from vd_integrations.milvus.schema import VARCHAR_MAX_LENGTH, CollectionLayout, CollectionSpec

__all__ = [
    "MILVUS_ID_FIELD",
    "NodeCollectionSpec",
    "check_id_field",
    "index_params",
    "milvus_metric",
    "node_columns",
    "node_filter_expr",
]

MILVUS_ID_FIELD = "id"
_METRICS = {"ip": "IP", "l2": "L2", "euclidean": "L2", "cosine": "COSINE"}


@dataclass(frozen=True)
class NodeCollectionSpec(CollectionSpec):
    """A :class:`CollectionSpec` with extra declared scalar columns (``doc_id``, ...)."""

    scalar_columns: tuple[tuple[str, Any], ...] = ()

    def build_schema(self, dim: int) -> Any:
        schema = super().build_schema(dim)
        for name, dtype in self.scalar_columns:
            extra = {"max_length": VARCHAR_MAX_LENGTH} if dtype == DataType.VARCHAR else {}
            schema.add_field(name, dtype, **extra)
        return schema


def check_id_field(id_field: Any) -> None:
    """LlamaIndex's own tests pass ``id_field="id"`` (its store ignores the name): accepted,
    since the primary key is always ``id``; another name would silently not be used."""
    if id_field != MILVUS_ID_FIELD:
        raise InvalidInputError(
            f"id_field={id_field!r}: the primary key of a MilvusVectorStore collection is "
            f"always {MILVUS_ID_FIELD!r}; drop id_field (doc_id_field names the document id)."
        )


def milvus_metric(similarity_metric: Any) -> str:
    """LlamaIndex's ``similarity_metric`` (any case, ``euclidean`` too) as a Milvus metric."""
    metric = _METRICS.get(str(similarity_metric).lower()) if similarity_metric else None
    if metric is None:
        raise InvalidInputError(
            f"similarity_metric must be one of 'IP', 'COSINE', 'L2' (or 'euclidean'), "
            f"got {similarity_metric!r}."
        )
    return metric


def index_params(
    index_config: Mapping[str, Any] | None, similarity_metric: Any, field: str
) -> dict:
    """LlamaIndex's ``index_config`` (flat or with ``params``; its ``metric_type``, else
    ``similarity_metric``) as engine index params."""
    metric = milvus_metric(similarity_metric)
    config = dict(index_config or {})
    if config.pop("field_name", field) != field:
        raise InvalidInputError(
            f"index_config['field_name'] must be the embedding_field {field!r}."
        )
    config.pop("index_name", None)
    index_type = config.pop("index_type", "FLAT")
    metric_type = milvus_metric(config.pop("metric_type", metric))
    params = dict(config.pop("params", None) or {})
    params.update(config)
    return {"index_type": index_type, "metric_type": metric_type, "params": params}


def node_columns(
    text_key: str,
    embedding_field: str,
    doc_id_field: str,
    names: list[str] | None,
    types: list[Any] | None,
) -> dict[str, Any]:
    """The declared scalar columns: ``doc_id_field`` (VARCHAR; none when it is the primary
    key ``id``) plus ``scalar_field_names`` with their ``scalar_field_types``; every field
    name must be a plain identifier."""
    names, types = list(names or []), list(types or [])
    if len(names) != len(types):
        raise InvalidInputError(
            f"scalar_field_names ({len(names)}) and scalar_field_types ({len(types)}) "
            f"must have the same length."
        )
    # doc_id_field="id" (LlamaIndex's way to open a collection made elsewhere): the
    # document id is the primary key, no column of its own.
    columns = {} if doc_id_field == MILVUS_ID_FIELD else {doc_id_field: DataType.VARCHAR}
    for name, dtype in zip(names, types, strict=True):
        if not isinstance(dtype, DataType):
            raise InvalidInputError(
                f"scalar_field_types must be pymilvus DataTypes, got {dtype!r}."
            )
        if name == MILVUS_ID_FIELD:
            raise InvalidInputError(f"{MILVUS_ID_FIELD!r} is the primary key; pick another name.")
        columns[name] = dtype
    for name in (embedding_field, text_key, doc_id_field, *columns):
        if not is_safe_identifier(name):
            raise InvalidInputError(f"Field name {name!r} is not a plain identifier.")
    return columns


def _resolver(layout: CollectionLayout | None, text_key: str, columns: Mapping[str, Any]) -> Any:
    if layout is not None:
        return layout.field_ref
    known = {MILVUS_ID_FIELD, text_key, *columns}

    def resolve(key: str) -> FieldRef:
        return scalar_field(key) if key in known else dynamic_field(key)

    return resolve


def node_filter_expr(
    layout: CollectionLayout | None,
    filters: MetadataFilters | None,
    *,
    text_key: str,
    doc_id_field: str,
    columns: Mapping[str, Any],
    node_ids: list[str] | None = None,
    doc_ids: list[str] | None = None,
    string_expr: Any = None,
) -> str | None:
    """The filters, ids and extra expression ANDed into one Milvus expression.

    Without a ``layout`` (no collection yet) the store's own columns decide which keys are
    scalar fields; callers use that to validate before any I/O.
    """
    if string_expr is not None and not isinstance(string_expr, str):
        raise InvalidInputError(f"string_expr must be a str, got {string_expr!r}.")
    resolve = _resolver(layout, text_key, columns)
    primary = layout.primary_field if layout is not None else MILVUS_ID_FIELD
    strings = {MILVUS_ID_FIELD, text_key} | {
        name for name, dtype in columns.items() if dtype == DataType.VARCHAR
    }
    return all_of(
        to_milvus_expr(filters, resolve, string_columns=strings),
        None if node_ids is None else ids_expr(primary, node_ids),
        None if doc_ids is None else is_in(resolve(doc_id_field), doc_ids),
        string_expr,
    )

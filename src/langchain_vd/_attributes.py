"""The attributes ``langchain_milvus.Milvus`` users read, on ``langchain_vd.Milvus``.

``fields`` (the collection's field names, ``[]`` while it does not exist), ``col`` (the
same MilvusClient-backed collection view langchain-milvus returns, or None), the field
names ``_primary_field``, ``_text_field``, ``_vector_field`` (a str, or a list with
several vector fields), ``_metadata_field``, ``_partition_key_field`` and
``vector_fields``, ``index_params`` and ``search_params`` (the given ones, else those of the
collection's indexes) and the other constructor arguments, as langchain-milvus computes
them; and how its
``enable_dynamic_field`` / ``metadata_field`` / ``metadata_schema`` arguments map onto a
collection spec (:func:`metadata_layout`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.milvus.engine import MilvusEngine
from vd_integrations.milvus.metadata_columns import MetadataColumn, parse_metadata_schema
from vd_integrations.milvus.schema import CollectionLayout, CollectionSpec

__all__ = ["CollectionView", "MetadataLayout", "UpstreamAttributes", "metadata_layout"]

_log = logging.getLogger(__name__)

#: langchain-milvus' search parameters for an index type it was not given any for.
_SEARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "IVF_FLAT": {"nprobe": 10},
    "IVF_SQ8": {"nprobe": 10},
    "IVF_PQ": {"nprobe": 10},
    "HNSW": {"ef": 10},
    "RHNSW_FLAT": {"ef": 10},
    "RHNSW_SQ": {"ef": 10},
    "RHNSW_PQ": {"ef": 10},
    "IVF_HNSW": {"nprobe": 10, "ef": 10},
    "ANNOY": {"search_k": 10},
    "SCANN": {"search_k": 10},
    "GPU_IVF_FLAT": {"nprobe": 10},
    "GPU_IVF_PQ": {"nprobe": 10},
    "GPU_BRUTE_FORCE": {"nprobe": 10},
    "GPU_CAGRA": {
        "itopk_size": 128,
        "search_width": 4,
        "min_iterations": 0,
        "max_iterations": 0,
        "team_size": 0,
    },
    "SPARSE_INVERTED_INDEX": {"drop_ratio_build": 0.2},
    "SPARSE_WAND": {"drop_ratio_build": 0.2},
}


@dataclass(frozen=True)
class MetadataLayout:
    """Where a store keeps metadata: dynamic fields, one JSON field, typed columns."""

    enable_dynamic_field: bool
    metadata_field: str | None
    columns: tuple[MetadataColumn, ...]


def metadata_layout(
    enable_dynamic_field: bool | None,
    metadata_field: str | None,
    metadata_schema: Mapping[str, Any] | None,
    *,
    reserved: list[str],
) -> MetadataLayout:
    """langchain-milvus' rules, with dynamic fields as the default (``None``).

    ``True`` ignores ``metadata_field`` (with a warning, as langchain-milvus); without
    ``enable_dynamic_field`` a ``metadata_field`` is one JSON field (langchain-milvus'
    default); ``False`` and no ``metadata_field``: typed columns, from ``metadata_schema``
    and the first document's keys. ``metadata_schema`` columns are created with dynamic
    fields too (langchain-milvus ignores them there); with a JSON ``metadata_field`` there
    are no columns, so that combination is refused.
    """
    if enable_dynamic_field and metadata_field:
        _log.warning("When `enable_dynamic_field` is True, `metadata_field` is ignored.")
        metadata_field = None
    dynamic = not metadata_field if enable_dynamic_field is None else bool(enable_dynamic_field)
    if metadata_field and metadata_schema:
        raise InvalidInputError(
            f"metadata_schema declares typed columns, but metadata_field={metadata_field!r} "
            f"keeps all metadata in one JSON field; pass one of the two."
        )
    reserved = [*reserved, *([metadata_field] if metadata_field else [])]
    columns = parse_metadata_schema(metadata_schema, reserved=reserved)
    return MetadataLayout(dynamic, metadata_field, columns)


class _Field:
    def __init__(self, info: Mapping[str, Any]) -> None:
        self.name = info["name"]


class _Schema:
    def __init__(self, description: Mapping[str, Any]) -> None:
        self.fields = [_Field(f) for f in description.get("fields", [])]


class _Index:
    def __init__(self, collection_name: str, info: Mapping[str, Any]) -> None:
        self.collection_name = collection_name
        self.field_name = info["field_name"]
        self.index_name = info.get("index_name", self.field_name)
        self.params = {
            "metric_type": info.get("metric_type"),
            "index_type": info.get("index_type"),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection_name,
            "field": self.field_name,
            "index_name": self.index_name,
            "index_param": self.params,
        }


class CollectionView:
    """What ``langchain_milvus.Milvus.col`` returns: a view of the collection over the sync
    ``MilvusClient`` (not a pymilvus ORM ``Collection``; langchain-milvus dropped that too):
    ``name``, ``schema.fields[i].name``, ``indexes`` (``field_name``, ``index_name``,
    ``params``, ``to_dict()``) and ``set_properties()``."""

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"CollectionView(name={self.name!r})"

    @property
    def schema(self) -> _Schema:
        return _Schema(self._client.describe_collection(self.name))

    @property
    def indexes(self) -> list[_Index]:
        return [
            _Index(self.name, self._client.describe_index(self.name, index))
            for index in self._client.list_indexes(self.name)
        ]

    def set_properties(self, properties: dict[str, Any]) -> None:
        self._client.alter_collection_properties(collection_name=self.name, properties=properties)


class UpstreamAttributes:
    """The attributes of ``langchain_milvus.Milvus`` its users read (module docstring)."""

    _spec: CollectionSpec
    _engine: MilvusEngine
    #: ``index_params`` / ``search_params`` as given to the constructor (None: not given).
    _given_index_params: Any = None
    _given_search_params: Any = None
    _index_cache: tuple[CollectionLayout, list[dict[str, Any]]] | None = None

    def _layout(self) -> CollectionLayout | None:
        """The collection's layout; looked up (no collection is created) until known."""
        layout = self._engine.layout
        if layout is None:
            layout = self._engine.run(self._engine.ready())
        return layout

    @property
    def fields(self) -> list[str]:
        """The collection's field names in schema order (``[]`` while it does not exist)."""
        layout = self._layout()
        return list(layout.field_names) if layout is not None else []

    @property
    def col(self) -> CollectionView | None:
        """A view of the collection (see :class:`CollectionView`), None while it does not
        exist."""
        if self._layout() is None:
            return None
        return CollectionView(self._engine.client, self._spec.name)

    def _indexes(self) -> list[dict[str, Any]]:
        """Each vector field's index (``index_type``, ``metric_type``; {} for none), read
        once per collection."""
        layout = self._layout()
        if layout is None:
            return []
        if self._index_cache is None or self._index_cache[0] is not layout:
            found = {
                i.field_name: i.params
                for i in CollectionView(self._engine.client, layout.name).indexes
            }
            indexes = [dict(found.get(name) or {}) for name in self.vector_fields]
            self._index_cache = (layout, indexes)
        return self._index_cache[1]

    @property
    def index_params(self) -> Any:
        """As given; else, once the collection exists, each vector field's index (a list
        with several vector fields)."""
        if self._given_index_params is not None or self._layout() is None:
            return self._given_index_params
        return _from_list([{**index, "params": {}} for index in self._indexes()])

    @property
    def search_params(self) -> Any:
        """As given; else, once the collection exists, langchain-milvus' defaults for each
        vector field's index type and metric (a list with several vector fields)."""
        if self._given_search_params is not None or self._layout() is None:
            return self._given_search_params
        return _from_list(
            [
                {
                    "metric_type": index.get("metric_type"),
                    "params": dict(_SEARCH_DEFAULTS.get(str(index.get("index_type")), {})),
                }
                for index in self._indexes()
            ]
        )

    @property
    def vector_fields(self) -> list[str]:
        """The vector fields: those the embedding function(s) fill, then function outputs."""
        spec = self._spec
        names = [spec.vector_field] if spec.vectors is None else [v.name for v in spec.vectors]
        if spec.sparse is not None:
            names.append(spec.sparse.field)
        return names

    @property
    def _vector_field(self) -> str | list[str]:
        names = self.vector_fields
        return names[0] if len(names) == 1 else names

    @property
    def _primary_field(self) -> str:
        return self._spec.primary_field

    @property
    def _text_field(self) -> str:
        return self._spec.text_field

    @property
    def _metadata_field(self) -> str | None:
        return self._spec.metadata_field

    @property
    def _partition_key_field(self) -> str | None:
        return self._spec.partition_key_field

    @property
    def enable_dynamic_field(self) -> bool:
        return self._spec.enable_dynamic_field

    @property
    def consistency_level(self) -> str:
        return self._spec.consistency_level

    @property
    def auto_id(self) -> bool:
        return self._spec.auto_id

    @property
    def collection_description(self) -> str:
        return self._spec.description

    @property
    def collection_properties(self) -> Mapping[str, Any] | None:
        return self._spec.properties

    @property
    def partition_names(self) -> list[str] | None:
        names = self._spec.partition_names
        return None if names is None else list(names)

    @property
    def num_partitions(self) -> int | None:
        return self._spec.num_partitions

    @property
    def num_shards(self) -> int | None:
        return self._spec.num_shards

    @property
    def replica_number(self) -> int:
        return self._spec.replica_number

    @property
    def timeout(self) -> float | None:
        return self._engine.timeout


def _from_list(values: list[Any]) -> Any:
    """One value as itself, several as a list (langchain-milvus' ``_from_list``)."""
    return values[0] if len(values) == 1 else values

"""Collection schema: what a store asks for, what Milvus has, and row <-> record conversion.

Pure code, no I/O. The default layout is the one ``langchain_milvus.Milvus`` uses
(primary field ``pk``, ``text``, ``vector``), with metadata as dynamic fields, so a
store opens collections made by langchain-milvus and vice versa. Collections with
static metadata columns or a JSON ``metadata_field`` are read as well.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from pymilvus import DataType, FunctionType, MilvusClient

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import FieldRef, dynamic_field, json_field, scalar_field
from vd_integrations.core.scoring import normalize_metric
from vd_integrations.core.validation import as_float_list, check_int64_id, check_metadata_depth
from vd_integrations.milvus.metadata_columns import (
    ColumnLayoutMixin,
    ColumnSpecMixin,
    MetadataColumn,
    columns_from_description,
)
from vd_integrations.milvus.vector_fields import VectorField, vectors_from_description

if TYPE_CHECKING:
    from vd_integrations.milvus.sparse import SparseSpec

__all__ = ["VARCHAR_MAX_LENGTH", "CollectionLayout", "CollectionSpec", "Record", "described_fields"]

VARCHAR_MAX_LENGTH = 65_535
DEFAULT_INDEX_PARAMS: dict[str, Any] = {
    "index_type": "AUTOINDEX",
    "metric_type": "L2",
    "params": {},
}

_VECTOR_TYPES = {
    DataType.FLOAT_VECTOR,
    DataType.FLOAT16_VECTOR,
    DataType.BFLOAT16_VECTOR,
    DataType.BINARY_VECTOR,
    DataType.SPARSE_FLOAT_VECTOR,
}
_INT_TYPES = {DataType.INT64, DataType.INT32, DataType.INT16, DataType.INT8}


@dataclass(frozen=True)
class Record:
    """One stored entity as the core sees it: id, text, metadata, optional vector/score."""

    id: str
    text: str
    metadata: dict[str, Any]
    vector: list[float] | None = None
    score: float | None = None


@dataclass(frozen=True)
class CollectionSpec(ColumnSpecMixin):
    """The collection a store wants: names, creation options, index and search settings."""

    name: str
    description: str = ""
    properties: Mapping[str, Any] | None = None
    primary_field: str = "pk"
    text_field: str = "text"
    vector_field: str = "vector"
    metadata_field: str | None = None
    enable_dynamic_field: bool = True
    partition_key_field: str | None = None
    num_partitions: int | None = None
    num_shards: int | None = None
    partition_names: Sequence[str] | None = None
    replica_number: int = 1
    auto_id: bool = False
    consistency_level: str = "Session"
    index_params: Mapping[str, Any] | None = None
    search_params: Mapping[str, Any] | None = None
    #: A sparse field for full-text / hybrid search (see :mod:`.hybrid`); None: dense only.
    sparse: SparseSpec | None = None
    #: Create the spec's missing indexes on an existing collection too (when it is opened).
    index_existing: bool = False
    #: Typed metadata columns of a new collection (``metadata_schema``; see ``for_first_metadata``)
    metadata_columns: tuple[MetadataColumn, ...] = ()
    #: The vector fields the embedding function(s) fill, in order (:mod:`.vector_fields`);
    #: None: one float vector field, ``vector_field``; empty: none (a BM25-only store).
    vectors: tuple[VectorField, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError("collection_name must be a non-empty string.")
        names = [self.primary_field, self.text_field, self.vector_field]
        if self.vectors:
            if self.vectors[0].name != self.vector_field:
                raise InvalidInputError("vector_field must name the first of vectors.")
            names.extend(v.name for v in self.vectors[1:])
        if self.metadata_field:
            names.append(self.metadata_field)
        if self.sparse is not None:
            names.append(self.sparse.field)
        if len(set(names)) != len(names):
            raise InvalidInputError(
                f"primary_field, text_field, vector_field and metadata_field must differ, "
                f"got {names}."
            )
        if self.index_params is not None and not isinstance(self.index_params, Mapping):
            raise InvalidInputError(
                "index_params must be one dict such as "
                "{'index_type': 'HNSW', 'metric_type': 'COSINE', 'params': {'M': 16}}; "
                "multi-vector index lists are not supported."
            )

    @property
    def index(self) -> dict[str, Any]:
        """The vector index definition, with defaults filled in and the metric validated."""
        if self.vectors and self.vectors[0].metric in ("L2", "IP", "COSINE"):
            return self.vectors[0].index
        index = {**DEFAULT_INDEX_PARAMS, **dict(self.index_params or {})}
        index["metric_type"] = normalize_metric(index["metric_type"])
        index["params"] = dict(index.get("params") or {})
        return index

    def build_schema(self, dim: int) -> Any:
        """The ``CollectionSchema`` for a new collection of dimension ``dim`` (with
        :attr:`vectors`: each field's own ``dim``, fixed by the first vectors written)."""
        schema = MilvusClient.create_schema(
            auto_id=self.auto_id,
            enable_dynamic_field=self.enable_dynamic_field,
            description=self.description,
        )
        if self.auto_id:
            schema.add_field(self.primary_field, DataType.INT64, is_primary=True, auto_id=True)
        else:
            schema.add_field(
                self.primary_field,
                DataType.VARCHAR,
                is_primary=True,
                auto_id=False,
                max_length=VARCHAR_MAX_LENGTH,
            )
        text_kwargs = self.sparse.text_field_kwargs() if self.sparse is not None else {}
        schema.add_field(
            self.text_field, DataType.VARCHAR, max_length=VARCHAR_MAX_LENGTH, **text_kwargs
        )
        if self.vectors is None:
            schema.add_field(self.vector_field, DataType.FLOAT_VECTOR, dim=dim)
        else:
            for vector in self.vectors:
                vector.add_to_schema(schema, vector.dim)
        if self.sparse is not None:
            self.sparse.add_to_schema(schema, self.text_field)
        if self.metadata_field:
            schema.add_field(self.metadata_field, DataType.JSON)
        self.add_columns_to_schema(schema)
        return schema

    def build_index_params(self) -> Any:
        """``IndexParams`` for the vector field."""
        index = self.index
        params = MilvusClient.prepare_index_params()
        params.add_index(
            field_name=self.vector_field,
            index_type=index["index_type"],
            metric_type=index["metric_type"],
            params=index["params"],
        )
        return params

    def field_indexes(self) -> list[tuple[str, Any]]:
        """One ``(field, IndexParams)`` per indexed field: the vector, and the sparse field."""
        if self.vectors is None:
            out = [(self.vector_field, self.build_index_params())]
        else:
            out = [(v.name, v.index_params_for_field()) for v in self.vectors]
        if self.sparse is not None:
            out.append((self.sparse.field, self.sparse.index_params_for_field()))
        return out

    def layout_from_description(
        self, description: Mapping[str, Any], metric: str | None
    ) -> CollectionLayout:
        """How this spec reads an existing collection (``describe_collection`` output)."""
        return CollectionLayout.from_description(self, description, metric)

    def prospective_layout(self) -> CollectionLayout:
        """The layout a collection created from this spec gets (before it exists)."""
        return CollectionLayout(
            name=self.name,
            primary_field=self.primary_field,
            pk_is_int=self.auto_id,
            auto_id=self.auto_id,
            text_field=self.text_field,
            vector_field=self.vector_field,
            dim=0,
            metric=self.index["metric_type"],
            dynamic=self.enable_dynamic_field,
            metadata_field=self.metadata_field,
            scalar_fields=self.column_names,
            columns=self.metadata_columns,
            drop_unknown_keys=self.static_metadata,
            vectors=self.vectors,
        )

    def create_kwargs(self, dim: int) -> dict[str, Any]:
        """Arguments for ``create_collection`` (the index is created separately)."""
        kwargs: dict[str, Any] = {
            "collection_name": self.name,
            "schema": self.build_schema(dim),
            "consistency_level": self.consistency_level,
        }
        if self.num_shards is not None:
            kwargs["num_shards"] = self.num_shards
        if self.num_partitions is not None and self.partition_key_field:
            kwargs["num_partitions"] = self.num_partitions
        return kwargs


@dataclass(frozen=True)
class CollectionLayout(ColumnLayoutMixin):
    """The shape of an existing collection, read from Milvus (or just created)."""

    name: str
    primary_field: str
    pk_is_int: bool
    auto_id: bool
    text_field: str
    vector_field: str
    dim: int
    metric: str
    dynamic: bool
    metadata_field: str | None = None
    scalar_fields: tuple[str, ...] = ()
    pk_max_length: int = VARCHAR_MAX_LENGTH
    text_max_length: int = VARCHAR_MAX_LENGTH
    #: The text is a key of the dynamic field, not a column (a collection made elsewhere,
    #: e.g. by ``MilvusClient.create_collection(dimension=...)``, text in ``custom_text``).
    text_dynamic: bool = False
    hidden_fields: frozenset[str] = field(default_factory=frozenset)
    #: The sparse field for full-text / hybrid search (None: none), and whether a BM25
    #: function fills it from the text (searches send text) or it holds caller vectors.
    sparse_field: str | None = None
    sparse_bm25: bool = False
    #: Typed metadata columns; every field name (schema order); drop keys that are no column
    columns: tuple[MetadataColumn, ...] = ()
    field_names: tuple[str, ...] = ()
    drop_unknown_keys: bool = False
    #: The vector fields embeddings fill, as the collection has them (types and dims);
    #: None: the one float field ``vector_field`` (see :attr:`CollectionSpec.vectors`).
    vectors: tuple[VectorField, ...] | None = None

    # ----- reading an existing collection ---------------------------------------------------

    @classmethod
    def from_description(
        cls, spec: CollectionSpec, description: Mapping[str, Any], metric: str | None
    ) -> CollectionLayout:
        """Interpret ``describe_collection`` output, preferring the spec's field names."""
        fields, by_name, primary = described_fields(spec, description)
        vectors = [f for f in fields if f.get("type") in _VECTOR_TYPES]
        dense = [f for f in vectors if f.get("type") == DataType.FLOAT_VECTOR]
        typed = (
            None
            if spec.vectors is None
            else vectors_from_description(spec.name, spec.vectors, by_name)
        )
        vector: Mapping[str, Any]
        if typed is not None:
            vector = by_name[typed[0].name] if typed else {"name": spec.vector_field}
        elif spec.vector_field in by_name:
            vector = by_name[spec.vector_field]
        elif len(dense) == 1:
            vector = dense[0]
        else:
            raise InvalidInputError(
                f"Collection {spec.name!r} has float vector fields "
                f"{[f['name'] for f in dense]}; pass vector_field= to choose one."
            )
        text_name = spec.text_field
        text = by_name.get(text_name)
        if text is None and not description.get("enable_dynamic_field"):
            raise InvalidInputError(
                f"Collection {spec.name!r} has no text field {text_name!r} (and no dynamic "
                f"field to keep it in); pass text_field= naming its VARCHAR text column."
            )
        metadata_field = spec.metadata_field if spec.metadata_field in by_name else None
        reserved = {primary["name"], text_name, vector["name"], metadata_field}
        hidden = {f["name"] for f in vectors} | {
            f["name"] for f in fields if f.get("is_function_output")
        }
        for function in description.get("functions", []) or []:
            hidden.update(getattr(function, "output_field_names", None) or [])
        scalars = tuple(
            f["name"] for f in fields if f["name"] not in reserved and f["name"] not in hidden
        )
        sparse_field, sparse_bm25 = _sparse_field(spec, description, fields)
        return cls(
            name=spec.name,
            primary_field=primary["name"],
            pk_is_int=primary.get("type") in _INT_TYPES,
            auto_id=bool(description.get("auto_id") or primary.get("auto_id")),
            text_field=text_name,
            vector_field=vector["name"],
            dim=int((vector.get("params") or {}).get("dim", 0)),
            metric=normalize_metric(metric or spec.index["metric_type"]),
            dynamic=bool(description.get("enable_dynamic_field")),
            metadata_field=metadata_field,
            scalar_fields=scalars,
            pk_max_length=int((primary.get("params") or {}).get("max_length", VARCHAR_MAX_LENGTH)),
            text_max_length=int(
                ((text or {}).get("params") or {}).get("max_length", VARCHAR_MAX_LENGTH)
            ),
            text_dynamic=text is None,
            hidden_fields=frozenset(hidden),
            sparse_field=sparse_field,
            sparse_bm25=sparse_bm25,
            columns=columns_from_description(fields, scalars),
            field_names=tuple(f["name"] for f in fields),
            drop_unknown_keys=spec.static_metadata,
            vectors=typed,
        )

    # ----- ids ----------------------------------------------------------------------------

    def encode_id(self, value: Any) -> str | int:
        """A caller's id as the primary key value (``str`` or ``int``)."""
        if self.pk_is_int:  # ASCII digits only: a fullwidth or superscript digit is no id
            return check_int64_id(value, self.name)
        if not isinstance(value, str):
            raise InvalidInputError(
                f"ids must be strings, got {value!r} ({type(value).__name__}); "
                f"convert them with str()."
            )
        return value

    # ----- fields ---------------------------------------------------------------------------

    @property
    def reserved_keys(self) -> frozenset[str]:
        """Names a metadata key may not use."""
        names = {self.primary_field, self.text_field, self.vector_field, "$meta"}
        if self.metadata_field:
            names.add(self.metadata_field)
        return frozenset(names | self.hidden_fields)

    def field_ref(self, key: str) -> FieldRef:
        """How a metadata key is referenced in a filter expression."""
        if key in self.scalar_fields or key == self.primary_field:
            return scalar_field(key)
        if key == self.text_field and not self.text_dynamic:
            return scalar_field(key)
        if self.metadata_field:
            return json_field(self.metadata_field, key)
        return dynamic_field(key)

    def output_fields(self, *, with_vector: bool = False) -> list[str]:
        """Fields to fetch so a row becomes a full :class:`Record`."""
        fields = [*([] if self.text_dynamic else [self.text_field]), *self.scalar_fields]
        if self.metadata_field:
            fields.append(self.metadata_field)
        if self.dynamic:
            fields.append("$meta")
        if with_vector:
            fields.append(self.vector_field)
        return fields

    # ----- rows ---------------------------------------------------------------------------

    def build_row(
        self, pk: str | int | None, text: str, vector: list[float], metadata: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The row dict for one entity (metadata validated by :meth:`check_metadata`)."""
        row: dict[str, Any] = {}
        if not self.auto_id:
            row[self.primary_field] = pk
        row[self.text_field] = text
        row[self.vector_field] = vector
        if self.metadata_field:
            row[self.metadata_field] = dict(metadata)
        else:
            row.update(self.storable_metadata(metadata))
        return row

    def build_row_with_vectors(
        self,
        pk: str | int | None,
        text: str,
        vectors: Mapping[str, Any],
        metadata: Mapping[str, Any],
    ) -> dict[str, Any]:
        """:meth:`build_row` for typed vector fields (:attr:`vectors`): ``vectors`` holds
        each field's encoded value (none for a BM25-only store)."""
        row = self.build_row(pk, text, [], metadata)
        del row[self.vector_field]
        row.update(vectors)
        return row

    def record_from_entity(
        self, pk: Any, entity: Mapping[str, Any], score: float | None = None
    ) -> Record:
        """Turn a query row or search hit entity into a :class:`Record`."""
        text = entity.get(self.text_field) or ""
        vector = entity.get(self.vector_field)
        if self.metadata_field:
            metadata = dict(entity.get(self.metadata_field) or {})
        else:
            skip = {self.primary_field, self.text_field, self.vector_field, *self.hidden_fields}
            metadata = {k: v for k, v in entity.items() if k not in skip}
        if vector is not None and self.vectors:
            vector = self.vectors[0].decode(vector) if not self.vectors[0].sparse else None
        if vector is not None:
            vector = as_float_list(vector)
        return Record(id=str(pk), text=text, metadata=metadata, vector=vector, score=score)

    def check_metadata(self, index: int, metadata: Any) -> None:
        """Raise :class:`InvalidInputError` if ``metadata`` cannot be stored in this collection."""
        if not isinstance(metadata, Mapping):
            raise InvalidInputError(
                f"metadata #{index} must be a dict, got {type(metadata).__name__}."
            )
        reserved = self.reserved_keys
        any_key_ok = self.accepts_any_key  # once per row, not per key
        for key, value in metadata.items():
            if not isinstance(key, str) or not key:
                raise InvalidInputError(
                    f"metadata #{index} has key {key!r}; metadata keys must be non-empty strings."
                )
            if key in reserved:
                raise InvalidInputError(
                    f"metadata #{index} uses the reserved key {key!r} (a field of the "
                    f"collection: {sorted(reserved)}); rename the key."
                )
            if not any_key_ok and not self.unknown_key_ok(key):
                raise InvalidInputError(
                    f"metadata #{index} has key {key!r}, but collection {self.name!r} has no "
                    f"dynamic field and no column named {key!r} (columns: "
                    f"{list(self.scalar_fields)})."
                )
            _check_json_value(index, key, value)
        self.check_columns(index, metadata)


def _sparse_field(
    spec: CollectionSpec, description: Mapping[str, Any], fields: list[dict[str, Any]]
) -> tuple[str | None, bool]:
    """The collection's sparse field (the spec's, else a BM25 output, else the only sparse
    field) and whether a BM25 function fills it."""
    bm25_outputs: set[str] = set()
    for function in description.get("functions", []) or []:
        get = function.get if isinstance(function, Mapping) else partial(getattr, function)
        kind = get("type", None)
        if kind == FunctionType.BM25 or getattr(kind, "name", kind) == "BM25":
            outputs = get("output_field_names", None) or []
            bm25_outputs.update([outputs] if isinstance(outputs, str) else outputs)
    sparse = [f["name"] for f in fields if f.get("type") == DataType.SPARSE_FLOAT_VECTOR]
    wanted = spec.sparse.field if spec.sparse is not None else None
    if wanted in sparse:
        name: str | None = wanted
    elif len(bm25_outputs & set(sparse)) == 1:
        name = next(iter(bm25_outputs & set(sparse)))
    else:
        name = sparse[0] if len(sparse) == 1 else None
    return name, name is not None and name in bm25_outputs


def _check_json_value(index: int, key: str, value: Any) -> None:
    """Metadata values must survive a JSON round trip exactly."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return  # json.dumps cannot fail on these; check_metadata_values checks the rest
    if kind is float and math.isfinite(value):
        return
    check_metadata_depth(index, {key: value})  # iterative: before the recursive encoder
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"metadata #{index} key {key!r} has a value Milvus cannot store "
            f"({type(value).__name__}: {exc}); use str, int, float, bool, None, "
            f"or lists/dicts of those (no NaN or infinity)."
        ) from None
    if isinstance(value, float) and not math.isfinite(value):  # pragma: no cover - caught above
        raise InvalidInputError(f"metadata #{index} key {key!r} is not finite.")


def described_fields(
    spec: CollectionSpec, description: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, Any]]:
    """``describe_collection``'s fields, by name, and the primary one (which must exist)."""
    fields = list(description.get("fields", []))
    primary = next((f for f in fields if f.get("is_primary")), None)
    if primary is None:
        raise InvalidInputError(f"Collection {spec.name!r} has no primary field.")
    return fields, {f["name"]: f for f in fields}, primary

"""Typed metadata columns: a store's ``metadata_schema``, static columns from the first
documents, and the checks that keep a bad value from reaching Milvus.

Pure code, no I/O. ``langchain_milvus.Milvus`` lets a store declare metadata columns
(``metadata_schema={"year": {"dtype": DataType.INT64}, "tags": {"dtype": DataType.ARRAY,
"element_type": DataType.VARCHAR, "max_capacity": 8}}``; add-field options at the top level
or under ``"kwargs"``), and with ``enable_dynamic_field=False`` it makes a column of every
key of the first document's metadata, its type inferred from the value. Milvus refuses a
row whose column value is missing (unless the column is nullable or has a default) or of
the wrong type; :func:`check_column_values` refuses it first, before anything is written,
with a message naming the key, the row and the column's type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pymilvus import DataType

from vd_integrations.core.errors import InvalidInputError, MilvusOperationError
from vd_integrations.core.ops import Op
from vd_integrations.core.validation import (
    FLOAT32_MAX,
    INT64_MAX,
    INT64_MIN,
    check_known_kwargs,
    check_utf8,
)
from vd_integrations.milvus.server_versions import is_milvus_lite, release

__all__ = [
    "ColumnLayoutMixin",
    "ColumnSpecMixin",
    "MetadataColumn",
    "check_column_support",
    "check_column_values",
    "column_support_problem",
    "columns_from_description",
    "infer_columns",
    "parse_metadata_schema",
]

VARCHAR_MAX_LENGTH = 65_535  # as schema.VARCHAR_MAX_LENGTH (schema imports this module)

_INT_RANGES = {
    DataType.INT8: (-(2**7), 2**7 - 1),
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.INT64: (INT64_MIN, INT64_MAX),
}
_FLOAT_TYPES = {DataType.FLOAT, DataType.DOUBLE}
#: Scalar types a metadata column may have (vectors belong in ``vector_schema``).
_SCALAR_TYPES = {
    DataType.BOOL,
    *_INT_RANGES,
    *_FLOAT_TYPES,
    DataType.VARCHAR,
    DataType.JSON,
    DataType.ARRAY,
    *(getattr(DataType, name) for name in ("GEOMETRY", "TIMESTAMPTZ") if hasattr(DataType, name)),
}
_ELEMENT_TYPES = {DataType.BOOL, *_INT_RANGES, *_FLOAT_TYPES, DataType.VARCHAR}
#: ``add_field`` options a metadata column may set.
_OPTIONS = (
    "max_length",
    "element_type",
    "max_capacity",
    "nullable",
    "default_value",
    "is_partition_key",
    "is_clustering_key",
    "description",
    "mmap_enabled",
    "enable_analyzer",
    "analyzer_params",
    "multi_analyzer_params",
    "enable_match",
)
_SCHEMA_HINT = (
    "e.g. metadata_schema={'year': {'dtype': DataType.INT64}, 'tags': {'dtype': "
    "DataType.ARRAY, 'element_type': DataType.VARCHAR, 'max_capacity': 16}}"
)


@dataclass(frozen=True)
class MetadataColumn:
    """One typed metadata column: its name, Milvus type and ``add_field`` options."""

    name: str
    dtype: DataType
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    @property
    def optional(self) -> bool:
        """A row may leave it out (or give None): it is nullable or has a default."""
        return bool(self.option("nullable")) or self.option("default_value") is not None

    def field_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``CollectionSchema.add_field`` (name and type included)."""
        return {"field_name": self.name, "datatype": self.dtype, **dict(self.options)}

    def describe(self) -> str:
        """The type as a message shows it: ``VARCHAR(max_length=64)``, ``ARRAY<INT64>``."""
        if self.dtype == DataType.ARRAY:
            element = self.option("element_type")
            return f"ARRAY<{getattr(element, 'name', element)}>"
        if self.dtype == DataType.VARCHAR:
            return f"VARCHAR(max_length={self.option('max_length', VARCHAR_MAX_LENGTH)})"
        return self.dtype.name

    def check(self, index: int, value: Any) -> None:
        """Raise :class:`InvalidInputError` if Milvus would refuse ``value`` in this column."""
        where = f"metadata #{index} key {self.name!r}"
        if value is None:
            if not self.optional:
                raise InvalidInputError(
                    f"{where} is None, but column {self.name!r} ({self.describe()}) is not "
                    f"nullable; give a value, or declare it with metadata_schema="
                    f"{{{self.name!r}: {{'dtype': DataType.{self.dtype.name}, "
                    f"'nullable': True}}}} on a new collection."
                )
            return
        problem = _value_problem(self, value)
        if problem:
            raise InvalidInputError(
                f"{where} is {value!r:.60} ({type(value).__name__}); column {self.name!r} is "
                f"{self.describe()}: {problem}."
            )


def _value_problem(column: MetadataColumn, value: Any) -> str | None:
    dtype = column.dtype
    if dtype == DataType.ARRAY:
        if not isinstance(value, (list, tuple)):
            return "give a list"
        capacity = column.option("max_capacity")
        if capacity is not None and len(value) > int(capacity):
            return f"it holds at most {capacity} elements, got {len(value)}"
        element = MetadataColumn(
            column.name,
            column.option("element_type", DataType.VARCHAR),
            (("max_length", column.option("max_length")),),
        )
        for item in value:
            if item is None:
                return "elements cannot be None"
            problem = _value_problem(element, item)
            if problem:
                return f"element {item!r:.40}: {problem}"
        return None
    if dtype == DataType.BOOL:
        return None if isinstance(value, bool) else "give True or False"
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if isinstance(value, bool) or not isinstance(value, int):
            return "give an int"
        return None if low <= value <= high else f"give an int in [{low}, {high}]"
    if dtype in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "give a float"
        if not math.isfinite(value) or (dtype == DataType.FLOAT and abs(value) > FLOAT32_MAX):
            return "give a finite float" + (" within float32" if dtype == DataType.FLOAT else "")
        return None
    if dtype == DataType.VARCHAR or dtype.name in ("GEOMETRY", "TIMESTAMPTZ"):
        if not isinstance(value, str):
            return "give a str"
        limit = column.option("max_length") if dtype == DataType.VARCHAR else None
        size = check_utf8(value, f"metadata key {column.name!r}")
        if limit is not None and size > int(limit):
            return f"it holds at most {limit} bytes (UTF-8), got {size}"
        return None
    return None  # JSON: the JSON checks every metadata value gets apply


def _dtype(value: Any, key: str) -> DataType:
    if isinstance(value, str) and value.upper() in DataType.__members__:
        value = DataType[value.upper()]
    if not isinstance(value, DataType):
        raise InvalidInputError(
            f"metadata_schema[{key!r}]['dtype'] must be a pymilvus DataType, got {value!r}; "
            f"{_SCHEMA_HINT}."
        )
    return value


def parse_metadata_schema(
    metadata_schema: Mapping[str, Any] | None, *, reserved: Collection[str]
) -> tuple[MetadataColumn, ...]:
    """The columns ``metadata_schema`` declares (langchain-milvus' format: per key a dict
    with ``dtype`` and ``add_field`` options, at the top level or under ``kwargs``)."""
    if metadata_schema is None:
        return ()
    if not isinstance(metadata_schema, Mapping):
        raise InvalidInputError(
            f"metadata_schema must be a dict of column name -> column dict, got "
            f"{type(metadata_schema).__name__}; {_SCHEMA_HINT}."
        )
    columns = []
    for key, spec in metadata_schema.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"metadata_schema has key {key!r}; use non-empty strings.")
        if key in reserved:
            raise InvalidInputError(
                f"metadata_schema declares {key!r}, a field the store already has "
                f"({sorted(reserved)}); rename the metadata key."
            )
        if not isinstance(spec, Mapping) or "dtype" not in spec:
            raise InvalidInputError(
                f"metadata_schema[{key!r}] must be a dict with a 'dtype', got {spec!r}; "
                f"{_SCHEMA_HINT}."
            )
        options = {k: v for k, v in spec.items() if k not in ("dtype", "kwargs")}
        options.update(dict(spec.get("kwargs") or {}))
        check_known_kwargs(options, _OPTIONS, f"metadata_schema[{key!r}]")
        columns.append(_column(key, _dtype(spec["dtype"], key), options))
    return tuple(columns)


def _column(key: str, dtype: DataType, options: dict[str, Any]) -> MetadataColumn:
    """A column with its options checked and the max_length defaults filled in."""
    if dtype not in _SCALAR_TYPES:
        raise InvalidInputError(
            f"metadata_schema[{key!r}] has dtype {dtype.name}, which is no metadata type "
            f"(vector fields are declared with vector_schema=); use one of "
            f"{sorted(t.name for t in _SCALAR_TYPES)}."
        )
    if dtype == DataType.ARRAY:
        element = options.get("element_type")
        if element is None or options.get("max_capacity") is None:
            raise InvalidInputError(
                f"metadata_schema[{key!r}] is an ARRAY: give its element_type and "
                f"max_capacity, e.g. {{'dtype': DataType.ARRAY, 'element_type': "
                f"DataType.INT64, 'max_capacity': 16}}."
            )
        element = options["element_type"] = _dtype(element, key)
        if element not in _ELEMENT_TYPES:
            raise InvalidInputError(
                f"metadata_schema[{key!r}] has element_type {element.name}; an ARRAY holds "
                f"one of {sorted(t.name for t in _ELEMENT_TYPES)}."
            )
    if dtype == DataType.VARCHAR or options.get("element_type") == DataType.VARCHAR:
        options.setdefault("max_length", VARCHAR_MAX_LENGTH)  # what inferred columns get
    default = options.get("default_value")
    column = MetadataColumn(key, dtype, tuple(options.items()))
    if default is not None:
        problem = _value_problem(column, default)
        if problem:
            raise InvalidInputError(
                f"metadata_schema[{key!r}] default_value {default!r} does not fit "
                f"{column.describe()}: {problem}."
            )
    return column


def _inferred_dtype(key: str, value: Any) -> DataType:
    """The column type langchain-milvus infers from a first document's value."""
    if isinstance(value, bool):
        return DataType.BOOL
    if isinstance(value, int):
        return DataType.INT64
    if isinstance(value, float):
        return DataType.DOUBLE
    if isinstance(value, str):
        return DataType.VARCHAR
    if isinstance(value, Mapping):
        return DataType.JSON
    kind = "None" if value is None else type(value).__name__
    raise InvalidInputError(
        f"Cannot infer a column type for metadata key {key!r} from the first document's "
        f"value {value!r:.40} ({kind}). With enable_dynamic_field=False every key of the "
        f"first document becomes a typed column: declare it, "
        f"metadata_schema={{{key!r}: {{'dtype': DataType.ARRAY, 'element_type': "
        f"DataType.INT64, 'max_capacity': 16}}}} (or DataType.JSON; 'nullable': True for "
        f"None), or leave enable_dynamic_field on."
    )


def infer_columns(
    declared: Iterable[MetadataColumn],
    first_metadata: Mapping[str, Any] | None,
    *,
    skip: Collection[str] = (),
) -> tuple[MetadataColumn, ...]:
    """The declared columns, then one column per other key of ``first_metadata`` (in its
    order; ``skip`` names keys that are columns already, such as the partition key)."""
    columns = list(declared)
    known = {c.name for c in columns} | set(skip)
    for key, value in (first_metadata or {}).items():
        if key in known or not isinstance(key, str):
            continue  # a bad key is refused by the metadata checks
        columns.append(_column(key, _inferred_dtype(key, value), {}))
    return tuple(columns)


def columns_from_description(
    fields: Iterable[Mapping[str, Any]], names: Collection[str]
) -> tuple[MetadataColumn, ...]:
    """The columns ``names`` as ``describe_collection`` reports them (``fields``)."""
    columns = []
    for f in fields:
        if f.get("name") not in names or f.get("type") not in _SCALAR_TYPES:
            continue
        params = dict(f.get("params") or {})
        options: dict[str, Any] = {
            k: params[k] for k in ("max_length", "max_capacity") if params.get(k) is not None
        }
        if f.get("element_type") is not None:
            options["element_type"] = f["element_type"]
        if f.get("nullable"):
            options["nullable"] = True
        if f.get("default_value") is not None:
            options["default_value"] = True  # only whether there is one matters here
        columns.append(MetadataColumn(f["name"], f["type"], tuple(options.items())))
    return tuple(columns)


def check_column_values(
    index: int, metadata: Mapping[str, Any], columns: Iterable[MetadataColumn]
) -> None:
    """Refuse metadata ``#index`` if a column's value is missing (and the column neither
    nullable nor defaulted) or does not fit the column's type."""
    for column in columns:
        if column.name not in metadata:
            if not column.optional:
                raise InvalidInputError(
                    f"metadata #{index} has no key {column.name!r}, but the collection has a "
                    f"column {column.name!r} ({column.describe()}) that is neither nullable "
                    f"nor defaulted, so every document needs it; add the key."
                )
            continue
        column.check(index, metadata[column.name])


def _needs(column: MetadataColumn) -> tuple[tuple[int, int], tuple[int, int], str] | None:
    """(Milvus version, Milvus Lite version, feature) a column needs beyond Milvus 2.3."""
    if column.dtype.name in ("GEOMETRY", "TIMESTAMPTZ"):
        return (2, 6), (3, 2), f"{column.dtype.name} fields"
    if column.option("nullable") or column.option("default_value") is not None:
        return (2, 5), (3, 0), "nullable or defaulted fields"
    if column.dtype == DataType.ARRAY:
        return (2, 4), (2, 4), "ARRAY fields"
    return None


def column_support_problem(version: str, columns: Iterable[MetadataColumn]) -> str | None:
    """Why a server of ``version`` (``get_server_version()``) cannot hold one of
    ``columns``, or None when it can or the version is unknown."""
    text = str(version).strip()
    found = release(text)
    if found is None:
        return None  # e.g. Zilliz Cloud: let the server decide
    lite = bool(is_milvus_lite(text))
    for column in columns:
        needs = _needs(column)
        if needs is None:
            continue
        needed = needs[1] if lite else needs[0]
        if found < needed:
            product = "Milvus Lite" if lite else "Milvus"
            return (
                f"this server ({text}) has no {needs[2]} (column {column.name!r}); they need "
                f"{product} {needed[0]}.{needed[1]}+"
            )
    return None


def check_column_support(
    rpc: Callable[..., Any], collection: str, columns: tuple[MetadataColumn, ...]
) -> Op[None]:
    """Refuse, before ``collection`` is created, columns its server cannot hold (asks the
    server's version only when a column needs more than Milvus 2.3)."""
    if not any(_needs(c) for c in columns):
        return
    try:
        version = yield rpc("get_server_version")
    except Exception:  # an unknown server or proxy: creation itself will tell
        return
    problem = column_support_problem(str(version), columns)
    if problem:
        raise MilvusOperationError(
            f"Cannot create collection {collection!r}: {problem}. Use a newer server, or "
            f"declare the column without that feature in metadata_schema."
        )


S = TypeVar("S", bound="ColumnSpecMixin")


class ColumnSpecMixin:
    """What a collection spec (a frozen dataclass with these attributes) does with its
    typed metadata columns."""

    enable_dynamic_field: bool
    metadata_field: str | None
    partition_key_field: str | None
    metadata_columns: tuple[MetadataColumn, ...]

    @property
    def static_metadata(self) -> bool:
        """Metadata lives in typed columns only (no dynamic field, no JSON field): a new
        collection gets a column per key of the first document; other keys are dropped."""
        return not self.enable_dynamic_field and not self.metadata_field

    @property
    def column_names(self) -> tuple[str, ...]:
        """The typed metadata columns of a new collection, the partition key included."""
        names = [c.name for c in self.metadata_columns]
        if self.partition_key_field and self.partition_key_field not in names:
            names.append(self.partition_key_field)
        return tuple(names)

    def for_first_metadata(self: S, metadata: Mapping[str, Any] | None) -> S:
        """This spec with the columns a new collection gets when ``metadata`` is the first
        document's (itself unless :attr:`static_metadata`)."""
        if not self.static_metadata:
            return self
        skip = [self.partition_key_field] if self.partition_key_field else []
        columns = infer_columns(self.metadata_columns, metadata, skip=skip)
        return replace(self, metadata_columns=columns)  # type: ignore[type-var]

    def add_columns_to_schema(self, schema: Any) -> None:
        """Add the metadata columns and the partition key (a VARCHAR unless declared)."""
        for column in self.metadata_columns:
            kwargs = column.field_kwargs()
            if column.name == self.partition_key_field:
                kwargs["is_partition_key"] = True
            schema.add_field(**kwargs)
        if self.partition_key_field and self.partition_key_field not in {
            c.name for c in self.metadata_columns
        }:
            schema.add_field(
                self.partition_key_field,
                DataType.VARCHAR,
                max_length=VARCHAR_MAX_LENGTH,
                is_partition_key=True,
            )


class ColumnLayoutMixin:
    """What a collection layout (a frozen dataclass with these attributes) does with its
    typed metadata columns when rows are checked and built."""

    dynamic: bool
    metadata_field: str | None
    scalar_fields: tuple[str, ...]
    columns: tuple[MetadataColumn, ...]
    drop_unknown_keys: bool

    @property
    def accepts_any_key(self) -> bool:
        """Whether every metadata key may be written (or dropped): it goes to the JSON field
        or the dynamic field, or the store drops the keys that are no column."""
        return bool(self.metadata_field) or self.dynamic or self.drop_unknown_keys

    def unknown_key_ok(self, key: str) -> bool:
        """Whether a metadata key that is no column may be written (or dropped)."""
        return self.accepts_any_key or key in self.scalar_fields

    def storable_metadata(self, metadata: Mapping[str, Any]) -> Mapping[str, Any]:
        """The metadata a row stores: with :attr:`drop_unknown_keys`, only the columns."""
        if self.metadata_field or not self.drop_unknown_keys:
            return metadata
        return {k: v for k, v in metadata.items() if k in self.scalar_fields}

    def check_columns(self, index: int, metadata: Mapping[str, Any]) -> None:
        """Refuse metadata ``#index`` if a column's value is missing or of the wrong type."""
        if not self.metadata_field:
            check_column_values(index, metadata, self.columns)

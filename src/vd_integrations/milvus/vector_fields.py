"""The vector fields a store's embedding functions fill: their types, indexes and values.

Pure code, no I/O. A :class:`VectorField` describes one field of a collection that a
caller's embedding function (or the caller, through given vectors) fills: its name, its
Milvus type (``FLOAT_VECTOR``, ``FLOAT16_VECTOR``, ``BFLOAT16_VECTOR``, ``BINARY_VECTOR``,
``INT8_VECTOR`` or ``SPARSE_FLOAT_VECTOR``), its dimension when fixed in advance, and
its index and search settings. :meth:`VectorField.encode` checks one value and turns it
into what pymilvus sends for that type; nothing is ever stored in a different type than
the one asked for. :class:`MultiEmbedder` embeds with several embedding functions at
once (one value per field, in field order), and :func:`vector_type_problem` says why a
server cannot hold a type, so a store refuses before anything is written.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from vd_integrations.core.errors import InvalidInputError, MilvusOperationError
from vd_integrations.core.scoring import normalize_metric
from vd_integrations.core.validation import check_vectors
from vd_integrations.milvus.server_versions import is_milvus_lite, release
from vd_integrations.milvus.sparse import check_sparse_vector

__all__ = [
    "DENSE_TYPES",
    "MultiEmbedder",
    "VectorField",
    "encode_rows",
    "is_sparse_embedder",
    "one_vector_field",
    "parse_dtype",
    "refuse_unsupported_types",
    "vector_type_problem",
    "vectors_from_description",
]

#: Dense vector types and the metric a new index gets by default.
DENSE_TYPES = {
    DataType.FLOAT_VECTOR: "L2",
    DataType.FLOAT16_VECTOR: "L2",
    DataType.BFLOAT16_VECTOR: "L2",
    DataType.INT8_VECTOR: "L2",
    DataType.BINARY_VECTOR: "HAMMING",
}
_FLOAT_TYPES = {DataType.FLOAT_VECTOR, DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR}
_METRICS = {"L2", "IP", "COSINE", "HAMMING", "JACCARD", "MHJACCARD", "BM25"}
#: The first server releases with each type (Milvus Lite 3.x has float and sparse only).
_SINCE = {
    DataType.FLOAT16_VECTOR: (2, 4),
    DataType.BFLOAT16_VECTOR: (2, 4),
    DataType.SPARSE_FLOAT_VECTOR: (2, 4),
    DataType.BINARY_VECTOR: (2, 0),
    DataType.INT8_VECTOR: (2, 6),
}
_LITE_TYPES = {DataType.FLOAT_VECTOR, DataType.SPARSE_FLOAT_VECTOR}


def parse_dtype(value: Any, what: str = "dtype") -> DataType:
    """A vector ``DataType`` from a ``DataType`` or its name (``"FLOAT16_VECTOR"``)."""
    if isinstance(value, str):
        value = getattr(DataType, value.strip().upper(), value)
    if value in DENSE_TYPES or value == DataType.SPARSE_FLOAT_VECTOR:
        return DataType(value)
    allowed = [*(t.name for t in DENSE_TYPES), "SPARSE_FLOAT_VECTOR"]
    raise InvalidInputError(f"{what} must be a vector type ({allowed}), got {value!r}.")


def is_sparse_embedder(embedder: Any) -> bool:
    """Whether ``embedder`` returns sparse ``{dimension: weight}`` dicts (langchain-milvus'
    ``BaseSparseEmbedding`` and its subclasses, recognised by name: no import needed)."""
    return any(cls.__name__ == "BaseSparseEmbedding" for cls in type(embedder).__mro__)


@dataclass(frozen=True)
class VectorField:
    """One vector field filled by a caller's embedding function (see the module docstring).

    ``dim`` None: the first vectors written fix it (a sparse field has none).
    ``field_kwargs``: further ``add_field`` arguments (``vector_schema``'s other keys).
    """

    name: str
    dtype: DataType = DataType.FLOAT_VECTOR
    dim: int | None = None
    index_params: Mapping[str, Any] | None = None
    search_params: Mapping[str, Any] | None = None
    field_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.name):
            raise InvalidInputError(
                f"A vector field name must be a plain identifier, got {self.name!r}."
            )
        object.__setattr__(self, "dtype", parse_dtype(self.dtype, f"the type of {self.name!r}"))
        if self.dim is not None and (
            isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1
        ):
            raise InvalidInputError(
                f"dim of {self.name!r} must be a positive int, got {self.dim!r}."
            )
        if self.sparse and self.dim is not None:
            raise InvalidInputError(f"The sparse vector field {self.name!r} takes no dim.")
        if self.dtype == DataType.BINARY_VECTOR and self.dim is not None and self.dim % 8:
            raise InvalidInputError(
                f"dim of the binary vector field {self.name!r} must be a multiple of 8, got "
                f"{self.dim}."
            )
        for name in ("index_params", "search_params"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                raise InvalidInputError(
                    f"{name} of the vector field {self.name!r} must be a dict, got {value!r:.80}."
                )
        self.index  # noqa: B018 - validate the metric now, not at collection creation

    @classmethod
    def from_schema(
        cls,
        name: str,
        schema: Mapping[str, Any] | None,
        *,
        sparse: bool = False,
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> VectorField:
        """A field from langchain-milvus' ``vector_schema`` entry (``{"dtype": ..., "dim":
        ..., "kwargs": {...}, ...}``); without one, float (``sparse``: sparse) vectors."""
        rest = dict(schema or {})
        nested = rest.pop("kwargs", None) or {}
        if not isinstance(nested, Mapping):
            raise InvalidInputError(f"vector_schema['kwargs'] must be a dict, got {nested!r}.")
        rest.update(nested)
        default = DataType.SPARSE_FLOAT_VECTOR if sparse else DataType.FLOAT_VECTOR
        dtype = rest.pop("dtype", default)
        dim = rest.pop("dim", None)
        for reserved in ("field_name", "name", "datatype", "is_primary"):
            if reserved in rest:
                raise InvalidInputError(
                    f"vector_schema for {name!r} may not set {reserved!r}; the store sets it."
                )
        return cls(
            name=name,
            dtype=dtype,
            dim=dim,
            index_params=index_params,
            search_params=search_params,
            field_kwargs=rest,
        )

    # ----- schema and index -------------------------------------------------------------------

    @property
    def sparse(self) -> bool:
        return self.dtype == DataType.SPARSE_FLOAT_VECTOR

    @property
    def index(self) -> dict[str, Any]:
        """The index definition, defaults by type filled in and the metric checked."""
        if self.sparse:
            index: dict[str, Any] = {
                "index_type": "SPARSE_INVERTED_INDEX",
                "metric_type": "IP",
                "params": {"drop_ratio_build": 0.2},
            }
        elif self.dtype == DataType.INT8_VECTOR:  # INT8 vectors take HNSW indexes only
            index = {"index_type": "HNSW", "metric_type": "L2", "params": {"M": 16}}
            index["params"]["efConstruction"] = 200
        else:
            index = {"index_type": "AUTOINDEX", "metric_type": DENSE_TYPES[self.dtype]}
            index["params"] = {}
        given = dict(self.index_params or {})
        given.pop("field_name", None)
        if "params" in given:
            index["params"] = dict(given.pop("params") or {})
        index.update(given)
        metric = str(index["metric_type"]).strip().upper()
        if metric not in _METRICS:
            raise InvalidInputError(
                f"metric_type {index['metric_type']!r} of {self.name!r} is not a Milvus metric "
                f"({sorted(_METRICS)})."
            )
        index["metric_type"] = (
            normalize_metric(metric) if metric in ("L2", "IP", "COSINE") else metric
        )
        return index

    @property
    def metric(self) -> str:
        return str(self.index["metric_type"])

    def add_to_schema(self, schema: Any, dim: int | None) -> None:
        """Add this field to a ``CollectionSchema`` (``dim`` from the first vectors)."""
        kwargs = dict(self.field_kwargs)
        if not self.sparse:
            kwargs["dim"] = self.dim or dim
        schema.add_field(self.name, self.dtype, **kwargs)

    def index_params_for_field(self) -> Any:
        """``IndexParams`` holding this field's index alone (one ``create_index`` per field)."""
        params = MilvusClient.prepare_index_params()
        index = self.index
        params.add_index(field_name=self.name, **index)
        return params

    def search_param(self, *extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """Search params for this field: its own, then ``extra`` merged in order. The metric
        is sent only when known (given here or in the index params); otherwise the server
        uses the index's."""
        params: dict[str, Any] = {"params": {}}
        if self.index_params and self.index_params.get("metric_type"):
            params["metric_type"] = self.metric
        for more in (self.search_params, *extra):
            if more:
                params.update({k: v for k, v in more.items() if k != "params"})
                params["params"] = {**params["params"], **dict(more.get("params") or {})}
        return params

    # ----- values ---------------------------------------------------------------------------

    def value_dim(self, value: Any) -> int:
        """The dimension of one checked value (0 for sparse)."""
        if self.sparse:
            return 0
        if self.dtype == DataType.BINARY_VECTOR:
            return len(value) * 8
        return len(value)

    def encode(self, value: Any, *, dim: int | None, what: str) -> Any:
        """One checked value of this field's type, as pymilvus sends it (``dim``: the
        dimension it must have, None when not yet fixed)."""
        dim = self.dim or dim
        if self.sparse:
            return check_sparse_vector(value, f"{what} for {self.name!r}")
        if self.dtype == DataType.BINARY_VECTOR:
            return _binary(value, dim, f"{what} for {self.name!r}")
        if self.dtype == DataType.INT8_VECTOR:
            return _int8(value, dim, f"{what} for {self.name!r}")
        (floats,) = check_vectors([value], dim=dim, what=f"{what} for {self.name!r}")
        if self.dtype == DataType.FLOAT16_VECTOR:
            return np.asarray(floats, dtype=np.float16)
        if self.dtype == DataType.BFLOAT16_VECTOR:
            return _bfloat16_bytes(floats)
        return floats

    def decode(self, value: Any) -> Any:
        """A stored value read back: float types as a list of floats, others as they come."""
        if value is None or self.dtype not in _FLOAT_TYPES:
            return value
        if isinstance(value, (bytes, bytearray)):
            if self.dtype == DataType.FLOAT16_VECTOR:
                return np.frombuffer(value, dtype=np.float16).astype(float).tolist()
            bits = np.frombuffer(value, dtype=np.uint16).astype(np.uint32) << 16
            return bits.view(np.float32).astype(float).tolist()
        if isinstance(value, Sequence) and len(value) == 1 and isinstance(value[0], bytes):
            return self.decode(value[0])
        return [float(x) for x in value]


def _binary(value: Any, dim: int | None, what: str) -> bytes:
    """Bytes (8 dimensions each) or a sequence of 0/1 bits, as packed bytes."""
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        bits = value.tolist() if hasattr(value, "tolist") else value
        if not isinstance(bits, Sequence) or isinstance(bits, str) or not bits:
            raise InvalidInputError(
                f"{what} must be bytes or a list of 0/1 bits, got {value!r:.60}."
            )
        if any(isinstance(b, bool) or b not in (0, 1) for b in bits) or len(bits) % 8:
            raise InvalidInputError(
                f"{what} must hold only 0/1 bits, a multiple of 8 of them; got {value!r:.60}."
            )
        data = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    if not data:
        raise InvalidInputError(f"{what} is empty.")
    if dim is not None and len(data) * 8 != dim:
        raise InvalidInputError(f"{what} has {len(data) * 8} bits, expected {dim}.")
    return data


def _int8(value: Any, dim: int | None, what: str) -> Any:
    ints = value.tolist() if hasattr(value, "tolist") else value
    if not isinstance(ints, Sequence) or isinstance(ints, (str, bytes)) or not ints:
        raise InvalidInputError(f"{what} must be a non-empty list of ints, got {value!r:.60}.")
    for x in ints:
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not -128 <= x <= 127:
            raise InvalidInputError(f"{what} holds {x!r}; int8 vectors hold ints in [-128, 127].")
    if dim is not None and len(ints) != dim:
        raise InvalidInputError(f"{what} has dimension {len(ints)}, expected {dim}.")
    return np.asarray(ints, dtype=np.int8)


def _bfloat16_bytes(floats: list[float]) -> bytes:
    """float32 values rounded (to nearest even) to bfloat16, as little-endian bytes."""
    bits = np.asarray(floats, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def vector_type_problem(version: str, dtype: DataType) -> str | None:
    """Why a server of ``version`` (``get_server_version()``) cannot hold a ``dtype`` vector
    field, or None when it can or the version is unknown."""
    text = str(version).strip()
    name = DataType(dtype).name
    if is_milvus_lite(text):
        if dtype in _LITE_TYPES:
            return None
        return (
            f"this server ({text}) has no {name} fields (Milvus Lite stores FLOAT_VECTOR and "
            f"SPARSE_FLOAT_VECTOR only); use a Milvus server (standalone or distributed) for "
            f"{name}, or FLOAT_VECTOR"
        )
    found = release(text)
    needed = _SINCE.get(dtype)
    if found is None or needed is None or found >= needed:
        return None
    return f"this server ({text}) has no {name} fields; they need Milvus {needed[0]}.{needed[1]}+"


def refuse_unsupported_types(collection: str, version: str, fields: Sequence[VectorField]) -> None:
    """Raise :class:`MilvusOperationError` naming the server version and the type when a
    server of ``version`` cannot hold one of ``fields``, or several vector fields in one
    collection (Milvus 2.4+), before anything is created."""
    found = release(version)
    if len(fields) > 1 and not is_milvus_lite(version) and found is not None and found < (2, 4):
        names = [v.name for v in fields]
        raise MilvusOperationError(
            f"Cannot create collection {collection!r} with the vector fields {names}: this "
            f"server ({version}) holds one vector field per collection; several need Milvus "
            f"2.4+. Nothing was written."
        )
    for vector_field in fields:
        problem = vector_type_problem(version, vector_field.dtype)
        if problem:
            raise MilvusOperationError(
                f"Cannot create collection {collection!r} with the {vector_field.dtype.name} "
                f"field {vector_field.name!r}: {problem}. Nothing was written."
            )


class MultiEmbedder:
    """Several embedding functions as one: each text (or query) gets one value per
    function, in order (a list), which the store writes to its vector fields."""

    def __init__(self, embedders: Sequence[Any]) -> None:
        self.embedders = list(embedders)

    def __repr__(self) -> str:
        return f"MultiEmbedder({self.embedders!r})"

    def _rows(self, columns: list[list[Any]], n: int) -> list[list[Any]]:
        for embedder, column in zip(self.embedders, columns, strict=True):
            if len(column) != n:
                raise InvalidInputError(
                    f"The embedding function {type(embedder).__name__} returned {len(column)} "
                    f"vectors for {n} texts."
                )
        return [list(values) for values in zip(*columns, strict=True)] if columns else []

    def embed_documents(self, texts: list[str]) -> list[list[Any]]:
        return self._rows([list(e.embed_documents(texts)) for e in self.embedders], len(texts))

    def embed_query(self, text: str) -> list[Any]:
        return [e.embed_query(text) for e in self.embedders]

    async def aembed_documents(self, texts: list[str]) -> list[list[Any]]:
        columns = await asyncio.gather(*(e.aembed_documents(texts) for e in self.embedders))
        return self._rows([list(c) for c in columns], len(texts))

    async def aembed_query(self, text: str) -> list[Any]:
        return list(await asyncio.gather(*(e.aembed_query(text) for e in self.embedders)))


def encode_rows(
    fields: Sequence[VectorField], rows: Sequence[Any], dims: list[int | None], what: str
) -> list[dict[str, Any]]:
    """Each row's vector field values, checked and encoded: a row is one value with one
    field, else one value per field in order. ``dims`` (one per field, None while unknown)
    is filled in from the first row."""
    names = [f.name for f in fields]
    out = []
    for i, row in enumerate(rows):
        if len(fields) == 1:
            values = [row]
        else:
            values = row.tolist() if hasattr(row, "tolist") else row
            if (
                not isinstance(values, Sequence)
                or isinstance(values, (str, bytes))
                or len(values) != len(fields)
            ):
                raise InvalidInputError(
                    f"{what} #{i} must hold one vector per vector field {names} (in that "
                    f"order), got {row!r:.80}."
                )
        encoded = {}
        for j, (vector_field, value) in enumerate(zip(fields, values, strict=True)):
            encoded[vector_field.name] = vector_field.encode(
                value, dim=dims[j], what=f"{what} #{i}"
            )
            if dims[j] is None and not vector_field.sparse:
                dims[j] = vector_field.value_dim(encoded[vector_field.name])
        out.append(encoded)
    return out


def vectors_from_description(
    collection: str, wanted: Sequence[VectorField] | None, by_name: Mapping[str, Any]
) -> tuple[VectorField, ...]:
    """The ``wanted`` vector fields as collection ``by_name`` (``describe_collection``'s
    fields by name) has them: its types and dimensions win over the ones asked for."""
    types = {*DENSE_TYPES, DataType.SPARSE_FLOAT_VECTOR}
    out = []
    for vector_field in wanted or ():
        found = by_name.get(vector_field.name)
        if found is None or found.get("type") not in types:
            raise InvalidInputError(
                f"Collection {collection!r} has no vector field {vector_field.name!r} (vector "
                f"fields: {[n for n, f in by_name.items() if f.get('type') in types]}); pass "
                f"vector_field= naming its fields, or a new collection_name."
            )
        dim = (found.get("params") or {}).get("dim")
        out.append(
            replace(
                vector_field, dtype=found["type"], dim=int(dim) if dim else None, field_kwargs={}
            )
        )
    return tuple(out)


def one_vector_field(collection: str, fields: Sequence[VectorField]) -> VectorField:
    """The one vector field a search by vector uses, or a clear error saying what to use."""
    if len(fields) == 1:
        return fields[0]
    if not fields:
        raise InvalidInputError(
            f"Collection {collection!r} has no vector field an embedding fills (a BM25-only "
            f"store): search it by text (similarity_search / full_text_search)."
        )
    raise InvalidInputError(
        f"A search by vector needs one vector field, but collection {collection!r} has "
        f"{[f.name for f in fields]}: search by text, which searches every field and fuses "
        f"the results (similarity_search / hybrid_search)."
    )

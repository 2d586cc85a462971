"""vd's collection layout in Milvus (the one vd's sync milvus backend creates), told to the
engine through its spec: :class:`VdCollectionSpec` (schema, indexes, layout factory) and
:class:`VdLayout` (rows, records, metadata, filters), with vd's metric names and scores.

The layout: ``id`` a ``VARCHAR(512)`` primary key; ``vector`` a ``FLOAT_VECTOR``;
``text`` an analyzed ``VARCHAR(65535)`` feeding a BM25 function into ``text_sparse``
(``lexical=True``, the default) or a dynamic field (``lexical=False``, unbounded text);
``metadata`` one dynamic field holding the metadata dict. vd filters address
``metadata["key"]``; :func:`evaluable_by_milvus` says whether Milvus can evaluate one.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient
from vd import Filter, UnsupportedFilterError

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import FieldRef, json_field, translate_filter
from vd_integrations.core.scoring import normalize_metric
from vd_integrations.core.validation import as_float_list
from vd_integrations.milvus.schema import (
    CollectionLayout,
    CollectionSpec,
    Record,
    described_fields,
)

__all__ = [
    "METRICS",
    "VD_METRICS",
    "VdCollectionSpec",
    "VdLayout",
    "evaluable_by_milvus",
    "metadata_ref",
    "milvus_metric",
    "vd_score",
]

#: vd metric name -> Milvus metric_type (as in vd's sync backend).
METRICS: dict[str, str] = {"cosine": "COSINE", "dot": "IP", "l2": "L2"}
#: Milvus metric_type -> vd metric name.
VD_METRICS: dict[str, str] = {v: k for k, v in METRICS.items()}

# The constants of vd's sync milvus backend (vd.backends.milvus).
_ID_MAX_LENGTH = 512
_TEXT_MAX_LENGTH = 65_535
_SPARSE_FIELD = "text_sparse"
_BM25_FUNCTION = "text_bm25"
_METADATA = "metadata"
_TEXT = "text"

#: ``text`` stored in a dynamic field has no VARCHAR limit.
_UNBOUNDED = sys.maxsize


def milvus_metric(metric: str) -> str:
    """The Milvus ``metric_type`` for a vd metric name; ``ValueError`` if unknown."""
    try:
        return METRICS[metric]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown metric {metric!r}. Valid values are: {', '.join(sorted(METRICS))}."
        ) from None


def vd_score(raw: float, metric: str) -> float:
    """vd's canonical, higher-is-better score for a raw Milvus score under ``metric``."""
    if normalize_metric(metric) == "L2":  # Milvus returns the squared distance
        return 1.0 / (1.0 + math.sqrt(max(float(raw), 0.0)))
    return float(raw)  # COSINE: similarity in [-1, 1]; IP: the inner product


def metadata_ref(key: str) -> FieldRef:
    """How a vd filter key is referenced in a Milvus expression: ``metadata["key"]``."""
    return json_field(_METADATA, key)


def evaluable_by_milvus(filter: Filter | None) -> bool:
    """Whether Milvus can evaluate ``filter`` (a vd filter already validated by vd); a
    valid one it cannot express (e.g. equality with ``None`` or a list) is evaluated
    client-side."""
    if not filter:
        return True
    try:
        translate_filter(filter, resolve=metadata_ref)
    except UnsupportedFilterError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Spec and layout: vd's sync schema, expressed for the engine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VdCollectionSpec(CollectionSpec):
    """A collection as vd's sync milvus backend creates it (``lexical`` adds BM25).

    The engine learns the layout through the spec's public extension points alone:
    :meth:`build_schema`, :meth:`field_indexes` (one index per field),
    :meth:`prospective_layout` and :meth:`layout_from_description` (the layout factory).
    """

    lexical: bool = True

    @classmethod
    def for_vd(cls, name: str, metric: str = "cosine", *, lexical: bool = True) -> VdCollectionSpec:
        """The spec of vd collection ``name`` with vd metric ``metric``."""
        return cls(
            name=name,
            primary_field="id",
            text_field=_TEXT,
            vector_field="vector",
            metadata_field=_METADATA,
            enable_dynamic_field=True,
            consistency_level="Strong",
            index_params={"index_type": "AUTOINDEX", "metric_type": milvus_metric(metric)},
            lexical=lexical,
        )

    def layout_from_description(
        self, description: Mapping[str, Any], metric: str | None
    ) -> CollectionLayout:
        """An existing collection read in vd's layout (see :class:`VdLayout`)."""
        return VdLayout.from_vd_description(self, description, metric)

    def prospective_layout(self) -> CollectionLayout:
        """The layout vd's backend gives a new collection."""
        return VdLayout(
            name=self.name,
            primary_field=self.primary_field,
            pk_is_int=False,
            auto_id=False,
            text_field=_TEXT,
            vector_field=self.vector_field,
            dim=0,
            metric=self.index["metric_type"],
            dynamic=True,
            metadata_field=_METADATA,
            pk_max_length=_ID_MAX_LENGTH,
            text_max_length=_TEXT_MAX_LENGTH if self.lexical else _UNBOUNDED,
        )

    def build_schema(self, dim: int) -> Any:
        """vd's schema: ``id``, ``vector``, dynamic fields, and BM25 ``text`` if lexical."""
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field(
            self.primary_field, DataType.VARCHAR, is_primary=True, max_length=_ID_MAX_LENGTH
        )
        schema.add_field(self.vector_field, DataType.FLOAT_VECTOR, dim=dim)
        if self.lexical:
            schema.add_field(
                self.text_field,
                DataType.VARCHAR,
                max_length=_TEXT_MAX_LENGTH,
                enable_analyzer=True,
            )
            schema.add_field(_SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name=_BM25_FUNCTION,
                    input_field_names=[self.text_field],
                    output_field_names=[_SPARSE_FIELD],
                    function_type=FunctionType.BM25,
                )
            )
        return schema

    def field_indexes(self) -> list[tuple[str, Any]]:
        """One ``(field, IndexParams)`` per indexed field: the vector, and BM25 if lexical."""
        index = self.index
        vector = MilvusClient.prepare_index_params()
        vector.add_index(
            field_name=self.vector_field,
            index_type=index["index_type"],
            metric_type=index["metric_type"],
            params=index["params"],
        )
        out = [(self.vector_field, vector)]
        if self.lexical:
            sparse = MilvusClient.prepare_index_params()
            sparse.add_index(
                field_name=_SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25"
            )
            out.append((_SPARSE_FIELD, sparse))
        return out


@dataclass(frozen=True)
class VdLayout(CollectionLayout):
    """vd's row shape: ``text`` (column or dynamic) and one ``metadata`` dict (dynamic or JSON).

    Filters address ``metadata["key"]``; metadata keys are free (they are nested, so
    nothing is reserved), values must be JSON.
    """

    @classmethod
    def from_vd_description(
        cls, spec: CollectionSpec, description: Mapping[str, Any], metric: str | None
    ) -> VdLayout:
        """Interpret ``describe_collection`` output of a vd-layout collection."""
        fields, by_name, primary = described_fields(spec, description)
        dense = [f for f in fields if f.get("type") == DataType.FLOAT_VECTOR]
        vector = by_name.get(spec.vector_field) or (dense[0] if len(dense) == 1 else None)
        if vector is None:
            raise InvalidInputError(
                f"Collection {spec.name!r} has no float vector field {spec.vector_field!r}; "
                f"it was not created by vd."
            )
        dynamic = bool(description.get("enable_dynamic_field"))
        text = by_name.get(_TEXT)
        if not dynamic and (text is None or _METADATA not in by_name):
            raise InvalidInputError(
                f"Collection {spec.name!r} has no dynamic field and no {_TEXT!r}/{_METADATA!r} "
                f"columns, so it cannot hold vd documents; it was not created by vd."
            )
        hidden = {f["name"] for f in fields if "dim" in (f.get("params") or {})}
        hidden |= {f["name"] for f in fields if f.get("is_function_output")}
        return cls(
            name=spec.name,
            primary_field=primary["name"],
            pk_is_int=primary.get("type") in (DataType.INT64, DataType.INT32),
            auto_id=bool(description.get("auto_id") or primary.get("auto_id")),
            text_field=_TEXT,
            vector_field=vector["name"],
            dim=int((vector.get("params") or {}).get("dim", 0)),
            metric=normalize_metric(metric or spec.index["metric_type"]),
            dynamic=dynamic,
            metadata_field=_METADATA,
            pk_max_length=int((primary.get("params") or {}).get("max_length", _ID_MAX_LENGTH)),
            text_max_length=(
                int((text.get("params") or {}).get("max_length", _TEXT_MAX_LENGTH))
                if text is not None
                else _UNBOUNDED
            ),
            hidden_fields=frozenset(hidden),
            sparse_field=_SPARSE_FIELD if _SPARSE_FIELD in by_name else None,
            sparse_bm25=_SPARSE_FIELD in by_name,
        )

    @property
    def reserved_keys(self) -> frozenset[str]:
        """None: metadata is one nested dict, so any key is allowed."""
        return frozenset()

    def field_ref(self, key: str) -> FieldRef:
        """Every filter key is a key of the ``metadata`` dict."""
        return metadata_ref(key)

    def output_fields(self, *, with_vector: bool = False) -> list[str]:
        """``text`` and ``metadata`` (static or dynamic), plus the vector if asked."""
        fields = [_TEXT, _METADATA]
        if with_vector:
            fields.append(self.vector_field)
        return fields

    def build_row(
        self, pk: str | int | None, text: str, vector: list[float], metadata: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The row vd's sync backend writes: ``{id, vector, text, metadata}``."""
        return {
            self.primary_field: pk,
            self.vector_field: vector,
            _TEXT: text,
            _METADATA: dict(metadata),
        }

    def record_from_entity(
        self, pk: Any, entity: Mapping[str, Any], score: float | None = None
    ) -> Record:
        """A :class:`Record` whose metadata is the stored ``metadata`` dict."""
        vector = entity.get(self.vector_field)
        return Record(
            id=str(pk),
            text=entity.get(_TEXT) or "",
            metadata=dict(entity.get(_METADATA) or {}),
            vector=None if vector is None else as_float_list(vector),
            score=score,
        )

    def check_metadata(self, index: int, metadata: Any) -> None:
        """Metadata must be a dict with string keys that survives a JSON round trip."""
        if not isinstance(metadata, Mapping):
            raise InvalidInputError(
                f"metadata #{index} must be a dict, got {type(metadata).__name__}."
            )
        for key in metadata:
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"metadata #{index} has key {key!r}; metadata keys must be strings."
                )
        try:
            json.dumps(metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"metadata #{index} cannot be stored in Milvus ({exc}); use str, int, float, "
                f"bool, None, or lists/dicts of those (no NaN or infinity)."
            ) from None

"""The sparse side of a collection (BM25 from the text, or caller-supplied sparse vectors):
:class:`SparseSpec`, which the schema and the hybrid search both build on."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.validation import FLOAT32_MAX, fits_float32

__all__ = ["SparseSpec", "check_sparse_vector"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SparseSpec:
    """The sparse side of a collection.

    ``bm25=True`` (the default): Milvus fills ``field`` from the text field with a BM25
    function, so searches send the query *text*; the text field is analyzed with
    ``analyzer_params`` / ``multi_analyzer_params`` (Milvus' standard analyzer when
    neither is given). ``bm25=False``: ``field`` holds sparse vectors the caller
    computes (an ``IP`` index), so writes and searches send ``{dim: weight}`` dicts.
    """

    field: str = "sparse"
    bm25: bool = True
    function_name: str | None = None
    analyzer_params: Mapping[str, Any] | None = None
    multi_analyzer_params: Mapping[str, Any] | None = None
    enable_match: bool = False
    index_params: Mapping[str, Any] | None = None
    #: Search params of the sparse leg when a store searches all its fields at once.
    search_params: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not _IDENTIFIER.match(self.field):
            raise InvalidInputError(
                f"The sparse field name must be a plain identifier, got {self.field!r}."
            )
        if self.analyzer_params is not None and self.multi_analyzer_params is not None:
            raise InvalidInputError(
                "Pass analyzer_params (one analyzer) or multi_analyzer_params (per-language "
                "analyzers), not both."
            )
        if not self.bm25 and (self.analyzer_params or self.multi_analyzer_params):
            raise InvalidInputError(
                "analyzer_params only apply to the built-in BM25 function; a user-supplied "
                "sparse embedding function tokenizes text itself."
            )
        if self.index_params is not None and not isinstance(self.index_params, Mapping):
            raise InvalidInputError(
                f"The sparse index params must be a dict such as {{'index_type': "
                f"'SPARSE_INVERTED_INDEX', 'metric_type': 'BM25'}}, got {self.index_params!r}."
            )
        self.index  # noqa: B018 - validate the metric now, not at collection creation

    @property
    def metric(self) -> str:
        """``BM25`` for the built-in function, ``IP`` for caller-computed sparse vectors."""
        return "BM25" if self.bm25 else "IP"

    @property
    def index(self) -> dict[str, Any]:
        """The sparse index definition, defaults filled in."""
        index: dict[str, Any] = {
            "index_type": "SPARSE_INVERTED_INDEX",
            "metric_type": self.metric,
            "params": {},
        }
        given = dict(self.index_params or {})
        given.pop("field_name", None)
        given.pop("index_name", None)
        params = dict(given.pop("params", None) or {})
        index.update(given)
        index["params"] = params
        metric = str(index["metric_type"]).upper()
        if metric != self.metric:
            raise InvalidInputError(
                f"The sparse index metric must be {self.metric!r} for "
                f"{'a BM25 function' if self.bm25 else 'user-supplied sparse vectors'}, got "
                f"{index['metric_type']!r}; drop metric_type from the sparse index params."
            )
        index["metric_type"] = metric
        return index

    def text_field_kwargs(self) -> dict[str, Any]:
        """Extra ``add_field`` arguments for the text field (the analyzer, for BM25)."""
        if not self.bm25:
            return {}
        kwargs: dict[str, Any] = {"enable_analyzer": True}
        if self.enable_match:
            kwargs["enable_match"] = True
        if self.multi_analyzer_params is not None:
            kwargs["multi_analyzer_params"] = dict(self.multi_analyzer_params)
        elif self.analyzer_params is not None:
            kwargs["analyzer_params"] = dict(self.analyzer_params)
        return kwargs

    def add_to_schema(self, schema: Any, text_field: str) -> None:
        """Add the sparse field (and the BM25 function reading ``text_field``) to ``schema``."""
        schema.add_field(self.field, DataType.SPARSE_FLOAT_VECTOR)
        if self.bm25:
            schema.add_function(
                Function(
                    name=self.function_name or f"{self.field}_bm25",
                    input_field_names=[text_field],
                    output_field_names=[self.field],
                    function_type=FunctionType.BM25,
                )
            )

    def index_params_for_field(self) -> Any:
        """``IndexParams`` holding the sparse index alone (one ``create_index`` per field)."""
        params = MilvusClient.prepare_index_params()
        index = self.index
        params.add_index(
            field_name=self.field,
            index_type=index["index_type"],
            metric_type=index["metric_type"],
            params=index["params"],
        )
        return params


def check_sparse_vector(vector: Any, what: str = "sparse vector") -> dict[int, float]:
    """A ``{dimension: weight}`` dict of non-negative int keys and finite float values."""
    if hasattr(vector, "tocoo"):  # a scipy sparse row
        coo = vector.tocoo()
        vector = {int(c): float(v) for c, v in zip(coo.col, coo.data, strict=True)}
    if not isinstance(vector, Mapping) or not vector:
        raise InvalidInputError(
            f"{what} must be a non-empty dict {{dimension: weight}}, got {vector!r:.80}."
        )
    out: dict[int, float] = {}
    for key, value in vector.items():
        if isinstance(key, bool) or not isinstance(key, numbers.Integral) or key < 0:
            raise InvalidInputError(f"{what} has key {key!r}; keys must be non-negative ints.")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidInputError(f"{what} has value {value!r}; values must be numbers.")
        if not math.isfinite(float(value)):
            raise InvalidInputError(f"{what} contains NaN or infinity.")
        if not fits_float32(float(value)):
            raise InvalidInputError(
                f"{what} has weight {value!r} for dimension {key!r}, outside the float32 range "
                f"(magnitude at most {FLOAT32_MAX:.8g}) in which Milvus stores it."
            )
        out[int(key)] = float(value)
    return out

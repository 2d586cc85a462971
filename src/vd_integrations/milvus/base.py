"""What every Milvus data operation builds on: the spec, the setup state, request steps,
filters and partitions (the base of :class:`~vd_integrations.milvus.engine.MilvusEngine`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vd_integrations.core.errors import InvalidFilterExpressionError
from vd_integrations.core.expressions import check_raw_expression
from vd_integrations.core.filters import FilterLike, translate_filter
from vd_integrations.core.ops import Op
from vd_integrations.core.scoring import relevance_fn
from vd_integrations.milvus import faults
from vd_integrations.milvus.collection import CollectionSetup
from vd_integrations.milvus.rpc import Rpc
from vd_integrations.milvus.schema import CollectionLayout, CollectionSpec

__all__ = ["EngineBase"]


class EngineBase:
    """One collection's spec and setup, and the helpers its operations share."""

    def __init__(self, spec: CollectionSpec, *, timeout: float | None, drop_old: bool) -> None:
        self.spec = spec
        self.timeout = timeout
        self.setup = CollectionSetup(spec, self.rpc, drop_old=drop_old)

    def ready(self, dim: int | None = None, *, loaded: bool = False) -> Op[CollectionLayout | None]:
        """The collection's layout; with ``dim``, create the collection if it is missing
        (see :meth:`CollectionSetup.ready`)."""
        return self.setup.ready(dim, loaded=loaded)

    def loaded(self) -> Op[None]:
        """Wait until a collection this engine created is loaded (a no-op otherwise)."""
        return self.setup.loaded()

    def drop(self) -> Op[None]:
        """Drop the collection (a later write creates it again)."""
        return self.setup.drop()

    @property
    def layout(self) -> CollectionLayout | None:
        """The collection's layout once known (after the first call that touched Milvus)."""
        return self.setup.layout

    def compile_filter(self, filter: FilterLike, layout: CollectionLayout | None = None) -> str:
        """A Milvus expression for a string expression or a vd dict filter ('' for none)."""
        if filter is None or filter == "":
            return ""
        if isinstance(filter, str):
            if not filter.strip():
                return ""
            return check_raw_expression(filter)  # one unit, safe to combine with others
        if not isinstance(filter, Mapping):
            raise InvalidFilterExpressionError(
                f"filter must be a Milvus expression string or a dict in the vd filter language, "
                f"got {type(filter).__name__}."
            )
        layout = layout or self.layout or self.setup.prospective_layout()
        return translate_filter(filter, resolve=layout.field_ref) or ""

    def partition_kwargs(self, *, single: bool = False) -> dict[str, Any]:
        """``partition_name(s)`` for requests when the store is bound to partitions."""
        names = list(self.spec.partition_names or [])
        if not names or self.spec.partition_key_field:
            return {}
        if single:
            return {"partition_name": names[0]}
        return {"partition_names": names}

    def relevance_fn(self) -> Callable[[float], float]:
        """Map a raw Milvus score to [0, 1] in the collection's metric (see ``scoring``)."""
        layout = self.layout
        return relevance_fn(layout.metric if layout else self.spec.index["metric_type"])

    def map_error(self, exc: Exception, step: Any) -> Exception:
        """A clear, typed error for ``exc`` raised by ``step`` (:func:`.faults.translate_error`)."""
        return faults.translate_error(exc, step, self.spec.name)

    def rpc(self, method: str, **kwargs: Any) -> Rpc:
        """The step for ``client.<method>(**kwargs)``, with the store's default timeout."""
        if self.timeout is not None:
            kwargs.setdefault("timeout", self.timeout)
        return Rpc(method, kwargs)

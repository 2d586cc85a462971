"""The engine op API the LangChain stores are written against, and the two translations between
its terms and LangChain's (a record becomes a ``Document``; ``expr=`` and ``filter=`` one filter).

Both core engines expose this API: :class:`~vd_integrations.milvus.engine.MilvusEngine` and
:class:`~vd_integrations.vd.engine.VdEngine`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from langchain_core.documents import Document

from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import Op
from vd_integrations.milvus.schema import Record

__all__ = ["E", "Engine", "FilterLike", "pick_filter", "to_document"]

T = TypeVar("T")
E = TypeVar("E", bound="Engine")  # the engine a store holds
FilterLike = Any


class Engine(Protocol):
    """The op API both core engines expose (``MilvusEngine``, ``VdEngine``): the arguments
    the shared surface passes (a subclass's engine-specific options go through its hooks,
    as ``**`` of a ``dict[str, Any]``)."""

    def run(self, op: Op[T], *, timeout: float | None = None) -> T: ...
    async def arun(self, op: Op[T], *, timeout: float | None = None) -> T: ...
    def add(
        self,
        texts: Iterable[str],
        *,
        vectors: Sequence[Sequence[float]] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        batch_size: int = ...,
        on_batch: Callable[[int], None] | None = None,
    ) -> Op[list[str]]: ...
    def search(
        self, vectors: Sequence[Sequence[float]], *, k: int, filter: Any = None
    ) -> Op[list[list[Record]]]: ...
    def search_text(self, query: str, *, k: int, filter: Any = None) -> Op[list[Record]]: ...
    def mmr(
        self,
        vector: Sequence[float] | None = None,
        *,
        query: str | None = None,
        k: int,
        fetch_k: int,
        lambda_mult: float = ...,
        filter: Any = None,
    ) -> Op[list[Record]]: ...
    def delete(self, ids: Sequence[Any] | None = None, filter: Any = None) -> Op[int | None]: ...
    def query(
        self, filter: Any = None, *, ids: Sequence[Any] | None = None, limit: int | None = None
    ) -> Op[list[Record]]: ...
    def count(self) -> Op[int]: ...
    def drop(self) -> Op[None]: ...
    def relevance_fn(self) -> Callable[[float], float]: ...
    def close(self) -> None: ...
    async def aclose(self) -> None: ...


def to_document(record: Record) -> Document:
    return Document(page_content=record.text, metadata=record.metadata, id=record.id)


def pick_filter(expr: FilterLike, kwargs: Mapping[str, Any]) -> FilterLike:
    """``expr=`` (langchain-milvus) and ``filter=`` (LangChain retrievers) name the same thing."""
    other = kwargs.get("filter")
    if expr not in (None, "", {}) and other not in (None, "", {}):
        raise InvalidInputError("Pass the filter as expr= or filter=, not both.")
    return expr if expr not in (None, "", {}) else other

"""The lookup methods of the LangChain stores, no vector search involved: documents by filter
or by id, primary keys by filter, and the document count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document

from langchain_vd._engine import E, FilterLike, to_document
from langchain_vd._hooks import EngineStoreHooks
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.ops import Op
from vd_integrations.core.validation import check_id_list

__all__ = ["LookupMethods"]


class LookupMethods(EngineStoreHooks[E]):
    """``search_by_metadata``, ``get_pks``, ``get_by_ids`` and ``count``, each with its async
    twin."""

    # ----- operations -----------------------------------------------------------------------

    def _metadata_op(
        self, expr: FilterLike, fields: list[str] | None, limit: int
    ) -> Op[list[Document]]:
        records = yield from self._engine.query(expr, limit=limit)
        docs = [to_document(r) for r in records]
        if fields is not None:
            keep = set(fields)
            for doc in docs:
                doc.metadata = {k: v for k, v in doc.metadata.items() if k in keep}
        return docs

    def _pks_op(self, expr: FilterLike) -> Op[list[str | int]]:
        if expr in (None, ""):
            raise InvalidInputError("get_pks needs a filter expression.")
        records = yield from self._engine.query(expr, **self._pk_query_options())
        return [self._pk_value(r) for r in records]

    def _get_by_ids_op(self, ids: Sequence[str]) -> Op[list[Document]]:
        ids = check_id_list(ids) or []
        records = yield from self._engine.query(ids=list(dict.fromkeys(ids)))
        by_id = {r.id: to_document(r) for r in records}
        return [by_id[str(i)] for i in dict.fromkeys(ids) if str(i) in by_id]

    def search_by_metadata(
        self, expr: FilterLike, fields: list[str] | None = None, limit: int = 10
    ) -> list[Document]:
        """Documents matching a filter (no vector search); ``fields`` limits the metadata keys."""
        return self._engine.run(self._metadata_op(expr, fields, limit))

    async def asearch_by_metadata(
        self, expr: FilterLike, fields: list[str] | None = None, limit: int = 10
    ) -> list[Document]:
        return await self._engine.arun(self._metadata_op(expr, fields, limit))

    def get_pks(self, expr: FilterLike, **kwargs: Any) -> list[str | int]:
        """Primary keys of the entities matching ``expr``."""
        return self._engine.run(self._pks_op(expr), timeout=kwargs.get("timeout"))

    async def aget_pks(self, expr: FilterLike, **kwargs: Any) -> list[str | int]:
        return await self._engine.arun(self._pks_op(expr), timeout=kwargs.get("timeout"))

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents with these ids, in the order asked; missing ids are skipped."""
        return self._engine.run(self._get_by_ids_op(ids))

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await self._engine.arun(self._get_by_ids_op(ids))

    def count(self) -> int:
        """Number of stored documents."""
        return self._engine.run(self._engine.count())

    async def acount(self) -> int:
        return await self._engine.arun(self._engine.count())

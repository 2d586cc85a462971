"""The write methods of the LangChain stores: add texts or embeddings, upsert documents, delete
by ids or filter (sync/async shells over one op each)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Sized
from typing import Any

from langchain_core.documents import Document

from langchain_vd._engine import E, FilterLike, pick_filter
from langchain_vd._hooks import EngineStoreHooks
from vd_integrations.core.batching import DEFAULT_BATCH_SIZE
from vd_integrations.core.errors import IdMismatchError
from vd_integrations.core.ops import Op
from vd_integrations.core.progress import progress_bar
from vd_integrations.core.validation import check_id_list

__all__ = ["WriteMethods"]


class WriteMethods(EngineStoreHooks[E]):
    """``add_texts``, ``add_embeddings``, ``upsert`` and ``delete``, each with its async twin."""

    # ----- operations -----------------------------------------------------------------------

    def _add_op(
        self,
        texts: Iterable[str],
        embeddings: Sequence[Sequence[float]] | None,
        metadatas: Sequence[dict] | None,
        ids: Sequence[str] | None,
        batch_size: int,
        on_batch: Any,
    ) -> Op[list[str]]:
        return self._engine.add(
            texts,
            vectors=embeddings,
            metadatas=metadatas,
            ids=ids,
            batch_size=batch_size,
            on_batch=on_batch,
        )

    def _upsert_op(
        self, ids: Sequence[str] | None, documents: Sequence[Document] | None, batch_size: int
    ) -> Op[list[str]]:
        documents = list(documents or [])
        keys: list[str | None] | None = check_id_list(ids)
        if keys is None:  # each Document's own id (None: a new one is made)
            keys = [doc.id for doc in documents] if any(doc.id for doc in documents) else None
        elif len(keys) != len(documents):
            raise IdMismatchError(
                f"upsert got {len(keys)} ids for {len(documents)} documents; pass one id each."
            )
        return self._engine.add(
            [d.page_content for d in documents],
            metadatas=[d.metadata for d in documents],
            ids=keys,
            batch_size=batch_size,
        )

    # ----- add ------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        timeout: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        ids: list[str] | None = None,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts; with ids, re-adding an id replaces it. Returns the ids.

        A generator is streamed ``batch_size`` texts at a time (bounded memory)."""
        with progress_bar(_length(texts), show_progress) as advance:
            return self._engine.run(
                self._add_op(texts, None, metadatas, ids, batch_size, advance), timeout=timeout
            )

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        timeout: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        ids: list[str] | None = None,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        with progress_bar(_length(texts), show_progress) as advance:
            return await self._engine.arun(
                self._add_op(texts, None, metadatas, ids, batch_size, advance), timeout=timeout
            )

    def add_embeddings(
        self,
        texts: list[str],
        embeddings: list[list[float]],
        metadatas: list[dict] | None = None,
        timeout: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store texts with precomputed embeddings. Returns the ids."""
        return self._engine.run(
            self._add_op(texts, embeddings, metadatas, ids, batch_size, None), timeout=timeout
        )

    async def aadd_embeddings(
        self,
        texts: list[str],
        embeddings: list[list[float]],
        metadatas: list[dict] | None = None,
        timeout: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        return await self._engine.arun(
            self._add_op(texts, embeddings, metadatas, ids, batch_size, None), timeout=timeout
        )

    # ----- delete / upsert --------------------------------------------------------------------

    def delete(
        self, ids: list[str] | None = None, expr: FilterLike = None, **kwargs: Any
    ) -> bool | None:
        """Delete by ids and/or filter expression. Missing ids are not an error."""
        op = self._engine.delete(check_id_list(ids), pick_filter(expr, kwargs))
        self._engine.run(op, timeout=kwargs.get("timeout"))
        return True

    async def adelete(
        self, ids: list[str] | None = None, expr: FilterLike = None, **kwargs: Any
    ) -> bool | None:
        op = self._engine.delete(check_id_list(ids), pick_filter(expr, kwargs))
        await self._engine.arun(op, timeout=kwargs.get("timeout"))
        return True

    def upsert(
        self,
        ids: list[str] | None = None,
        documents: list[Document] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Insert or replace documents by id (``ids`` or each ``Document.id``). Returns ids."""
        return self._engine.run(self._upsert_op(ids, documents, batch_size), timeout=timeout)

    async def aupsert(
        self,
        ids: list[str] | None = None,
        documents: list[Document] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> list[str]:
        op = self._upsert_op(ids, documents, batch_size)
        return await self._engine.arun(op, timeout=timeout)


def _length(items: Iterable[Any]) -> int | None:
    """``len(items)`` when it has one (progress bars); None for a stream."""
    return len(items) if isinstance(items, Sized) else None

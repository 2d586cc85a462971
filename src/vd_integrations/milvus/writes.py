"""Write operations on one Milvus collection: add (insert or upsert, embedded or given
vectors, streamed for iterables), delete by ids and/or filter, and delete by lookup."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pymilvus import DataType

from vd_integrations.core.batching import DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCH_BYTES, split_rows
from vd_integrations.core.errors import (
    CollectionNotFoundError,
    IdMismatchError,
    InvalidInputError,
)
from vd_integrations.core.filters import (
    FilterLike,
    and_exprs,
    ids_expr,
    is_in,
    refuse_delete_of_everything,
)
from vd_integrations.core.ops import EmbedDocuments, Op
from vd_integrations.core.validation import (
    check_column,
    check_metadata_values,
    check_positive_int,
    check_same_length,
    check_text,
    check_utf8,
    check_vectors,
)
from vd_integrations.milvus.metadata_columns import check_column_support
from vd_integrations.milvus.reads import ReadOps
from vd_integrations.milvus.rpc import result_ids
from vd_integrations.milvus.schema import CollectionLayout
from vd_integrations.milvus.vector_fields import (
    VectorField,
    encode_rows,
    refuse_unsupported_types,
)

__all__ = ["WriteOps"]

_END = object()
_CLEAR_HINT = "drop() (LangChain) or clear() (LlamaIndex)"


class WriteOps(ReadOps):
    """Writes as operations (generators of steps; see :mod:`vd_integrations.core.ops`)."""

    def add(
        self,
        texts: Iterable[str],
        *,
        vectors: Iterable[Sequence[float]] | None = None,
        metadatas: Iterable[Mapping[str, Any] | None] | None = None,
        ids: Iterable[Any] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_batch: Callable[[int], None] | None = None,
        upsert: bool | None = None,
    ) -> Op[list[str]]:
        """Embed (unless ``vectors``) and write texts. Returns the ids.

        ``upsert=None`` upserts when the caller gave ids (re-adding an id replaces it) and
        inserts otherwise; ``True``/``False`` force one or the other.

        When ``texts`` is a sequence, everything checkable is checked before the first
        write: lengths, ids, text sizes, metadata, vector dimensions (the embedder's too, on
        the first batch). Any other iterable (a generator) is streamed: read, checked,
        embedded and written ``batch_size`` at a time, so memory stays bounded; a bad item
        then fails its batch, and earlier batches stay written.
        """
        check_positive_int(batch_size, "batch_size")
        check_column(texts, "texts", optional=False)
        for name, column in (("vectors", vectors), ("metadatas", metadatas), ("ids", ids)):
            check_column(column, name)
        if isinstance(texts, Sequence) and not isinstance(texts, str):
            return (
                yield from self._add_all(
                    texts, vectors, metadatas, ids, batch_size, on_batch, upsert
                )
            )
        out: list[str] = []
        columns = [iter(c) if c is not None else None for c in (vectors, metadatas, ids)]
        text_iter = iter(texts)
        while True:
            chunk = list(itertools.islice(text_iter, batch_size))
            parts = [
                None if col is None else list(itertools.islice(col, len(chunk))) for col in columns
            ]
            if not chunk:
                for name, col in zip(("vectors", "metadatas", "ids"), columns, strict=True):
                    if col is not None and next(col, _END) is not _END:
                        error = IdMismatchError if name == "ids" else InvalidInputError
                        raise error(f"{name} is longer than texts.")
                return out
            out.extend(
                (
                    yield from self._add_all(
                        chunk, parts[0], parts[1], parts[2], batch_size, on_batch, upsert
                    )
                )
            )

    def _add_all(
        self,
        texts: Sequence[str],
        vectors: Iterable[Sequence[float]] | None,
        metadatas: Iterable[Mapping[str, Any] | None] | None,
        ids: Iterable[Any] | None,
        batch_size: int,
        on_batch: Callable[[int], None] | None,
        upsert: bool | None,
    ) -> Op[list[str]]:
        """Add a materialised batch of texts: check all of it, then embed and write."""
        texts = list(texts)
        vectors = None if vectors is None else list(vectors)  # a generator has no len()
        metadatas = None if metadatas is None else list(metadatas)
        ids = None if ids is None else list(ids)
        if ids is not None and len(ids) != len(texts):
            raise IdMismatchError(
                f"Input lengths differ (texts={len(texts)}, ids={len(ids)}); pass one id per "
                f"text (or no ids)."
            )
        n = check_same_length(
            texts=texts, metadatas=metadatas, ids=ids, vectors=None if vectors is None else vectors
        )
        if n == 0:
            return []
        existing = yield from self.ready()
        if existing is None:  # a new collection: typed columns may come from the first document
            self.setup.spec = self.spec.for_first_metadata(metadatas[0] if metadatas else None)
            yield from check_column_support(
                self.rpc, self.spec.name, self.setup.spec.metadata_columns
            )
        layout = existing or self.setup.prospective_layout()
        fields = self.spec.vectors
        if fields is not None and existing is None:
            yield from self._check_vector_types(fields)
        if fields is not None:  # typed vector fields (:mod:`.vector_fields`)
            dims = [v.dim for v in (existing.vectors if existing else None) or fields]
            if vectors is not None and not fields:
                raise InvalidInputError(
                    f"Collection {layout.name!r} has no vector field an embedding fills (a "
                    f"BM25-only store); add texts without vectors."
                )
        checked_vectors: list[Any] | None = None
        if vectors is not None:
            checked_vectors = (
                check_vectors(vectors, dim=layout.dim or None, what="embedding", copy=False)
                if fields is None
                else encode_rows(fields, vectors, dims, "embedding")
            )
        if upsert is None:
            upsert = ids is not None and any(i is not None for i in ids)
        keys = self._check_ids(layout, ids, n)
        metas = [{} if m is None else m for m in (metadatas or [None] * n)]
        for i, (text, meta) in enumerate(zip(texts, metas, strict=True)):
            self._check_text(layout, i, text)
            layout.check_metadata(i, meta)
            check_metadata_values(i, meta)
        metas = [dict(m) for m in metas]

        out_ids: list[str] = []
        dim = layout.dim or None
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if checked_vectors is not None:
                batch_vectors = checked_vectors[start:stop]
            elif fields is not None and not fields:  # BM25 only: Milvus fills the sparse field
                batch_vectors = [{} for _ in range(start, stop)]
            else:
                embedded = yield EmbedDocuments(texts[start:stop])
                if len(embedded) != stop - start:
                    raise InvalidInputError(
                        f"The embedding function returned {len(embedded)} vectors for "
                        f"{stop - start} texts."
                    )
                batch_vectors = (
                    check_vectors(embedded, dim=dim, what="embedding", copy=False)
                    if fields is None
                    else encode_rows(fields, embedded, dims, "embedding")
                )
            if fields is not None:
                yield from self._write_typed(
                    layout, fields, dims, texts, keys, metas, batch_vectors, start, upsert, out_ids
                )
                if on_batch is not None:
                    on_batch(stop - start)
                continue
            dim = len(batch_vectors[0])
            created = yield from self.ready(dim)
            if created is None:  # pragma: no cover - ready(dim) creates it
                raise CollectionNotFoundError(self.spec.name)
            layout = created
            if layout.dim != dim:
                raise InvalidInputError(
                    f"Vectors have dimension {dim} but collection {layout.name!r} has dimension "
                    f"{layout.dim}; use the embedding model the collection was built with, or a "
                    f"new collection_name (or drop_old=True)."
                )
            rows = [
                layout.build_row(keys[i] if keys else None, texts[i], vec, metas[i])
                for i, vec in zip(range(start, stop), batch_vectors, strict=True)
            ]
            for lo, hi in split_rows(rows, max_rows=batch_size, max_bytes=DEFAULT_MAX_BATCH_BYTES):
                result = yield self.rpc(
                    "upsert" if upsert else "insert",
                    collection_name=layout.name,
                    data=rows[lo:hi],
                    **self.partition_kwargs(single=True),
                )
                if layout.auto_id:
                    out_ids.extend(str(pk) for pk in result_ids(result))
                else:
                    out_ids.extend(str(k) for k in keys[start + lo : start + hi])
            if on_batch is not None:
                on_batch(stop - start)
        return out_ids

    def _check_vector_types(self, fields: Sequence[VectorField]) -> Op[None]:
        """Refuse, before the collection is created, vector types (or several vector fields)
        the server lacks."""
        if len(fields) <= 1 and all(v.dtype == DataType.FLOAT_VECTOR for v in fields):
            return
        try:
            version = yield self.rpc("get_server_version")
        except Exception:  # an unknown server or proxy: creation itself will tell
            return
        refuse_unsupported_types(self.spec.name, str(version), fields)

    def _write_typed(
        self,
        layout: CollectionLayout,
        fields: Sequence[VectorField],
        dims: list[int | None],
        texts: Sequence[str],
        keys: list[Any],
        metas: Sequence[Mapping[str, Any]],
        batch: list[Any],
        start: int,
        upsert: bool,
        out_ids: list[str],
    ) -> Op[None]:
        """Write one batch of rows with typed vector fields (``batch``: each row's field
        values), creating the collection first if needed."""
        # The first vectors fix the dimensions the caller left open (again after a drop);
        # the store's own spec keeps them open, the setup's creates the collection.
        if any(v.dim is None and d for v, d in zip(fields, dims, strict=True)):
            fixed = tuple(replace(v, dim=v.dim or d) for v, d in zip(fields, dims, strict=True))
            self.setup.spec = replace(self.setup.spec, vectors=fixed)
        created = yield from self.ready(next((d for d in dims if d), 1))
        if created is None:  # pragma: no cover - ready(dims) creates it
            raise CollectionNotFoundError(self.spec.name)
        for vector_field, want, have in zip(fields, dims, created.vectors or fields, strict=True):
            if want and have.dim and want != have.dim:
                raise InvalidInputError(
                    f"Vectors for {vector_field.name!r} have dimension {want} but collection "
                    f"{created.name!r} has {have.dim}; use the embedding model the collection "
                    f"was built with, or a new collection_name (or drop_old=True)."
                )
        rows = [
            created.build_row_with_vectors(
                keys[start + i] if keys else None, texts[start + i], values, metas[start + i]
            )
            for i, values in enumerate(batch)
        ]
        for lo, hi in split_rows(rows, max_rows=len(rows), max_bytes=DEFAULT_MAX_BATCH_BYTES):
            result = yield self.rpc(
                "upsert" if upsert else "insert",
                collection_name=created.name,
                data=rows[lo:hi],
                **self.partition_kwargs(single=True),
            )
            if created.auto_id:
                out_ids.extend(str(pk) for pk in result_ids(result))
            else:
                out_ids.extend(str(k) for k in keys[start + lo : start + hi])

    def _check_ids(self, layout: CollectionLayout, ids: list[Any] | None, n: int) -> list[Any]:
        if layout.auto_id:
            if ids is not None and any(i is not None for i in ids):
                raise InvalidInputError(
                    f"Collection {layout.name!r} uses auto_id, so Milvus assigns ids; drop the "
                    f"ids, or use a store created with auto_id=False to keep your own."
                )
            return []
        if ids is None:
            ids = [None] * n
        keys = [layout.encode_id(i) if i is not None else self._new_id(layout) for i in ids]
        seen: set[Any] = set()
        for key in keys:
            if key in seen:
                raise IdMismatchError(f"Duplicate id {key!r} in one call; ids must be unique.")
            seen.add(key)
            if isinstance(key, str):
                if not key:
                    raise InvalidInputError("ids must be non-empty strings.")
                if check_utf8(key, f"id {key[:40]!r}") > layout.pk_max_length:
                    raise InvalidInputError(
                        f"id {key[:40]!r}... is longer than the primary key's max_length "
                        f"({layout.pk_max_length} bytes)."
                    )
        return keys

    @staticmethod
    def _new_id(layout: CollectionLayout) -> str | int:
        if layout.pk_is_int:
            return uuid.uuid4().int >> 65  # positive int64
        return uuid.uuid4().hex

    @staticmethod
    def _check_text(layout: CollectionLayout, index: int, text: Any) -> None:
        size = check_text(index, text)
        if size > layout.text_max_length:
            raise InvalidInputError(
                f"text #{index} is {size} bytes (UTF-8), over the text field's max_length of "
                f"{layout.text_max_length}; split it into smaller chunks."
            )

    def delete(self, ids: Sequence[Any] | None = None, filter: FilterLike = None) -> Op[int | None]:
        """Delete by ids and/or filter; missing ids are not an error.

        Returns the number of ids requested for a delete by ids, Milvus' count for a delete
        by filter, or None when that count is unknown (a delete merged with others).
        """
        if ids is None and (filter is None or filter == ""):
            raise InvalidInputError("delete needs ids or a filter expression (expr=...).")
        self.compile_filter(filter)  # a malformed filter is refused before any I/O
        if ids is None:
            refuse_delete_of_everything(filter, clear=_CLEAR_HINT)
        else:
            ids = list(ids)
            if not ids and filter is None:
                return 0
        layout = yield from self.ready()
        if layout is None:
            return 0
        keys = None if ids is None else [layout.encode_id(i) for i in ids]
        condition = self.compile_filter(filter, layout) or None
        if keys is None:
            refuse_delete_of_everything(condition, clear=_CLEAR_HINT)
        if condition is not None:  # Milvus evaluates the filter on loaded data
            yield from self.loaded()
        partition = self.partition_kwargs(single=True)
        if condition is None:  # by ids only: mergeable with concurrent deletes by ids
            result = yield self.rpc(
                "delete_ids",
                collection_name=layout.name,
                pk_field=layout.primary_field,
                ids=keys,
                **partition,
            )
        else:
            pk_condition = None if keys is None else ids_expr(layout.primary_field, keys)
            result = yield self.rpc(
                "delete",
                collection_name=layout.name,
                filter=and_exprs(pk_condition, condition),
                **partition,
            )
        if keys is not None and condition is None:
            return len(keys)
        count = result.get("delete_count") if isinstance(result, Mapping) else None
        return None if count is None else int(count)

    def delete_where_in(
        self, field: str, values: Sequence[str | int], *, page_size: int = 16_384
    ) -> Op[int]:
        """Delete the rows whose ``field`` holds one of ``values`` (LlamaIndex's
        ``delete(ref_doc_id)``): keys looked up, then deleted by key, like
        :meth:`delete_matching`. On a scalar column the lookup is a ``query_in`` step, which
        concurrent callers share (one query for 100 concurrent document deletes, not 100);
        a metadata key goes through :meth:`delete_matching`. Returns the rows deleted."""
        values = list(values)
        layout = yield from self.ready(loaded=True)
        if layout is None or not values:
            return 0
        if field not in layout.scalar_fields and field != layout.primary_field:
            return (yield from self.delete_matching(is_in(layout.field_ref(field), values)))
        deleted: set[Any] = set()
        pk = layout.primary_field
        while True:
            rows = yield self.rpc(
                "query_in",
                collection_name=layout.name,
                field=field,
                values=values,
                output_fields=[pk, field],
                limit=page_size,
                **self.partition_kwargs(),
            )
            keys = [row[pk] for row in rows if row[pk] not in deleted]
            if not keys:
                return len(deleted)
            yield self.rpc(
                "delete_ids",
                collection_name=layout.name,
                pk_field=pk,
                ids=keys,
                **self.partition_kwargs(single=True),
            )
            deleted.update(keys)
            if len(rows) < page_size:
                return len(deleted)

    def delete_matching(self, filter: FilterLike, *, page_size: int = 16_384) -> Op[int]:
        """Delete what ``filter`` matches by looking up the primary keys first, then deleting
        by key (what LlamaIndex's own store does for ``delete(ref_doc_id)``): on Milvus 2.3 a
        delete by keys takes milliseconds where a delete by expression takes hundreds.
        Rows added by others between the lookup and the delete are not deleted. Returns the
        number of rows deleted."""
        deleted: set[Any] = set()
        while True:
            records = yield from self.query(filter, limit=page_size, output_fields=[])
            keys = [r.id for r in records if r.id not in deleted]
            if not keys:
                return len(deleted)
            yield from self.delete(ids=keys)
            deleted.update(keys)
            if len(records) < page_size:
                return len(deleted)

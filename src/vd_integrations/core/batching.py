"""Split Milvus inserts into batches that stay well under gRPC's message-size limit.

Sizes are *estimates* of the serialized row size, deliberately cheap and on the high side;
:data:`DEFAULT_MAX_BATCH_BYTES` (16 MiB) leaves ample headroom under the 64 MiB gRPC default.
"""

from __future__ import annotations

import itertools
import json
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_BATCH_BYTES",
    "batched",
    "estimate_row_bytes",
    "estimate_value_bytes",
    "iter_row_batches",
    "split_rows",
]

T = TypeVar("T")

DEFAULT_MAX_BATCH_BYTES = 16 * 1024 * 1024
DEFAULT_BATCH_SIZE = 1000

_FIELD_OVERHEAD = 8
_VECTOR_OVERHEAD = 8


def _json_len(value: Any) -> int:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # e.g. non-string dict keys of odd types, circular refs
        text = str(value)
    return len(text.encode("utf-8"))


def estimate_value_bytes(value: Any) -> int:
    """Cheap, upper-ish estimate of one field value's serialized size in bytes.

    float vectors (lists/tuples of floats) -> 4 per element; numeric lists containing ints
    -> 8 per element; numpy arrays -> ``size * min(itemsize, 4)`` (float vectors travel as
    float32); str -> UTF-8 length; bytes -> length; numbers -> 8; bools -> 1; None -> 1;
    dicts / other lists (JSON, arrays, sparse vectors) -> length of their JSON encoding.
    Vectors get a small fixed overhead; anything else is sized by ``str(value)``.
    """
    kind = type(value)
    if kind is str:  # the common cases first, by exact type (isascii() is O(1))
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if (kind is list or kind is tuple) and value and type(value[0]) is type(value[-1]) is float:
        # a float vector, checked element by element before (check_vectors): an estimate
        # need not check every element again
        return 4 * len(value) + _VECTOR_OVERHEAD
    if kind is int or kind is float:
        return 8
    if value is None:
        return 1
    if isinstance(value, (bool, np.bool_)):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return memoryview(value).nbytes
    if isinstance(value, numbers.Number):
        return 8
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fiu":
            return int(value.size) * min(value.dtype.itemsize, 4) + _VECTOR_OVERHEAD
        return _json_len(value.tolist())
    if isinstance(value, (list, tuple)):
        if value and all(
            isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) for x in value
        ):
            per_item = 4 if all(isinstance(x, (float, np.floating)) for x in value) else 8
            return per_item * len(value) + _VECTOR_OVERHEAD
        return _json_len(value)
    if isinstance(value, Mapping):
        return _json_len(value)
    return len(str(value).encode("utf-8"))


def estimate_row_bytes(row: Mapping[str, Any]) -> int:
    """Estimated serialized size of one Milvus row: per field ``len(key) + 8`` plus its value.

    See :func:`estimate_value_bytes` for the per-type rules.
    """
    total = 0
    for key, value in row.items():
        name = key if type(key) is str else str(key)
        size = len(name) if name.isascii() else len(name.encode("utf-8"))
        total += size + _FIELD_OVERHEAD + estimate_value_bytes(value)
    return total


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield consecutive lists of up to ``size`` items, consuming ``items`` lazily.

    Only one batch is held in memory; the last batch may be shorter. ``size <= 0`` raises
    ``ValueError`` immediately (not on first iteration).
    """
    _check_positive("size", size)

    def gen() -> Iterator[list[T]]:
        it = iter(items)
        while batch := list(itertools.islice(it, size)):
            yield batch

    return gen()


def iter_row_batches(
    rows: Iterable[Mapping[str, Any]],
    *,
    max_rows: int = DEFAULT_BATCH_SIZE,
    max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
) -> Iterator[list[Mapping[str, Any]]]:
    """Stream ``rows`` as in-order batches of at most ``max_rows`` rows and ``max_bytes``
    estimated bytes (see :func:`estimate_row_bytes`).

    Batches are filled greedily. A row larger than ``max_bytes`` on its own is yielded as a
    single-row batch, never dropped. A batch is yielded as soon as it is full; at most one
    row beyond the current batch is read (when the next row is what overflows the byte
    budget). Invalid limits raise ``ValueError`` immediately.
    """
    _check_positive("max_rows", max_rows)
    _check_positive("max_bytes", max_bytes)

    def gen() -> Iterator[list[Mapping[str, Any]]]:
        batch: list[Mapping[str, Any]] = []
        batch_bytes = 0
        for row in rows:
            size = estimate_row_bytes(row)
            if batch and batch_bytes + size > max_bytes:
                yield batch
                batch, batch_bytes = [], 0
            batch.append(row)
            batch_bytes += size
            if len(batch) >= max_rows or batch_bytes >= max_bytes:
                yield batch
                batch, batch_bytes = [], 0
        if batch:
            yield batch

    return gen()


def split_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    max_rows: int = DEFAULT_BATCH_SIZE,
    max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
) -> list[tuple[int, int]]:
    """Return ``(start, stop)`` slices covering ``rows`` in order, each within the limits.

    Same greedy rule as :func:`iter_row_batches`: every slice has at most ``max_rows`` rows
    and at most ``max_bytes`` estimated bytes, except that a single row larger than
    ``max_bytes`` gets a slice of its own. Empty input gives ``[]``.
    """
    _check_positive("max_rows", max_rows)
    _check_positive("max_bytes", max_bytes)
    if len(rows) <= 1:  # one row is one slice whatever its size: nothing to estimate
        return [(0, len(rows))] if rows else []
    slices: list[tuple[int, int]] = []
    start = 0
    for batch in iter_row_batches(rows, max_rows=max_rows, max_bytes=max_bytes):
        stop = start + len(batch)
        slices.append((start, stop))
        start = stop
    return slices

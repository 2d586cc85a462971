"""Checks of what callers hand a vd engine, before anything is sent: the backend and its
connection options, the metric, rows to write (ids, texts, metadata, vectors), ids to look
up, and dict filters in the vd filter language."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import vd
from vd.util import get_backend

from vd_integrations.core.errors import IdMismatchError, InvalidInputError
from vd_integrations.core.validation import (
    check_column,
    check_id_list,
    check_known_kwargs,
    check_metadata_depth,
    check_metadata_values,
    check_positive_int,
    check_same_length,
    check_text,
    check_utf8,
    check_vectors,
    parameter_names,
)

__all__ = [
    "METRICS",
    "CheckedRows",
    "VdFilter",
    "check_backend",
    "check_connect_kwargs",
    "check_filter",
    "check_lookup_ids",
    "check_metadata",
    "check_metric",
    "check_rows",
    "check_write_ids",
]

#: The metrics vd collections take.
METRICS = ("cosine", "dot", "l2")

#: A dict filter in the vd filter language, or ``None`` for no filter.
VdFilter = Mapping[str, Any] | None

#: vd's adapters that hand options they do not name to their native client (``qdrant`` to
#: ``QdrantClient``, ``redis`` to ``redis.Redis``): any name may be valid there.
_FORWARDING_BACKENDS = frozenset({"qdrant", "redis"})


def check_backend(backend: Any) -> str:
    """``backend`` as the name of a registered vd backend; a known one that is not installed
    raises ``vd.BackendNotInstalledError``, which says how to install it."""
    if not isinstance(backend, str):
        raise InvalidInputError(f"backend must be a vd backend name, got {backend!r}.")
    try:
        get_backend(backend)  # a registry lookup: says how to install a known backend
    except vd.BackendNotInstalledError:
        raise
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    return backend


def check_connect_kwargs(
    backend: str, kwargs: Mapping[str, Any], *, where: str, own: Iterable[str] = ()
) -> None:
    """Refuse connection options that vd's adapter for ``backend`` neither takes nor passes on
    (vd stores them and ignores them, so a misspelled option would be silently dropped), with
    a ``TypeError`` naming the closest valid one among the adapter's and ``own`` names.

    Adapters outside vd (a registered third-party backend) and those that forward unknown
    options to their native client are not checked: their valid names are not knowable.
    """
    if not kwargs or backend in _FORWARDING_BACKENDS:
        return
    try:
        client_class = get_backend(backend)
    except (ValueError, vd.BackendNotInstalledError):
        return  # VdEngine reports the backend itself
    if not getattr(client_class, "__module__", "").startswith("vd.backends."):
        return
    known = (parameter_names(client_class.__init__) - {"embedder"}) | set(own)
    check_known_kwargs(kwargs, known, where)


def check_metric(metric: Any) -> str:
    """``metric`` as one of :data:`METRICS` (case and surrounding spaces ignored)."""
    if not isinstance(metric, str) or metric.strip().lower() not in METRICS:
        raise InvalidInputError(f"metric must be one of {list(METRICS)}, got {metric!r}.")
    return metric.strip().lower()


@dataclass(frozen=True, slots=True)
class CheckedRows:
    """Rows to write, checked: texts, their ids (missing ones generated), JSON-normalised
    metadata, and the given vectors (``None``: the texts are to be embedded)."""

    texts: list[str]
    ids: list[str]
    metadatas: list[dict[str, Any]]
    vectors: list[list[float]] | None


def check_rows(
    texts: Iterable[str],
    vectors: Sequence[Sequence[float]] | None,
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    ids: Sequence[str | None] | None,
    *,
    batch_size: int,
) -> CheckedRows:
    """Everything about a write that can be checked before the first step: the columns and
    their lengths, ``batch_size``, texts, ids, metadata, and the vectors' own shape (their
    dimension against the collection's is checked once it is known)."""
    check_column(texts, "texts", optional=False)
    for name, column in (("vectors", vectors), ("metadatas", metadatas), ("ids", ids)):
        check_column(column, name)
    text_list = list(texts)
    meta_list = None if metadatas is None else list(metadatas)
    id_list = None if ids is None else list(ids)
    vector_list = None if vectors is None else list(vectors)
    if id_list is not None and len(id_list) != len(text_list):  # upstream asserts on it
        raise IdMismatchError(
            f"Input lengths differ (texts={len(text_list)}, ids={len(id_list)}); "
            f"pass one id per text."
        )
    n = check_same_length(texts=text_list, metadatas=meta_list, ids=id_list, vectors=vector_list)
    check_positive_int(batch_size, "batch_size")
    for i, text in enumerate(text_list):
        check_text(i, text)
    keys = check_write_ids(id_list, n)
    metas = [check_metadata(i, m) for i, m in enumerate(meta_list or [None] * n)]
    checked = (
        None if vector_list is None else check_vectors(vector_list, dim=None, what="embedding")
    )
    return CheckedRows(text_list, keys, metas, checked)


def check_write_ids(ids: list[Any] | None, n: int) -> list[str]:
    """The ids to write: given ones checked, missing ones (``None``) generated."""
    if ids is None:
        ids = [None] * n
    keys: list[str] = []
    seen: set[str] = set()
    for i, key in enumerate(ids):
        if key is None:
            key = uuid.uuid4().hex
        elif not isinstance(key, str):
            raise InvalidInputError(
                f"id #{i} is {key!r} ({type(key).__name__}); ids must be strings, "
                f"convert them with str()."
            )
        elif not key:
            raise InvalidInputError(f"id #{i} is empty; ids must be non-empty strings.")
        else:
            check_utf8(key, f"id #{i}")
        if key in seen:
            raise IdMismatchError(f"Duplicate id {key!r} in one call; ids must be unique.")
        seen.add(key)
        keys.append(key)
    return keys


def check_lookup_ids(ids: Iterable[Any], what: str) -> list[str]:
    """Ids to read or delete: strings, duplicates dropped, order kept."""
    out = list(dict.fromkeys(check_id_list(ids, f"{what} ids") or ()))
    for key in out:
        if not isinstance(key, str):
            raise InvalidInputError(
                f"{what} ids must be strings, got {key!r} ({type(key).__name__})."
            )
    return out


def check_metadata(index: int, metadata: Any) -> dict[str, Any]:
    """A JSON-normalised copy of ``metadata``, or :class:`InvalidInputError`."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata #{index} must be a dict, got {type(metadata).__name__}.")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(
                f"metadata #{index} has key {key!r}; metadata keys must be non-empty strings."
            )
        check_metadata_depth(index, {key: value})  # before the recursive encoder below
        try:
            json.dumps(value, allow_nan=False)  # its own message for sets, bytes, objects, NaN
        except (TypeError, ValueError):
            pass
        else:
            check_metadata_values(index, {key: value})
        try:
            out[key] = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"metadata #{index} key {key!r} has a value that cannot be stored "
                f"({type(value).__name__}: {exc}); use str, int, float, bool, None, or "
                f"lists/dicts of those (no NaN or infinity)."
            ) from None
    return out


def check_filter(filter: Any) -> dict[str, Any] | None:
    """A validated vd dict filter (``None`` for no filter); raises ``vd.UnsupportedFilterError``."""
    if filter is None or filter == "":
        return None
    if isinstance(filter, str):
        raise vd.UnsupportedFilterError(
            f"Generic vd stores take dict filters in the vd filter language, e.g. "
            f"{{'year': {{'$gte': 2020}}, 'topic': {{'$in': ['ai', 'ml']}}}}; got the string "
            f"{filter!r}. Milvus boolean expressions only work with langchain_vd.Milvus."
        )
    _check_filter_shape(filter, "filter")
    flt = dict(filter)
    vd.validate_filter(flt)
    return flt or None


def _check_filter_shape(filter: Any, path: str) -> None:
    if not isinstance(filter, Mapping):
        raise vd.UnsupportedFilterError(
            f"{path} must be a dict in the vd filter language, got {type(filter).__name__}."
        )
    for key, condition in filter.items():
        if not isinstance(key, str):
            raise vd.UnsupportedFilterError(f"{path} has key {key!r}; keys must be strings.")
        if key in ("$and", "$or"):
            if not isinstance(condition, (list, tuple)):
                raise vd.UnsupportedFilterError(
                    f"{path}[{key!r}] must be a list of filters, got {type(condition).__name__}."
                )
            for i, sub in enumerate(condition):
                _check_filter_shape(sub, f"{path}[{key!r}][{i}]")
        elif key == "$not":
            _check_filter_shape(condition, f"{path}['$not']")
        elif isinstance(condition, Mapping):
            for op, operand in condition.items():
                if op in ("$in", "$nin") and not isinstance(operand, (list, tuple, set)):
                    raise vd.UnsupportedFilterError(
                        f"{path}[{key!r}][{op!r}] takes a list, got {type(operand).__name__}."
                    )

"""Input validation shared by every engine: run before anything is written.

Every check raises :class:`~vd_integrations.errors.InvalidInputError` (a ``ValueError``)
whose message names the offending argument or item and says how to fix it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any

from vd_integrations.errors import InvalidInputError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "check_column",
    "check_id_list",
    "check_metadata_values",
    "check_positive_int",
    "check_same_length",
    "check_text",
    "check_unit_interval",
    "check_utf8",
    "check_vectors",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_NOT_A_LIST = (str, bytes, bytearray, Mapping)


def check_positive_int(k: Any, name: str = "k") -> int:
    """``k`` itself if it is an ``int`` (not a bool) greater than zero."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidInputError(f"{name} must be a positive integer, got {k!r}.")
    return k


def check_unit_interval(value: Any, name: str) -> float:
    """``value`` as a float if it is a real number (not a bool, not NaN) in [0, 1]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise InvalidInputError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def check_column(value: Any, name: str, *, optional: bool = True) -> None:
    """``value`` must be a list-like column (any non-str, non-dict iterable; a generator is
    fine and is not consumed). ``None`` passes when ``optional``.

    Catches a single text or id passed where a list was expected, which would otherwise
    be iterated character by character.
    """
    if value is None and optional:
        return
    if isinstance(value, _NOT_A_LIST) or not isinstance(value, Iterable):
        hint = f" Wrap a single item in a list: [{value!r:.40}]." if value is not None else ""
        raise InvalidInputError(
            f"{name} must be a list, got {type(value).__name__} {value!r:.60}.{hint}"
        )


def check_id_list(ids: Any, what: str = "ids") -> list[Any] | None:
    """``None``, or ``ids`` as a list; a bare str (or dict) is refused, not split into chars."""
    check_column(ids, what)
    return None if ids is None else list(ids)


def check_utf8(value: str, what: str) -> int:
    """The UTF-8 size of ``value`` in bytes; a lone surrogate (not encodable) is refused."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} contains a lone surrogate {value[exc.start]!r} at index {exc.start}, "
            f"which cannot be encoded as UTF-8, so no store can keep it. Remove or replace "
            f"it, e.g. s.encode('utf-8', 'replace').decode('utf-8')."
        ) from None


def check_text(index: int, text: Any) -> int:
    """Text ``#index`` must be a str that UTF-8 can encode; returns its size in bytes."""
    if not isinstance(text, str):
        raise InvalidInputError(f"text #{index} must be a str, got {type(text).__name__}.")
    return check_utf8(text, f"text #{index}")


def check_metadata_values(index: int, metadata: Mapping[str, Any]) -> None:
    """Every key and value of metadata ``#index`` must survive a JSON round trip exactly.

    Besides what :func:`json.dumps` refuses (sets, bytes, objects, NaN, infinities), this
    refuses what it would silently change or what stores reject on write: strings and
    keys with lone surrogates, integers outside int64, and non-str keys in nested dicts
    (JSON would turn ``{1: "a"}`` into ``{"1": "a"}``).
    """
    for key, value in metadata.items():
        where = f"metadata #{index} key {key!r}"
        if isinstance(key, str):
            check_utf8(key, f"metadata #{index} key {key!r}")
        problem = _json_problem(value, "", set())
        if problem is not None:
            raise InvalidInputError(
                f"{where}: {problem}. Metadata values cannot be stored unless they are str, "
                f"int (int64), float (finite), bool, None, or lists/dicts (with str keys) "
                f"of those."
            )


def _json_problem(value: Any, path: str, active: set[int]) -> str | None:
    """Why ``value`` (at ``path`` inside a metadata value) cannot be stored exactly, or None."""
    at = f" at {path}" if path else ""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (
                f"the string{at} contains a lone surrogate at index {exc.start}, which "
                f"cannot be encoded as UTF-8"
            )
        return None
    if isinstance(value, numbers.Integral):
        if not INT64_MIN <= int(value) <= INT64_MAX:
            return f"the integer {value}{at} is outside the int64 range (store it as a str)"
        return None
    if isinstance(value, numbers.Real):
        return None if math.isfinite(float(value)) else f"{value!r}{at} is not finite"
    if isinstance(value, (list, tuple, Mapping)):
        if id(value) in active:
            return f"the value{at} contains itself (a circular reference)"
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        return (
                            f"the nested dict{at} has the key {key!r} "
                            f"({type(key).__name__}); nested keys must be strings"
                        )
                    problem = _json_problem(key, f"{path}[{key!r}] (the key)", active) or (
                        _json_problem(item, f"{path}[{key!r}]", active)
                    )
                    if problem:
                        return problem
            else:
                for i, item in enumerate(value):
                    problem = _json_problem(item, f"{path}[{i}]", active)
                    if problem:
                        return problem
        finally:
            active.discard(id(value))
        return None
    return f"a {type(value).__name__}{at} cannot be stored as JSON"


def all_floats(values: Sequence[Any]) -> bool:
    """Whether every element is a float (what embedders return), checked at C speed."""
    return all(map(isinstance, values, repeat(float, len(values))))


def as_float_list(vector: Any) -> list[float]:
    """A stored vector read back, as a list of Python floats: a list of floats is copied at
    C speed, numpy arrays and other element types are converted."""
    tolist = getattr(vector, "tolist", None)
    values = tolist() if tolist is not None else list(vector)
    if values and type(values[0]) is not float:
        values = [float(x) for x in values]
    return values


def check_vectors(vectors: Sequence[Any], *, dim: int | None, what: str) -> list[list[float]]:
    """Coerce to lists of finite floats of one dimension (``dim`` when known).

    Elements must be real numbers (Python or numpy); strings and bools are refused rather
    than converted.
    """
    out: list[list[float]] = []
    for i, vector in enumerate(vectors):
        tolist = getattr(vector, "tolist", None)
        values = tolist() if tolist is not None else vector
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise InvalidInputError(f"{what} #{i} is not a sequence of numbers: {vector!r:.80}.")
        if all_floats(values):  # what embedders return: checked fast
            floats = list(values)
        else:
            for x in values:
                kind = type(x)
                if kind is not float and kind is not int and not _is_number(x):
                    raise InvalidInputError(
                        f"{what} #{i} contains a non-number {x!r:.40} ({kind.__name__}); "
                        f"vectors must hold int or float values."
                    )
            floats = [float(x) for x in values]
        if not floats:
            raise InvalidInputError(f"{what} #{i} is empty.")
        # The sum of finite floats is finite unless it overflows: then check each value.
        if not math.isfinite(sum(floats)) and not all(math.isfinite(x) for x in floats):
            raise InvalidInputError(f"{what} #{i} contains NaN or infinity.")
        if dim is None:
            dim = len(floats)
        elif len(floats) != dim:
            raise InvalidInputError(
                f"{what} #{i} has dimension {len(floats)}, expected {dim}. The collection's "
                f"dimension is fixed by its first vectors; use the same embedding model, or "
                f"a new collection_name for a different one."
            )
        out.append(floats)
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_same_length(**columns: Sequence[Any] | None) -> int:
    """The common length of the given columns (``None`` ones skipped); they must agree."""
    sizes = {name: len(col) for name, col in columns.items() if col is not None}
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{name}={size}" for name, size in sizes.items())
        raise InvalidInputError(f"Input lengths differ ({detail}); pass one entry per text.")
    return next(iter(sizes.values()), 0)

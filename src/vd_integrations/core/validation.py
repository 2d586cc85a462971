"""Input validation shared by every engine: run before anything is written.

Every check raises :class:`~vd_integrations.core.errors.InvalidInputError` (a ``ValueError``)
whose message names the offending argument or item and says how to fix it.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from vd_integrations.core.errors import InvalidInputError

__all__ = [
    "FLOAT32_MAX",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_METADATA_DEPTH",
    "check_column",
    "check_id_list",
    "check_int64_id",
    "check_known_kwargs",
    "check_metadata_depth",
    "check_metadata_values",
    "check_positive_int",
    "check_same_length",
    "check_text",
    "check_unit_interval",
    "check_utf8",
    "check_vectors",
    "fits_float32",
    "parameter_names",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: The largest finite float32, what Milvus stores each vector component as.
FLOAT32_MAX = 3.4028234663852886e38
#: Magnitudes from here up round to infinity as float32 (the midpoint between FLOAT32_MAX
#: and 2**128 rounds to even, i.e. up); below it they round to at most FLOAT32_MAX.
_FLOAT32_OVERFLOW = 2.0**128 - 2.0**103
#: The deepest metadata accepted, counting the metadata dict itself as level 1 (so
#: ``{"a": {"b": 1}}`` is 2 levels deep). Deeper JSON breaks somewhere on the way: orjson
#: (pymilvus' encoder) stops at 254 levels, its stdlib fallback and pydantic (LlamaIndex's
#: ``_node_content``) near the interpreter's recursion limit (about 1,000), Milvus' simdjson
#: parser at 1,024. 64 stays well below all of them, for every backend alike.
MAX_METADATA_DEPTH = 64
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


def check_int64_id(value: Any, collection: str) -> int:
    """An id for collection ``collection``'s INT64 primary key, as an ``int``.

    Accepted: an integer (not a bool; numpy integers too) or a str of ASCII digits ``0-9``
    with an optional leading ``-``, in the int64 range. Refused with
    :class:`InvalidInputError`: other Unicode digits ``int()`` would read (a fullwidth
    ``'\\uff13'`` is 3: it must not delete row 3), strings it refuses with a bare
    ``ValueError`` (a superscript ``'\\u00b2'``, ``'--5'``), and the forms it also takes
    (``'+5'``, ``' 5'``, ``'1_0'``).
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
        raise InvalidInputError(
            f"Collection {collection!r} has an INT64 primary key; id {value!r} "
            f"({type(value).__name__}) is not an integer."
        )
    if isinstance(value, str):
        digits = value[1:] if value.startswith("-") else value
        if not (digits and digits.isascii() and digits.isdigit()):
            raise InvalidInputError(
                f"Collection {collection!r} has an INT64 primary key; id {value!r} is not an "
                f"integer: pass an int, or a str of ASCII digits 0-9 with an optional "
                f"leading '-'."
            )
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidInputError(
            f"Collection {collection!r} has an INT64 primary key; id {value!r} is outside "
            f"the int64 range [{INT64_MIN}, {INT64_MAX}]."
        )
    return number


def parameter_names(function: Callable[..., Any]) -> frozenset[str]:
    """The names ``function`` takes as keyword arguments (``self``, ``*args`` and
    ``**kwargs`` excluded): the valid names to suggest for a misspelled one."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(function).parameters.values()
    return frozenset(p.name for p in params if p.kind in kinds and p.name != "self")


def check_known_kwargs(kwargs: Mapping[str, Any], known: Collection[str], where: str) -> None:
    """Refuse keyword arguments not in ``known`` with a ``TypeError`` (as Python does for a
    function without ``**kwargs``) that names the closest valid one, so a misspelled
    option (``similarty_metric``) fails instead of being silently ignored."""
    unknown = [name for name in kwargs if name not in known]
    if not unknown:
        return
    names = sorted(known)
    parts = []
    guessed = True
    for name in unknown:
        text = str(name)
        # A valid name with the unknown one as a word ('upsert' -> 'upsert_mode'), else the
        # closest spelling, else a valid name inside it ('similarity_metric' -> 'metric').
        worded = [n for n in names if text and f"_{text}_" in f"_{n}_"]
        close = sorted(worded, key=len)[:1] or difflib.get_close_matches(text, names, n=1)
        if not close:
            inside = [n for n in names if len(n) >= 4 and n in text]
            close = sorted(inside, key=len, reverse=True)[:1]
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        guessed = guessed and bool(close)
    what = "unexpected keyword arguments" if len(unknown) > 1 else "an unexpected keyword argument"
    listing = "" if guessed else f" Valid keyword arguments: {', '.join(names)}."
    raise TypeError(f"{where} got {what} {', '.join(parts)}.{listing}")


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
    keys with lone surrogates, integers outside int64, non-str keys in nested dicts
    (JSON would turn ``{1: "a"}`` into ``{"1": "a"}``), and nesting deeper than
    :data:`MAX_METADATA_DEPTH` levels. The walk is iterative: no depth reaches the
    interpreter's recursion limit.
    """
    for key, value in metadata.items():
        if type(key) is str and key.isascii() and _plain_scalar_ok(value):
            continue  # the common case, decided without building a message or a walk
        where = f"metadata #{index} key {key!r}"
        if isinstance(key, str):
            check_utf8(key, where)
        problem = _json_problem(value, full=True)
        if problem is not None:
            raise InvalidInputError(f"{where}: {problem[0]}. {problem[1]}")


def check_metadata_depth(index: int, metadata: Mapping[str, Any]) -> None:
    """Metadata ``#index`` must not nest deeper than :data:`MAX_METADATA_DEPTH` levels (the
    dict itself is level 1) nor contain itself; nothing else is checked. Iterative, so it
    is safe to run before a recursive encoder such as :func:`json.dumps` or pydantic's."""
    for key, value in metadata.items():
        if type(value) in _PLAIN_SCALARS:  # no nesting to measure
            continue
        problem = _json_problem(value, full=False)
        if problem is not None:
            raise InvalidInputError(f"metadata #{index} key {key!r}: {problem[0]}. {problem[1]}")


_TYPES_HINT = (
    "Metadata values cannot be stored unless they are str, int (int64), float (finite), "
    "bool, None, or lists/dicts (with str keys) of those."
)
_DEPTH_HINT = (
    f"Metadata may nest at most {MAX_METADATA_DEPTH} levels deep (the metadata dict itself "
    f"is level 1), safely below where JSON encoders and Milvus give up: flatten it, or "
    f"store the deep part as a JSON string."
)


def _render(trail: Any) -> str:
    """`` at [..][..]`` for a trail of ``(parent_trail, key_or_index)`` pairs, or ``""``."""
    parts: list[str] = []
    while trail is not None:
        trail, step = trail
        parts.append(f"[{step!r}]")
    return f" at {''.join(reversed(parts))}" if parts else ""


def _surrogate_problem(text: str, what: str, trail: Any) -> str | None:
    """Why ``text`` (``what`` at ``trail``) cannot be encoded, or None; the message is built
    only on failure (most metadata values are strings)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"{what}{_render(trail)} contains a lone surrogate at index {exc.start}, which "
            f"cannot be encoded as UTF-8"
        )
    return None


def _plain_scalar_ok(value: Any) -> bool:
    """Whether ``value`` is a str, int, float, bool or None that is plainly storable (ASCII,
    in int64, finite): what most metadata values are, answered by exact type. False means
    "look closer" (:func:`_json_problem`), not "refused"."""
    kind = type(value)
    if kind is str:
        return value.isascii()  # O(1): ASCII has no lone surrogates
    if kind is bool or value is None:
        return True
    if kind is int:
        return INT64_MIN <= value <= INT64_MAX
    if kind is float:
        return math.isfinite(value)
    return False


def _scalar_problem(value: Any, trail: Any) -> str | None:
    """Why the non-container ``value`` cannot be stored exactly, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return _surrogate_problem(value, "the string", trail)
    if isinstance(value, numbers.Integral):
        if not INT64_MIN <= int(value) <= INT64_MAX:
            return (
                f"the integer {value}{_render(trail)} is outside the int64 range "
                f"(store it as a str)"
            )
        return None
    if isinstance(value, numbers.Real):
        return None if math.isfinite(float(value)) else f"{value!r}{_render(trail)} is not finite"
    return f"a {type(value).__name__}{_render(trail)} cannot be stored as JSON"


_CONTAINERS = (list, tuple, Mapping)
_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})
#: Stands in (finite, out of float32's range) for an int too large to convert to float.
_TOO_BIG = 1e300


def _json_problem(root: Any, *, full: bool) -> tuple[str, str] | None:
    """Why ``root`` (a value of a metadata dict, so at level 2 if it is a container) cannot
    be stored, with the hint to show, or None. ``full=False`` checks only the nesting depth
    and self-reference.

    Depth first and iterative: the stack holds ``(container, depth, trail)`` entries and,
    for each container being walked, its ``id`` (popped when the walk leaves it), so a
    container met again while it is still open is a circular reference. Scalars are
    checked where they are met, containers pushed in reverse so they are walked in order.
    """
    if not isinstance(root, _CONTAINERS):
        problem = _scalar_problem(root, None) if full else None
        return None if problem is None else (problem, _TYPES_HINT)
    active: set[int] = set()
    stack: list[Any] = [(root, 2, None)]
    while stack:
        entry = stack.pop()
        if type(entry) is int:  # the walk leaves this container
            active.discard(entry)
            continue
        value, depth, trail = entry
        if id(value) in active:
            return f"the value{_render(trail)} contains itself (a circular reference)", _TYPES_HINT
        if depth > MAX_METADATA_DEPTH:
            return (
                f"the value is nested more than {MAX_METADATA_DEPTH} levels deep",
                _DEPTH_HINT,
            )
        active.add(id(value))
        stack.append(id(value))
        is_dict = isinstance(value, Mapping)
        items = value.items() if is_dict else enumerate(value)
        nested: list[tuple[Any, int, Any]] = []
        for step, item in items:
            if full and is_dict:
                if type(step) is not str and not isinstance(step, str):
                    return (
                        f"the nested dict{_render(trail)} has the key {step!r} "
                        f"({type(step).__name__}); nested keys must be strings",
                        _TYPES_HINT,
                    )
                problem = _surrogate_problem(step, "the key", (trail, step))
                if problem is not None:
                    return problem, _TYPES_HINT
            kind = type(item)
            if kind in _PLAIN_SCALARS:  # the common case, without ABC isinstance checks
                if full and kind is not bool and kind is not type(None):
                    problem = _scalar_problem(item, (trail, step))
                    if problem is not None:
                        return problem, _TYPES_HINT
            elif kind is dict or kind is list or isinstance(item, _CONTAINERS):
                nested.append((item, depth + 1, (trail, step)))
            elif full:
                problem = _scalar_problem(item, (trail, step))
                if problem is not None:
                    return problem, _TYPES_HINT
        stack.extend(reversed(nested))
    return None


def all_floats(values: Sequence[Any]) -> bool:
    """Whether every element is exactly a ``float`` (what embedders return), checked at C
    speed: counting the types (identity comparisons) is a third cheaper than ``isinstance``
    per element, 17 against 25 µs for 1,536 floats. Float subclasses (``numpy.float64``)
    answer False: the caller converts them."""
    return list(map(type, values)).count(float) == len(values)


def as_float_list(vector: Any) -> list[float]:
    """A stored vector read back, as a list of Python floats: a list of floats is copied at
    C speed, numpy arrays and other element types are converted."""
    tolist = getattr(vector, "tolist", None)
    values = tolist() if tolist is not None else list(vector)
    if values and type(values[0]) is not float:
        values = [float(x) for x in values]
    return values


def check_vectors(
    vectors: Sequence[Any], *, dim: int | None, what: str, copy: bool = True
) -> list[list[float]]:
    """Coerce to lists of finite floats of one dimension (``dim`` when known).

    ``copy=False`` returns a caller's list of floats itself rather than a copy (for a
    write that serialises it at once: copying 1,000 vectors of 1,536 costs ~30 ms here).

    Elements must be real numbers (Python or numpy); strings and bools are refused rather
    than converted. Every component must fit float32 (magnitude at most
    :data:`FLOAT32_MAX`, after rounding to float32), which is how Milvus stores vectors:
    a larger one would be stored as infinity.
    """
    out: list[list[float]] = []
    for i, vector in enumerate(vectors):
        tolist = getattr(vector, "tolist", None)
        values = tolist() if tolist is not None else vector
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise InvalidInputError(f"{what} #{i} is not a sequence of numbers: {vector!r:.80}.")
        if all_floats(values):  # what embedders return: checked fast
            floats = values if not copy and type(values) is list else list(values)
        else:
            for x in values:
                kind = type(x)
                if kind is not float and kind is not int and not _is_number(x):
                    raise InvalidInputError(
                        f"{what} #{i} contains a non-number {x!r:.40} ({kind.__name__}); "
                        f"vectors must hold int or float values."
                    )
            try:
                floats = [float(x) for x in values]
            except OverflowError:  # an int too large even for a float64
                floats = [float(x) if abs(x) < _FLOAT32_OVERFLOW else _TOO_BIG for x in values]
        if not floats:
            raise InvalidInputError(f"{what} #{i} is empty.")
        # The Euclidean norm (math.hypot, at C speed, no overflow) is below float32's limit
        # only if every component is, and NaN unless none is NaN; else look at each one.
        if not math.hypot(*floats) < _FLOAT32_OVERFLOW:
            _check_components(floats, i, what, values)
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


def _check_components(floats: list[float], i: int, what: str, values: Sequence[Any]) -> None:
    """Raise for the first NaN, infinity or component outside float32 (if any)."""
    if not all(map(math.isfinite, floats)):
        raise InvalidInputError(f"{what} #{i} contains NaN or infinity.")
    for j, x in enumerate(floats):
        if not fits_float32(x):
            raise InvalidInputError(
                f"{what} #{i} has component #{j} = {values[j]!r:.40}, outside the float32 range "
                f"(magnitude at most {FLOAT32_MAX:.8g}) in which Milvus stores vectors: it would "
                f"be stored as infinity. Scale or normalise the vector."
            )


def fits_float32(x: float) -> bool:
    """Whether ``x`` is finite and stays finite as a float32 (NaN does not fit)."""
    return abs(x) < _FLOAT32_OVERFLOW


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_same_length(**columns: Sequence[Any] | None) -> int:
    """The common length of the given columns (``None`` ones skipped); they must agree."""
    sizes = {name: len(col) for name, col in columns.items() if col is not None}
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{name}={size}" for name, size in sizes.items())
        raise InvalidInputError(f"Input lengths differ ({detail}); pass one entry per text.")
    return next(iter(sizes.values()), 0)

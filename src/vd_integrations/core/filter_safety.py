"""The rule for deletes by filter: a filter that matches every row is detected
(:func:`matches_everything`) and refused (:func:`refuse_delete_of_everything`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vd_integrations.core.errors import InvalidInputError, UnsupportedFilterError
from vd_integrations.core.expressions import is_literal_true
from vd_integrations.core.filter_literals import TRUE
from vd_integrations.core.filter_translation import translate_filter

__all__ = ["matches_everything", "refuse_delete_of_everything"]


def matches_everything(filter: str | Mapping[str, Any] | None) -> bool:
    """Whether ``filter`` is trivially true: none, empty, the constant ``true``, or a dict
    filter that folds to it (``{"tenant": {}}``, ``{"$and": []}``, ``{"x": {"$nin": []}}``).
    A dict this translator cannot handle is not trivially true (it is refused elsewhere)."""
    if filter is None:
        return True
    if isinstance(filter, str):
        return not filter.strip() or is_literal_true(filter)
    if not isinstance(filter, Mapping):
        return False
    try:
        compiled = translate_filter(filter)
    except UnsupportedFilterError:
        return False
    return compiled is None or compiled == TRUE


def refuse_delete_of_everything(filter: str | Mapping[str, Any] | None, *, clear: str) -> None:
    """The one rule for deletes by filter: one that matches every row is refused, so no
    delete removes more than it was asked to; ``clear`` names the method that does."""
    if matches_everything(filter):
        raise InvalidInputError(
            f"delete refused: the filter {filter!r} matches every row. Nothing was deleted. "
            f"To delete everything, call {clear}; otherwise fix the filter."
        )

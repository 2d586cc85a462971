"""The pure pieces of an embeddings request, shared by the sync and async client: input
checks, batch planning, request building and response parsing (no I/O).

A batch holds at most ``batch_size`` inputs and about ``max_batch_tokens`` tokens, the
tokens estimated on the high side as ``len(text) / 3``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from vd_integrations.core.errors import InvalidInputError

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_MAX_BATCH_TOKENS",
    "MAX_BATCH_SIZE",
    "approx_tokens",
    "build_request",
    "check_texts",
    "plan_batches",
    "vectors_from_response",
]

MAX_BATCH_SIZE = 2048  # OpenAI's limit on inputs per request
DEFAULT_MAX_BATCH_TOKENS = 300_000  # OpenAI's limit on tokens summed over one request
CHARS_PER_TOKEN = 3  # deliberately pessimistic (English averages ~4 characters per token)


def approx_tokens(text: str) -> int:
    """A cheap, high-side token estimate: ``ceil(len(text) / 3)``, at least 1."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, or :class:`InvalidInputError` if it is not a sequence of strings."""
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError(
            "texts must be a sequence of strings, got a single "
            f"{type(texts).__name__}; wrap it in a list or use embed_one()/aembed_one()."
        )
    try:
        items = list(texts)
    except TypeError:
        raise InvalidInputError(
            f"texts must be a sequence of strings, got {type(texts).__name__}."
        ) from None
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"texts[{i}] must be a str, got {type(text).__name__}; convert documents to "
                "their text before embedding."
            )
    return items


def plan_batches(
    texts: Sequence[str],
    batch_size: int = MAX_BATCH_SIZE,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
) -> list[tuple[int, int]]:
    """Split ``texts`` into contiguous ``(start, stop)`` ranges, one per request.

    Each range holds at most ``batch_size`` texts whose :func:`approx_tokens` sum to at most
    ``max_batch_tokens``; a single text over the budget goes alone (the server decides).
    """
    batches: list[tuple[int, int]] = []
    start = 0
    tokens = 0
    for i, text in enumerate(texts):
        cost = approx_tokens(text)
        if i > start and (i - start >= batch_size or tokens + cost > max_batch_tokens):
            batches.append((start, i))
            start, tokens = i, 0
        tokens += cost
    if start < len(texts):
        batches.append((start, len(texts)))
    return batches


def build_request(model: str, texts: Sequence[str], dimensions: int | None) -> dict[str, Any]:
    """Keyword arguments for ``client.embeddings.create``.

    ``encoding_format`` is left to the SDK, which asks for compact base64 and decodes it.
    """
    request: dict[str, Any] = {"model": model, "input": list(texts)}
    if dimensions is not None:
        request["dimensions"] = dimensions
    return request


def vectors_from_response(response: Any, expected: int) -> list[list[float]]:
    """The embeddings of a ``CreateEmbeddingResponse`` in input order (by ``index``)."""
    data = getattr(response, "data", None) or []
    out: list[list[float] | None] = [None] * expected
    for item in data:
        index = item.index
        if not 0 <= index < expected or out[index] is not None:
            raise RuntimeError(
                f"The embeddings server returned an invalid or duplicate index {index} for "
                f"a request of {expected} inputs; check that it is OpenAI-compatible."
            )
        vector = item.embedding
        out[index] = vector if type(vector) is list else list(vector)
    if len(data) != expected:
        raise RuntimeError(
            f"The embeddings server returned {len(data)} embeddings for {expected} inputs; "
            "check that it is OpenAI-compatible."
        )
    # expected distinct in-range indexes fill all expected slots: no None is left
    return cast("list[list[float]]", out)

"""The settings of the OpenAI embedding client: their defaults, their checks, and where
the API key and the endpoint URL come from when they are not given."""

from __future__ import annotations

import os

from vd_integrations.core.retry import RetrySettings
from vd_integrations.embeddings.payloads import MAX_BATCH_SIZE

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MODEL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "OFFLINE_API_KEY",
    "check_settings",
    "endpoint_url",
    "resolve_api_key",
]

DEFAULT_MODEL = "text-embedding-3-small"
OFFLINE_API_KEY = "offline"  # placeholder for OpenAI-compatible servers that ignore the key
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRY = RetrySettings()
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {bound}, got {value}.")


def check_settings(
    *,
    model: object,
    dimensions: object,
    batch_size: object,
    max_concurrency: object,
    max_batch_tokens: object,
    retry: object,
    timeout: object,
) -> None:
    """A ``TypeError`` or ``ValueError`` naming the first setting that is not valid."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty model name, got {model!r}.")
    if dimensions is not None:
        _check_int("dimensions", dimensions, 1)
    _check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    _check_int("max_concurrency", max_concurrency, 1)
    _check_int("max_batch_tokens", max_batch_tokens, 1)
    if not isinstance(retry, RetrySettings):
        raise TypeError(
            f"retry must be a RetrySettings, got {type(retry).__name__}; "
            "use RetrySettings.disabled() to turn retries off."
        )
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}.")


def resolve_api_key(api_key: str | None, base_url: str | None) -> str:
    """``api_key``, else ``$OPENAI_API_KEY``, else the placeholder when a server is named."""
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if base_url or os.environ.get("OPENAI_BASE_URL"):
        return OFFLINE_API_KEY
    raise ValueError(
        "No OpenAI API key: pass api_key=..., set the OPENAI_API_KEY environment variable, or "
        "pass base_url=... for an OpenAI-compatible server that needs no key."
    )


def endpoint_url(base_url: str | None) -> str:
    """The URL requests go to: ``base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's."""
    return base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL

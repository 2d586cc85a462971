"""Errors of the ``openai`` SDK as the embedding client sees them: which are worth a retry,
the server's retry-after hint, a short description, and copies scrubbed of the API key.

Nothing here imports the SDK: an SDK error can only exist once ``openai`` is loaded, so
the checks look it up in ``sys.modules``.
"""

from __future__ import annotations

import sys
from typing import Any

from vd_integrations.core.errors import error_chain
from vd_integrations.core.retry import RetryError, parse_retry_after

__all__ = [
    "describe_error",
    "is_bad_request",
    "is_transient",
    "retry_after_hint",
    "scrub_secret",
]


def is_transient(exc: BaseException) -> bool:
    """Whether an ``openai`` error is worth retrying: 408, 429, 5xx, connection, timeout."""
    openai = sys.modules.get("openai")  # no SDK loaded means it cannot be an SDK error
    if openai is None:
        return False
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def is_bad_request(exc: BaseException) -> bool:
    """The server refused the input itself (HTTP 400/413/422): retrying as is cannot help."""
    status = getattr(exc, "status_code", None)
    return status in (400, 413, 422)


def retry_after_hint(exc: BaseException) -> float | None:
    """The server's ``retry-after-ms`` / ``Retry-After`` hint in seconds, if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    return parse_retry_after(headers)


def describe_error(exc: BaseException, secret: str | None = None) -> str:
    """A short, secret-free description of an ``openai`` error for logs and messages."""
    openai = sys.modules.get("openai")
    if openai is not None and isinstance(exc, openai.APIStatusError):
        text = f"HTTP {exc.status_code} {type(exc).__name__}: {exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text if len(text) <= 300 else text[:297] + "..."


def _mentions(exc: BaseException, secret: str) -> bool:
    for err in error_chain(exc):
        texts = [str(err), repr(err), repr(err.args)]
        texts += [repr(v) for v in vars(err).values() if isinstance(v, (str, dict, list))]
        if any(secret in text for text in texts):
            return True
    return False


def _mask(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, dict):
        return {k: _mask(v, secret) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask(v, secret) for v in value)
    return value


def scrub_secret(exc: BaseException, secret: str | None) -> BaseException:
    """``exc`` itself when ``secret`` appears nowhere in it or its causes; otherwise a copy
    of the same type with the secret masked everywhere (a server or proxy may quote the
    ``Authorization`` header back in its error)."""
    if not secret or len(secret) < 4 or not _mentions(exc, secret):
        return exc
    clone = BaseException.__new__(type(exc))
    clone.__dict__.update({k: _mask(v, secret) for k, v in vars(exc).items()})
    clone.args = tuple(_mask(a, secret) for a in exc.args)
    if isinstance(clone, RetryError) and isinstance(exc, RetryError):  # the same type
        clone.last_error = scrub_secret(exc.last_error, secret)
    cause = exc.__cause__ or exc.__context__
    clone.__cause__ = None if cause is None else scrub_secret(cause, secret)
    clone.__suppress_context__ = True
    return clone

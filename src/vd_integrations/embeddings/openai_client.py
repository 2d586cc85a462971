"""Embeddings over the ``openai`` SDK (OpenAI or any OpenAI-compatible server), sync and async.

Both twins share the pure pieces below: input checks, batch planning (at most
``batch_size`` inputs and about ``max_batch_tokens`` tokens per request), request
building, response parsing and retry decisions (:mod:`vd_integrations.core.retry`). The I/O
shells only send requests: sync sequentially, async concurrently under one
``asyncio.Semaphore(max_concurrency)`` per event loop shared by every call on the client.
The SDK's own retries are disabled (``max_retries=0``) so that our policy governs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
import sys
import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from vd_integrations.core.coalesce import Coalescer, CoalescingSettings
from vd_integrations.core.errors import InvalidInputError, error_chain
from vd_integrations.core.loops import PerLoop
from vd_integrations.core.retry import (
    RetryError,
    RetrySettings,
    acall_with_retry,
    call_with_retry,
    parse_retry_after,
)

if TYPE_CHECKING:
    import openai

__all__ = [
    "CHARS_PER_TOKEN",
    "CLIENT_SETTINGS",
    "DEFAULT_MAX_BATCH_TOKENS",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MODEL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "MAX_BATCH_SIZE",
    "OFFLINE_API_KEY",
    "OpenAIEmbeddingClient",
    "approx_tokens",
    "build_request",
    "check_texts",
    "client_from_settings",
    "describe_error",
    "is_transient",
    "plan_batches",
    "retry_after_hint",
    "scrub_secret",
    "vectors_from_response",
]

DEFAULT_MODEL = "text-embedding-3-small"
MAX_BATCH_SIZE = 2048  # OpenAI's limit on inputs per request
DEFAULT_MAX_BATCH_TOKENS = 300_000  # OpenAI's limit on tokens summed over one request
CHARS_PER_TOKEN = 3  # deliberately pessimistic (English averages ~4 characters per token)
OFFLINE_API_KEY = "offline"  # placeholder for OpenAI-compatible servers that ignore the key
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRY = RetrySettings()
_DEFAULT_BASE_URL = "https://api.openai.com/v1"


# --------------------------------------------------------------------------------------------
# Pure pieces shared by the sync and async shells
# --------------------------------------------------------------------------------------------


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


def _openai() -> Any:
    import openai  # deferred: importing the SDK takes about a second

    return openai


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


def _resolve_api_key(api_key: str | None, base_url: str | None) -> str:
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if base_url or os.environ.get("OPENAI_BASE_URL"):
        return OFFLINE_API_KEY
    raise ValueError(
        "No OpenAI API key: pass api_key=..., set the OPENAI_API_KEY environment variable, or "
        "pass base_url=... for an OpenAI-compatible server that needs no key."
    )


def _is_bad_request(exc: BaseException) -> bool:
    """The server refused the input itself (HTTP 400/413/422): retrying as is cannot help."""
    status = getattr(exc, "status_code", None)
    return status in (400, 413, 422)


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {bound}, got {value}.")


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------


@dataclass
class _LoopState:
    client: openai.AsyncOpenAI
    semaphore: asyncio.Semaphore
    closer: AsyncGenerator[None, None]
    coalescer: Coalescer[list[str], list[list[float]]]


async def _closing(client: openai.AsyncOpenAI) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def _close_at_loop_shutdown(client: openai.AsyncOpenAI) -> AsyncGenerator[None, None]:
    """An async generator, registered with the running loop, whose cleanup closes ``client``.

    ``asyncio.run`` (and ``asyncio.Runner``) finish registered async generators with
    ``loop.shutdown_asyncgens()`` before closing the loop, so the connections are closed on
    their own loop instead of being garbage-collected while another loop runs (where the
    SDK's cleanup fails with "Event loop is closed"). ``aclose()`` on it closes early.
    """
    closer = _closing(client)
    step = closer.__anext__()  # the loop's firstiter hook registers the generator here
    with contextlib.suppress(StopIteration):
        step.send(None)  # run to the ``yield``: nothing is awaited before it
    return closer


class OpenAIEmbeddingClient:
    """Embed texts with an OpenAI (or OpenAI-compatible) embeddings endpoint.

    The sync ``openai.OpenAI`` client is created on first use and reused; async calls use
    one ``openai.AsyncOpenAI`` per event loop, so one object works across ``asyncio.run``
    calls. ``api_key`` defaults to ``$OPENAI_API_KEY``; with only ``base_url`` a placeholder
    key is sent. The key never appears in ``repr``, logs or our error messages.
    ``max_batch_tokens`` is the per-request token budget (estimated as ``len / 3``).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        batch_size: int = MAX_BATCH_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retry: RetrySettings = DEFAULT_RETRY,
        timeout: float | None = DEFAULT_TIMEOUT,
        default_headers: Mapping[str, str] | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        coalescing: CoalescingSettings | bool | None = None,
    ) -> None:
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
            raise ValueError(
                f"timeout must be a positive number of seconds or None, got {timeout!r}."
            )
        self.model = model
        self.base_url = base_url
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.max_batch_tokens = max_batch_tokens
        self.retry = retry
        self.timeout = timeout
        self.default_headers = dict(default_headers) if default_headers else None
        self.coalescing = CoalescingSettings.coerce(coalescing, max_batch=batch_size)
        self.__api_key = _resolve_api_key(api_key, base_url)
        # Import the SDK now (about a second) rather than inside the first async call, where
        # it would block the event loop; importing this module stays cheap.
        _openai()
        self._sync_client: openai.OpenAI | None = None
        self._sync_lock = threading.Lock()
        self._async: PerLoop[_LoopState] = PerLoop(self._new_loop_state)
        self._close_tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r}, "
            f"dimensions={self.dimensions!r}, batch_size={self.batch_size}, "
            f"max_concurrency={self.max_concurrency})"
        )

    # ----- shared configuration ------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "api_key": self.__api_key,
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": 0,
            "default_headers": self.default_headers,
        }

    def _operation(self, n: int) -> str:
        url = self.base_url or os.environ.get("OPENAI_BASE_URL") or _DEFAULT_BASE_URL
        return f"Embedding request ({n} inputs) to {url}"

    def _describe(self, exc: BaseException) -> str:
        return describe_error(exc, self.__api_key)

    def _retry_options(self, n: int) -> dict[str, Any]:
        """The retry policy for one request of ``n`` inputs (sync and async alike)."""
        return {
            "settings": self.retry,
            "is_retryable": is_transient,
            "retry_after": retry_after_hint,
            "describe": self._describe,
            "operation": self._operation(n),
        }

    # ----- sync ------------------------------------------------------------------------------

    def _sync(self) -> openai.OpenAI:
        with self._sync_lock:
            if self._sync_client is None:
                self._sync_client = _openai().OpenAI(**self._client_kwargs())
            return self._sync_client

    def _embed_batch(self, client: openai.OpenAI, texts: list[str]) -> list[list[float]]:
        request = build_request(self.model, texts, self.dimensions)
        send = lambda: client.embeddings.create(**request)  # noqa: E731
        try:
            response = call_with_retry(send, **self._retry_options(len(texts)))
        except Exception as exc:
            clean = scrub_secret(exc, self.__api_key)
            if clean is exc:
                raise
        else:
            return vectors_from_response(response, len(texts))
        raise clean  # outside the except block: the original is not chained

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in input order; batches are sent one after another."""
        items = check_texts(texts)
        if not items:
            return []
        client = self._sync()
        out: list[list[float]] = []
        for start, stop in plan_batches(items, self.batch_size, self.max_batch_tokens):
            out.extend(self._embed_batch(client, items[start:stop]))
        return out

    def embed_one(self, text: str) -> list[float]:
        """The vector of a single text (e.g. a query)."""
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a str, got {type(text).__name__}.")
        return self.embed([text])[0]

    # ----- async -----------------------------------------------------------------------------

    def _new_loop_state(self) -> _LoopState:
        sdk = _openai()
        # Our own httpx client: the SDK's default one schedules its cleanup on whatever loop
        # runs when it is garbage-collected; ours is closed by ``_close_at_loop_shutdown``.
        client = sdk.AsyncOpenAI(**self._client_kwargs(), http_client=sdk.DefaultAsyncHttpxClient())
        return _LoopState(
            client=client,
            semaphore=asyncio.Semaphore(self.max_concurrency),
            closer=_close_at_loop_shutdown(client),
            coalescer=Coalescer(self.coalescing),
        )

    async def _aembed_batch(self, state: _LoopState, texts: list[str]) -> list[list[float]]:
        request = build_request(self.model, texts, self.dimensions)

        async def attempt() -> Any:
            async with state.semaphore:  # held per request, not during backoff sleeps
                return await state.client.embeddings.create(**request)

        try:
            response = await acall_with_retry(attempt, **self._retry_options(len(texts)))
        except Exception as exc:
            clean = scrub_secret(exc, self.__api_key)
            if clean is exc:
                raise
        else:
            return vectors_from_response(response, len(texts))
        raise clean  # outside the except block: the original is not chained

    async def aembed(self, texts: Sequence[str]) -> list[list[float]]:
        """Async :meth:`embed`. Concurrent calls on one loop are merged into shared requests
        (``coalescing``); batches run concurrently, at most ``max_concurrency`` requests in
        flight per event loop across all calls on this client."""
        items = check_texts(texts)
        if not items:
            return []
        state = self._async.get()
        return await state.coalescer.submit("embed", items, self._aembed_parts, len(items))

    async def _aembed_parts(self, parts: list[list[str]]) -> list[Any]:
        """Embed the texts of every merged caller together; split the vectors back. If the
        server rejects the merged input (400), each caller's texts go alone, so only the
        caller with the bad input gets the error."""
        state = self._async.get()
        flat = [text for texts in parts for text in texts]
        try:
            vectors = await self._aembed_items(state, flat)
        except Exception as exc:
            if len(parts) == 1 or not _is_bad_request(exc):
                raise
            return list(
                await asyncio.gather(
                    *(self._aembed_items(state, texts) for texts in parts),
                    return_exceptions=True,
                )
            )
        out, start = [], 0
        for texts in parts:
            out.append(vectors[start : start + len(texts)])
            start += len(texts)
        return out

    async def _aembed_items(self, state: _LoopState, items: list[str]) -> list[list[float]]:
        batches = plan_batches(items, self.batch_size, self.max_batch_tokens)
        if len(batches) == 1:
            return await self._aembed_batch(state, items)
        tasks = [
            asyncio.ensure_future(self._aembed_batch(state, items[start:stop]))
            for start, stop in batches
        ]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one batch failed (or we were cancelled): stop the others
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [vector for batch in results for vector in batch]

    async def aembed_one(self, text: str) -> list[float]:
        """Async :meth:`embed_one`."""
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a str, got {type(text).__name__}.")
        return (await self.aembed([text]))[0]

    # ----- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client and every event loop's async client that can still be closed.

        The client stays usable: connections are reopened lazily on the next call.
        """
        with self._sync_lock:
            client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()
        for loop, state in self._async.pop_all():
            self._close_on_loop(loop, state)

    def _close_on_loop(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        if loop.is_closed():
            return  # its connections died with the loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        coro = state.closer.aclose()
        if running is loop:
            task = loop.create_task(coro)
            self._close_tasks.add(task)
            task.add_done_callback(self._close_tasks.discard)
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(coro, loop)
        elif running is None:
            loop.run_until_complete(coro)
        else:
            coro.close()  # an idle loop cannot be driven from inside another running loop

    async def aclose(self) -> None:
        """Close the running loop's async client, then everything :meth:`close` closes."""
        state = self._async.pop_current()
        if state is not None:
            await state.coalescer.aclose()  # merged requests in flight still use the client
            await state.closer.aclose()
        self.close()

    def __enter__(self) -> OpenAIEmbeddingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> OpenAIEmbeddingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_SETTING_DEFAULTS = {
    name: param.default
    for name, param in inspect.signature(OpenAIEmbeddingClient.__init__).parameters.items()
    if param.default is not inspect.Parameter.empty
}
#: Names of the keyword arguments of :class:`OpenAIEmbeddingClient` (``model`` included).
CLIENT_SETTINGS = frozenset(_SETTING_DEFAULTS)


def client_from_settings(
    client: OpenAIEmbeddingClient | None, **settings: Any
) -> OpenAIEmbeddingClient:
    """``client`` as is (then every setting must be left at its default), or a new client.

    Used by the framework adapters, whose constructors take either ``client=`` or the
    :class:`OpenAIEmbeddingClient` keyword arguments.
    """
    unknown = sorted(set(settings) - set(_SETTING_DEFAULTS))
    if unknown:
        raise TypeError(f"Unknown OpenAIEmbeddingClient settings: {unknown}.")
    if client is None:
        return OpenAIEmbeddingClient(**settings)
    if not isinstance(client, OpenAIEmbeddingClient):
        raise TypeError(f"client must be an OpenAIEmbeddingClient, got {type(client).__name__}.")
    clashes = [
        name
        for name, value in settings.items()
        if value is not _SETTING_DEFAULTS[name] and value != _SETTING_DEFAULTS[name]
    ]
    if clashes:
        raise ValueError(
            f"Pass either client= or client settings, not both (got client and {clashes}); "
            "configure the OpenAIEmbeddingClient you pass instead."
        )
    return client

"""The OpenAI embedding client (OpenAI or any OpenAI-compatible server), sync and async,
and how the framework adapters build one from their settings.

Both twins share the pure pieces: input checks, batch planning, request building and
response parsing (:mod:`~vd_integrations.embeddings.payloads`), the settings
(:mod:`~vd_integrations.embeddings.client_settings`) and retry decisions
(:mod:`~vd_integrations.embeddings.openai_errors`, :mod:`vd_integrations.core.retry`). The
I/O shells here only send requests: sync sequentially, async concurrently under one
``asyncio.Semaphore(max_concurrency)`` per event loop shared by every call on the client
(:mod:`~vd_integrations.embeddings.loop_clients`). The SDK's own retries are disabled
(``max_retries=0``) so that our policy governs.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vd_integrations.core.coalesce import CoalescingSettings
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.loops import PerLoop
from vd_integrations.core.retry import RetrySettings, acall_with_retry, call_with_retry
from vd_integrations.embeddings.client_settings import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MODEL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    OFFLINE_API_KEY,
    check_settings,
    endpoint_url,
    resolve_api_key,
)
from vd_integrations.embeddings.loop_clients import LoopClient, shared_tls_context
from vd_integrations.embeddings.openai_errors import (
    describe_error,
    is_bad_request,
    is_transient,
    retry_after_hint,
    scrub_secret,
)
from vd_integrations.embeddings.payloads import (
    CHARS_PER_TOKEN,
    DEFAULT_MAX_BATCH_TOKENS,
    MAX_BATCH_SIZE,
    approx_tokens,
    build_request,
    check_texts,
    plan_batches,
    vectors_from_body,
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
    "vectors_from_body",
]


def _openai() -> Any:
    import openai  # deferred: importing the SDK takes about a second

    return openai


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
        check_settings(
            model=model,
            dimensions=dimensions,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            max_batch_tokens=max_batch_tokens,
            retry=retry,
            timeout=timeout,
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
        self.__api_key = resolve_api_key(api_key, base_url)
        # Import the SDK now (about a second) rather than inside the first async call, where
        # it would block the event loop; importing this module stays cheap.
        _openai()
        self._sync_client: openai.OpenAI | None = None
        self._sync_lock = threading.Lock()
        self._async: PerLoop[LoopClient] = PerLoop(self._new_loop_state)
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
        return f"Embedding request ({n} inputs) to {endpoint_url(self.base_url)}"

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
                sdk = _openai()
                http_client = sdk.DefaultHttpxClient(verify=shared_tls_context())
                self._sync_client = sdk.OpenAI(**self._client_kwargs(), http_client=http_client)
            return self._sync_client

    def _embed_batch(self, client: openai.OpenAI, texts: list[str]) -> list[list[float]]:
        request = build_request(self.model, texts, self.dimensions)
        send = lambda: client.embeddings.with_raw_response.create(**request)  # noqa: E731
        try:
            response = call_with_retry(send, **self._retry_options(len(texts)))
        except Exception as exc:
            clean = scrub_secret(exc, self.__api_key)
            if clean is exc:
                raise
        else:
            return vectors_from_body(response.content, len(texts))
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

    def _new_loop_state(self) -> LoopClient:
        return LoopClient.open(
            _openai(), self._client_kwargs(), self.max_concurrency, self.coalescing
        )

    async def _aembed_batch(self, state: LoopClient, texts: list[str]) -> list[list[float]]:
        request = build_request(self.model, texts, self.dimensions)

        async def attempt() -> Any:
            async with state.semaphore:  # held per request, not during backoff sleeps
                return await state.client.embeddings.with_raw_response.create(**request)

        try:
            response = await acall_with_retry(attempt, **self._retry_options(len(texts)))
        except Exception as exc:
            clean = scrub_secret(exc, self.__api_key)
            if clean is exc:
                raise
        else:
            return vectors_from_body(response.content, len(texts))
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
            if len(parts) == 1 or not is_bad_request(exc):
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

    async def _aembed_items(self, state: LoopClient, items: list[str]) -> list[list[float]]:
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
            state.close_on(loop, self._close_tasks)

    async def aclose(self) -> None:
        """Close the running loop's async client, then everything :meth:`close` closes."""
        state = self._async.pop_current()
        if state is not None:
            await state.aclose()
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

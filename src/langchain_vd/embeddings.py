"""LangChain ``Embeddings`` over :class:`vd_integrations.openai_embeddings.OpenAIEmbeddingClient`.

The async methods are native (``AsyncOpenAI``), not the thread-pool default of
``langchain_core``; batching, bounded concurrency and retries come from the core client.
"""

from __future__ import annotations

from collections.abc import Mapping

from langchain_core.embeddings import Embeddings

from vd_integrations.openai_embeddings import (
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MODEL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    MAX_BATCH_SIZE,
    OpenAIEmbeddingClient,
    client_from_settings,
)
from vd_integrations.retry import RetrySettings

__all__ = ["OpenAIEmbeddings"]


class OpenAIEmbeddings(Embeddings):
    """OpenAI (or OpenAI-compatible) embeddings with real async I/O.

    Takes the keyword arguments of :class:`OpenAIEmbeddingClient`, or an existing
    ``client=`` (then no other settings). ``api_key`` defaults to ``$OPENAI_API_KEY``.
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
        client: OpenAIEmbeddingClient | None = None,
    ) -> None:
        self._client = client_from_settings(
            client,
            model=model,
            base_url=base_url,
            api_key=api_key,
            dimensions=dimensions,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            retry=retry,
            timeout=timeout,
            default_headers=default_headers,
            max_batch_tokens=max_batch_tokens,
        )

    @property
    def client(self) -> OpenAIEmbeddingClient:
        """The core client (shared batching, concurrency limit and retries)."""
        return self._client

    @property
    def model(self) -> str:
        return self._client.model

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client={self._client!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        return self._client.embed(texts)

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query."""
        return self._client.embed_one(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (batches run concurrently, bounded per loop)."""
        return await self._client.aembed(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return await self._client.aembed_one(text)

    def close(self) -> None:
        """Close the client's connections (it reopens them lazily if used again)."""
        self._client.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._client.aclose()

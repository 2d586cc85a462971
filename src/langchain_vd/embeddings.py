"""LangChain ``Embeddings`` over our OpenAI-compatible client (:class:`OpenAIEmbeddingClient`).

The async methods are native (``AsyncOpenAI``), not the thread-pool default of
``langchain_core``; batching, bounded concurrency and retries come from the core client.
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

from vd_integrations.embeddings.openai_client import (
    DEFAULT_MODEL,
    OpenAIEmbeddingClient,
    client_from_settings,
)

__all__ = ["OpenAIEmbeddings"]


class OpenAIEmbeddings(Embeddings):
    """OpenAI (or OpenAI-compatible) embeddings with real async I/O.

    Takes the keyword arguments of :class:`OpenAIEmbeddingClient` (``base_url``,
    ``api_key``, ``dimensions``, ``batch_size``, ``max_concurrency``, ``retry``, ``timeout``,
    ``coalescing``, ...), or an existing ``client=`` (then no other settings). ``api_key``
    defaults to ``$OPENAI_API_KEY``.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        client: OpenAIEmbeddingClient | None = None,
        **settings: Any,
    ) -> None:
        self._client = client_from_settings(client, model=model, **settings)

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

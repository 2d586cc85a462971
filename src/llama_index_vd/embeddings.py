"""LlamaIndex ``BaseEmbedding`` over
:class:`vd_integrations.embeddings.openai_client.OpenAIEmbeddingClient`.

The async methods are native (``AsyncOpenAI``). ``embed_batch_size`` defaults to 2048 because
the core client already splits requests within OpenAI's limits and runs them concurrently.
The API key lives only in the private core client: never in fields, ``repr`` or ``to_dict``.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from vd_integrations.embeddings.openai_client import (
    CLIENT_SETTINGS,
    DEFAULT_MODEL,
    MAX_BATCH_SIZE,
    OpenAIEmbeddingClient,
    client_from_settings,
)

__all__ = ["OpenAIEmbedding"]


class OpenAIEmbedding(BaseEmbedding):
    """OpenAI (or OpenAI-compatible) embeddings with real async I/O.

    Takes the keyword arguments of :class:`OpenAIEmbeddingClient` (``model_name`` is
    accepted as an alias of ``model``), or an existing ``client=`` (then no other client
    settings), plus :class:`BaseEmbedding`'s own (``embed_batch_size``, ``callback_manager``,
    ``num_workers``, ...).
    """

    base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL (None: the OpenAI API)."
    )
    dimensions: int | None = Field(
        default=None, description="Requested vector size (None: the model's default)."
    )
    embed_batch_size: int = Field(
        default=MAX_BATCH_SIZE,
        description="Texts handed to the client at once; it batches and parallelises itself.",
        gt=0,
        le=MAX_BATCH_SIZE,
    )
    _client: OpenAIEmbeddingClient = PrivateAttr()

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        client: OpenAIEmbeddingClient | None = None,
        embed_batch_size: int = MAX_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        model = kwargs.pop("model_name", None) or model
        kwargs.pop("class_name", None)  # present when rebuilt with from_dict()
        settings = {name: kwargs.pop(name) for name in CLIENT_SETTINGS if name in kwargs}
        core = client_from_settings(client, model=model, **settings)
        super().__init__(
            model_name=core.model,
            base_url=core.base_url,
            dimensions=core.dimensions,
            embed_batch_size=embed_batch_size,
            **kwargs,
        )
        self._client = core

    @classmethod
    def class_name(cls) -> str:
        return "VDOpenAIEmbedding"

    @property
    def client(self) -> OpenAIEmbeddingClient:
        """The core client (shared batching, concurrency limit and retries)."""
        return self._client

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._client.embed_one(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await self._client.aembed_one(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._client.embed_one(text)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await self._client.aembed_one(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._client.embed(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._client.aembed(texts)

    def close(self) -> None:
        """Close the client's connections (it reopens them lazily if used again)."""
        self._client.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._client.aclose()

"""Deterministic pseudo-random unit vectors per text, for tests on a real collection."""

from __future__ import annotations

import zlib

import numpy as np


class RandomEmbeddings:
    """An embeddings object (LangChain's interface, sync and async) giving each text its
    own pseudo-random unit vector of ``dim`` components, the same on every call."""

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim

    def _embed(self, text: str) -> list[float]:
        seed = zlib.crc32(text.encode())  # the whole text: no two texts share a vector
        vector = np.random.default_rng(seed).standard_normal(self.dim)
        return (vector / np.linalg.norm(vector)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)

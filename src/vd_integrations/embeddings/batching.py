"""Query embeddings: an optional LRU cache, and when queries may be embedded in batches.

LangChain's ``Embeddings`` has no batch method for queries, only ``aembed_documents``.
Merging concurrent ``aembed_query`` calls into one ``aembed_documents`` call is right
only for models that embed a query exactly like a document; asymmetric models (Cohere's
``search_query``, E5/BGE instruction prefixes, Voyage's ``input_type``) are not. So it is
done for embedders known to be symmetric, or when the store is told so.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["SYMMETRIC_EMBEDDERS", "QueryEmbeddingCache", "batches_query_embeddings"]

#: Classes whose ``embed_query(t)`` equals ``embed_documents([t])[0]``.
SYMMETRIC_EMBEDDERS = frozenset(
    {
        "langchain_vd.embeddings.OpenAIEmbeddings",
        "langchain_openai.embeddings.base.OpenAIEmbeddings",
        "langchain_openai.embeddings.azure.AzureOpenAIEmbeddings",
        "langchain_core.embeddings.fake.DeterministicFakeEmbedding",
        "langchain_core.embeddings.fake.FakeEmbeddings",
        "langchain_ollama.embeddings.OllamaEmbeddings",
    }
)


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def batches_query_embeddings(embedder: Any, setting: bool | None) -> bool:
    """Whether concurrent query embeddings may go to ``embedder`` as one document batch.

    ``setting`` True/False decides; None decides by class: an embedder whose class (or a
    base class) is in :data:`SYMMETRIC_EMBEDDERS` and does not override ``embed_query``
    or ``aembed_query`` below that class.
    """
    if setting is not None:
        return setting
    for cls in type(embedder).__mro__:
        if _qualified_name(cls) in SYMMETRIC_EMBEDDERS:
            return all(
                getattr(type(embedder), name) is getattr(cls, name)
                for name in ("embed_query", "aembed_query")
            )
    return False


class QueryEmbeddingCache:
    """A thread-safe LRU map from query text to its vector; ``size=0`` disables it."""

    def __init__(self, size: int = 0) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"query_cache_size must be an int >= 0, got {size!r}")
        self.size = size
        self._items: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> list[float] | None:
        if not self.size:
            return None
        with self._lock:
            vector = self._items.get(text)
            if vector is None:
                self.misses += 1
                return None
            self._items.move_to_end(text)
            self.hits += 1
            return list(vector)

    def put(self, text: str, vector: list[float]) -> None:
        if not self.size:
            return
        with self._lock:
            self._items[text] = list(vector)
            self._items.move_to_end(text)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get_or_compute(self, text: str, embed: Callable[[str], list[float]]) -> list[float]:
        cached = self.get(text)
        if cached is not None:
            return cached
        vector = embed(text)
        self.put(text, vector)
        return vector

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

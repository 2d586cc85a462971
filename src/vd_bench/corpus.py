"""The tutorial's test data, made deterministic so every subject sees the same corpus."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Item", "items", "query"]

#: Documents a search, MMR, delete or upsert workload runs against (the tutorial's 1000).
POPULATION = 1000


@dataclass(frozen=True)
class Item:
    """One test document: the tutorial's content and metadata (``id``, ``score``, ``category``)."""

    index: int
    text: str
    metadata: dict

    @property
    def doc_id(self) -> str:
        return f"doc_{self.index}"


def items(n: int, *, start: int = 0, seed: int = 0, version: int = 0) -> list[Item]:
    """``n`` documents numbered from ``start``; ``version`` changes the content (for upserts)."""
    out = []
    for i in range(start, start + n):
        rng = random.Random(f"{seed}:{i}:{version}")
        text = f"This is test document {i} with some random content: {rng.random()}"
        if version:
            text = f"{text} (revision {version})"
        metadata = {"id": f"doc_{i}", "score": rng.random(), "category": f"cat_{i % 5}"}
        out.append(Item(i, text, metadata))
    return out


def query(i: int) -> str:
    """The tutorial's i-th search query."""
    return f"test document {i % 50}"

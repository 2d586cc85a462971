"""The operation protocol shared by every engine: steps, and the two drivers.

An *operation* is a generator that yields steps describing I/O and receives each
step's result (a sans-I/O core in the spirit of h11). :func:`drive` performs the
steps with blocking calls, :func:`adrive` awaits them on the running loop. An engine
supplies ``perform``/``aperform`` for its own step types; the embedding and
locking steps below are common to all engines, and :class:`Sleep` is performed by
the drivers themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from vd_integrations.core.errors import InvalidInputError

__all__ = [
    "Background",
    "EmbedDocuments",
    "EmbedQuery",
    "Embedder",
    "Exclusive",
    "Op",
    "adrive",
    "drive",
    "embed_async",
    "embed_sync",
    "require_embedder",
]

T = TypeVar("T")
Op = Generator[Any, Any, T]


@dataclass(frozen=True, slots=True)
class EmbedDocuments:
    """Embed ``texts``; the result is one vector per text."""

    texts: list[str]


@dataclass(frozen=True, slots=True)
class EmbedQuery:
    """Embed one query ``text``; the result is one vector."""

    text: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause for ``seconds`` (``time.sleep`` when driven sync, ``asyncio.sleep`` async)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Exclusive:
    """Run ``op`` while holding the engine's setup lock (collection creation, drops).

    Async callers whose steps carry the same ``key`` while one such run is in flight on
    their loop share that run and its result (single flight): a hundred concurrent first
    calls cost one setup and all resume together, instead of taking the lock in turn.
    """

    op: Generator[Any, Any, Any]
    key: Hashable | None = None


@dataclass(frozen=True, slots=True)
class Background:
    """Setup work nobody has to wait for now; only yielded from inside an :class:`Exclusive`
    op. Sync shells run ``op`` at once (under the lock they already hold); async shells
    start it as a task that takes the setup lock when it is free, and later
    ``Exclusive`` steps with the same ``key`` join that task instead of repeating it."""

    op: Generator[Any, Any, Any]
    key: Hashable


class Embedder(Protocol):
    """What engines need from an embedding model (LangChain's ``Embeddings`` fits)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...
    def embed_query(self, text: str) -> list[float]: ...
    async def aembed_documents(self, texts: list[str]) -> list[list[float]]: ...
    async def aembed_query(self, text: str) -> list[float]: ...


def require_embedder(embedder: Embedder | None) -> Embedder:
    """``embedder``, or a clear error when a store without one is asked to embed text."""
    if embedder is None:
        raise InvalidInputError(
            "This store has no embedding function, so text cannot be turned into vectors; "
            "pass an embedding model, or use the *_by_vector / add_embeddings methods."
        )
    return embedder


def embed_sync(embedder: Embedder, step: EmbedDocuments | EmbedQuery) -> Any:
    if isinstance(step, EmbedDocuments):
        return embedder.embed_documents(step.texts)
    return embedder.embed_query(step.text)


async def embed_async(embedder: Embedder, step: EmbedDocuments | EmbedQuery) -> Any:
    if isinstance(step, EmbedDocuments):
        return await embedder.aembed_documents(step.texts)
    return await embedder.aembed_query(step.text)


ErrorMapper = Callable[[Exception, Any], Exception]


def _raise_mapped(exc: Exception, step: Any, map_error: ErrorMapper | None) -> None:
    mapped = map_error(exc, step) if map_error is not None else exc
    if mapped is exc:
        raise exc
    raise mapped from exc


def drive(op: Op[T], perform: Callable[[Any], Any], map_error: ErrorMapper | None = None) -> T:
    """Run ``op`` to completion, performing each step with the blocking ``perform``.

    A failing step is thrown into the operation (so it can recover); an error that
    escapes is passed through ``map_error(exc, step)`` for a clear message.
    """
    step: Any = None
    try:
        step = next(op)
        while True:
            try:
                result: Any = None  # a Sleep step resumes the operation with None
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                else:
                    result = perform(step)
            except Exception as exc:
                step = op.throw(exc)
            else:
                step = op.send(result)
    except StopIteration as stop:
        return stop.value
    except Exception as exc:
        _raise_mapped(exc, step, map_error)
        raise  # pragma: no cover - _raise_mapped always raises
    finally:
        op.close()


async def adrive(
    op: Op[T], aperform: Callable[[Any], Awaitable[Any]], map_error: ErrorMapper | None = None
) -> T:
    """The async twin of :func:`drive`: each step is awaited on the running loop."""
    step: Any = None
    try:
        step = next(op)
        while True:
            try:
                result: Any = None  # a Sleep step resumes the operation with None
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                else:
                    result = await aperform(step)
            except Exception as exc:
                step = op.throw(exc)
            else:
                step = op.send(result)
    except StopIteration as stop:
        return stop.value
    except Exception as exc:
        _raise_mapped(exc, step, map_error)
        raise  # pragma: no cover
    finally:
        op.close()

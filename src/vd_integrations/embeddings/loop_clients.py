"""The async SDK client of one event loop (with that loop's semaphore and coalescer) and
its lifecycle: opened on first use in the loop, closed on that same loop.

``asyncio.run`` (and ``asyncio.Runner``) finish registered async generators with
``loop.shutdown_asyncgens()`` before closing the loop; each client registers one whose
cleanup closes it, so connections are closed on their own loop instead of being
garbage-collected while another loop runs (where the SDK's cleanup fails with "Event loop
is closed").

Every loop's client, and every embeddings client's sync one, shares one TLS context
(:func:`shared_tls_context`): httpx builds a new one per client by default (about 20 ms
here, loading the CA bundle), which each new event loop (each ``asyncio.run``) paid before
its first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vd_integrations.core.coalesce import Coalescer, CoalescingSettings

if TYPE_CHECKING:
    import openai

__all__ = ["LoopClient", "shared_tls_context"]


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certificate checks on; ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` honoured), built once per process: an ``SSLContext`` may serve many
    connections, threads and loops. Changing those variables later has no effect."""
    import httpx

    return httpx.create_ssl_context()


async def _closing(client: openai.AsyncOpenAI) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def _close_at_loop_shutdown(client: openai.AsyncOpenAI) -> AsyncGenerator[None, None]:
    """An async generator, registered with the running loop, whose cleanup closes ``client``
    at the loop's shutdown; ``aclose()`` on it closes early."""
    closer = _closing(client)
    step = closer.__anext__()  # the loop's firstiter hook registers the generator here
    with contextlib.suppress(StopIteration):
        step.send(None)  # run to the ``yield``: nothing is awaited before it
    return closer


@dataclass
class LoopClient:
    """One event loop's ``AsyncOpenAI`` client, request semaphore and coalescer."""

    client: openai.AsyncOpenAI
    semaphore: asyncio.Semaphore
    closer: AsyncGenerator[None, None]
    coalescer: Coalescer[list[str], list[list[float]]]

    @classmethod
    def open(
        cls,
        sdk: Any,
        client_kwargs: dict[str, Any],
        max_concurrency: int,
        coalescing: CoalescingSettings,
    ) -> LoopClient:
        """A client for the running loop, closed when the loop shuts down (``sdk`` is the
        ``openai`` module)."""
        # Our own httpx client: the SDK's default one schedules its cleanup on whatever loop
        # runs when it is garbage-collected; ours is closed by ``_close_at_loop_shutdown``.
        http_client = sdk.DefaultAsyncHttpxClient(verify=shared_tls_context())
        client = sdk.AsyncOpenAI(**client_kwargs, http_client=http_client)
        return cls(
            client=client,
            semaphore=asyncio.Semaphore(max_concurrency),
            closer=_close_at_loop_shutdown(client),
            coalescer=Coalescer(coalescing),
        )

    async def aclose(self) -> None:
        """Close from inside its own loop: merged requests in flight finish first."""
        await self.coalescer.aclose()  # merged requests in flight still use the client
        await self.closer.aclose()

    def close_on(self, loop: asyncio.AbstractEventLoop, pending: set[asyncio.Task[None]]) -> None:
        """Close the client on ``loop`` from wherever this runs, if that loop can still be
        driven; a task scheduled on the running loop is kept in ``pending`` until done."""
        if loop.is_closed():
            return  # its connections died with the loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        coro = self.closer.aclose()
        if running is loop:
            task = loop.create_task(coro)
            pending.add(task)
            task.add_done_callback(pending.discard)
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(coro, loop)
        elif running is None:
            loop.run_until_complete(coro)
        else:
            coro.close()  # an idle loop cannot be driven from inside another running loop

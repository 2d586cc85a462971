"""An offline, OpenAI-compatible embeddings server for tests, demos and benchmarks.

``POST /v1/embeddings`` speaks OpenAI's request/response format (string or token-array
inputs, ``dimensions``, ``encoding_format`` ``float``/``base64``, OpenAI-shaped errors).
Vectors are deterministic across processes and weakly semantic: signed feature hashing of
lowercased words plus a small per-text component, L2-normalised float32. Every request
waits ``latency`` seconds with ``asyncio.sleep``, so concurrent requests overlap the way
they do against the real service.

Extra endpoints: ``GET /stats``, ``POST /stats/reset`` (also clears pending faults),
``POST /faults`` (``{"status": 429, "count": 2, "retry_after": 0.1}`` fails the next
embedding requests), ``GET /health``.

Run it with ``python -m vd_integrations.testing.embedding_server --port 0`` (prints
``listening on http://127.0.0.1:PORT/v1``), or from Python with
:class:`OfflineEmbeddingServer` (a subprocess) or :func:`embedding_endpoint`.
The subprocess stops when the process that started it exits for any reason (SIGKILL and
crashes included): it watches a pipe from its parent (``--exit-with-parent``).
The server itself uses only the standard library and numpy.

This module is the entry point and the public surface; the pieces live beside it:
:mod:`~vd_integrations.testing.embedding_vectors` (the vectors),
:mod:`~vd_integrations.testing.embedding_api` (OpenAI's wire format),
:mod:`~vd_integrations.testing.embedding_service` (state, routing, faults),
:mod:`~vd_integrations.testing.embedding_http` (the HTTP transport, :func:`serve`) and
:mod:`~vd_integrations.testing.embedding_process` (the subprocess wrapper, the endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from vd_integrations.testing.embedding_http import serve
from vd_integrations.testing.embedding_process import (
    EmbeddingEndpoint,
    OfflineEmbeddingServer,
    embedding_endpoint,
)
from vd_integrations.testing.embedding_service import DEFAULT_LATENCY, EmbeddingService
from vd_integrations.testing.embedding_vectors import DEFAULT_DIM, embed_inputs

__all__ = [
    "DEFAULT_DIM",
    "DEFAULT_LATENCY",
    "EmbeddingEndpoint",
    "EmbeddingService",
    "OfflineEmbeddingServer",
    "embed_inputs",
    "embedding_endpoint",
    "main",
    "serve",
]


def _raise_fd_limit() -> None:
    """Allow thousands of concurrent connections (the soft limit is often 1024)."""
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: serve until SIGTERM / SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m vd_integrations.testing.embedding_server",
        description="Offline OpenAI-compatible embeddings server (deterministic vectors).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=DEFAULT_LATENCY, help="seconds")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM)
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the parent process exits (stdin closes or the parent pid changes)",
    )
    args = parser.parse_args(argv)
    if args.dim < 1 or args.latency < 0:
        parser.error("--dim must be >= 1 and --latency >= 0")
    _raise_fd_limit()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if args.exit_with_parent:
            from vd_integrations.testing.lite_server import exit_with_parent

            exit_with_parent(lambda: loop.call_soon_threadsafe(stop.set), grace=10.0)
        await serve(args.host, args.port, latency=args.latency, dim=args.dim, stop=stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())

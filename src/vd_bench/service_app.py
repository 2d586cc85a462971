"""The service workload's web app: ``python -m vd_bench.service_app``, one child process.

A Starlette app over one LangChain store, served by uvicorn on ``127.0.0.1`` at a free
port (the port is printed as ``@@listening PORT`` once it accepts connections). It runs
with the interpreter of the store under test: ours, or the upstream store in its compare
environment. It opens the store on a fresh collection, fills it with the population,
prepares the physical floor (:mod:`vd_bench.floor`) on the same server, and serves until
``POST /shutdown``, or until the benchmark that started it is gone (it watches a pipe from
its parent, as the other servers do); then it drops its collections and exits. The
clients are in :mod:`vd_bench.service`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from vd_bench.runner import BenchConfig, endpoint_for, error_text
from vd_bench.subjects import SERVICE, SUBJECTS, Endpoint, K, make_subject

__all__ = [
    "LISTENING_PREFIX",
    "META_PREFIX",
    "build_app",
    "listening_socket",
    "main",
    "service_endpoint",
]

LISTENING_PREFIX = "@@listening "
META_PREFIX = "@@meta "
log = logging.getLogger(__name__)


def service_endpoint(subject: str, config: BenchConfig, base_url: str | None) -> Endpoint:
    """Where the service's store lives: ``config.uri``, or an embedded Lite file of its own
    (the benchmark's process may still hold the subject's other file open)."""
    endpoint = endpoint_for(subject, config, base_url, None)
    if config.uri:
        return endpoint
    return replace(endpoint, uri=str(Path(endpoint.uri).with_name(f"{subject}_{SERVICE}.db")))


def _json_response(payload: Any, status: int = 200) -> Any:
    from starlette.responses import Response

    body = json.dumps(payload, default=str)
    return Response(body, status_code=status, media_type="application/json")


def build_app(
    store: Any,
    mode: str,
    *,
    count: Callable[[], int],
    floor: Any = None,
    on_shutdown: Callable[[], None] = lambda: None,
) -> Any:
    """The Starlette app over one LangChain ``store``.

    - ``POST /search`` ``{"query": str, "k": int}`` -> ``{"documents": [{text, metadata}]}``
    - ``POST /add`` ``{"text": str, "metadata": {...}}`` -> ``{"ids": [...]}``
    - ``GET /count`` -> ``{"rows": int}``; ``GET /health``
    - ``POST /floor`` ``{"workload": "search"|"add", "n": int}``: the physical floor sample
      (``floor``, a prepared :class:`vd_bench.floor.FloorMeter`), measured on this loop
    - ``POST /ceiling/search`` and ``/ceiling/add``: the phase's body plus ``"sleep_s"``;
      sleeps that long and answers as the real endpoint would, without the store: what
      this web stack and these clients reach with a store at the physical floor
    - ``POST /shutdown``: calls ``on_shutdown``

    ``mode`` ``async`` awaits the store's async methods; ``sync`` runs its sync methods in
    Starlette's thread pool. A failing call answers 500 with ``{"error": ...}``.
    """
    from langchain_core.documents import Document
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.routing import Route

    if mode not in ("sync", "async"):
        raise ValueError(f"mode must be 'sync' or 'async', got {mode!r}")

    async def search(request: Any) -> Any:
        body = await request.json()
        try:
            k = int(body.get("k", K))
            if mode == "async":
                docs = await store.asimilarity_search(body["query"], k=k)
            else:
                docs = await run_in_threadpool(store.similarity_search, body["query"], k=k)
        except Exception as exc:
            return _json_response({"error": error_text(exc)}, 500)
        found = [{"text": d.page_content, "metadata": d.metadata} for d in docs]
        return _json_response({"documents": found})

    async def add(request: Any) -> Any:
        body = await request.json()
        doc = Document(page_content=body["text"], metadata=body.get("metadata") or {})
        try:
            if mode == "async":
                ids = await store.aadd_documents([doc])
            else:
                ids = await run_in_threadpool(store.add_documents, [doc])
        except Exception as exc:
            return _json_response({"error": error_text(exc)}, 500)
        return _json_response({"ids": [str(i) for i in ids]})

    async def rows(request: Any) -> Any:
        try:
            return _json_response({"rows": await run_in_threadpool(count)})
        except Exception as exc:
            return _json_response({"error": error_text(exc)}, 500)

    async def measure_floor(request: Any) -> Any:
        if floor is None:
            return _json_response({"error": "no floor meter"}, 404)
        body = await request.json()
        try:
            sample = await floor.measure(body["workload"], int(body["n"]))
        except Exception as exc:
            return _json_response({"error": error_text(exc)}, 500)
        return _json_response(asdict(sample))

    async def ceiling(request: Any) -> Any:
        body = await request.json()
        await asyncio.sleep(float(body["sleep_s"]))
        if request.path_params["phase"] == "search":
            doc = {"text": body.get("query", ""), "metadata": {}}
            return _json_response({"documents": [doc] * int(body.get("k", K))})
        return _json_response({"ids": ["0"]})

    async def health(request: Any) -> Any:
        return _json_response({"status": "ok", "mode": mode})

    async def shutdown(request: Any) -> Any:
        on_shutdown()
        return _json_response({"status": "stopping"})

    return Starlette(
        routes=[
            Route("/search", search, methods=["POST"]),
            Route("/add", add, methods=["POST"]),
            Route("/count", rows, methods=["GET"]),
            Route("/floor", measure_floor, methods=["POST"]),
            Route("/ceiling/{phase:str}", ceiling, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/shutdown", shutdown, methods=["POST"]),
        ]
    )


def listening_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port, for uvicorn to listen on.

    It names its protocol (``IPPROTO_TCP``): asyncio sets ``TCP_NODELAY`` only on
    connections whose socket says TCP, and a plain ``socket(AF_INET, SOCK_STREAM)`` says 0.
    Without it, Nagle's algorithm holds each response's body until the client acknowledges
    its headers, which Linux delays by up to 40 ms: measured here, 280 instead of 342
    requests/s for 50 clients of an endpoint that only sleeps."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # loopback only, a free port
    return sock


async def _serve(server: Any, sock: socket.socket, cleanup: Callable[[], Any]) -> None:
    port = sock.getsockname()[1]
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 60
        while not server.started and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if not server.started:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        sys.stdout.write(f"{LISTENING_PREFIX}{port}\n")
        sys.stdout.flush()
        await task
    finally:
        await cleanup()


def main(argv: list[str] | None = None) -> int:
    """``python -m vd_bench.service_app --subject NAME --config JSON --mode async``: open the
    subject's store, fill it with the population, serve the app until ``/shutdown``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--subject", required=True, choices=sorted(SUBJECTS))
    parser.add_argument("--config", required=True, help="BenchConfig as JSON")
    parser.add_argument("--mode", choices=("sync", "async"), default="async")
    parser.add_argument("--collection", default=None)
    parser.add_argument("--embeddings-base-url", default=None)
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="exit when stdin closes (the parent's pipe)"
    )
    args = parser.parse_args(argv)
    stopper: dict[str, Any] = {}

    def stop_from_any_thread() -> None:
        loop, server = stopper.get("loop"), stopper.get("server")
        if loop is None or server is None:
            os._exit(1)  # still setting up: nothing to shut down cleanly
        # a closed loop means the process is ending anyway
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(setattr, server, "should_exit", True)

    if args.exit_with_parent:
        from vd_integrations.testing.lite_server import exit_with_parent

        exit_with_parent(stop_from_any_thread, grace=10.0)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    # pymilvus logs every failed RPC; embedded Milvus Lite's gRPC server each call it lacks
    for noisy in ("pymilvus", "grpc"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)

    import uvicorn

    from vd_bench.floor import FLOOR_COLLECTION, FloorMeter
    from vd_bench.meta import package_versions

    config = BenchConfig(**json.loads(args.config))
    endpoint = service_endpoint(args.subject, config, args.embeddings_base_url)
    subject = make_subject(args.subject, endpoint, config.population)
    if subject.integration != "langchain":
        parser.error(f"the service workload runs LangChain stores, not {args.subject}")
    collection = args.collection or f"bench_{args.subject}_{SERVICE}_{args.mode}"
    store = subject.open(SERVICE, collection)
    subject.populate(store, "search", 0)  # the population every search runs against
    meter = None
    if config.floor:
        meter = FloorMeter(
            endpoint.uri,
            embeddings_base_url=endpoint.embeddings_base_url,
            embeddings_api_key=endpoint.embeddings_api_key,
            model=endpoint.embeddings_model,
            population=subject.base_population,
            collection=f"{FLOOR_COLLECTION}_{collection}",
        ).prepare()
    sys.stdout.write(META_PREFIX + json.dumps(package_versions()) + "\n")
    sys.stdout.flush()

    sock = listening_socket()

    def request_stop() -> None:
        server.should_exit = True

    app = build_app(
        store,
        args.mode,
        count=lambda: subject.count(store),
        floor=meter,
        on_shutdown=request_stop,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )

    async def cleanup() -> None:
        if meter is not None:
            try:
                await meter.aclose()
            except Exception as exc:
                log.warning("dropping the floor collection failed: %s", exc)
        try:
            await subject.settle(store)
            await asyncio.to_thread(subject.drop, store)
            await subject.aclose(store)
            await asyncio.to_thread(subject.close, store)
        except Exception as exc:
            log.warning("closing the service's store failed: %s", exc)

    async def run() -> None:
        stopper["loop"], stopper["server"] = asyncio.get_running_loop(), server
        await _serve(server, sock, cleanup)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())

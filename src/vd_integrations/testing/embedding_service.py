"""The offline embeddings server's state and routing, independent of the HTTP transport.

:class:`EmbeddingService` answers ``POST /v1/embeddings`` (after ``latency`` seconds of
``asyncio.sleep``, so concurrent requests overlap), ``GET /stats``, ``POST /stats/reset``,
``POST /faults`` (fail the next embedding requests with an HTTP error) and ``GET /health``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from dataclasses import dataclass

from vd_integrations.testing.embedding_api import (
    BadRequest,
    Response,
    encode_embeddings,
    error_response,
    json_response,
    parse_request,
    request_tokens,
)
from vd_integrations.testing.embedding_vectors import DEFAULT_DIM, embed_inputs

__all__ = ["DEFAULT_LATENCY", "EmbeddingService"]

DEFAULT_LATENCY = 0.1


_FAULT_BODIES: dict[int, tuple[str, str, str | None]] = {
    429: (
        "Rate limit reached for requests (injected by the offline embeddings server). "
        "Please try again later.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


@dataclass
class _Fault:
    status: int
    retry_after: float | None


class EmbeddingService:
    """The server's state and request handling, independent of the HTTP transport."""

    def __init__(self, *, dim: int = DEFAULT_DIM, latency: float = DEFAULT_LATENCY) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}.")
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}.")
        self.dim = dim
        self.latency = latency
        self.faults: deque[_Fault] = deque()
        self.in_flight = 0
        self.connections = 0
        self.reset()

    def reset(self) -> None:
        """Zero the counters (``max_in_flight`` restarts at the current load); drop faults."""
        self.requests = 0
        self.inputs = 0
        self.faulted = 0
        self.errors = 0
        self.max_in_flight = self.in_flight
        self.faults.clear()

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "inputs": self.inputs,
            "faulted": self.faulted,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "pending_faults": len(self.faults),
            "connections": self.connections,
        }

    async def handle(self, method: str, path: str, body: bytes) -> Response:
        """Route one request."""
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if path in ("/v1/embeddings", "/embeddings") and method == "POST":
            return await self._embeddings(body)
        if path == "/stats" and method == "GET":
            return json_response(200, self.stats())
        if path == "/stats/reset" and method == "POST":
            self.reset()
            return json_response(200, self.stats())
        if path == "/faults" and method == "POST":
            return self._add_faults(body)
        if path == "/health" and method == "GET":
            return json_response(200, {"status": "ok", "dim": self.dim, "latency": self.latency})
        return error_response(404, f"Invalid URL ({method} {path})")

    def _add_faults(self, body: bytes) -> Response:
        try:
            spec = json.loads(body or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("expected a JSON object")
            status, count = spec.get("status"), spec.get("count", 1)
            retry_after = spec.get("retry_after")
            if not isinstance(status, int) or not 400 <= status <= 599:
                raise ValueError(f"status must be an HTTP error status 400-599, got {status!r}")
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"count must be an int >= 0, got {count!r}")
            if retry_after is not None and (
                not isinstance(retry_after, (int, float)) or retry_after < 0
            ):
                raise ValueError(f"retry_after must be seconds >= 0, got {retry_after!r}")
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return error_response(400, f"Invalid fault specification: {exc}.")
        self.faults.extend(_Fault(status, retry_after) for _ in range(count))
        return json_response(200, {"pending_faults": len(self.faults)})

    def _fault_response(self, fault: _Fault) -> Response:
        message, type_, code = _FAULT_BODIES.get(
            fault.status, (f"Injected fault (HTTP {fault.status}).", "server_error", None)
        )
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = str(math.ceil(fault.retry_after))
            headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
        return error_response(fault.status, message, type_, None, code, headers)

    async def _embeddings(self, body: bytes) -> Response:
        if self.faults:
            self.faulted += 1
            return self._fault_response(self.faults.popleft())
        try:
            inputs, model, dim, fmt = parse_request(body, self.dim)
            tokens = request_tokens(inputs)
        except BadRequest as exc:
            self.errors += 1
            return error_response(400, exc.message, param=exc.param, code=exc.code)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            vectors = embed_inputs(inputs, dim)
        finally:
            self.in_flight -= 1
        self.requests += 1
        self.inputs += len(inputs)
        return Response(200, encode_embeddings(vectors, fmt, model, tokens))

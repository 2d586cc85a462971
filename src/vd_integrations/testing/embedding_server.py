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
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from vd_integrations.core.base_error import VdIntegrationsError

if TYPE_CHECKING:
    from vd_integrations.embeddings.openai_client import OpenAIEmbeddingClient

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

DEFAULT_DIM = 1536  # like text-embedding-3-small
DEFAULT_LATENCY = 0.1
MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
MAX_BODY_BYTES = 256 * 1024 * 1024
MAX_TOKEN_ID = 2**31 - 1
_TEXT_FEATURES = 8  # hashed features of the whole text (the per-text component)
_TEXT_WEIGHT = 0.25  # their weight relative to one word occurrence
_WORD = re.compile(r"\w+")
# For ASCII text, ``translate`` + ``split`` yields exactly the ``\w+`` tokens, 4x faster.
_ASCII_NON_WORD = str.maketrans(
    {c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")}
)
_REFERENCE = "Please check the API reference: https://platform.openai.com/docs/api-reference."


# --------------------------------------------------------------------------------------------
# Vectors (pure)
# --------------------------------------------------------------------------------------------


def _hash64(data: bytes, person: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, person=person).digest(), "little")


class _Featurizer:
    """Signed feature hashing into ``dim`` buckets; word codes cached (``±(bucket + 1)``)."""

    _MAX_CACHE = 1_000_000

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._codes: dict[str, int] = {}

    def _code(self, feature: str) -> int:
        h = _hash64(feature.encode("utf-8"), b"vd-emb-word")
        code = h % self.dim + 1
        code = code if h >> 63 else -code
        if len(self._codes) >= self._MAX_CACHE:
            self._codes.clear()
        self._codes[feature] = code
        return code

    def features(self, item: str | Sequence[int]) -> list[str]:
        if isinstance(item, str):
            if item.isascii():
                return item.lower().translate(_ASCII_NON_WORD).split()
            return _WORD.findall(item.lower())
        return [f"#{token}" for token in item]

    def embed(self, inputs: Sequence[str | Sequence[int]]) -> np.ndarray:
        n, dim = len(inputs), self.dim
        codes: list[int] = []
        counts: list[int] = []
        cache = self._codes
        text_codes = np.empty((n, _TEXT_FEATURES), dtype=np.uint64)
        for i, item in enumerate(inputs):
            words = self.features(item)
            found = list(map(cache.get, words))
            if None in found:  # first sighting of some words: hash them once
                found = [c or self._code(w) for c, w in zip(found, words, strict=True)]
            codes.extend(cast("list[int]", found))  # no None left
            counts.append(len(words))
            raw = item.encode("utf-8") if isinstance(item, str) else _token_bytes(item)
            digest = hashlib.blake2b(raw, digest_size=8 * _TEXT_FEATURES, person=b"vd-emb-text")
            text_codes[i] = np.frombuffer(digest.digest(), dtype="<u8")
        rows = np.repeat(np.arange(n, dtype=np.int64), counts)
        signed = np.asarray(codes, dtype=np.int64)
        flat = rows * dim + (np.abs(signed) - 1)
        mat = np.bincount(flat, weights=np.sign(signed), minlength=n * dim)
        # per-text component: a few signed buckets derived from the whole input
        buckets = (text_codes % np.uint64(dim)).astype(np.int64)
        signs = np.where(text_codes >> np.uint64(63), _TEXT_WEIGHT, -_TEXT_WEIGHT)
        flat_text = (np.arange(n, dtype=np.int64)[:, None] * dim + buckets).ravel()
        mat += np.bincount(flat_text, weights=signs.ravel(), minlength=n * dim)
        mat = mat.reshape(n, dim)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return (mat / norms).astype(np.float32)


def _token_bytes(tokens: Sequence[int]) -> bytes:
    return b"tokens:" + ",".join(map(str, tokens)).encode("ascii")


_FEATURIZERS: dict[int, _Featurizer] = {}


def embed_inputs(inputs: Sequence[str | Sequence[int]], dim: int = DEFAULT_DIM) -> np.ndarray:
    """The server's vectors for ``inputs`` (texts or token-id arrays): ``(n, dim)`` float32.

    Deterministic (blake2b, never Python's salted ``hash``), so the same input gives the
    same vector in every process.
    """
    featurizer = _FEATURIZERS.get(dim)
    if featurizer is None:
        featurizer = _FEATURIZERS[dim] = _Featurizer(dim)
    return featurizer.embed(inputs)


def _approx_tokens(item: str | Sequence[int]) -> int:
    if isinstance(item, str):
        return max(1, math.ceil(len(item) / 4))
    return len(item)


# --------------------------------------------------------------------------------------------
# Request handling (no sockets)
# --------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class _BadRequest(VdIntegrationsError):
    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), headers or {})


def _error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    error = {"message": message, "type": type_, "param": param, "code": code}
    return _json(status, {"error": error}, headers)


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
            return _json(200, self.stats())
        if path == "/stats/reset" and method == "POST":
            self.reset()
            return _json(200, self.stats())
        if path == "/faults" and method == "POST":
            return self._add_faults(body)
        if path == "/health" and method == "GET":
            return _json(200, {"status": "ok", "dim": self.dim, "latency": self.latency})
        return _error(404, f"Invalid URL ({method} {path})")

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
            return _error(400, f"Invalid fault specification: {exc}.")
        self.faults.extend(_Fault(status, retry_after) for _ in range(count))
        return _json(200, {"pending_faults": len(self.faults)})

    def _fault_response(self, fault: _Fault) -> Response:
        message, type_, code = _FAULT_BODIES.get(
            fault.status, (f"Injected fault (HTTP {fault.status}).", "server_error", None)
        )
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = str(math.ceil(fault.retry_after))
            headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
        return _error(fault.status, message, type_, None, code, headers)

    def _parse(self, body: bytes) -> tuple[list[str | list[int]], str, int, str]:
        try:
            request = json.loads(body)
        except ValueError:
            raise _BadRequest(
                "We could not parse the JSON body of your request. The OpenAI API expects a "
                "JSON payload; send Content-Type: application/json with a JSON object."
            ) from None
        if not isinstance(request, dict):
            raise _BadRequest("The request body must be a JSON object.")
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("you must provide a model parameter", "model")
        if "input" not in request:
            raise _BadRequest("'input' is a required property", "input")
        inputs = _parse_input(request["input"])
        dim = request.get("dimensions", self.dim)
        if dim is None:
            dim = self.dim
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= self.dim:
            raise _BadRequest(
                f"Invalid value for 'dimensions' = {dim!r}: must be an integer between 1 and "
                f"{self.dim}.",
                "dimensions",
            )
        fmt = request.get("encoding_format", "float")
        if fmt is None:
            fmt = "float"
        if fmt not in ("float", "base64"):
            raise _BadRequest(
                f"Invalid value for 'encoding_format' = {fmt!r}: supported values are "
                "'float' and 'base64'.",
                "encoding_format",
            )
        return inputs, model, dim, fmt

    async def _embeddings(self, body: bytes) -> Response:
        if self.faults:
            self.faulted += 1
            return self._fault_response(self.faults.popleft())
        try:
            inputs, model, dim, fmt = self._parse(body)
            tokens = [_approx_tokens(item) for item in inputs]
            for i, count in enumerate(tokens):
                if count > MAX_INPUT_TOKENS:
                    raise _BadRequest(
                        f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, "
                        f"however you requested {count} tokens (input[{i}]). Please reduce "
                        "your prompt.",
                        None,
                        "context_length_exceeded",
                    )
            if sum(tokens) > MAX_REQUEST_TOKENS:
                raise _BadRequest(
                    f"Requested {sum(tokens)} tokens, max {MAX_REQUEST_TOKENS} tokens per "
                    "request. Send fewer or shorter inputs per request.",
                    "input",
                    "max_tokens_per_request",
                )
        except _BadRequest as exc:
            self.errors += 1
            return _error(400, exc.message, param=exc.param, code=exc.code)
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
        return Response(200, _encode(vectors, fmt, model, sum(tokens)))


def _parse_input(value: Any) -> list[str | list[int]]:
    invalid = f"'$.input' is invalid. {_REFERENCE}"
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(_is_token(t) for t in value):
        items = [value]  # one token array
    elif isinstance(value, list):
        items = value
    else:
        raise _BadRequest(invalid, "input")
    if not items:
        raise _BadRequest(invalid, "input")
    if len(items) > MAX_INPUTS:
        raise _BadRequest(
            f"Too many inputs: got {len(items)}, the max number of inputs is {MAX_INPUTS}. "
            "Send smaller batches.",
            "input",
        )
    for item in items:
        if isinstance(item, str):
            if not item:
                raise _BadRequest(invalid, "input")
        elif not (isinstance(item, list) and item and all(_is_token(t) for t in item)):
            raise _BadRequest(invalid, "input")
    return items


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_ID


def _encode(vectors: np.ndarray, fmt: str, model: str, tokens: int) -> bytes:
    rows = vectors.astype("<f4", copy=False)
    if fmt == "base64":
        data = [
            b'{"object":"embedding","index":%d,"embedding":"%s"}'
            % (i, base64.b64encode(row.tobytes()))
            for i, row in enumerate(rows)
        ]
    else:
        data = [
            b'{"object":"embedding","index":%d,"embedding":%s}'
            % (i, json.dumps(row.tolist()).encode("ascii"))
            for i, row in enumerate(rows)
        ]
    usage = b'{"prompt_tokens":%d,"total_tokens":%d}' % (tokens, tokens)
    return b'{"object":"list","data":[%s],"model":%s,"usage":%s}' % (
        b",".join(data),
        json.dumps(model).encode("utf-8"),
        usage,
    )


# --------------------------------------------------------------------------------------------
# HTTP/1.1 transport (asyncio streams, keep-alive, Content-Length bodies)
# --------------------------------------------------------------------------------------------

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _write(writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
    head = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}",
        "content-type: application/json",
        f"content-length: {len(response.body)}",
        f"connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)


async def _connection(
    service: EmbeddingService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    service.connections += 1
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                _write(writer, _error(431, "Request headers too large."), False)
                await writer.drain()
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) != 3:
                _write(writer, _error(400, "Malformed HTTP request line."), False)
                await writer.drain()
                return
            method, target, version = parts
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                _write(writer, _error(411, "Send the body with a Content-Length."), False)
                await writer.drain()
                return
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                _write(writer, _error(413, "Invalid or too large Content-Length."), False)
                await writer.drain()
                return
            body = await reader.readexactly(length) if length else b""
            connection = headers.get("connection", "").lower()
            keep_alive = (
                connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
            )
            response = await service.handle(method, target, body)
            _write(writer, response, keep_alive)
            await writer.drain()
            if not keep_alive:
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        return  # the client went away
    finally:
        service.connections -= 1
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _format_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    latency: float = DEFAULT_LATENCY,
    dim: int = DEFAULT_DIM,
    stop: asyncio.Event | None = None,
    announce: bool = True,
) -> None:
    """Serve on ``host:port`` until ``stop`` is set (forever if ``None``).

    With ``announce``, prints ``listening on http://HOST:PORT/v1`` once ready.
    """
    service = EmbeddingService(dim=dim, latency=latency)
    writers: set[asyncio.StreamWriter] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            await _connection(service, reader, writer)
        finally:
            writers.discard(writer)

    server = await asyncio.start_server(on_connect, host, port, backlog=4096, limit=1 << 20)
    bound = server.sockets[0].getsockname()[1]
    if announce:
        print(f"listening on {_format_url(host, bound)}", flush=True)
    stop = stop or asyncio.Event()
    try:
        await stop.wait()
    finally:
        server.close()
        for writer in list(writers):  # idle keep-alive connections would delay shutdown
            writer.close()


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


# --------------------------------------------------------------------------------------------
# Subprocess wrapper and endpoint selection
# --------------------------------------------------------------------------------------------

_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _terminate(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Stop ``proc``: close its lifeline (it exits by itself), then SIGTERM, then SIGKILL."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is not None:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=min(timeout, 5.0))
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


class OfflineEmbeddingServer:
    """The offline embeddings server in its own process (no GIL contention, no event loop
    needed by the caller, so it works in Jupyter). Use as a context manager or call
    :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        latency: float = DEFAULT_LATENCY,
        dim: int = DEFAULT_DIM,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        startup_timeout: float = 30.0,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}.")
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}.")
        self.latency = latency
        self.dim = dim
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._url: str | None = None
        self._finalizer: weakref.finalize | None = None

    def __repr__(self) -> str:
        where = self._url or "not started"
        return f"OfflineEmbeddingServer({where}, latency={self.latency}, dim={self.dim})"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the ``base_url`` for OpenAI clients."""
        if self._url is None:
            raise RuntimeError("The offline embeddings server is not running; call start().")
        return self._url

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def start(self) -> OfflineEmbeddingServer:
        """Start the subprocess and wait for its ``listening on`` line."""
        if self.running:
            return self
        src = str(Path(__file__).resolve().parents[2])  # importable even without an install
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        cmd = [
            sys.executable,
            "-m",
            "vd_integrations.testing.embedding_server",
            *("--host", self.host, "--port", str(self.port)),
            *("--latency", repr(float(self.latency)), "--dim", str(self.dim)),
            "--exit-with-parent",
        ]
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=errors,
                # Its lifeline: only this process holds the write end, so the server sees
                # end of file and exits however this process ends (SIGKILL included).
                stdin=subprocess.PIPE,
                text=True,
                env=env,
                start_new_session=True,
            )
            line = _readline(proc, self.startup_timeout)
            if not line.startswith("listening on "):
                _terminate(proc)
                errors.seek(0)
                detail = errors.read().decode("utf-8", "replace").strip()[-2000:]
                raise RuntimeError(
                    "The offline embeddings server did not start "
                    f"(exit code {proc.returncode}); command: {' '.join(cmd)}\n{detail}"
                )
        assert proc.stdout is not None
        proc.stdout.close()  # it prints nothing else
        self._proc = proc
        self._url = line.removeprefix("listening on ").strip()
        self._finalizer = weakref.finalize(self, _terminate, proc)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the subprocess (SIGKILL if it does not exit within ``timeout``)."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._proc is not None:
            _terminate(self._proc, timeout)
        self._proc = None
        self._url = None

    def __enter__(self) -> OfflineEmbeddingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(
            self.root_url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with _NO_PROXY_OPENER.open(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise RuntimeError(f"{method} {path} failed with HTTP {exc.code}: {detail}") from None

    def stats(self) -> dict[str, int]:
        """Counters: ``requests`` (served embedding requests), ``inputs``, ``faulted``,
        ``errors`` (rejected as invalid), ``in_flight``, ``max_in_flight``,
        ``pending_faults`` and ``connections`` (open now, this request's included)."""
        return self._call("GET", "/stats")

    def reset_stats(self) -> dict[str, int]:
        """Zero the counters and drop pending faults."""
        return self._call("POST", "/stats/reset", {})

    def inject_faults(self, status: int, count: int = 1, retry_after: float | None = None) -> int:
        """Fail the next ``count`` embedding requests with ``status``; returns pending faults."""
        spec: dict[str, Any] = {"status": status, "count": count}
        if retry_after is not None:
            spec["retry_after"] = retry_after
        return self._call("POST", "/faults", spec)["pending_faults"]


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of ``proc``, or ``""`` on EOF / timeout."""
    assert proc.stdout is not None
    stdout = proc.stdout
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


@dataclass
class EmbeddingEndpoint:
    """Where to send embedding requests: the real service or an offline server.

    ``dimensions`` is what :meth:`client` requests (``None``: the model's default).
    """

    base_url: str | None
    api_key: str = field(repr=False)
    server: OfflineEmbeddingServer | None
    offline: bool
    dimensions: int | None = None

    def client(self, **kwargs: Any) -> OpenAIEmbeddingClient:
        """An :class:`~vd_integrations.embeddings.openai_client.OpenAIEmbeddingClient` for this
        endpoint; ``kwargs`` override its settings."""
        from vd_integrations.embeddings.openai_client import OpenAIEmbeddingClient

        kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("dimensions", self.dimensions)
        return OpenAIEmbeddingClient(**kwargs)


@contextlib.contextmanager
def embedding_endpoint(
    latency: float = DEFAULT_LATENCY,
    dim: int = DEFAULT_DIM,
    *,
    offline: bool | None = None,
) -> Iterator[EmbeddingEndpoint]:
    """The real OpenAI service if ``OPENAI_API_KEY`` is set, else an offline server.

    ``offline=True`` always starts the offline server; ``offline=False`` requires the key.
    Against the real service, ``OPENAI_BASE_URL`` is honoured and a ``dim`` other than
    1536 is requested through ``dimensions``.
    """
    key = os.environ.get("OPENAI_API_KEY")
    if offline is False and not key:
        raise RuntimeError(
            "offline=False needs the real service: set OPENAI_API_KEY (and optionally "
            "OPENAI_BASE_URL), or pass offline=None/True to use the offline server."
        )
    if key and not offline:
        yield EmbeddingEndpoint(
            base_url=os.environ.get("OPENAI_BASE_URL") or None,
            api_key=key,
            server=None,
            offline=False,
            dimensions=None if dim == DEFAULT_DIM else dim,
        )
        return
    from vd_integrations.embeddings.openai_client import OFFLINE_API_KEY

    with OfflineEmbeddingServer(latency=latency, dim=dim) as server:
        yield EmbeddingEndpoint(server.base_url, OFFLINE_API_KEY, server, offline=True)


if __name__ == "__main__":
    sys.exit(main())

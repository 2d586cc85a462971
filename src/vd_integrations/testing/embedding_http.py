"""The offline embeddings server's HTTP/1.1 transport: asyncio streams, keep-alive,
Content-Length bodies, each request handed to an :class:`EmbeddingService`."""

from __future__ import annotations

import asyncio
import contextlib

from vd_integrations.testing.embedding_api import Response, error_response
from vd_integrations.testing.embedding_service import DEFAULT_LATENCY, EmbeddingService
from vd_integrations.testing.embedding_vectors import DEFAULT_DIM

__all__ = ["MAX_BODY_BYTES", "serve"]

MAX_BODY_BYTES = 256 * 1024 * 1024

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
                _write(writer, error_response(431, "Request headers too large."), False)
                await writer.drain()
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) != 3:
                _write(writer, error_response(400, "Malformed HTTP request line."), False)
                await writer.drain()
                return
            method, target, version = parts
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                _write(writer, error_response(411, "Send the body with a Content-Length."), False)
                await writer.drain()
                return
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                _write(writer, error_response(413, "Invalid or too large Content-Length."), False)
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

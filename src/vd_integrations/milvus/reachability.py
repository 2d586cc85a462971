"""First contact with a Milvus server: fail fast and clearly when nothing answers there.

gRPC treats a refused connection as transient and keeps reconnecting, so a wrong URI
used to surface only after the retry policy gave up (8-23 s) as "looks transient: retry
later". Before the first client of this process talks to a server, one TCP connection
to it is tried (2 s at most): refused, unresolvable or silent means
:class:`~vd_integrations.core.errors.ServerUnreachableError` naming the URI at once. A server
that answered once is not probed again, so later outages go through the usual retries.
Embedded Milvus Lite files and unix sockets are not probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from urllib.parse import urlsplit

from vd_integrations.core.errors import ServerUnreachableError
from vd_integrations.milvus.config import ConnectionConfig, redact_uri
from vd_integrations.milvus.lite_writes import target_key

__all__ = ["FIRST_CONTACT_TIMEOUT", "acheck_reachable", "check_reachable"]

#: Seconds a first TCP connection may take before the server is reported unreachable.
FIRST_CONTACT_TIMEOUT = 2.0
_answered: set[str] = set()
_guard = threading.Lock()


def _address(config: ConnectionConfig) -> tuple[str, str, int] | None:
    """(key, host, port) to probe, or None when there is nothing to probe."""
    uri = config.uri
    if config.is_embedded or uri.startswith("unix:"):
        return None
    key = target_key(uri, embedded=False)
    with _guard:
        if key in _answered:
            return None
    parts = urlsplit(uri)
    if not parts.hostname:
        return None
    default_port = 443 if parts.scheme == "https" else 19530
    try:
        port = parts.port or default_port
    except ValueError:  # a port that is not a number: pymilvus reports it
        return None
    return key, parts.hostname, port


def _unreachable(config: ConnectionConfig, why: str) -> ServerUnreachableError:
    return ServerUnreachableError(
        f"Connecting to Milvus at {redact_uri(config.uri)!r} failed: {why}, so no server "
        f"answers there. Start Milvus there or fix connection_args['uri'] (for embedded "
        f"Milvus Lite, pass a file path such as './milvus.db')."
    )


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(exc, socket.gaierror):
        return f"its host name does not resolve ({exc.strerror or exc})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"nothing accepted a connection within {timeout:g} s"
    return f"connecting failed ({type(exc).__name__}: {exc})"


def _mark(key: str) -> None:
    with _guard:
        _answered.add(key)


def check_reachable(config: ConnectionConfig, timeout: float | None = None) -> None:
    """Raise :class:`ServerUnreachableError` unless the server accepts a TCP connection."""
    target = _address(config)
    if target is None:
        return
    key, host, port = target
    limit = min(FIRST_CONTACT_TIMEOUT, timeout) if timeout else FIRST_CONTACT_TIMEOUT
    try:
        socket.create_connection((host, port), timeout=limit).close()
    except OSError as exc:
        raise _unreachable(config, _why(exc, limit)) from exc
    _mark(key)


async def acheck_reachable(config: ConnectionConfig) -> None:
    """The async twin of :func:`check_reachable` (bounded by the caller's timeout scope)."""
    target = _address(config)
    if target is None:
        return
    key, host, port = target
    try:
        opening = asyncio.open_connection(host, port)
        _, writer = await asyncio.wait_for(opening, FIRST_CONTACT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise _unreachable(config, _why(exc, FIRST_CONTACT_TIMEOUT)) from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    _mark(key)

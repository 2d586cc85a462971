"""The offline embeddings server in a subprocess (:class:`OfflineEmbeddingServer`), and
:func:`embedding_endpoint`: the real OpenAI service when ``OPENAI_API_KEY`` is set, else
that subprocess.

The subprocess stops when the process that started it exits for any reason (SIGKILL and
crashes included): it watches a pipe from its parent (``--exit-with-parent``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vd_integrations.testing.embedding_service import DEFAULT_LATENCY
from vd_integrations.testing.embedding_vectors import DEFAULT_DIM

if TYPE_CHECKING:
    from vd_integrations.embeddings.openai_client import OpenAIEmbeddingClient

__all__ = ["EmbeddingEndpoint", "OfflineEmbeddingServer", "embedding_endpoint"]

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

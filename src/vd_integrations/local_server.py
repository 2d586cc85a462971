"""Start and stop a Milvus Lite gRPC server on loopback (tests, benchmarks, notebooks).

The server runs in its own process group so that :meth:`MilvusLiteServer.kill`
can take down every process it spawned, the way an operator (or a crash) would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["MilvusLiteServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _milvus_lite_command() -> list[str]:
    exe = shutil.which("milvus-lite", path=str(Path(sys.executable).parent)) or shutil.which(
        "milvus-lite"
    )
    if exe is None:
        raise RuntimeError(
            "The `milvus-lite` command was not found. Install it with `pip install milvus-lite`."
        )
    return [exe]


class MilvusLiteServer:
    """A ``milvus-lite server`` process on ``host:port`` serving ``data_dir``.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. :meth:`kill`
    sends SIGKILL to the whole process group (a crash); :meth:`start` again
    restarts on the same data directory and port.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="milvus-lite-"))
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path else self.data_dir.with_suffix(".log")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The ``http://host:port`` URI both pymilvus clients accept."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> MilvusLiteServer:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            *_milvus_lite_command(),
            "server",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self._proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"milvus-lite server exited with code {self._proc.returncode}; "
                    f"see {self.log_path}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"milvus-lite server did not listen on {self.uri} within {timeout}s")

    def _signal_group(self, sig: int) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def freeze(self) -> None:
        """SIGSTOP the server's process group: it accepts connections but never answers
        (a hung server); :meth:`thaw` resumes it."""
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT the server's process group after :meth:`freeze`."""
        self._signal_group(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the server's whole process group (simulates a crash)."""
        self._signal_group(signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait(timeout=30)
        self._proc = None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server gracefully, escalating to SIGKILL."""
        if self._proc is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self._proc.wait(timeout=30)
        self._proc = None

    def cleanup(self) -> None:
        """Stop the server and delete its data directory if this object created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> MilvusLiteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

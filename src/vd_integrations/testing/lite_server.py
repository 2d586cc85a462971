"""Start and stop a Milvus Lite gRPC server on loopback (tests, benchmarks, notebooks).

The server runs in its own process group so that :meth:`MilvusLiteServer.kill`
can take down every process it spawned, the way an operator (or a crash) would.
It runs under a small supervisor (``python -m vd_integrations.testing.lite_server``) that
stops it when the process that started it exits for any reason, SIGKILL included:
see :func:`exit_with_parent`, which the offline embeddings server uses too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["MilvusLiteServer", "exit_with_parent", "free_port"]


def exit_with_parent(
    on_exit: Callable[[], object], *, grace: float = 10.0, poll: float = 0.5
) -> None:
    """Call ``on_exit`` once the process that started this one is gone, then make sure we go.

    Two signs, watched by daemon threads: standard input reaches end of file (the parent
    holds the write end of a pipe; the kernel closes it however the parent dies, SIGKILL
    included), or this process's parent pid changes (it was re-parented), checked every
    ``poll`` seconds. ``on_exit`` runs once, in a watcher thread; if the process is still
    alive ``grace`` seconds later, it ends with ``os._exit(0)``.
    """
    parent = os.getppid()
    fired = threading.Event()

    def fire() -> None:
        if fired.is_set():
            return
        fired.set()
        try:
            on_exit()
        finally:
            time.sleep(grace)
            os._exit(0)

    def watch_stdin() -> None:
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        fire()

    def watch_parent() -> None:
        while not fired.is_set():
            if os.getppid() != parent:
                fire()
                return
            time.sleep(poll)

    try:
        stdin_is_pipe = stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:
        stdin_is_pipe = False
    if stdin_is_pipe:
        threading.Thread(target=watch_stdin, name="exit-with-parent-stdin", daemon=True).start()
    threading.Thread(target=watch_parent, name="exit-with-parent-ppid", daemon=True).start()


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
    restarts on the same data directory and port. If this process exits without
    stopping it (SIGKILL, a crash), the server stops by itself within a second or so.
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
        # Left behind by a parent that died, a temporary data directory is removed too.
        orphan_cleanup = (
            ["--remove", str(self.data_dir), "--remove", str(self.log_path)]
            if self._owns_dir
            else []
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        # The supervisor stops the server when this process exits, however it exits: it
        # watches the pipe on its stdin, whose write end only this process holds.
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vd_integrations.testing.lite_server",
                *orphan_cleanup,
                "--",
                *cmd,
            ],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_child_env(),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._forget()
                raise RuntimeError(
                    f"milvus-lite server exited with code {code}; see {self.log_path}"
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

    def _forget(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        self._proc = None

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
        self._forget()

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
        self._forget()

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


def _child_env() -> dict[str, str]:
    """This environment, with our ``src`` importable even when the package is not installed."""
    src = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _supervise(command: Sequence[str], remove_when_orphaned: Sequence[str] = ()) -> int:
    """Run ``command`` until it exits or our parent does; returns its exit code.

    The command shares our process group, so signals sent to the group reach both; SIGTERM
    here waits for the command (which got it too) instead of leaving it behind. When the
    parent goes first, the command is stopped and ``remove_when_orphaned`` paths deleted.
    """
    child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL)
    orphaned, cleaned = threading.Event(), threading.Event()

    def end_child() -> None:
        orphaned.set()
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=30)
        for path in map(Path, remove_when_orphaned):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        cleaned.set()

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    exit_with_parent(end_child, grace=0.0)
    code = child.wait()
    if orphaned.is_set():
        cleaned.wait(timeout=60)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vd_integrations.testing.lite_server [--remove PATH]... -- COMMAND [ARGS...]``:
    run COMMAND until it exits, or until the process that started us does."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vd_integrations.testing.lite_server")
    parser.add_argument("--remove", action="append", default=[], help="delete if orphaned")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    return _supervise(command, args.remove)


if __name__ == "__main__":
    sys.exit(main())

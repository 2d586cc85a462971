#!/usr/bin/env python3
"""Run a real Milvus standalone server (PyPI package ``milvus==2.3.5``) on loopback.

No Docker needed: the ``milvus`` wheel (Linux x86_64, 58 MB) bundles the Milvus 2.3.5
standalone binary -- ONE ``milvus`` process with embedded etcd, local-disk storage and
RocksMQ (no MinIO, no Pulsar) -- plus a small Python launcher. This script installs it
into its own virtualenv (nothing from the repo's venv is needed), starts it in its own
process group, waits until it really serves, records how to reach and stop it in a state
file, and stops it again from any later process. Stdlib only; any ``python3 >= 3.10``.

Quick start (from the repo root)::

    python3 scripts/milvus_standalone.py setup     # once: venv + pip install (~13 s)
    python3 scripts/milvus_standalone.py start     # prints http://127.0.0.1:19530
    /work/.venv/bin/python scripts/standalone_smoke.py --uri http://127.0.0.1:19530
    /work/.venv/bin/python <benchmark> --uri http://127.0.0.1:19530
    VD_TEST_MILVUS_URI=http://127.0.0.1:19530 /work/.venv/bin/pytest tests/...
    python3 scripts/milvus_standalone.py status    # JSON: pid, RSS, ports, health
    python3 scripts/milvus_standalone.py stop      # SIGTERM group -> SIGKILL; ports checked

    # or in one go: start, run a command with $MILVUS_URI set ('{uri}' is replaced), stop
    python3 scripts/milvus_standalone.py run --fresh -- /work/.venv/bin/python bench.py --uri {uri}

For benchmarks use ``start --fresh``: every collection left in DIR is loaded again at
each start (slower start, more memory) and the test suites leave many behind.

Commands:

``setup [--venv PATH] [--python EXE] [--force]``
    Create the venv (default ``<repo>/.venv-milvus-standalone``) and
    ``pip install milvus==2.3.5``. Idempotent (a stamp file records what was installed;
    ``--force`` reinstalls). The package is pure stdlib Python (it needs the ``lzma``
    module, checked; no setuptools/pkg_resources, no pymilvus) and the binary ships its
    own libstdc++/libgomp/openblas/..., needing only glibc (manylinux2014).

``start [--data DIR] [--port 19530] [--wait 180] [--fresh] [--extra-config KEY=VALUE ...]``
    Run ``setup`` if needed, then start the server with ``start_new_session=True`` (its
    own process group). The launcher runs the package's own steps (``milvus`` module:
    unpack the binaries into ``DIR/bin``, write ``DIR/configs/milvus.yaml``) and then
    *execs* ``DIR/bin/milvus run standalone``, so the group is that one process. (The
    ``milvus-server`` command would keep a 65 MB Python parent alive, SIGKILL Milvus 1 s
    after a Ctrl-C, and silently move to another port when the wanted one still has
    TIME_WAIT sockets after a restart.) Ports: ``--port`` (gRPC and REST) is pinned --
    start fails rather than moving; the metrics / ``/healthz`` port is the first free
    one from 9091, internal ports the first free from their defaults; components
    advertise 127.0.0.1. Defaults added to milvus.yaml (``--extra-config`` overrides):
    ``common.session.ttl=10`` (see restarts below), ``common.gracefulStopTimeout=5``,
    ``log.stdout=false`` (Milvus logs to ``DIR/logs``, rotated; the console log
    ``DIR/standalone.log`` keeps launcher output, panics and stderr).
    Ready means: the port accepts TCP, ``GET http://127.0.0.1:<metrics>/healthz`` says
    ``OK``, the REST API answers, and a warm-up over REST (create a 2-d collection, wait
    until loaded, insert, search, drop) succeeds -- no pymilvus involved. ``/healthz`` is
    OK long before a first collection can be served after a restart, so without the
    warm-up a benchmark would time the server's recovery. Prints the URI as the only
    stdout line (``URI=$(python3 scripts/milvus_standalone.py start)``). Already
    running on DIR: prints its URI, exit 0. ``--fresh`` first deletes ``DIR/data``
    (collections and etcd metadata), keeping the unpacked binaries.
    Default DIR: ``<repo>/.milvus-standalone``; state file ``DIR/standalone.json``.

``stop [--data DIR] [--timeout 15]``
    ONE SIGTERM to the process group; Milvus 2.3's clean shutdown often stalls, and it
    force-quits after ``common.gracefulStopTimeout`` (5 s); SIGKILL if anything is still
    alive after ``--timeout``. Also kills leftover processes running ``DIR/bin/milvus``
    (e.g. from a run whose state file was lost), waits until every port it listened on
    is closed, removes the state file. Exit 1 if something could not be stopped.

``status [--data DIR]``
    JSON: running / healthy, URI, processes with RSS, listening ports. Exit 0 when
    running and healthy, 3 when stopped, 1 when running but not healthy.

Python API (load the file by path; it is not part of the package)::

    import importlib.util
    path = "scripts/milvus_standalone.py"
    spec = importlib.util.spec_from_file_location("milvus_standalone", path)
    ms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ms)

    with ms.MilvusStandalone(port=19530, fresh=True) as server:  # or reuses a running one
        run_benchmark(server.uri)                                # "http://127.0.0.1:19530"
    # stopped on exit -- unless it was already running before the ``with``

    server = ms.MilvusStandalone().start(); server.status(); server.stop()

Measured here (2 cores, 24 GiB, Python 3.11, Debian): setup 13 s (venv 8 s + 58 MB
download); first start on a new DIR ~12 s (unpacks ~250 MB into ``DIR/bin``);
``start --fresh`` 6-13 s; restart on the same DIR 17-19 s (waits for the previous
run's sessions, see below); stop ~5.5 s. RSS: ~220 MB idle, ~250 MB after the smoke
test, peak ~600 MB while running the test suites. Disk: 81 MB venv + 250 MB ``DIR/bin``
+ data (RocksMQ keeps up to 3 days / 8 GB of messages) + ``DIR/logs``.

Troubleshooting:
    * "port 19530 is in use": another Milvus (Lite, Docker, a previous run) has it. Try
      ``status`` / ``stop`` (same ``--data``), ``ss -ltnp | grep 19530`` to find the
      owner, or ``start --port 19540``.
    * "port 2380 is in use": one Milvus standalone per machine -- its embedded etcd's
      peer port 2380 is fixed (a second instance crashes at startup).
    * Restarts on the same DIR take ~17 s, or 30-60 s with ``common.session.ttl`` at
      Milvus' default 30: Milvus 2.3 leaves its node sessions in etcd when it stops (here,
      after every stop, clean or not), and a new server waits for their leases to expire
      before it can create or load a collection. ``start --fresh`` avoids that (and drops data).
    * Start fails or times out: read ``DIR/standalone.log`` and the newest
      ``DIR/logs/standalone-*.log``; the error is usually near the end. A data dir
      written by another Milvus version can keep etcd from starting: ``start --fresh``.
    * Internal ports: etcd 2379/2380 (loopback only), 9091, 19529, 19531, 53100, 13333,
      21121, 21123, 21124 (moved up when taken; ``status`` shows the actual ones).
      Milvus 2.3 has no listen-address option: its gRPC/HTTP listeners bind ALL
      interfaces, only the advertised addresses are 127.0.0.1. Don't run it on an
      exposed host without a firewall.
    * "No space left": the first start needs ~250 MB free in DIR, plus data and logs.
    * Stale state after a crash / reboot: ``stop`` cleans up (it checks the recorded pid
      still runs Milvus before signalling anything).
    * ``[milvus] <defunct>`` in ``ps`` after ``stop``, in a container whose PID 1 does
      not reap orphans: harmless (no memory, no ports); ``stop``/``status`` ignore them.
    * ``python -m venv`` fails on Debian/Ubuntu: ``apt-get install python3-venv``.
    * Not Linux x86_64: the wheel has no binary for it; use Docker instead.

Differences from Milvus Lite that matter when testing against it: inserting an existing
primary key keeps both rows (use upsert); results with equal scores come back in no
particular order; reads follow the consistency level: ``Session`` (our stores' default)
gives read-your-writes for inserts and upserts, but NOT for deletes on Milvus 2.3 (its
Delete reply carries timestamp 0, so a deleted row stays visible ~0.5 s), ``Bounded``
(pymilvus' default for collections it creates) may lag up to seconds, ``Strong`` sees
everything acknowledged. Milvus 2.3 also lacks ``IS NULL`` (nullable fields came in
2.5) and rejects a bare ``false`` as a filter.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DATA", "DEFAULT_VENV", "MILVUS_VERSION", "MilvusStandalone", "setup_venv"]

MILVUS_VERSION = "2.3.5"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO / ".venv-milvus-standalone"
DEFAULT_DATA = REPO / ".milvus-standalone"
DEFAULT_PORT = 19530
DEFAULT_METRICS_PORT = 9091
ETCD_PEER_PORT = 2380  # not configurable through the milvus package's config template
HOST = "127.0.0.1"
STATE_NAME = "standalone.json"
LOG_NAME = "standalone.log"
STAMP_NAME = ".milvus-standalone-stamp.json"
# milvus.yaml overrides applied on every start (``--extra-config`` wins).
_DEFAULT_CONFIG = {
    # A stopped or killed server leaves its node sessions in etcd until their lease
    # expires, and the next start on the same data dir waits for that (30 s by default).
    "common.session.ttl": 10,
    # Milvus 2.3's clean shutdown often hangs in QueryCoord; it force-quits after this (s)
    "common.gracefulStopTimeout": 5,
    # Milvus logs to DIR/logs (rotated); don't duplicate all of it into the console log
    "log.stdout": "false",
    # addresses the components advertise to each other (default: first unicast interface)
    **{
        f"{role}.ip": HOST
        for role in (
            "rootCoord",
            "proxy",
            "queryCoord",
            "queryNode",
            "indexNode",
            "dataCoord",
            "dataNode",
        )
    },
}

# Runs in the milvus venv: the package's own config + unpack steps (what `milvus-server`
# does), then exec the binary so that it *is* the process we started. Port probes use
# SO_REUSEADDR like Go's listeners, so a port in TIME_WAIT after a restart is not "taken".
_LAUNCHER = r"""
import json, os, socket, sys
import milvus

opts = json.loads(sys.argv[1])

def try_bind_port(self, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None

milvus.MilvusServerConfig.try_bind_port = try_bind_port
config = milvus.MilvusServerConfig()
# a port in `configs` is pinned: resolve() fails instead of moving to the next free one
config.configs.update(data_dir=opts["data_dir"], proxy_port=opts["port"])
for key, value in opts["extra_config"].items():
    if key in config.configurable_items and config.get_type(key) is int:
        value = int(value)
    config.set(key, value)
config.resolve()
base = config.base_data_dir
milvus._initialize_data_files(base)
exe = os.path.join(base, "bin", "milvus")
env = dict(os.environ)
env.update(DEPLOY_MODE="STANDALONE", METRICS_PORT=str(opts["metrics_port"]),
           MILVUS_RUN_DIR=os.path.join(base, "run"))
env["LD_LIBRARY_PATH"] = os.pathsep.join(
    p for p in (os.path.join(base, "bin"), os.environ.get("LD_LIBRARY_PATH")) if p)
ports = {k: config.get(k) for k in config.configurable_items if k.endswith("_port")}
print("milvus-standalone launcher: exec", exe, json.dumps(ports), flush=True)
os.chdir(base)
os.execve(exe, [exe, "run", "standalone"], env)
"""


def _log(message: str) -> None:
    print(f"[milvus-standalone] {message}", file=sys.stderr, flush=True)


def _ignore_dir(path: Path) -> None:
    """Keep git away from a directory we create inside the repo."""
    marker = path / ".gitignore"
    if not marker.exists():
        marker.write_text("# created by scripts/milvus_standalone.py\n*\n")


# ------------------------------------------------------------------------------------------
# setup
# ------------------------------------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def setup_venv(
    venv: str | os.PathLike[str] | None = None, *, python: str | None = None, force: bool = False
) -> Path:
    """Create ``venv`` with ``milvus==MILVUS_VERSION`` (once); return its python."""
    venv = Path(venv or DEFAULT_VENV).absolute()
    vpy = _venv_python(venv)
    stamp = venv / STAMP_NAME
    if not force and vpy.exists() and stamp.exists():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(stamp.read_text()).get("milvus") == MILVUS_VERSION:
                return vpy
    if not (sys.platform.startswith("linux") and os.uname().machine == "x86_64"):
        _log(f"warning: the milvus {MILVUS_VERSION} wheel only has a Linux x86_64 binary")
    t0 = time.monotonic()
    if force or not vpy.exists():
        _log(f"creating venv {venv}")
        clear = ["--clear"] if force else []
        subprocess.run([python or sys.executable, "-m", "venv", *clear, str(venv)], check=True)
    _ignore_dir(venv)
    _log(f"pip install milvus=={MILVUS_VERSION}")
    pip = [str(vpy), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, f"milvus=={MILVUS_VERSION}"], check=True, stdout=sys.stderr)
    # Only stdlib is needed, but lzma is optional in source-built Pythons.
    check = subprocess.run(
        [str(vpy), "-c", "import lzma, milvus; print(milvus.__version__)"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0 or check.stdout.strip() != MILVUS_VERSION:
        raise RuntimeError(
            f"milvus {MILVUS_VERSION} does not import in {venv}: "
            f"{check.stderr.strip() or check.stdout.strip()}"
        )
    seconds = time.monotonic() - t0
    stamp.write_text(
        json.dumps({"milvus": MILVUS_VERSION, "installed_at": time.time(), "seconds": seconds})
    )
    _log(f"installed in {seconds:.1f}s")
    return vpy


# ------------------------------------------------------------------------------------------
# /proc and socket helpers (Linux)
# ------------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of ``pid``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def _proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _proc_rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _live(pid: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] != "Z"


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    return [p for p in _all_pids() if (st := _proc_stat(p)) and st[2] == pgid and st[0] != "Z"]


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _binary_processes(data_dir: Path) -> list[int]:
    """Live processes running ``data_dir/bin/milvus``, in any process group."""
    binary = str(data_dir / "bin" / "milvus")
    found = []
    for pid in _all_pids():
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)") == binary and _live(pid):
                found.append(pid)
    return found


def _listening_ports(pids: list[int]) -> list[int]:
    """TCP ports in LISTEN state owned by ``pids`` (/proc/net/tcp{,6} x socket inodes)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:  # 0A = LISTEN
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def _port_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_free(port: int) -> bool:
    """Nothing listens on ``port`` on any interface (TIME_WAIT leftovers are fine)."""
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((addr, port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in (97, 99):  # no IPv6 here
                continue
            return False
    return True


def _http_get(url: str, timeout: float = 2.0, body: Any = None) -> tuple[int, str]:
    """GET (or POST ``body`` as JSON) on loopback: (HTTP status, text); status 0 = no answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # loopback only
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (OSError, ValueError):
        return 0, ""


def _rest(uri: str, path: str, body: Any = None, timeout: float = 30.0) -> dict[str, Any]:
    """Milvus 2.3 RESTful API v1 (served on the gRPC port): the JSON answer, {} if none."""
    status, text = _http_get(f"{uri}/v1/vector/{path}", timeout=timeout, body=body)
    try:
        answer = json.loads(text) if status == 200 else {}
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


# ------------------------------------------------------------------------------------------
# the server
# ------------------------------------------------------------------------------------------


class MilvusStandalone:
    """A Milvus 2.3.5 standalone server on ``127.0.0.1:port`` serving ``data_dir``.

    ``start()`` reuses a server already running on ``data_dir`` (found through its state
    file, possibly started by another process); ``stop()`` stops it whoever started it.
    As a context manager it stops on exit only a server it started itself.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int = DEFAULT_PORT,
        venv: str | os.PathLike[str] | None = None,
        python: str | None = None,
        extra_config: dict[str, Any] | None = None,
        fresh: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir or DEFAULT_DATA).absolute()
        self.port = int(port)
        self.venv = Path(venv or DEFAULT_VENV).absolute()
        self.python = python
        self.extra_config = {**_DEFAULT_CONFIG, **(extra_config or {})}
        self.fresh = fresh
        self._proc: subprocess.Popen[bytes] | None = None
        self._owns = False
        state = self.state()
        if state and self._alive(state):
            self.port = int(state["port"])  # a running server decides the port

    def __repr__(self) -> str:
        return f"MilvusStandalone(uri={self.uri!r}, data_dir={str(self.data_dir)!r})"

    # ----- paths / state ----------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_NAME

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    def state(self) -> dict[str, Any] | None:
        """The state file's content (None when there is none)."""
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def _write_state(self, **fields: Any) -> None:
        state = {**(self.state() or {}), **fields}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.poll()

    def _alive(self, state: dict[str, Any] | None) -> bool:
        """The recorded process still runs and is ours (guards against pid reuse)."""
        self._reap()
        if not state or not state.get("pgid"):
            return False
        pgid = int(state["pgid"])
        if not _group_members(pgid):
            return False
        # the group leader is the launcher, then (after exec) the milvus binary itself
        leader = _proc_cmdline(pgid)
        return not leader or "milvus" in leader

    def _pids(self, state: dict[str, Any] | None) -> list[int]:
        group = _group_members(int(state["pgid"])) if self._alive(state) else []
        return sorted(set(group) | set(_binary_processes(self.data_dir)))

    def _configured_ports(self) -> dict[str, int]:
        """Ports the launcher wrote into ``configs/milvus.yaml`` (section -> port)."""
        ports: dict[str, int] = {}
        try:
            lines = (self.data_dir / "configs" / "milvus.yaml").read_text().splitlines()
        except OSError:
            return ports
        section = ""
        for line in lines:
            if line and not line[0].isspace() and not line.startswith("#"):
                section = line.split(":", 1)[0]
            elif match := re.match(r"  (port|internalPort): *(\d+)", line):
                ports.setdefault(f"{section}.{match.group(1)}", int(match.group(2)))
        return ports

    # ----- health ---------------------------------------------------------------------

    def _health(self, metrics_port: int | None) -> dict[str, bool]:
        tcp = _port_accepts(self.port)
        healthz = False
        if metrics_port:
            status, body = _http_get(f"http://{HOST}:{metrics_port}/healthz")
            healthz = status == 200 and "OK" in body
        rest = False
        if tcp:
            status, body = _http_get(f"{self.uri}/v1/vector/collections")
            with contextlib.suppress(ValueError, AttributeError):
                rest = status == 200 and json.loads(body).get("code") == 200
        return {"grpc_port": tcp, "healthz": healthz, "rest": rest}

    def _warm_up(self, deadline: float) -> bool:
        """Create, load, write, search and drop a tiny collection over REST.

        ``/healthz`` is OK well before the server can serve a first collection: after a
        restart on the same data dir, the previous run's node sessions stay registered in
        etcd until their lease expires, and the first create/load waits for that. Doing
        it here makes "ready" mean ready, so benchmarks do not time the server's warm-up.
        """
        name = f"_standalone_warmup_{os.getpid()}"
        remaining = max(1.0, deadline - time.monotonic())
        try:
            created = _rest(
                self.uri,
                "collections/create",
                {"collectionName": name, "dimension": 2, "metricType": "L2"},
                timeout=remaining,
            )
            if created.get("code") != 200:
                return False
            loaded = ""
            while time.monotonic() < deadline:
                info = _rest(self.uri, f"collections/describe?collectionName={name}")
                loaded = (info.get("data") or {}).get("load", "")
                if loaded == "LoadStateLoaded":
                    break
                time.sleep(0.2)
            else:
                return False
            body = {"collectionName": name, "data": [{"vector": [0.1, 0.2]}]}
            if _rest(self.uri, "insert", body, timeout=remaining).get("code") != 200:
                return False
            body = {"collectionName": name, "vector": [0.1, 0.2], "limit": 1}
            return _rest(self.uri, "search", body, timeout=remaining).get("code") == 200
        finally:
            _rest(self.uri, "collections/drop", {"collectionName": name}, timeout=30)

    @property
    def running(self) -> bool:
        """Some process of this server (or an orphan running DIR/bin/milvus) is alive."""
        return bool(self._pids(self.state()))

    def healthy(self) -> bool:
        state = self.state() or {}
        return self.running and all(self._health(state.get("metrics_port")).values())

    # ----- start ----------------------------------------------------------------------

    def start(self, wait: float = 180.0) -> MilvusStandalone:
        """Start (or reuse) the server and wait until it serves; returns ``self``."""
        state = self.state()
        if self._alive(state):
            assert state is not None
            if all(self._health(state.get("metrics_port")).values()):
                _log(f"already running on {self.uri} (pid {state['pid']})")
                return self
            _log("a server is running on this data dir but is not healthy: restarting it")
            self.stop()
        elif state is not None or _binary_processes(self.data_dir):
            self.stop()  # stale state file, or orphans of a lost run
        if not _port_free(self.port):
            raise RuntimeError(
                f"port {self.port} is in use (another Milvus?); find it with "
                f"`ss -ltnp | grep :{self.port}`, stop it, or choose another --port"
            )
        if not _port_free(ETCD_PEER_PORT):
            raise RuntimeError(
                f"port {ETCD_PEER_PORT} (embedded etcd's peer port, fixed in Milvus 2.3) is in "
                f"use: another Milvus standalone or etcd runs here (`ss -ltnp | grep "
                f":{ETCD_PEER_PORT}`); only one can run per machine"
            )
        metrics_port = next(
            p
            for p in range(DEFAULT_METRICS_PORT, DEFAULT_METRICS_PORT + 100)
            if p != self.port and _port_free(p)
        )

        vpy = setup_venv(self.venv, python=self.python)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _ignore_dir(self.data_dir)
        if self.fresh:
            _log(f"fresh start: removing {self.data_dir / 'data'}")
            shutil.rmtree(self.data_dir / "data", ignore_errors=True)
        free = shutil.disk_usage(self.data_dir).free
        if free < 1 << 30:
            _log(f"warning: only {free >> 20} MB free in {self.data_dir}")

        opts = {
            "data_dir": str(self.data_dir),
            "port": self.port,
            "metrics_port": metrics_port,
            "extra_config": {k: str(v) for k, v in self.extra_config.items()},
        }
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%F %T')} start {json.dumps(opts)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [str(vpy), "-c", _LAUNCHER, json.dumps(opts)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        pid = self._proc.pid
        self._write_state(
            pid=pid,
            pgid=pid,
            port=self.port,
            uri=self.uri,
            metrics_port=metrics_port,
            data_dir=str(self.data_dir),
            log_path=str(self.log_path),
            venv=str(self.venv),
            version=MILVUS_VERSION,
            started_at=time.time(),
            ready=False,
        )
        _log(f"started pid {pid}; waiting up to {wait:.0f}s (log: {self.log_path})")

        health: dict[str, bool] = {}
        while time.monotonic() < t0 + wait:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop(timeout=10)
                raise RuntimeError(f"Milvus exited with code {code}:\n{self._log_tail()}")
            health = self._health(metrics_port)
            if all(health.values()) and self._warm_up(t0 + wait):
                seconds = time.monotonic() - t0
                self._write_state(
                    ports=_listening_ports(_group_members(pid)),
                    configured_ports=self._configured_ports(),
                    ready=True,
                    ready_seconds=round(seconds, 2),
                )
                _log(f"ready in {seconds:.1f}s: {self.uri}")
                return self
            time.sleep(0.25)
        self.stop(timeout=20)
        raise TimeoutError(
            f"Milvus not ready within {wait:.0f}s ({health}); log:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 25) -> str:
        """The end of the console log and of Milvus' newest own log file."""
        logs = sorted((self.data_dir / "logs").glob("standalone*.log"), key=os.path.getmtime)
        out = []
        for path in [self.log_path, *logs[-1:]]:
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path}\n" + "\n".join(line[:300] for line in tail))
        return "\n".join(out)

    # ----- stop -----------------------------------------------------------------------

    def kill(self) -> bool:
        """Crash the server: SIGKILL to its whole process group, no clean shutdown (its etcd
        sessions stay registered, so the next start may wait 30-50 s for their leases)."""
        return self.stop(timeout=0.0, first_signal=signal.SIGKILL)

    def stop(self, timeout: float = 15.0, *, first_signal: int = signal.SIGTERM) -> bool:
        """Stop the server (one SIGTERM to its group, then SIGKILL); True if nothing is left."""
        state = self.state() or {}
        ours = self._alive(state)
        pgid = int(state["pgid"]) if ours else None
        left = self._pids(state)
        ports = set(state.get("ports") or ())
        ports.update(p for p in (state.get("port"), state.get("metrics_port")) if p)
        ports.update(_listening_ports(left))

        if left:
            _log(f"stopping pids {left} ({signal.Signals(first_signal).name})")
            # Exactly ONE SIGTERM per process: a second one makes Milvus exit in the middle
            # of its clean shutdown, leaving its etcd sessions registered, and the next
            # start then waits 30-50 s for their leases to expire.
            if pgid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, first_signal)
            for pid in left:
                if pgid is None or (_proc_stat(pid) or ("", 0, 0))[2] != pgid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, first_signal)
            end = time.monotonic() + timeout
            while (left := self._pids(state)) and time.monotonic() < end:
                time.sleep(0.1)
            if left:
                _log(f"still alive after {timeout:.0f}s: {left}; SIGKILL")
                if pgid is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pgid, signal.SIGKILL)
                for pid in left:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                end = time.monotonic() + 10
                while (left := self._pids(state)) and time.monotonic() < end:
                    time.sleep(0.1)
        end = time.monotonic() + 10
        busy = [p for p in sorted(ports) if _port_accepts(p)]
        while busy and time.monotonic() < end:
            time.sleep(0.2)
            busy = [p for p in busy if _port_accepts(p)]
        self._reap()
        self._proc = None
        self._owns = False
        if left or busy:
            _log(f"NOT clean: processes {left} alive, ports {busy} still accepting")
            return False
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        _log("stopped: no process left, ports closed")
        return True

    # ----- status ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        state = self.state() or {}
        pids = self._pids(state)
        health = self._health(state.get("metrics_port")) if pids else {}
        procs = [{"pid": p, "cmd": _proc_cmdline(p)[:100], "rss_mb": _proc_rss_mb(p)} for p in pids]
        return {
            "running": bool(pids),
            "healthy": bool(health) and all(health.values()),
            "uri": self.uri,
            "data_dir": str(self.data_dir),
            "state_file": str(self.state_path) if state else None,
            "stale_state": bool(state) and not pids,
            "checks": health,
            "processes": procs,
            "rss_mb_total": round(sum(p["rss_mb"] for p in procs), 1),
            "listening_ports": _listening_ports(pids),
            "metrics_port": state.get("metrics_port"),
            "ready_seconds": state.get("ready_seconds"),
            "log": str(self.log_path),
        }

    # ----- context manager --------------------------------------------------------------

    def __enter__(self) -> MilvusStandalone:
        already = self._alive(self.state())
        self.start()
        self._owns = not already
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owns:
            self.stop()


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


def _extra_config(values: list[str] | None) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--extra-config needs KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="A real Milvus 2.3.5 standalone server on loopback (see module docstring)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, server: bool = True) -> None:
        p.add_argument("--venv", default=str(DEFAULT_VENV), help="virtualenv for milvus")
        p.add_argument("--python", default=None, help="interpreter for a new venv")
        if server:
            p.add_argument("--data", default=str(DEFAULT_DATA), help="data directory")

    p_setup = sub.add_parser("setup", help="create the venv and install milvus")
    common(p_setup, server=False)
    p_setup.add_argument("--force", action="store_true", help="recreate and reinstall")
    for name, text in (("start", "start the server"), ("run", "start, run a command, stop")):
        p = sub.add_parser(name, help=text)
        common(p)
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        p.add_argument("--wait", type=float, default=180.0, help="seconds to wait for ready")
        p.add_argument("--fresh", action="store_true", help="wipe stored data first")
        p.add_argument(
            "--extra-config",
            action="append",
            metavar="KEY=VALUE",
            help="milvus.yaml override such as log.level=warn (repeatable)",
        )
        if name == "run":
            p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command ('{uri}' = URI)")
    p_stop = sub.add_parser("stop", help="stop the server")
    common(p_stop)
    p_stop.add_argument("--timeout", type=float, default=15.0, help="seconds before SIGKILL")
    p_status = sub.add_parser("status", help="JSON status")
    common(p_status)

    args = parser.parse_args(argv)
    if args.command == "setup":
        print(setup_venv(args.venv, python=args.python, force=args.force).parent)
        return 0
    server = MilvusStandalone(
        args.data,
        port=getattr(args, "port", DEFAULT_PORT),
        venv=args.venv,
        python=args.python,
        extra_config=_extra_config(getattr(args, "extra_config", None)),
        fresh=getattr(args, "fresh", False),
    )
    if args.command == "start":
        try:
            server.start(wait=args.wait)
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
            _log(f"start failed: {exc}")
            return 1
        print(server.uri)
        return 0
    if args.command == "stop":
        if not server.running and not server.state():
            _log("not running")
            return 0
        return 0 if server.stop(timeout=args.timeout) else 1
    if args.command == "status":
        info = server.status()
        print(json.dumps(info, indent=2))
        return 0 if info["healthy"] else (3 if not info["running"] else 1)
    # run
    cmd = list(args.cmd or [])
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        parser.error("run needs a command after --")
    already = server.running
    try:
        server.start(wait=args.wait)
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        _log(f"start failed: {exc}")
        return 1
    try:
        cmd = [c.replace("{uri}", server.uri) for c in cmd]
        return subprocess.call(cmd, env={**os.environ, "MILVUS_URI": server.uri})
    finally:
        if not already:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

"""The ``service`` workload: a web app over one LangChain store under concurrent HTTP clients.

This is the use case the project exists for: an ASGI app (Starlette, served by uvicorn on
``127.0.0.1`` at a free port) exposing ``POST /search`` and ``POST /add`` over one store,
and N concurrent ``httpx.AsyncClient`` clients sending a bounded number of requests, first
the searches, then the adds. Each client pauses a random 0 to ``service_pause`` seconds
(seeded) before each request, so requests arrive unsynchronised, as they reach a web app.

The app (:mod:`vd_bench.service_app`) runs in a child process with the interpreter of
the store under test: ours here, the upstream store in its compare environment (see
:mod:`vd_bench.isolation`); the clients run in the benchmark's process. Modes:
``async`` endpoints await the store's async methods; ``sync`` endpoints call its sync
methods in Starlette's thread pool (what FastAPI does for ``def`` endpoints: 40 threads).

Reported per phase (search, add) and mode: throughput (requests/s), p50/p99 latency,
embedding requests (the offline embeddings server's ``/stats``), rows afterwards, and the
physical floor: the app measures one embedding round trip for as many texts as there are
clients plus one merged request of that size raw (``/floor``, :mod:`vd_bench.floor`) after
each phase, and the floor of the phase is its requests at that latency plus the mean
pause, ``clients`` at a time. The same clients then send the same requests to an endpoint
of the same app that only sleeps that latency (``/ceiling/<phase>``): the ceiling, what
this web stack and these clients reach with a store at the floor. On a small machine the
app, the clients, the embeddings server and Milvus share the cores, and the ceiling sits
well above the floor; the store's own cost is its time over the ceiling.

The child exits when the benchmark does, however it ends (it watches a pipe from its
parent, as the other servers do), and is stopped by ``POST /shutdown`` after each run,
then killed if it lingers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vd_bench.corpus import items, query
from vd_bench.runner import (
    BenchConfig,
    EmbeddingCounter,
    LoopRunner,
    Measurement,
    error_text,
    summarise,
)
from vd_bench.service_app import LISTENING_PREFIX, META_PREFIX
from vd_bench.subjects import SERVICE, SUBJECTS, K

__all__ = ["PHASES", "run_service"]

#: Measurement workload names, in the order the phases run.
PHASES = {"search": f"{SERVICE} search", "add": f"{SERVICE} add"}
#: Seconds the child may take to open its store, fill it and listen.
START_TIMEOUT = 300.0
#: Seconds one HTTP request may take.
REQUEST_TIMEOUT = 120.0
log = logging.getLogger(__name__)


@dataclass
class _Phase:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    error: str | None = None
    seconds: float = 0.0


async def _drive(
    base_url: str,
    path: str,
    bodies: list[dict[str, Any]],
    check: Callable[[Any], bool],
    *,
    clients: int,
    pause: float,
    seed: str,
    tick: Callable[[], None],
) -> _Phase:
    """``clients`` concurrent clients, each with its own ``httpx.AsyncClient`` and seeded
    RNG, take the next of ``bodies`` until none is left: a random pause, then the request.

    The clients are made before the clock starts: making one costs tens of milliseconds of
    CPU (its TLS context), which for 50 clients is seconds that no store can win back."""
    import httpx

    result = _Phase()
    queue_ = iter(range(len(bodies)))  # shared: each request is sent once
    https = [
        httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT, trust_env=False)
        for _ in range(clients)
    ]

    async def client(number: int) -> None:
        rng = random.Random(f"{seed}:{path}:{number}")
        async with https[number] as http:
            for i in queue_:
                await asyncio.sleep(rng.uniform(0.0, pause))
                began = time.perf_counter()
                try:
                    response = await http.post(path, json=bodies[i])
                    payload = response.json()
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP {response.status_code}: {payload.get('error')}")
                    if not check(payload):
                        raise RuntimeError(f"unexpected answer from {path}: {payload!r:.200}")
                except Exception as exc:
                    result.failures += 1
                    result.error = result.error or error_text(exc)
                result.latencies.append(time.perf_counter() - began)
                tick()

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(client(number)) for number in range(clients)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:  # a cancelled run: stop every client before leaving
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(http.aclose() for http in https), return_exceptions=True)
        raise
    result.seconds = time.perf_counter() - started
    return result


class _Child:
    """The app's process: started with ``python``, its stdout read by a thread (protocol
    lines to a queue, anything else to the log), stopped by :meth:`stop`."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        # stdin is the child's lifeline: it exits when this process does, however.
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="vd-bench-service", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if line.startswith("@@"):
                self.lines.put(line)
            else:
                self._log.write(line + "\n")
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float) -> str:
        """The rest of the child's next line starting with ``prefix``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                line = ""
            if line is None or (not line and time.monotonic() >= deadline):
                self.stop()
                tail = self.log_path.read_text()[-1500:]
                what = "exited" if line is None else f"did not answer within {timeout:.0f}s"
                raise RuntimeError(f"the service process {what}; log {self.log_path}:\n{tail}")
            if line.startswith(prefix):
                return line.removeprefix(prefix)

    def stop(self, timeout: float = 30.0) -> None:
        """Close its lifeline and wait for it (it stops by itself), then kill it."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        if not self._log.closed:
            self._log.close()


def _new(subject: str, phase: str, requests: int, mode: str, clients: int) -> Measurement:
    cls = SUBJECTS[subject]
    return Measurement(
        subject=subject,
        label=cls.label,
        integration=cls.integration,
        anchor=cls.anchor,
        workload=PHASES[phase],
        n=requests,
        mode=mode,
        clients=clients,
    )


def _bodies(phase: str, requests: int, population: int) -> list[dict[str, Any]]:
    if phase == "search":
        return [{"query": query(i), "k": K} for i in range(requests)]
    # new documents, numbered after the population and the warm-up add
    return [
        {"text": item.text, "metadata": item.metadata}
        for item in items(requests, start=population + 1)
    ]


def _check(phase: str) -> Callable[[Any], bool]:
    if phase == "search":
        return lambda payload: len(payload.get("documents", ())) == K
    return lambda payload: len(payload.get("ids", ())) == 1


async def _run_mode(
    base_url: str,
    subject: str,
    mode: str,
    config: BenchConfig,
    counter: EmbeddingCounter,
    tick: Callable[[], None],
    on_measurement: Callable[[Measurement], None],
) -> list[Measurement]:
    import httpx

    found: list[Measurement] = []
    async with httpx.AsyncClient(
        base_url=base_url, timeout=REQUEST_TIMEOUT, trust_env=False
    ) as control:
        # warm up, untimed: the store's first async call connects
        (await control.post("/search", json={"query": query(0), "k": K})).raise_for_status()
        warm = items(1, start=config.population)[0]
        add = await control.post("/add", json={"text": warm.text, "metadata": warm.metadata})
        add.raise_for_status()
        sizes = {"search": config.service_searches, "add": config.service_adds}
        for phase, requests in sizes.items():
            if not requests:
                continue
            m = _new(subject, phase, requests, mode, config.service_clients)
            await asyncio.to_thread(counter.reset)
            bodies = _bodies(phase, requests, config.population)
            result = await _drive(
                base_url,
                f"/{phase}",
                bodies,
                _check(phase),
                clients=config.service_clients,
                pause=config.service_pause,
                seed=f"{config.service_seed}:{mode}",
                tick=tick,
            )
            summarise(m, result.seconds, result.latencies)
            m.failures, m.error = result.failures, result.error
            stats = await asyncio.to_thread(counter.read)
            if stats is not None:
                m.embedding_requests = stats.get("requests")
                m.embedding_inputs = stats.get("inputs")
            if phase == "add":
                m.rows_expected = config.population + 1 + requests
                rows = (await control.get("/count")).json()
                m.rows_after = rows.get("rows")
                if m.rows_after != m.rows_expected and m.error is None:
                    m.error = (
                        f"collection holds {m.rows_after} rows, expected {m.rows_expected}"
                        + (f" ({rows['error']})" if "error" in rows else "")
                    )
            if config.floor:
                await _floor(control, m, phase, config)
                await _ceiling(base_url, m, phase, bodies, config)
            found.append(m)
            on_measurement(m)
    return found


async def _floor(control: Any, m: Measurement, phase: str, config: BenchConfig) -> None:
    """The phase's floor: its requests at the floor latency (one embedding round trip for
    ``clients`` texts plus one merged request of that size) plus the mean pause, served
    ``clients`` at a time."""
    try:
        answer = await control.post("/floor", json={"workload": phase, "n": m.clients})
        sample = answer.json()
        if answer.status_code != 200:
            raise RuntimeError(sample.get("error"))
    except Exception as exc:
        m.floor_error = error_text(exc)
        return
    latency = sample["embedding_s"] + sample["server_s"]
    clients = m.clients or 1
    m.floor_embedding_s = sample["embedding_s"]
    m.floor_server_s = sample["server_s"]
    m.floor_round_trips = sample["round_trips"]
    m.floor_s = m.n * (latency + config.service_pause / 2) / clients


async def _ceiling(
    base_url: str, m: Measurement, phase: str, bodies: list[dict[str, Any]], config: BenchConfig
) -> None:
    """The phase's ceiling: the same requests, clients and pauses against
    ``/ceiling/<phase>``, which sleeps the floor latency instead of calling the store."""
    if m.floor_embedding_s is None or m.floor_server_s is None:
        return
    latency = m.floor_embedding_s + m.floor_server_s
    result = await _drive(
        base_url,
        f"/ceiling/{phase}",
        [{**body, "sleep_s": latency} for body in bodies],
        _check(phase),
        clients=config.service_clients,
        pause=config.service_pause,
        seed=f"{config.service_seed}:{m.mode}",
        tick=lambda: None,
    )
    if result.failures:
        m.ceiling_error = f"{result.failures} failed: {result.error}"
    else:
        m.ceiling_s = result.seconds


def run_service(
    subject: str,
    config: BenchConfig,
    *,
    python: str = sys.executable,
    embeddings_base_url: str | None,
    offline: bool,
    log_dir: Path,
    on_op: Callable[[], None] = lambda: None,
    on_measurement: Callable[[Measurement], None] = lambda m: None,
    on_started: Callable[[int, int], None] = lambda pid, port: None,
) -> tuple[list[Measurement], dict[str, Any]]:
    """The service workload for one LangChain subject, once per mode of ``config``: start
    the app in a child process with ``python``, send the searches then the adds, stop it.

    Returns the measurements (one per phase and mode) and the child's package versions.
    ``on_started(pid, port)`` is told about each child once it listens.
    """
    if SUBJECTS[subject].integration != "langchain":
        raise ValueError(f"the service workload runs LangChain stores, not {subject}")
    counter = EmbeddingCounter(embeddings_base_url, offline)
    found: list[Measurement] = []
    versions: dict[str, Any] = {}
    config_json = json.dumps({**asdict(config), "extra": {}})
    with LoopRunner() as loop:
        for mode in config.modes:
            command = [
                python,
                "-m",
                "vd_bench.service_app",
                "--subject",
                subject,
                "--config",
                config_json,
                "--mode",
                mode,
                "--exit-with-parent",
            ]
            if embeddings_base_url:
                command += ["--embeddings-base-url", embeddings_base_url]
            child = _Child(command, log_dir / f"{subject}_{SERVICE}_{mode}.log")
            try:
                versions = json.loads(child.wait_for(META_PREFIX, START_TIMEOUT))
                port = int(child.wait_for(LISTENING_PREFIX, START_TIMEOUT))
                on_started(child.process.pid, port)
                base_url = f"http://127.0.0.1:{port}"
                found += loop.run(
                    _run_mode(base_url, subject, mode, config, counter, on_op, on_measurement)
                )
                loop.run(_shutdown(base_url))
            finally:
                child.stop()
            if child.process.returncode not in (0, None):
                log.warning(
                    "the %s service process exited with %s; log %s",
                    subject,
                    child.process.returncode,
                    child.log_path,
                )
    return found, versions


async def _shutdown(base_url: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as control:
        with contextlib.suppress(httpx.HTTPError):  # already gone: stop() reaps it
            await control.post("/shutdown")

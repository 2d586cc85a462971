"""Faults: the Milvus server is killed (SIGKILL to its process group) in the middle of an
ingest and restarted on the same data directory and port. The ingest must finish with
every document exactly once and its metadata intact, through the async and sync paths.

The Milvus Lite server tests always run. The same scenario against a real Milvus
standalone server (2.3.5, ``scripts/milvus_standalone.py``) runs when
``VD_TEST_STANDALONE=1`` and that server can be set up; CI skips it otherwise.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_vd import Milvus
from vd_integrations.core.retry import RetrySettings
from vd_integrations.testing.lite_server import MilvusLiteServer

TOTAL = 10_000
TASKS = 50
CHUNK = 20  # documents per aadd_documents call
KILL_AFTER = 3_000  # acknowledged documents before the crash
DOWNTIME = 1.0  # seconds between the kill and the restart
DIM = 16

REPO = Path(__file__).resolve().parent.parent


def _document(i: int) -> Document:
    # metadata of several types, including values that need escaping
    return Document(
        page_content=f"document {i} about topic {i % 37}",
        metadata={
            "n": i,
            "group": f"g{i % 50}",
            "quote": f'it\'s "{i}"',
            "score": i / 7,
            "tags": [i % 3, i % 5],
            "even": i % 2 == 0,
        },
        id=f"doc-{i}",
    )


def _check_complete(store: Milvus, total: int) -> None:
    """Exactly ``total`` documents, no duplicate primary keys, every metadata intact."""
    ids = [f"doc-{i}" for i in range(total)]
    # through the store first: it loads the collection again after a restart
    documents = store.get_by_ids(ids)
    assert sorted(d.id for d in documents) == sorted(ids)
    assert store.count() == total
    rows: list[dict[str, Any]] = []
    client = store.client
    iterator = client.query_iterator(
        store.collection_name, batch_size=2000, filter="", output_fields=["*"]
    )
    try:
        while batch := iterator.next():
            rows.extend(batch)
    finally:
        iterator.close()
    pks = [row["pk"] for row in rows]
    assert len(pks) == total, f"{len(pks)} rows for {total} documents"
    assert len(set(pks)) == total, f"{len(pks) - len(set(pks))} duplicate rows"
    for row in rows:
        i = int(row["pk"].removeprefix("doc-"))
        expected = _document(i)
        assert row["text"] == expected.page_content
        for key, value in expected.metadata.items():
            assert row[key] == pytest.approx(value) if key == "score" else row[key] == value, (
                row["pk"],
                key,
            )


class _Crash:
    """Kill the server once ``after`` documents were acknowledged; restart it after
    ``downtime`` seconds. ``restart`` runs in a thread so the event loop keeps going."""

    def __init__(
        self, kill: Callable[[], None], start: Callable[[], None], after: int, downtime: float
    ) -> None:
        self._kill, self._start = kill, start
        self.after, self.downtime = after, downtime
        self.acknowledged = 0
        self.acknowledged_at_kill: int | None = None
        self.restarted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def acknowledge(self, n: int) -> None:
        with self._lock:
            self.acknowledged += n
            if self._thread is None and self.acknowledged >= self.after:
                self.acknowledged_at_kill = self.acknowledged
                self._thread = threading.Thread(target=self._crash, daemon=True)
                self._thread.start()

    def _crash(self) -> None:
        self._kill()
        time.sleep(self.downtime)
        self._start()
        self.restarted.set()

    def join(self) -> None:
        assert self._thread is not None, "the ingest finished before the crash"
        self._thread.join(timeout=120)
        assert self.restarted.is_set()


async def _ingest_async(store: Milvus, crash: _Crash) -> list[BaseException]:
    errors: list[BaseException] = []

    async def worker(task: int) -> None:
        mine = list(range(task, TOTAL, TASKS))
        for start in range(0, len(mine), CHUNK):
            docs = [_document(i) for i in mine[start : start + CHUNK]]
            try:
                ids = await store.aadd_documents(docs)
            except Exception as exc:  # recorded, so the test reports all of them
                errors.append(exc)
                continue
            assert ids == [d.id for d in docs]
            crash.acknowledge(len(docs))

    await asyncio.gather(*(worker(t) for t in range(TASKS)))
    return errors


def _ingest_sync(store: Milvus, crash: _Crash, threads: int = 4) -> list[BaseException]:
    errors: list[BaseException] = []

    def worker(task: int) -> None:
        mine = list(range(task, TOTAL, threads))
        for start in range(0, len(mine), CHUNK * 5):
            docs = [_document(i) for i in mine[start : start + CHUNK * 5]]
            try:
                ids = store.add_documents(docs)
            except Exception as exc:
                errors.append(exc)
                continue
            assert ids == [d.id for d in docs]
            crash.acknowledge(len(docs))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return errors


def _store(uri: str, name: str, deadline: float = 90) -> Milvus:
    return Milvus(
        DeterministicFakeEmbedding(size=DIM),
        collection_name=name,
        connection_args={"uri": uri},
        # generous, so a slow restart on a loaded CI machine is still bridged
        retry=RetrySettings(
            max_attempts=200, initial_backoff=0.1, max_backoff=2.0, deadline=deadline
        ),
    )


@pytest.fixture
def crashable_server(tmp_path: Path) -> Iterator[MilvusLiteServer]:
    server = MilvusLiteServer(tmp_path / "data", log_path=tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(600)
def test_async_ingest_survives_a_server_crash(crashable_server: MilvusLiteServer) -> None:
    store = _store(crashable_server.uri, "crash_async")
    crash = _Crash(crashable_server.kill, crashable_server.start, KILL_AFTER, DOWNTIME)

    async def run() -> list[BaseException]:
        try:
            return await _ingest_async(store, crash)
        finally:
            await store.aclose()

    errors = asyncio.run(run())
    crash.join()
    assert errors == []
    assert crash.acknowledged_at_kill is not None and crash.acknowledged_at_kill < TOTAL
    assert crash.acknowledged == TOTAL
    store = _store(crashable_server.uri, "crash_async")
    _check_complete(store, TOTAL)
    store.close()


@pytest.mark.timeout(600)
def test_sync_ingest_survives_a_server_crash(crashable_server: MilvusLiteServer) -> None:
    store = _store(crashable_server.uri, "crash_sync")
    crash = _Crash(crashable_server.kill, crashable_server.start, KILL_AFTER, DOWNTIME)
    errors = _ingest_sync(store, crash)
    crash.join()
    assert errors == []
    assert crash.acknowledged == TOTAL
    _check_complete(store, TOTAL)
    store.close()


# ---------------------------------------------------------------------------------------
# The same against a real Milvus standalone server (opt-in: VD_TEST_STANDALONE=1)
# ---------------------------------------------------------------------------------------


def _standalone_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "milvus_standalone", REPO / "scripts" / "milvus_standalone.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def standalone() -> Iterator[Any]:
    if os.environ.get("VD_TEST_STANDALONE") != "1":
        pytest.skip("set VD_TEST_STANDALONE=1 to run the Milvus standalone fault tests")
    module = _standalone_module()
    try:
        module.setup_venv()
        server = module.MilvusStandalone(fresh=True)
        server.start()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Milvus standalone could not be set up here: {exc}")
    server.fresh = False  # restarts keep the data
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.standalone
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", ["async", "sync"])
def test_standalone_ingest_survives_a_server_crash(standalone: Any, path: str) -> None:
    uri = standalone.uri
    name = f"crash_{path}_{int(time.time())}"
    store = _store(uri, name, deadline=300)  # a killed standalone restarts in 30-60 s
    crash = _Crash(standalone.kill, standalone.start, KILL_AFTER, DOWNTIME)
    if path == "async":

        async def run() -> list[BaseException]:
            try:
                return await _ingest_async(store, crash)
            finally:
                await store.aclose()

        errors = asyncio.run(run())
        store = _store(uri, name, deadline=300)
    else:
        errors = _ingest_sync(store, crash)
    crash.join()
    assert errors == []
    assert crash.acknowledged == TOTAL
    _check_complete(store, TOTAL)
    store.close()

"""Acknowledged writes survive a Milvus Lite server crash, however the writers are spread.

Milvus Lite appends concurrent writes to a collection's write-ahead log without a lock of
its own; after a crash its recovery stops at the first interleaved record and rows that
were acknowledged are gone (issue 14, class 3). The stores therefore send one write at a
time per Lite collection in the process. These tests hammer one collection from

* (a) one store used from 8 threads, each running its own event loop (``aadd_texts``);
* (b) one store used from 4 threads with their own loops plus 4 threads calling the
  sync ``add_texts``;
* (c) 4 store objects on the same collection, concurrently in one loop;

then SIGKILL the server's process group, stop the writers, restart the server on the same
data directory and check that every id of every call that returned is there.

``tests/test_faults.py`` covers retries through a crash; here retries are off, so calls
fail fast once the server is gone and only successful calls count as acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_vd import Milvus
from vd_integrations.core.retry import RetrySettings
from vd_integrations.testing.lite_server import MilvusLiteServer

DIM = 8
BATCH = 5  # rows per add call: many small writes, many chances to interleave
TARGET = 5_000  # acknowledged rows before the crash
WAIT_BOUND = 25.0  # seconds to wait for TARGET; the crash happens then in any case
JOIN_BOUND = 30.0  # seconds for the writers to notice the crash and stop
CALL_TIMEOUT = 10.0  # per write; a writer never hangs on the dead server
COLLECTION = "crash_safety"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MilvusLiteServer]:
    server = MilvusLiteServer(tmp_path / "data", log_path=tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _store(uri: str, retry: RetrySettings | None = None) -> Milvus:
    return Milvus(
        DeterministicFakeEmbedding(size=DIM),
        collection_name=COLLECTION,
        connection_args={"uri": uri},
        retry=retry or RetrySettings.disabled(),
    )


@dataclass
class _Ledger:
    """What the writers were told: ids of calls that returned, and the errors they saw."""

    stop: threading.Event = field(default_factory=threading.Event)
    killed: threading.Event = field(default_factory=threading.Event)
    acknowledged: list[str] = field(default_factory=list)
    errors_before_kill: list[BaseException] = field(default_factory=list)
    errors_after_kill: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, ids: list[str]) -> None:
        with self._lock:
            self.acknowledged.extend(ids)

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self.killed.is_set():
                self.errors_after_kill += 1
            else:
                self.errors_before_kill.append(exc)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)


def _batches(writer: str) -> Iterator[tuple[list[str], list[str], list[dict]]]:
    for n in itertools.count():
        ids = [f"{writer}-{n}-{j}" for j in range(BATCH)]
        texts = [f"text of {i}" for i in ids]
        metadatas = [{"writer": writer, "n": n, "j": j} for j in range(BATCH)]
        yield ids, texts, metadatas


def _pause_after_failure(ledger: _Ledger) -> None:
    # after the kill every call fails at once; don't spin on a dead server
    if ledger.killed.is_set():
        ledger.stop.wait(0.05)


async def _write_async(store: Milvus, writer: str, ledger: _Ledger) -> None:
    for ids, texts, metadatas in _batches(writer):
        if ledger.stop.is_set():
            return
        try:
            returned = await store.aadd_texts(texts, metadatas, timeout=CALL_TIMEOUT, ids=ids)
        except Exception as exc:  # recorded; before the kill it fails the test
            ledger.failed(exc)
            await asyncio.sleep(0.05 if ledger.killed.is_set() else 0)
            continue
        assert returned == ids
        ledger.ack(ids)


def _write_sync(store: Milvus, writer: str, ledger: _Ledger) -> None:
    for ids, texts, metadatas in _batches(writer):
        if ledger.stop.is_set():
            return
        try:
            returned = store.add_texts(texts, metadatas, timeout=CALL_TIMEOUT, ids=ids)
        except Exception as exc:
            ledger.failed(exc)
            _pause_after_failure(ledger)
            continue
        assert returned == ids
        ledger.ack(ids)


def _loop_thread(ledger: _Ledger, tasks: Callable[[], list]) -> Callable[[], None]:
    """A thread body that runs ``tasks()`` (coroutines) in its own event loop."""

    def run() -> None:
        async def main() -> None:
            await asyncio.gather(*tasks())

        try:
            asyncio.run(main())
        except Exception as exc:  # e.g. an assertion in a writer
            ledger.failed(exc)

    return run


def _sync_thread(ledger: _Ledger, body: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            body()
        except Exception as exc:
            ledger.failed(exc)

    return run


def _crash_and_check(
    server: MilvusLiteServer,
    ledger: _Ledger,
    bodies: list[Callable[[], None]],
    label: str,
) -> None:
    """Run the writer threads until TARGET rows are acknowledged (or WAIT_BOUND passes),
    kill the server, stop the writers, restart, and look every acknowledged id up."""
    threads = [
        threading.Thread(target=body, name=f"writer-{label}-{i}", daemon=True)
        for i, body in enumerate(bodies)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while ledger.count < TARGET and time.monotonic() - started < WAIT_BOUND:
        if not any(t.is_alive() for t in threads):
            break
        time.sleep(0.02)
    ledger.killed.set()
    server.kill()
    acknowledged_at_kill = ledger.count
    writing = time.monotonic() - started
    ledger.stop.set()
    for thread in threads:
        thread.join(timeout=JOIN_BOUND)
    stuck = [t.name for t in threads if t.is_alive()]
    server.start()

    acknowledged = list(ledger.acknowledged)
    assert not stuck, f"writers still running {JOIN_BOUND} s after the crash: {stuck}"
    assert ledger.errors_before_kill == [], ledger.errors_before_kill[:3]
    assert len(set(acknowledged)) == len(acknowledged)
    assert acknowledged, "no write was acknowledged before the crash"

    reader = _store(server.uri, RetrySettings(max_attempts=50, max_backoff=1.0, deadline=60))
    try:
        found: set[str] = set()
        for start in range(0, len(acknowledged), 500):
            chunk = acknowledged[start : start + 500]
            found.update(str(d.id) for d in reader.get_by_ids(chunk))
        stored = reader.count()
    finally:
        reader.close()
    lost = sorted(set(acknowledged) - found)
    print(
        f"\n[{label}] acknowledged {len(acknowledged)} rows ({acknowledged_at_kill} at the "
        f"kill, after {writing:.1f} s), found {len(found)}, lost {len(lost)}; "
        f"{stored} rows stored; {ledger.errors_after_kill} calls failed after the kill"
    )
    assert not lost, (
        f"{len(lost)} of {len(acknowledged)} acknowledged rows lost after the crash, "
        f"e.g. {lost[:5]}"
    )
    # nothing was written that was not asked for (calls cut by the kill may or may not land)
    assert stored >= len(found)


def _seed(uri: str, ledger: _Ledger) -> None:
    """Create the collection first, so the writers race on writes, not on its creation."""
    store = _store(uri)
    try:
        ledger.ack(store.add_texts(["seed"], [{"writer": "seed"}], ids=["seed"]))
    finally:
        store.close()


def _close(store: Milvus) -> None:
    # the crash may have left its clients broken; nothing to check there
    with contextlib.suppress(Exception):
        store.close()


@pytest.mark.timeout(180)
def test_one_store_from_eight_event_loops(server: MilvusLiteServer) -> None:
    ledger = _Ledger()
    _seed(server.uri, ledger)
    store = _store(server.uri)
    bodies = [
        _loop_thread(
            ledger,
            lambda t=t: [_write_async(store, f"loop{t}-task{k}", ledger) for k in range(2)],
        )
        for t in range(8)
    ]
    try:
        _crash_and_check(server, ledger, bodies, "8 loops, one store")
    finally:
        _close(store)


@pytest.mark.timeout(180)
def test_one_store_async_and_sync_together(server: MilvusLiteServer) -> None:
    ledger = _Ledger()
    _seed(server.uri, ledger)
    store = _store(server.uri)
    bodies = [
        _loop_thread(
            ledger,
            lambda t=t: [_write_async(store, f"loop{t}-task{k}", ledger) for k in range(2)],
        )
        for t in range(4)
    ]
    bodies += [
        _sync_thread(ledger, lambda t=t: _write_sync(store, f"sync{t}", ledger)) for t in range(4)
    ]
    try:
        _crash_and_check(server, ledger, bodies, "4 loops + 4 sync threads, one store")
    finally:
        _close(store)


@pytest.mark.timeout(180)
def test_four_stores_on_one_collection_in_one_loop(server: MilvusLiteServer) -> None:
    ledger = _Ledger()
    _seed(server.uri, ledger)
    stores = [_store(server.uri) for _ in range(4)]
    body = _loop_thread(
        ledger,
        lambda: [
            _write_async(store, f"store{s}-task{k}", ledger)
            for s, store in enumerate(stores)
            for k in range(4)
        ],
    )
    try:
        _crash_and_check(server, ledger, [body], "4 stores, one loop")
    finally:
        for store in stores:
            _close(store)

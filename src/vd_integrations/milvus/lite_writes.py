"""One write at a time per Milvus Lite collection in this process, across threads and loops.

Milvus Lite (3.2) appends concurrent writes to one collection's write-ahead log from
several server threads without a lock; after a crash its recovery stops at the first
interleaved record, and acknowledged rows are lost. So every insert, upsert and delete
sent to a Lite collection from this process holds that collection's lock: the same lock
for sync and async callers, every event loop, and every store object on the same URI,
database and collection.

The lock is an :class:`aiologic.Lock`, which threads acquire blocking and tasks acquire
without blocking their loop, whichever loop they run on (asyncio locks bind to one loop,
threading locks block it). Other processes writing to the same Lite *server* are not
covered: nothing in one process can serialise them (an embedded Lite file refuses a
second process anyway).
"""

from __future__ import annotations

import os
import threading
import weakref
from urllib.parse import urlsplit

import aiologic

__all__ = ["collection_write_lock", "target_key"]

_locks: weakref.WeakValueDictionary[tuple[str, str, str], aiologic.Lock] = (
    weakref.WeakValueDictionary()
)
_guard = threading.Lock()
_LOOPBACK_NAMES = {"localhost": "127.0.0.1", "::1": "127.0.0.1", "[::1]": "127.0.0.1"}


def target_key(uri: str, embedded: bool) -> str:
    """The server ``uri`` points at, spelled one way (a real path, a lower-case host:port)."""
    if embedded:
        return "file:" + os.path.realpath(os.path.expanduser(uri))
    parts = urlsplit(uri if "://" in uri else f"http://{uri}")
    host = (parts.hostname or "").lower()
    host = _LOOPBACK_NAMES.get(host, host)
    return f"{parts.scheme}://{host}:{parts.port or 19530}"


def collection_write_lock(
    uri: str, *, embedded: bool, db_name: str, collection: str
) -> aiologic.Lock:
    """The process-wide write lock of one collection (kept while any store holds it)."""
    key = (target_key(uri, embedded), db_name or "default", collection)
    with _guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = aiologic.Lock()
        return lock

"""Shared fixtures: one Milvus Lite server for the session, fresh collection names per test."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid

import pytest

from vd_integrations.testing.lite_server import MilvusLiteServer


@pytest.fixture(scope="session")
def milvus_server():
    """A Milvus Lite server on a free loopback port, stopped at the end of the session."""
    with MilvusLiteServer() as server:
        yield server


@pytest.fixture(scope="session")
def milvus_uri(request: pytest.FixtureRequest) -> str:
    """``$VD_TEST_MILVUS_URI`` if set (e.g. a real Milvus from scripts/milvus_standalone.py;
    no Milvus Lite is started then), else the session's Milvus Lite server."""
    uri = os.environ.get("VD_TEST_MILVUS_URI")
    if uri:
        return uri
    return request.getfixturevalue("milvus_server").uri


@pytest.fixture
def collection_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _quiet_pymilvus():
    # pymilvus logs every failed RPC at ERROR with a traceback; tests that provoke
    # errors on purpose would drown the output.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    yield


_ASYNCIO_RUN = asyncio.run


@pytest.fixture(autouse=True)
def _asyncio_run_unpatched(request: pytest.FixtureRequest):
    """Fail the test that leaves ``asyncio.run`` replaced (``nest_asyncio.apply`` does, for
    the whole process): every later ``asyncio.run`` would reuse one loop, and the tests of
    one-client-per-loop would pass or fail by their order. Apply it in a subprocess."""
    yield
    if asyncio.run is not _ASYNCIO_RUN:
        asyncio.run = _ASYNCIO_RUN
        pytest.fail(f"{request.node.nodeid} left asyncio.run patched (nest_asyncio?)")

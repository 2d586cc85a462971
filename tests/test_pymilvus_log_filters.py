"""A filter error we catch and translate is not also logged by pymilvus at ERROR.

pymilvus' RPC decorator logs every failed call on ``pymilvus.decorators`` (with a 30-line
traceback in pymilvus 3) before raising. For a filter Milvus cannot parse, the store raises
``InvalidFilterExpressionError``; :mod:`vd_integrations.milvus.log_filters` drops exactly
that record, and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_vd import Milvus
from tests.raw_clients import raw_client
from vd_integrations import InvalidFilterExpressionError, StoreClosedError
from vd_integrations.core.errors import error_chain
from vd_integrations.milvus import log_filters
from vd_integrations.milvus.log_filters import (
    PYMILVUS_RPC_LOGGER,
    HandledFilterErrorFilter,
    HandledIndexWaitFilter,
)

BAD = "year === 2020"  # balanced, so only the server can reject it

TRACEBACK = (
    "\nTraceback:\nTraceback (most recent call last):\n"
    '  File "pymilvus/decorators.py", line 518, in handler\n'
    "pymilvus.exceptions.MilvusException: <MilvusException: (code=6, message=...)>\n"
)
LITE_PARSE = (
    "RPC error: [search], <MilvusException: (code=6, message=unexpected character '=' at "
    "column 7\n  bad ===\n        ^\ndid you mean '=='?)>, <elapsed:1.9ms>" + TRACEBACK
)


def record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(PYMILVUS_RPC_LOGGER, level, "decorators.py", 472, message, (), None)


@pytest.mark.parametrize(
    "message",
    [
        LITE_PARSE,  # pymilvus 3 + Milvus Lite 3.x
        LITE_PARSE.replace("[search]", "[query]"),
        LITE_PARSE.replace("[search]", "[delete]"),
        LITE_PARSE.replace("[search]", "[hybrid_search]"),
        # pymilvus 2.x (no traceback) + Milvus 2.3-2.6 servers
        "RPC error: [query], <MilvusException: (code=1100, message=failed to create query "
        "plan: cannot parse expression: year === 2020, error: invalid expression: year === "
        "2020: invalid parameter)>, <Time:{'RPC start': '...', 'RPC error': '...'}>",
        "RPC error: [delete], <MilvusException: (code=1, message=failed to create expr plan, "
        "expr = year === 2020)>, <Time:{}>",
        "RPC error: [search], <MilvusException: (code=1100, message=failed to create query "
        "plan: predicate is not a boolean expression: year, data type: Int64)>, <Time:{}>",
    ],
)
def test_parse_errors_of_filtered_rpcs_are_dropped(message: str) -> None:
    assert HandledFilterErrorFilter().filter(record(message)) is False


@pytest.mark.parametrize(
    "message",
    [
        # other RPCs
        LITE_PARSE.replace("[search]", "[insert]"),
        LITE_PARSE.replace("[search]", "[upsert]"),
        # other failures of the same RPCs
        "RPC error: [search], <MilvusException: (code=100, message=collection not found"
        "[database=default][collection=c])>, <elapsed:1.0ms>" + TRACEBACK,
        "RPC error: [query], <MilvusException: (code=101, message=collection not loaded)>, "
        "<Time:{}>",
        "grpc RpcError: [search], <_InactiveRpcError: StatusCode.UNAVAILABLE, failed to "
        "connect to all addresses>, <elapsed:3.0ms>" + TRACEBACK,
        "grpc Timeout: [delete], <FutureTimeoutError: None, None>, <Time:{}>",
        # a parse-error phrase in the traceback only (source lines) does not count
        "RPC error: [search], <MilvusException: (code=65535, message=internal)>, <e:1ms>"
        "\nTraceback:\n  cannot parse expression at column 3\n  x\n  ^\n",
        # unrelated records
        "Unexpected error: [search], cannot parse expression",
        "RPC error: [search] but not the decorator's format: cannot parse expression",
    ],
)
def test_everything_else_passes(message: str) -> None:
    assert HandledFilterErrorFilter().filter(record(message)) is True


def test_only_error_records_are_dropped() -> None:
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.CRITICAL):
        assert HandledFilterErrorFilter().filter(record(LITE_PARSE, level)) is True


def test_index_wait_filter_kept_its_behaviour() -> None:
    wait = "RPC error: [wait_for_creating_index], <MilvusException: UNIMPLEMENTED ...>"
    assert HandledIndexWaitFilter().filter(record(wait)) is False
    assert HandledIndexWaitFilter().filter(record(wait.replace("wait_for_creating", "x"))) is True
    assert HandledIndexWaitFilter().filter(record(LITE_PARSE)) is True


def test_install_adds_each_filter_once() -> None:
    logger = logging.getLogger(PYMILVUS_RPC_LOGGER)
    import vd_integrations.milvus.engine  # noqa: F401  (installs them on import)

    log_filters.install()
    log_filters.install()
    kinds = [type(f) for f in logger.filters]
    assert kinds.count(HandledFilterErrorFilter) == 1
    assert kinds.count(HandledIndexWaitFilter) == 1


# ----- against a Milvus Lite server -----------------------------------------------------


@contextlib.contextmanager
def rpc_log(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """pymilvus' RPC records, through caplog's handler of the current test phase (pymilvus
    has its own stderr handler and the suite's conftest silences it: both undone here)."""
    logger = logging.getLogger(PYMILVUS_RPC_LOGGER)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(caplog.handler)
    caplog.clear()
    try:
        yield caplog.records
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)


@contextlib.contextmanager
def without_our_filter() -> Iterator[None]:
    logger = logging.getLogger(PYMILVUS_RPC_LOGGER)
    ours = [f for f in logger.filters if isinstance(f, HandledFilterErrorFilter)]
    for f in ours:
        logger.removeFilter(f)
    try:
        yield
    finally:
        for f in ours:
            logger.addFilter(f)


@pytest.fixture
def store(milvus_uri: str, collection_name: str) -> Iterator[Milvus]:
    store = Milvus(
        DeterministicFakeEmbedding(size=8),
        connection_args={"uri": milvus_uri},
        collection_name=collection_name,
        drop_old=True,
    )
    store.add_texts(["a", "b"], metadatas=[{"year": 2019}, {"year": 2021}], ids=["a", "b"])
    yield store
    with contextlib.suppress(StoreClosedError):  # the async test closes its own
        store.drop()
    store.close()


def rpc_errors(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage().split("\n", 1)[0] for r in records if "RPC error" in r.getMessage()]


def assert_from_milvus(exc: BaseException) -> None:
    """The error came back from the server (not from a client-side check), so pymilvus
    had a record to log."""
    assert any(type(e).__module__.startswith("pymilvus") for e in error_chain(exc)), exc


def test_the_record_exists_without_the_filter(
    store: Milvus, caplog: pytest.LogCaptureFixture
) -> None:
    """The tests below are not vacuous: unfiltered, pymilvus logs the failed search."""
    with rpc_log(caplog) as records, without_our_filter():
        with pytest.raises(InvalidFilterExpressionError):
            store.similarity_search("q", expr=BAD)
        assert any("[search]" in m for m in rpc_errors(records)), records


def test_sync_filter_errors_are_not_logged(store: Milvus, caplog: pytest.LogCaptureFixture) -> None:
    calls = {
        "search": lambda: store.similarity_search("q", expr=BAD),
        "query": lambda: store.search_by_metadata(BAD),
        "delete": lambda: store.delete(expr=BAD),
    }
    with rpc_log(caplog) as records:
        for name, call in calls.items():
            with pytest.raises(InvalidFilterExpressionError, match="could not evaluate") as info:
                call()
            assert BAD in str(info.value), name
            assert_from_milvus(info.value)
        assert rpc_errors(records) == []
    assert store.count() == 2  # nothing was deleted


async def test_async_filter_errors_are_not_logged(
    store: Milvus, caplog: pytest.LogCaptureFixture
) -> None:
    with rpc_log(caplog) as records:
        for call in (
            lambda: store.asimilarity_search("q", expr=BAD),
            lambda: store.adelete(expr=BAD),
        ):
            with pytest.raises(InvalidFilterExpressionError) as info:
                await call()
            assert_from_milvus(info.value)
        assert rpc_errors(records) == []
    await store.adrop()
    await store.aclose()


def test_other_rpc_errors_are_still_logged(
    milvus_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = raw_client(milvus_uri)
    with rpc_log(caplog) as records:
        try:
            with pytest.raises(Exception, match=r"(?i)collection"):
                client.query("no_such_collection_here", filter="id > 0", limit=1)
        finally:
            client.close()
        assert any("[query]" in m for m in rpc_errors(records)), records

"""Embeddings: retry policy, OpenAI client, offline server, LangChain / LlamaIndex adapters."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import numpy as np
import openai
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_vd import OpenAIEmbeddings
from llama_index_vd import OpenAIEmbedding
from vd_integrations.core.coalesce import CoalescingSettings
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.retry import (
    RetryError,
    RetrySettings,
    RetryState,
    acall_with_retry,
    call_with_retry,
    parse_retry_after,
)
from vd_integrations.embeddings.loop_clients import LoopClient, shared_tls_context
from vd_integrations.embeddings.openai_client import (
    DEFAULT_MODEL,
    OpenAIEmbeddingClient,
    approx_tokens,
    plan_batches,
    retry_after_hint,
)
from vd_integrations.testing.embedding_server import (
    OfflineEmbeddingServer,
    embed_inputs,
    embedding_endpoint,
)
from vd_integrations.testing.lite_server import free_port

DIM = 64
LATENCY = 0.02
SECRET = "sk-test-SECRET-4f9c2d7e1b"
FAST = RetrySettings(initial_backoff=0.005, max_backoff=0.05, jitter=0.0)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def server():
    with OfflineEmbeddingServer(latency=LATENCY, dim=DIM) as srv:
        yield srv


@pytest.fixture
def srv(server: OfflineEmbeddingServer) -> OfflineEmbeddingServer:
    """The shared server with zeroed counters, once requests an earlier test abandoned (a
    client-side timeout, a cancelled call) have ended: one finishing later would count here."""
    for _ in range(500):
        if not server.stats()["in_flight"]:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("an earlier test left an embedding request in flight for 5 s")
    server.reset_stats()
    return server


@pytest.fixture(scope="module")
def shared(server: OfflineEmbeddingServer):
    """One client for tests that need default settings (its sync client is created once)."""
    with make_client(server) as client:
        yield client


def make_client(srv: OfflineEmbeddingServer, **kwargs: Any) -> OpenAIEmbeddingClient:
    kwargs.setdefault("retry", FAST)
    return OpenAIEmbeddingClient(base_url=srv.base_url, **kwargs)


def post(srv: OfflineEmbeddingServer, path: str, body: Any) -> tuple[int, dict, Any]:
    """Raw HTTP POST: (status, headers, decoded JSON)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        srv.base_url + path, data=data, method="POST", headers={"content-type": "application/json"}
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def expected(texts: list[str], dim: int = DIM) -> list[list[float]]:
    return embed_inputs(texts, dim).tolist()


# --------------------------------------------------------------------------------------------
# Retry policy (pure)
# --------------------------------------------------------------------------------------------


def test_backoff_schedule_is_exponential_and_capped() -> None:
    settings = RetrySettings(initial_backoff=0.25, multiplier=2.0, max_backoff=10.0, jitter=0.0)
    assert [settings.delay_for(n) for n in range(1, 9)] == [0.25, 0.5, 1, 2, 4, 8, 10, 10]
    assert settings.delay_for(10_000) == 10.0  # no overflow
    jittered = RetrySettings(initial_backoff=1.0, jitter=0.5)
    assert jittered.delay_for(1, rng=lambda: 0.0) == 1.0
    assert jittered.delay_for(1, rng=lambda: 1.0) == 0.5
    assert RetrySettings(initial_backoff=1.0, jitter=1.0).delay_for(1, rng=lambda: 1.0) == 0.0


def test_retry_after_hint_wins_and_is_capped() -> None:
    settings = RetrySettings(initial_backoff=0.25, max_backoff=5.0, jitter=0.5)
    assert settings.delay_for(1, retry_after=2.0) == 2.0
    assert settings.delay_for(3, retry_after=0.0) == 0.0
    assert settings.delay_for(1, retry_after=60.0) == 5.0
    assert settings.delay_for(1, retry_after=-1.0, rng=lambda: 0.0) == 0.25  # invalid: ignored


def test_next_delay_decisions() -> None:
    settings = RetrySettings(max_attempts=3, initial_backoff=1.0, jitter=0.0, deadline=2.5)
    assert settings.next_delay(False, 1, 0.0) is None  # not transient
    assert settings.next_delay(True, 1, 0.0) == 1.0
    assert settings.next_delay(True, 2, 0.4) == 2.0
    assert settings.next_delay(True, 2, 0.6) is None  # 0.6 + 2.0 passes the deadline
    assert settings.next_delay(True, 3, 0.0) is None  # attempts used up
    assert RetrySettings.disabled().next_delay(True, 1, 0.0) is None


def test_retry_state_explains_giving_up() -> None:
    now = [0.0]
    state = RetryState(
        RetrySettings(max_attempts=5, jitter=0.0, deadline=1.0), clock=lambda: now[0]
    )
    state.begin()
    assert state.failed(True) == 0.25
    state.begin()
    now[0] = 0.6
    assert state.failed(True) is None  # 0.6 + 0.5 > 1.0
    assert "1s deadline" in state.give_up_reason


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"max_attempts": 0}, ValueError, "max_attempts"),
        ({"max_attempts": 2.5}, TypeError, "max_attempts"),
        ({"initial_backoff": -1}, ValueError, "initial_backoff"),
        ({"multiplier": 0.5}, ValueError, "multiplier"),
        ({"jitter": 1.5}, ValueError, "jitter"),
        ({"max_backoff": 0.1, "initial_backoff": 1.0}, ValueError, "max_backoff"),
        ({"deadline": 0}, ValueError, "deadline"),
        ({"deadline": float("inf")}, TypeError, "deadline"),
        ({"initial_backoff": "1"}, TypeError, "initial_backoff"),
    ],
)
def test_retry_settings_validation(kwargs: dict, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        RetrySettings(**kwargs)


def test_parse_retry_after_headers() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now.timestamp()) == 30.0


class Transient(Exception):
    pass


def test_call_with_retry_shell() -> None:
    calls: list[int] = []
    sleeps: list[float] = []
    settings = RetrySettings(max_attempts=4, initial_backoff=0.1, jitter=0.0)

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Transient("try again")
        return "ok"

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, Transient)

    assert call_with_retry(flaky, settings, retryable, sleep=sleeps.append) == "ok"
    assert sleeps == [0.1, 0.2]

    def broken() -> None:
        calls.append(1)
        raise KeyError("permanent")

    calls.clear()
    with pytest.raises(KeyError):
        call_with_retry(broken, settings, retryable, sleep=sleeps.append)
    assert len(calls) == 1

    def always() -> None:
        raise Transient("still failing")

    with pytest.raises(RetryError, match=r"op failed after 4 attempts.*still failing") as info:
        call_with_retry(always, settings, retryable, operation="op", sleep=lambda _: None)
    assert info.value.attempts == 4
    assert isinstance(info.value.last_error, Transient)
    assert info.value.__cause__ is info.value.last_error
    with pytest.raises(Transient):  # one attempt only: the error itself
        call_with_retry(always, RetrySettings.disabled(), retryable)


async def test_cancellation_during_backoff_propagates() -> None:
    attempts: list[int] = []
    started = asyncio.Event()

    async def failing() -> None:
        attempts.append(1)
        started.set()
        raise Transient("busy")

    settings = RetrySettings(initial_backoff=30.0, max_backoff=30.0, jitter=0.0)
    task = asyncio.ensure_future(acall_with_retry(failing, settings, lambda e: True))
    await started.wait()
    await asyncio.sleep(0)  # now in the 30 s backoff sleep
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == [1]


# --------------------------------------------------------------------------------------------
# Offline server
# --------------------------------------------------------------------------------------------


def test_vectors_deterministic_across_processes(srv: OfflineEmbeddingServer) -> None:
    texts = ["The cat sat on the mat", "a cat on a mat", "stock market prices fell", "Ünïcode ok"]
    body = {"model": "m", "input": texts, "encoding_format": "float"}
    first = [d["embedding"] for d in post(srv, "/embeddings", body)[2]["data"]]
    other = OfflineEmbeddingServer(latency=0.0, dim=DIM).start()
    try:
        second = [d["embedding"] for d in post(other, "/embeddings", body)[2]["data"]]
        proc = other._proc
    finally:
        other.stop()
    assert proc is not None and proc.returncode == 0  # SIGTERM -> graceful exit
    assert not other.running
    assert first == second == expected(texts)
    vectors = np.array(first)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # weakly semantic: shared words pull vectors together
    assert vectors[0] @ vectors[1] > 0.3 > abs(vectors[0] @ vectors[2])


def test_float_and_base64_are_equivalent(
    srv: OfflineEmbeddingServer, shared: OpenAIEmbeddingClient
) -> None:
    texts = ["alpha beta", "gamma"]
    floats = post(srv, "/embeddings", {"model": "m", "input": texts})[2]  # API default: float
    b64 = post(srv, "/embeddings", {"model": "m", "input": texts, "encoding_format": "base64"})[2]
    for f, b in zip(floats["data"], b64["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert decoded.tolist() == np.float32(f["embedding"]).tolist()
    # the SDK asks for base64 by default and decodes it: same numbers as the float format
    assert shared.embed(texts) == [d["embedding"] for d in floats["data"]]


def test_response_shape_and_usage(srv: OfflineEmbeddingServer) -> None:
    status, _, body = post(srv, "/embeddings", {"model": "my-model", "input": ["a b", "c"]})
    assert status == 200
    assert body["object"] == "list" and body["model"] == "my-model"
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0


def test_dimensions(srv: OfflineEmbeddingServer, shared: OpenAIEmbeddingClient) -> None:
    body = post(srv, "/embeddings", {"model": "m", "input": "hello", "dimensions": 16})[2]
    assert len(body["data"][0]["embedding"]) == 16
    vector = make_client(srv, dimensions=16).embed_one("hello")
    assert vector == expected(["hello"], 16)[0]
    assert shared.embed_one("hello") == expected(["hello"])[0]
    status, _, error = post(srv, "/embeddings", {"model": "m", "input": "x", "dimensions": 999})
    assert status == 400 and error["error"]["param"] == "dimensions"


def test_token_array_inputs(srv: OfflineEmbeddingServer) -> None:
    one = post(srv, "/embeddings", {"model": "m", "input": [1, 2, 3], "encoding_format": "float"})
    many = post(srv, "/embeddings", {"model": "m", "input": [[1, 2, 3], [4]]})
    assert one[0] == many[0] == 200
    assert len(one[2]["data"]) == 1 and len(many[2]["data"]) == 2
    assert one[2]["data"][0]["embedding"] == many[2]["data"][0]["embedding"]
    assert many[2]["data"][0]["embedding"] != many[2]["data"][1]["embedding"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": ["ok", ""]}, "input"),
        ({"model": "m", "input": ["x"] * 2049}, "input"),
        ({"model": "m", "input": [1, "a"]}, "input"),
        ({"model": "m", "input": {"text": "a"}}, "input"),
        ({"model": "m"}, "input"),
        ({"input": "a"}, "model"),
        ({"model": "m", "input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "m", "input": "a", "dimensions": 0}, "dimensions"),
        (b"{not json", None),
    ],
)
def test_bad_requests_use_openai_error_shape(
    srv: OfflineEmbeddingServer, body: Any, param: str | None
) -> None:
    status, headers, payload = post(srv, "/embeddings", body)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["error"]["param"] == param
    assert payload["error"]["message"]
    assert srv.stats()["errors"] == 1 and srv.stats()["requests"] == 0


def test_unknown_path_is_404(srv: OfflineEmbeddingServer) -> None:
    status, _, payload = post(srv, "/chat/completions", {})
    assert status == 404
    assert "Invalid URL (POST /v1/chat/completions)" in payload["error"]["message"]


def test_stats_counter_and_reset(
    srv: OfflineEmbeddingServer, shared: OpenAIEmbeddingClient
) -> None:
    for batch in (["a", "b"], ["c", "d", "e"], ["f"]):
        shared.embed(batch)
    stats = srv.stats()
    assert (stats["requests"], stats["inputs"], stats["in_flight"]) == (3, 6, 0)
    assert stats["max_in_flight"] == 1  # sequential
    srv.inject_faults(503, 2)
    assert srv.reset_stats()["requests"] == 0
    assert srv.stats()["pending_faults"] == 0  # reset clears faults too


async def test_thousand_concurrent_keep_alive_connections(srv: OfflineEmbeddingServer) -> None:
    host, port = srv.base_url.removeprefix("http://").removesuffix("/v1").rsplit(":", 1)
    body = json.dumps({"model": "m", "input": ["x"], "encoding_format": "float"}).encode()
    request = (
        f"POST /v1/embeddings HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def two_requests_on_one_connection() -> list[int]:
        reader, writer = await asyncio.open_connection(host, int(port))
        statuses = []
        for _ in range(2):  # the second request reuses the connection (keep-alive)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            length = next(int(x.split(":")[1]) for x in lines if x.startswith("content-length"))
            payload = json.loads(await reader.readexactly(length))
            assert payload["data"][0]["embedding"] == expected(["x"])[0]
            statuses.append(int(lines[0].split()[1]))
        writer.close()
        await writer.wait_closed()
        return statuses

    results = await asyncio.gather(*(two_requests_on_one_connection() for _ in range(1000)))
    assert results == [[200, 200]] * 1000
    stats = srv.stats()
    assert stats["requests"] == 2000
    assert stats["max_in_flight"] > 100  # requests overlap in the server's sleep


# --------------------------------------------------------------------------------------------
# Client: batching, concurrency, retries
# --------------------------------------------------------------------------------------------


def test_plan_batches_respects_count_and_token_budget() -> None:
    assert plan_batches([], 10, 100) == []
    assert plan_batches(["x"] * 5000, 2048, 10**9) == [(0, 2048), (2048, 4096), (4096, 5000)]
    texts = ["a" * 30] * 5  # 10 tokens each
    assert approx_tokens(texts[0]) == 10 and approx_tokens("") == 1
    assert plan_batches(texts, 100, 25) == [(0, 2), (2, 4), (4, 5)]
    huge = ["a" * 3000, "b", "c" * 3000]  # 1000 tokens each: alone, over the budget
    assert plan_batches(huge, 100, 500) == [(0, 1), (1, 2), (2, 3)]


def test_sync_batching_preserves_order(srv: OfflineEmbeddingServer) -> None:
    texts = [f"document {i} about topic {i % 7}" for i in range(5000)]
    with make_client(srv, batch_size=2048) as client:
        vectors = client.embed(texts)
    assert vectors == expected(texts)
    assert srv.stats()["requests"] == 3 and srv.stats()["inputs"] == 5000


async def test_async_batching_and_token_budget(srv: OfflineEmbeddingServer) -> None:
    texts = [f"{i:04d} " + "y" * 85 for i in range(10)]  # 90 chars: 30 tokens each
    async with make_client(srv, max_batch_tokens=100) as client:
        assert await client.aembed(texts) == expected(texts)
        assert srv.stats()["requests"] == 4  # 3 + 3 + 3 + 1
        assert await client.aembed([]) == [] and client.embed([]) == []
    assert srv.stats()["requests"] == 4


def test_invalid_texts_rejected_before_any_request(
    srv: OfflineEmbeddingServer, shared: OpenAIEmbeddingClient
) -> None:
    with pytest.raises(InvalidInputError, match="single str"):
        shared.embed("not a list")
    with pytest.raises(InvalidInputError, match=r"texts\[1\] must be a str"):
        shared.embed(["ok", 3])  # type: ignore[list-item]
    assert srv.stats()["requests"] == 0


async def test_concurrent_calls_share_requests(srv: OfflineEmbeddingServer) -> None:
    client = make_client(srv, batch_size=64)
    texts = [[f"text {i}", f"more {i}"] for i in range(100)]
    results = await asyncio.gather(*(client.aembed(t) for t in texts))
    assert results == [expected(t) for t in texts]  # each caller gets its own vectors
    assert srv.stats()["requests"] == 4  # 200 texts in requests of at most 64
    srv.reset_stats()
    # a caller whose input the server rejects fails alone
    bad = "word " * 40_000  # over the server's 8192-token limit per input
    outcome = await asyncio.gather(
        client.aembed(["fine"]),
        client.aembed([bad]),
        client.aembed(["also fine"]),
        return_exceptions=True,
    )
    assert outcome[0] == expected(["fine"]) and outcome[2] == expected(["also fine"])
    assert isinstance(outcome[1], Exception)
    await client.aclose()


async def test_lone_call_is_not_delayed_by_coalescing(srv: OfflineEmbeddingServer) -> None:
    merged, direct = make_client(srv), make_client(srv, coalescing=False)
    for client in (merged, direct):
        await client.aembed(["warm up"])
    assert await merged.aembed(["alone"]) == await direct.aembed(["alone"])
    assert srv.stats()["requests"] == 4
    for client in (merged, direct):
        await client.aclose()


async def test_concurrency_is_bounded_across_calls(srv: OfflineEmbeddingServer) -> None:
    client = make_client(srv, max_concurrency=4, coalescing=False)
    results = await asyncio.gather(*(client.aembed([f"text {i}"]) for i in range(200)))
    assert [r[0] for r in results] == expected([f"text {i}" for i in range(200)])
    stats = srv.stats()
    assert stats["requests"] == 200
    assert 2 <= stats["max_in_flight"] <= 4  # concurrent, but never above the cap
    # one call with many batches obeys the same cap
    srv.reset_stats()
    small = make_client(srv, max_concurrency=3, batch_size=1)
    texts = [f"t{i}" for i in range(12)]
    assert await small.aembed(texts) == expected(texts)
    assert srv.stats()["requests"] == 12 and srv.stats()["max_in_flight"] <= 3
    # a larger cap really lets more requests overlap
    srv.reset_stats()
    wide = make_client(srv, max_concurrency=64, coalescing=False)
    await asyncio.gather(*(wide.aembed([f"text {i}"]) for i in range(100)))
    assert srv.stats()["max_in_flight"] > 4
    for c in (client, small, wide):
        await c.aclose()


@pytest.mark.parametrize("status", [429, 500, 503])
def test_sync_retries_transient_errors(
    srv: OfflineEmbeddingServer, shared: OpenAIEmbeddingClient, status: int
) -> None:
    srv.inject_faults(status, 2)
    assert shared.embed(["retry me"]) == expected(["retry me"])
    stats = srv.stats()
    assert (stats["faulted"], stats["requests"], stats["pending_faults"]) == (2, 1, 0)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_async_retries_transient_errors(srv: OfflineEmbeddingServer, status: int) -> None:
    srv.inject_faults(status, 2)
    async with make_client(srv) as client:
        assert await client.aembed(["retry me"]) == expected(["retry me"])
    assert (srv.stats()["faulted"], srv.stats()["requests"]) == (2, 1)


def test_server_retry_after_is_honoured(
    srv: OfflineEmbeddingServer, caplog: pytest.LogCaptureFixture
) -> None:
    srv.inject_faults(429, 1, retry_after=1.5)
    raw = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        raw.embeddings.create(model="m", input=["x"])
    raw.close()
    assert retry_after_hint(info.value) == 1.5  # from retry-after-ms
    srv.inject_faults(429, 1, retry_after=0.04)
    retry = RetrySettings(initial_backoff=5.0, max_backoff=10.0, jitter=0.0)
    with caplog.at_level(logging.DEBUG, logger="vd_integrations.core.retry"):
        make_client(srv, retry=retry).embed(["x"])
    assert "retrying in 0.040s" in caplog.text  # the hint, not the 5 s backoff


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_fail_at_once(
    srv: OfflineEmbeddingServer, shared: OpenAIEmbeddingClient, status: int
) -> None:
    srv.inject_faults(status, 3)
    with pytest.raises(openai.APIStatusError) as info:
        shared.embed(["x"])
    assert info.value.status_code == status
    assert srv.stats()["faulted"] == 1 and srv.stats()["pending_faults"] == 2


async def test_failed_batch_fails_the_async_call(srv: OfflineEmbeddingServer) -> None:
    srv.inject_faults(400, 1)
    client = make_client(srv, batch_size=1, max_concurrency=2)
    with pytest.raises(openai.BadRequestError):
        await client.aembed([f"t{i}" for i in range(6)])
    assert srv.stats()["faulted"] == 1
    assert await client.aembed(["t0", "t1"]) == expected(["t0", "t1"])  # still usable
    await client.aclose()


def test_bad_input_fails_at_once(
    srv: OfflineEmbeddingServer, shared: OpenAIEmbeddingClient
) -> None:
    with pytest.raises(openai.BadRequestError):
        shared.embed(["fine", ""])
    assert srv.stats()["errors"] == 1 and srv.stats()["requests"] == 0


def test_exhausted_retries_say_what_happened(srv: OfflineEmbeddingServer) -> None:
    srv.inject_faults(503, 10)
    retry = RetrySettings(max_attempts=3, initial_backoff=0.001, max_backoff=0.01)
    with pytest.raises(RetryError) as info:
        make_client(srv, retry=retry, api_key=SECRET).embed(["x"])
    message = str(info.value)
    assert "failed after 3 attempts" in message and "HTTP 503" in message
    assert "max_attempts=3" in message and SECRET not in message
    assert info.value.attempts == 3
    assert isinstance(info.value.last_error, openai.InternalServerError)
    assert srv.stats()["faulted"] == 3 and srv.stats()["pending_faults"] == 7


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"base_url": "http://127.0.0.1:{closed}/v1"}, "APIConnectionError"),
        ({"timeout": 0.001}, "APITimeoutError"),  # the server takes 0.02 s
    ],
)
def test_connection_errors_and_timeouts_are_retried(
    srv: OfflineEmbeddingServer, settings: dict, error: str
) -> None:
    settings = {**settings}
    if "base_url" in settings:
        settings["base_url"] = settings["base_url"].format(closed=free_port())
    else:
        settings["base_url"] = srv.base_url
    retry = RetrySettings(max_attempts=2, initial_backoff=0.001, max_backoff=0.01)
    client = OpenAIEmbeddingClient(retry=retry, **settings)
    with pytest.raises(RetryError, match=rf"after 2 attempts.*{error}") as info:
        client.embed(["x"])
    assert isinstance(info.value.last_error, openai.APIConnectionError)
    client.close()


async def test_async_exhausted_retries(srv: OfflineEmbeddingServer) -> None:
    srv.inject_faults(429, 5)
    client = make_client(srv, retry=RetrySettings(max_attempts=2, initial_backoff=0.001))
    with pytest.raises(RetryError, match=r"after 2 attempts.*HTTP 429"):
        await client.aembed(["x"])
    await client.aclose()


async def test_client_cancellation_during_backoff(srv: OfflineEmbeddingServer) -> None:
    srv.inject_faults(429, 1, retry_after=30)
    client = make_client(srv, retry=RetrySettings(max_backoff=60.0))
    task = asyncio.ensure_future(client.aembed(["x"]))
    for _ in range(200):  # wait for the 429 to arrive; then the client is sleeping 30 s
        await asyncio.sleep(0.01)
        if srv.stats()["faulted"]:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert srv.stats()["requests"] == 0
    await client.aclose()


def settled_connections(srv: OfflineEmbeddingServer, at_most: int) -> int:
    """Open server connections, once they drop to ``at_most`` (or after about 1 s)."""
    for _ in range(100):
        current = srv.stats()["connections"]
        if current <= at_most:
            break
        time.sleep(0.01)
    return current


def test_async_client_per_event_loop(srv: OfflineEmbeddingServer) -> None:
    client = make_client(srv)
    texts = ["one", "two", "three"]
    baseline = srv.stats()["connections"]  # this stats request, plus any idle leftovers
    for _ in range(5):  # each asyncio.run has a new loop: a new AsyncOpenAI for each
        assert asyncio.run(client.aembed(texts)) == expected(texts)
        # the loop's connections were closed when asyncio.run shut the loop down
        assert settled_connections(srv, baseline) <= baseline
    assert client.embed(texts) == expected(texts)
    client.close()
    assert asyncio.run(client.aembed(texts)) == expected(texts)  # reopened lazily
    client.close()


def test_every_loop_client_shares_one_certificate_checking_tls_context() -> None:
    """httpx builds a TLS context per client (about 20 ms); each new loop reuses one."""
    context = shared_tls_context()
    assert shared_tls_context() is context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname

    seen: list[dict[str, Any]] = []

    class FakeSdk:
        @staticmethod
        def DefaultAsyncHttpxClient(**kwargs: Any) -> dict[str, Any]:
            seen.append(kwargs)
            return kwargs

        class AsyncOpenAI:
            def __init__(self, **kwargs: Any) -> None:
                self.http_client = kwargs["http_client"]

            async def close(self) -> None:
                return None

    async def open_one() -> Any:
        return LoopClient.open(FakeSdk, {}, 2, CoalescingSettings()).client

    clients = [asyncio.run(open_one()) for _ in range(2)]
    assert [kwargs["verify"] for kwargs in seen] == [context, context]
    assert all(c.http_client["verify"] is context for c in clients)


def test_the_sync_client_shares_the_tls_context_too(
    srv: OfflineEmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Any] = []
    real = openai.DefaultHttpxClient

    def recording(**kwargs: Any) -> Any:
        made.append(kwargs.get("verify"))
        return real(**kwargs)

    monkeypatch.setattr(openai, "DefaultHttpxClient", recording)
    with make_client(srv) as client:
        assert client.embed(["one", "two"]) == expected(["one", "two"])
        assert client.embed(["three"]) == expected(["three"])  # one sync client, made once
    assert made == [shared_tls_context()]


# --------------------------------------------------------------------------------------------
# API key handling and endpoint selection
# --------------------------------------------------------------------------------------------


def test_api_key_never_shown(srv: OfflineEmbeddingServer, caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(srv, api_key=SECRET)
    srv.inject_faults(429, 1)
    with caplog.at_level(logging.DEBUG):
        client.embed(["x"])
    texts = [repr(client), str(client), caplog.text]
    lc = OpenAIEmbeddings(base_url=srv.base_url, api_key=SECRET)
    li = OpenAIEmbedding(base_url=srv.base_url, api_key=SECRET)
    texts += [repr(lc), str(lc), repr(li), str(li), li.to_json()]
    if hasattr(li, "to_payload"):  # llama-index-core 0.14.23+: what instrumentation emits
        texts.append(json.dumps(li.to_payload()))
    for text in texts:
        assert SECRET not in text
    assert "base_url=" in repr(client) and "api_key" not in repr(client)


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match=r"OPENAI_API_KEY.*base_url"):
        OpenAIEmbeddingClient()
    OpenAIEmbeddingClient(base_url="http://127.0.0.1:1/v1")  # local server: placeholder key
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    OpenAIEmbeddingClient()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 4096}, "batch_size"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"dimensions": -1}, "dimensions"),
        ({"timeout": 0}, "timeout"),
        ({"model": ""}, "model"),
    ],
)
def test_client_settings_validation(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        OpenAIEmbeddingClient(base_url="http://127.0.0.1:1/v1", **kwargs)


def test_embedding_endpoint_offline_and_real(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with embedding_endpoint(latency=0.0, dim=8) as endpoint:
        assert endpoint.offline and endpoint.server is not None
        with endpoint.client() as client:
            assert client.embed_one("hi") == expected(["hi"], 8)[0]
    assert not endpoint.server.running
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"), embedding_endpoint(offline=False):
        pass
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid/v1")
    with embedding_endpoint(dim=256) as endpoint:
        assert not endpoint.offline and endpoint.server is None
        assert endpoint.base_url == "http://example.invalid/v1"
        assert endpoint.dimensions == 256 and SECRET not in repr(endpoint)
        assert endpoint.client().dimensions == 256  # no request made


# --------------------------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------------------------


class TestLangChainEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[OpenAIEmbeddings]:
        return OpenAIEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"base_url": "http://127.0.0.1:1/v1", "dimensions": 32}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return {"OPENAI_API_KEY": "sk-from-env"}, {}, {"model": DEFAULT_MODEL}


class TestLangChainEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[OpenAIEmbeddings]:
        return OpenAIEmbeddings

    @pytest.fixture
    def model(self, srv: OfflineEmbeddingServer) -> OpenAIEmbeddings:
        return OpenAIEmbeddings(base_url=srv.base_url)


async def test_langchain_async_equals_sync(srv: OfflineEmbeddingServer) -> None:
    embeddings = OpenAIEmbeddings(base_url=srv.base_url, batch_size=3, retry=FAST)
    docs = [f"doc {i}" for i in range(7)]
    sync_docs = embeddings.embed_documents(docs)
    assert sync_docs == expected(docs)
    assert await embeddings.aembed_documents(docs) == sync_docs
    assert await embeddings.aembed_query("q") == embeddings.embed_query("q") == expected(["q"])[0]
    assert srv.stats()["requests"] == 3 + 3 + 2
    shared = OpenAIEmbeddings(client=embeddings.client)
    assert shared.client is embeddings.client
    with pytest.raises(ValueError, match="either client= or client settings"):
        OpenAIEmbeddings(client=embeddings.client, dimensions=8)
    await embeddings.aclose()


async def test_llama_index_async_equals_sync(srv: OfflineEmbeddingServer) -> None:
    embedding = OpenAIEmbedding(base_url=srv.base_url, dimensions=16, retry=FAST)
    assert embedding.embed_batch_size == 2048 and embedding.model_name == DEFAULT_MODEL
    texts = [f"node {i}" for i in range(25)]
    sync_batch = embedding.get_text_embedding_batch(texts)
    assert sync_batch == expected(texts, 16)
    assert srv.stats()["requests"] == 1  # one call: the core client batches
    assert await embedding.aget_text_embedding_batch(texts) == sync_batch
    query = await embedding.aget_query_embedding("question")
    assert query == embedding.get_query_embedding("question") == expected(["question"], 16)[0]
    assert await embedding.aget_text_embedding("node 3") == sync_batch[3]
    small = OpenAIEmbedding(client=embedding.client, embed_batch_size=10)
    srv.reset_stats()
    assert await small.aget_text_embedding_batch(texts) == sync_batch
    # LlamaIndex sends its three sub-batches concurrently; the client merges them
    assert srv.stats()["requests"] == 1
    rebuilt = OpenAIEmbedding.from_dict(embedding.to_dict())
    assert rebuilt.dimensions == 16 and rebuilt.base_url == srv.base_url
    await embedding.aclose()


def test_adapters_forward_every_client_setting(srv: OfflineEmbeddingServer) -> None:
    from vd_integrations.core.coalesce import CoalescingSettings

    settings = {"base_url": srv.base_url, "dimensions": 8, "coalescing": False, "retry": FAST}
    lc = OpenAIEmbeddings(**settings)
    li = OpenAIEmbedding(**settings, embed_batch_size=16)
    for client in (lc.client, li.client):
        assert client.dimensions == 8 and client.coalescing == CoalescingSettings.disabled()
    assert li.embed_batch_size == 16
    with pytest.raises(TypeError, match="Unknown OpenAIEmbeddingClient settings"):
        OpenAIEmbeddings(base_url=srv.base_url, dimension=8)

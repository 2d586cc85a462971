"""Secrets (issue 6): tokens, passwords and API keys never show in repr, logs or errors.

Stores are built with a Milvus token (``root:<secret>``), with user/password, and an
``OpenAIEmbeddingClient`` with an API key. For each we check ``repr``/``str`` of every
object a user may print, every log record of every logger at DEBUG (pymilvus' own stderr
handler too) during normal and failing operations, and failed calls' messages with their
whole chain of causes (``traceback.format_exception``). The secret is searched verbatim
and base64-encoded (as in a Basic auth header).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import pprint
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc  # noqa: F401 - imported so its loggers exist when the fixture turns on DEBUG
import httpx  # noqa: F401
import openai
import pymilvus  # noqa: F401
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

import llama_index_vd
from langchain_vd import Milvus
from llama_index_vd import MilvusVectorStore
from vd_integrations.core.retry import RetryError, RetrySettings
from vd_integrations.embeddings.openai_client import OpenAIEmbeddingClient
from vd_integrations.milvus.config import ConnectionConfig, redact_setting, redact_uri

SECRET = "SecretPa55-xyz"
TOKEN = f"root:{SECRET}"
API_KEY = f"sk-test-{SECRET}"
FORMS = tuple({SECRET, *(base64.b64encode(s.encode()).decode() for s in (SECRET, TOKEN, API_KEY))})
CREDENTIALS = {
    "token": {"token": TOKEN},
    "user_password": {"user": "root", "password": SECRET},
}


def assert_clean(*texts: str) -> None:
    for text in texts:
        for form in FORMS:
            assert form not in text, f"secret leaked: ...{_around(text, form)}..."


def _around(text: str, form: str) -> str:
    at = text.index(form)
    return text[max(0, at - 300) : at + 60]


def error_text(exc: BaseException) -> str:
    """Everything an exception can show: the formatted traceback with its chained causes,
    and ``str``/``repr``/``args`` of every exception in the chain."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return "\n".join(parts)


def refused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Every logger at DEBUG and propagating to caplog (pymilvus normally has its own stderr
    handler, captured with capfd); returns a function giving all log output so far."""
    names = ["", *logging.root.manager.loggerDict]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, logger.propagate, logger.disabled)
        logger.setLevel(logging.DEBUG)
        logger.propagate = True
        logger.disabled = False
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        out, err = capfd.readouterr()
        records = [f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records]
        return "\n".join([caplog.text, *records, out, err])

    yield text
    for name, (level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


def assert_logged_nothing_secret(logs: Callable[[], str], minimum_records: int = 1) -> None:
    text = logs()
    assert text.count("\n") >= minimum_records  # DEBUG logging was really on
    assert_clean(text)


# ------------------------------------------------------------------------------------------------
# repr / str
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", list(CREDENTIALS))
def test_repr_and_str_hide_milvus_credentials(
    milvus_uri: str, collection_name: str, credentials: str
) -> None:
    args = {"uri": milvus_uri, **CREDENTIALS[credentials]}
    store = Milvus(
        DeterministicFakeEmbedding(size=8), collection_name=collection_name, connection_args=args
    )
    store.add_texts(["a"], ids=["1"])  # the sync client exists now

    async def async_client() -> str:
        await store.asimilarity_search("a", k=1)
        return f"{store.engine.aclient!r} {store.engine.aclient}"

    shown = [repr(store), str(store), repr(store.engine), str(store.engine)]
    shown += [repr(store.engine.config), str(store.engine.config), pprint.pformat(store)]
    shown += [repr(store.engine.client), str(store.engine.client), asyncio.run(async_client())]
    assert_clean(*shown)
    assert "***" in repr(store.engine.config)
    store.close()


def test_repr_and_str_hide_llama_index_token(milvus_uri: str, collection_name: str) -> None:
    store = MilvusVectorStore(uri=milvus_uri, token=TOKEN, collection_name=collection_name)
    store.add([TextNode(id_="1", text="a", embedding=[1.0, 0.0])])
    shown = [repr(store), str(store), repr(store.engine), repr(store.client)]
    shown += [str(store.to_dict()), store.to_json(), str(store.model_dump()), pprint.pformat(store)]
    assert_clean(*shown)
    assert store.token == TOKEN  # kept for the connection, just never shown
    store.close()


def test_serialisations_hide_passwords_in_uris_and_tokens() -> None:
    """model_dump / model_dump_json / to_dict / to_json / dict / json redact as repr does
    (issue 14, class 7): the password inside a URI and any token never appear."""
    uri = f"http://root:{SECRET}@127.0.0.1:{refused_port()}"
    stores = [
        MilvusVectorStore(uri=uri, token=TOKEN, password=SECRET, collection_name="c"),
        llama_index_vd.VDVectorStore(backend="milvus", uri=uri, token=TOKEN),
    ]
    for store in stores:  # nothing connects in a constructor
        shown = [store.model_dump_json(), store.to_json(), store.json(), repr(store)]
        shown += [str(store.model_dump()), str(store.model_dump(mode="json"))]
        shown += [str(store.to_dict()), str(store.dict()), str(list(store.__repr_args__()))]
        shown += [pprint.pformat(store), str(store.model_dump(include={"uri", "token"}))]
        assert_clean(*shown)
    llama = stores[0]
    assert llama.model_dump()["uri"] == redact_uri(uri) == "http://***@127.0.0.1:" + uri[-5:]
    assert json.loads(llama.to_json())["uri"] == redact_uri(uri)
    assert redact_uri(uri) in repr(llama)  # the same redaction as repr
    assert llama.uri == uri and llama.token == TOKEN  # still what the connection uses
    assert redact_setting("client_secret", SECRET) == redact_setting("token", TOKEN) == "***"
    assert redact_setting("uri", uri) == redact_uri(uri)
    assert redact_setting("token", "") == "" and redact_setting("secure", True) is True

    langchain = Milvus(
        DeterministicFakeEmbedding(size=8),
        connection_args={"uri": uri, "token": TOKEN, "password": SECRET},
    )
    retriever = langchain.as_retriever()
    shown = [repr(langchain), repr(retriever), str(retriever.model_dump())]
    shown += [json.dumps(retriever.to_json(), default=repr), pprint.pformat(vars(retriever))]
    assert_clean(*shown)
    langchain.close()


def test_connection_config_redacts_every_secret_form() -> None:
    config = ConnectionConfig.from_connection_args(
        {
            "uri": f"https://root:{SECRET}@milvus.example:19530",
            "token": TOKEN,
            "user": "root",
            "password": SECRET,
            "client_secret": SECRET,
            "api_key": SECRET,
            "secure": True,
        }
    )
    assert_clean(repr(config), str(config), f"{config}", pprint.pformat(config))
    assert repr(config) == (
        "ConnectionConfig(uri='https://***@milvus.example:19530', user='root', token='***', "
        "password='***', client_secret='***', api_key='***', secure=True)"
    )
    assert config.client_kwargs()["token"] == TOKEN  # still what pymilvus receives
    assert redact_uri("http://localhost:19530") == "http://localhost:19530"
    assert redact_uri("./milvus@home.db") == "./milvus@home.db"


def test_repr_and_str_hide_openai_api_key() -> None:
    client = OpenAIEmbeddingClient(api_key=API_KEY)
    assert_clean(repr(client), str(client), pprint.pformat(client))


# ------------------------------------------------------------------------------------------------
# Logs and errors: Milvus
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", list(CREDENTIALS))
def test_normal_and_failing_milvus_ops_log_no_secret(
    milvus_uri: str, collection_name: str, credentials: str, logs: Callable[[], str]
) -> None:
    """Sync and async adds, searches, MMR, deletes and a rejected filter, at DEBUG."""
    args = {"uri": milvus_uri, **CREDENTIALS[credentials]}
    store = Milvus(
        DeterministicFakeEmbedding(size=8), collection_name=collection_name, connection_args=args
    )
    store.add_texts(["apple", "banana"], metadatas=[{"n": 1}, {"n": 2}], ids=["1", "2"])
    assert [d.id for d in store.similarity_search("apple", k=1)] == ["1"]
    store.max_marginal_relevance_search("apple", k=1, fetch_k=2)
    store.delete(ids=["2"])
    failures = []
    with pytest.raises(Exception) as sync_error:
        store.similarity_search("apple", k=1, expr="n >>> 1")
    failures.append(sync_error.value)

    async def async_ops() -> BaseException:
        await store.aadd_texts(["cherry"], ids=["3"])
        await store.asimilarity_search("cherry", k=1)
        await store.amax_marginal_relevance_search("cherry", k=1, fetch_k=2)
        await store.adelete(expr="n == 1")
        with pytest.raises(Exception) as info:
            await store.adelete(expr="no_such_function(n)")
        await store.aclose()
        return info.value

    failures.append(asyncio.run(async_ops()))
    assert_clean(*(error_text(exc) for exc in failures))
    assert_logged_nothing_secret(logs, minimum_records=10)


@pytest.mark.parametrize("credentials", list(CREDENTIALS))
def test_unreachable_milvus_errors_and_logs_hide_secrets(
    collection_name: str, credentials: str, logs: Callable[[], str]
) -> None:
    """Connection refused, sync and async, both integrations: the error says what failed
    (and where), but no credential appears in it, its causes or the logs."""
    uri = f"http://127.0.0.1:{refused_port()}"
    args = {"uri": uri, "timeout": 2, **CREDENTIALS[credentials]}
    retry = RetrySettings(max_attempts=2, initial_backoff=0.01, max_backoff=0.01)
    lc = Milvus(
        DeterministicFakeEmbedding(size=8),
        collection_name=collection_name,
        connection_args=args,
        retry=retry,
    )
    extra = {"user": "root", "password": SECRET} if credentials == "user_password" else {}
    token = TOKEN if credentials == "token" else ""
    li = MilvusVectorStore(uri=uri, token=token, timeout=2, retry=retry, **extra)
    query = VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=1)
    calls: list[Callable[[], Any]] = [
        lambda: lc.add_texts(["a"], ids=["1"]),
        lambda: asyncio.run(lc.asimilarity_search("a", k=1)),
        lambda: li.add([TextNode(id_="1", text="a", embedding=[1.0, 0.0])]),
        lambda: asyncio.run(li.aquery(query)),
    ]
    messages: list[str] = []
    for call in calls:
        with pytest.raises(Exception) as info:
            call()
        messages.append(f"{type(info.value).__name__}: {info.value}")
        text = error_text(info.value)
        assert "127.0.0.1" in text  # the message still says where it failed
        assert_clean(text, repr(info.value), str(info.value))
    lc.close()
    li.close()
    assert_logged_nothing_secret(logs)
    # a retried failure says how often it was tried; every message names the operation
    assert all("failed" in m and "Milvus" in m for m in messages), messages


# ------------------------------------------------------------------------------------------------
# Logs and errors: OpenAI embeddings
# ------------------------------------------------------------------------------------------------


class _FakeOpenAI(BaseHTTPRequestHandler):
    """``POST /v1/embeddings``: 3-d vectors; inputs containing ``fail401``/``fail500``/
    ``echo`` get those errors (``echo`` quotes the Authorization header back, as some
    proxies do)."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        text = " ".join(map(str, inputs))
        if "fail401" in text:
            error = {"message": "Incorrect API key provided.", "code": "invalid_api_key"}
            self._send(401, {"error": {**error, "type": "invalid_request_error"}})
        elif "echo" in text:
            message = f"unknown credentials {self.headers['authorization']}"
            self._send(401, {"error": {"message": message, "type": "invalid_request_error"}})
        elif "fail500" in text:
            self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
        else:
            data = [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                for i in range(len(inputs))
            ]
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            self._send(
                200, {"object": "list", "model": body["model"], "data": data, "usage": usage}
            )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def openai_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def _openai_client(base_url: str) -> OpenAIEmbeddingClient:
    retry = RetrySettings(max_attempts=2, initial_backoff=0.01, max_backoff=0.01)
    return OpenAIEmbeddingClient(api_key=API_KEY, base_url=base_url, retry=retry)


def test_openai_client_ops_and_errors_hide_the_api_key(
    openai_url: str, logs: Callable[[], str]
) -> None:
    """Successful calls, a 401, a 500 through exhausted retries, and a refused connection,
    sync and async: no error, cause or log line shows the key."""
    client = _openai_client(openai_url)
    assert client.embed(["hello"]) == [[0.1, 0.2, 0.3]]
    assert asyncio.run(client.aembed(["hello", "world"])) == [[0.1, 0.2, 0.3]] * 2
    expected = {"fail401": openai.AuthenticationError, "fail500": RetryError}
    for text, error in expected.items():
        with pytest.raises(error) as sync_info:
            client.embed([text])
        with pytest.raises(error) as async_info:
            asyncio.run(client.aembed([text]))
        assert_clean(error_text(sync_info.value), error_text(async_info.value))
    refused = _openai_client(f"http://127.0.0.1:{refused_port()}/v1")
    with pytest.raises(RetryError, match="APIConnectionError") as info:
        refused.embed(["x"])
    assert_clean(error_text(info.value))
    with pytest.raises(RetryError) as info:
        asyncio.run(refused.aembed(["x"]))
    assert_clean(error_text(info.value))
    client.close()
    refused.close()
    assert_logged_nothing_secret(logs, minimum_records=5)


def test_openai_error_quoting_the_key_is_scrubbed(openai_url: str) -> None:
    client = _openai_client(openai_url)
    with pytest.raises(openai.AuthenticationError) as info:
        client.embed(["echo"])
    client.close()
    assert_clean(error_text(info.value))

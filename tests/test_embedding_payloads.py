"""Reading an embeddings response body (:func:`vectors_from_body`): base64 float32 or
lists of numbers, in input order, and a clear error for anything not OpenAI-shaped."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vd_integrations.embeddings.payloads import build_request, vectors_from_body


def _b64(vector: Any) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _body(*items: dict[str, Any]) -> bytes:
    return json.dumps({"object": "list", "data": list(items), "model": "m"}).encode()


def test_the_request_asks_for_base64() -> None:
    assert build_request("m", ["a"], None)["encoding_format"] == "base64"


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 5), st.integers(1, 64)),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    )
)
def test_base64_embeddings_decode_to_the_float32_values_sent(vectors: np.ndarray) -> None:
    body = _body(*({"index": i, "embedding": _b64(v)} for i, v in enumerate(vectors)))
    assert vectors_from_body(body, len(vectors)) == vectors.astype(np.float64).tolist()


def test_embeddings_come_back_in_input_order_by_index() -> None:
    body = _body(
        {"index": 2, "embedding": _b64([3.0])},
        {"index": 0, "embedding": _b64([1.0])},
        {"index": 1, "embedding": [2.0]},  # a server that ignores encoding_format
    )
    assert vectors_from_body(body, 3) == [[1.0], [2.0], [3.0]]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"<html>busy</html>", "no list of embeddings"),
        (b"\xff\xfe", "no list of embeddings"),
        (json.dumps({"error": "x"}).encode(), "no list of embeddings"),
        (json.dumps([1, 2]).encode(), "no list of embeddings"),
        (_body({"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}), "duplicate"),
        (_body({"index": 5, "embedding": [1.0]}), "invalid or duplicate index 5"),
        (_body({"index": True, "embedding": [1.0]}), "invalid or duplicate index True"),
        (_body({"embedding": [1.0]}), "invalid or duplicate index None"),
        (_body("not an item"), "invalid or duplicate index None"),
        (_body({"index": 0, "embedding": None}), "neither base64 float32"),
        (_body({"index": 0, "embedding": "not base64!"}), "neither base64 float32"),
        (_body({"index": 0, "embedding": "AAAAAAA="}), "neither base64 float32"),  # 5 bytes
        (_body(), "returned 0 embeddings for 1 inputs"),
    ],
)
def test_answers_that_are_not_openai_shaped_are_refused_clearly(
    content: bytes, fragment: str
) -> None:
    with pytest.raises(RuntimeError, match="OpenAI-compatible") as caught:
        vectors_from_body(content, 1)
    assert fragment in str(caught.value)


def test_more_embeddings_than_inputs_are_refused() -> None:
    body = _body({"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [2.0]})
    with pytest.raises(RuntimeError, match="invalid or duplicate index 1"):
        vectors_from_body(body, 1)

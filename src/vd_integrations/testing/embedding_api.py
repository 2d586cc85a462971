"""OpenAI's embeddings wire format, as the offline server speaks it (no sockets, no state).

Request parsing and validation with OpenAI's limits and error messages, the JSON
responses (errors shaped ``{"error": {"message", "type", "param", "code"}}``) and the
encoding of vectors as ``float`` lists or ``base64`` float32.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vd_integrations.core.base_error import VdIntegrationsError

__all__ = [
    "MAX_INPUTS",
    "MAX_INPUT_TOKENS",
    "MAX_REQUEST_TOKENS",
    "MAX_TOKEN_ID",
    "BadRequest",
    "Response",
    "encode_embeddings",
    "error_response",
    "json_response",
    "parse_request",
    "request_tokens",
]

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
MAX_TOKEN_ID = 2**31 - 1
_REFERENCE = "Please check the API reference: https://platform.openai.com/docs/api-reference."


@dataclass
class Response:
    """One HTTP response: status, JSON body, extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(VdIntegrationsError):
    """An invalid request: answered with HTTP 400 and OpenAI's error shape."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), headers or {})


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    error = {"message": message, "type": type_, "param": param, "code": code}
    return json_response(status, {"error": error}, headers)


def parse_request(body: bytes, max_dim: int) -> tuple[list[str | list[int]], str, int, str]:
    """``(inputs, model, dimensions, encoding_format)`` of an embeddings request body;
    ``dimensions`` defaults to, and may not exceed, the server's ``max_dim``."""
    try:
        request = json.loads(body)
    except ValueError:
        raise BadRequest(
            "We could not parse the JSON body of your request. The OpenAI API expects a "
            "JSON payload; send Content-Type: application/json with a JSON object."
        ) from None
    if not isinstance(request, dict):
        raise BadRequest("The request body must be a JSON object.")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", "model")
    if "input" not in request:
        raise BadRequest("'input' is a required property", "input")
    inputs = _parse_input(request["input"])
    dim = request.get("dimensions", max_dim)
    if dim is None:
        dim = max_dim
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= max_dim:
        raise BadRequest(
            f"Invalid value for 'dimensions' = {dim!r}: must be an integer between 1 and "
            f"{max_dim}.",
            "dimensions",
        )
    fmt = request.get("encoding_format", "float")
    if fmt is None:
        fmt = "float"
    if fmt not in ("float", "base64"):
        raise BadRequest(
            f"Invalid value for 'encoding_format' = {fmt!r}: supported values are "
            "'float' and 'base64'.",
            "encoding_format",
        )
    return inputs, model, dim, fmt


def _parse_input(value: Any) -> list[str | list[int]]:
    invalid = f"'$.input' is invalid. {_REFERENCE}"
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(_is_token(t) for t in value):
        items = [value]  # one token array
    elif isinstance(value, list):
        items = value
    else:
        raise BadRequest(invalid, "input")
    if not items:
        raise BadRequest(invalid, "input")
    if len(items) > MAX_INPUTS:
        raise BadRequest(
            f"Too many inputs: got {len(items)}, the max number of inputs is {MAX_INPUTS}. "
            "Send smaller batches.",
            "input",
        )
    for item in items:
        if isinstance(item, str):
            if not item:
                raise BadRequest(invalid, "input")
        elif not (isinstance(item, list) and item and all(_is_token(t) for t in item)):
            raise BadRequest(invalid, "input")
    return items


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_ID


def request_tokens(inputs: Sequence[str | Sequence[int]]) -> int:
    """The request's approximate token count, checked against the per-input and
    per-request limits (:class:`BadRequest` past either)."""
    tokens = [_approx_tokens(item) for item in inputs]
    for i, count in enumerate(tokens):
        if count > MAX_INPUT_TOKENS:
            raise BadRequest(
                f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, "
                f"however you requested {count} tokens (input[{i}]). Please reduce "
                "your prompt.",
                None,
                "context_length_exceeded",
            )
    if sum(tokens) > MAX_REQUEST_TOKENS:
        raise BadRequest(
            f"Requested {sum(tokens)} tokens, max {MAX_REQUEST_TOKENS} tokens per "
            "request. Send fewer or shorter inputs per request.",
            "input",
            "max_tokens_per_request",
        )
    return sum(tokens)


def _approx_tokens(item: str | Sequence[int]) -> int:
    if isinstance(item, str):
        return max(1, math.ceil(len(item) / 4))
    return len(item)


def encode_embeddings(vectors: np.ndarray, fmt: str, model: str, tokens: int) -> bytes:
    """The JSON body of a successful embeddings response (``fmt``: float or base64)."""
    rows = vectors.astype("<f4", copy=False)
    if fmt == "base64":
        data = [
            b'{"object":"embedding","index":%d,"embedding":"%s"}'
            % (i, base64.b64encode(row.tobytes()))
            for i, row in enumerate(rows)
        ]
    else:
        data = [
            b'{"object":"embedding","index":%d,"embedding":%s}'
            % (i, json.dumps(row.tolist()).encode("ascii"))
            for i, row in enumerate(rows)
        ]
    usage = b'{"prompt_tokens":%d,"total_tokens":%d}' % (tokens, tokens)
    return b'{"object":"list","data":[%s],"model":%s,"usage":%s}' % (
        b",".join(data),
        json.dumps(model).encode("utf-8"),
        usage,
    )

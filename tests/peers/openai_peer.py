"""Loopback server speaking the OpenAI REST wire format (models, chat completions, embeddings).

Endpoints (under ``/v1``): ``GET /models``, ``GET /models/{id}``, ``POST /chat/completions``
(plain and ``stream: true`` SSE, tool calls, ``stream_options.include_usage``) and
``POST /embeddings`` (``encoding_format`` ``float`` or ``base64``; the openai SDK asks for
``base64`` unless told otherwise).

Standalone: ``python -m tests.peers.openai_peer --port 0 --api-key KEY --models a,b``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Final

from tests.peers.base import (
    DEFAULT_API_KEY,
    BasePeer,
    PeerResponse,
    RecordedRequest,
    ScriptedReply,
    count_words,
    iter_texts,
    json_response,
    new_id,
    run_standalone,
    split_json_pieces,
    split_stream_pieces,
    sse_data,
    unix_now,
)

__all__ = ["OpenAIPeer", "embedding_vector"]

_MODEL_CREATED: Final = 1_715_367_049  # fixed "created" timestamp for the model list
_FINGERPRINT: Final = "fp_peer"


def _error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None) -> PeerResponse:
    return json_response(status, {"error": {"message": message, "type": type_, "param": param, "code": code}})


def embedding_vector(item: str | Sequence[int], dimensions: int) -> list[float]:
    """The deterministic unit-length vector the peer answers for one embeddings input.

    Derived from SHA-256 of the input (text, or token ids); every component is exactly
    representable as float32, so ``float`` and ``base64`` encodings decode to equal lists.
    """
    seed = ("text:" + item if isinstance(item, str) else "tokens:" + ",".join(map(str, item))).encode()
    raw = b""
    counter = 0
    while len(raw) < 4 * dimensions:
        raw += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    values = [u / 2**31 - 1.0 for u in struct.unpack(f">{dimensions}I", raw[: 4 * dimensions])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


class OpenAIPeer(BasePeer):
    """A real HTTP server answering like ``api.openai.com/v1``."""

    DEFAULT_MODELS: Final[tuple[str, ...]] = ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        models: Sequence[str] = DEFAULT_MODELS,
        name: str = "openai-peer",
        embedding_dimensions: int = 8,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(
            api_key=api_key,
            models=models,
            name=name,
            embedding_dimensions=embedding_dimensions,
            host=host,
            port=port,
        )

    # ----------------------------------------------------------------- helpers for tests

    def embedding_for(self, item: str | Sequence[int], dimensions: int | None = None) -> list[float]:
        """The vector this peer answers for ``item`` (``dimensions`` defaults to ``embedding_dimensions``)."""
        return embedding_vector(item, dimensions or self.embedding_dimensions)

    @staticmethod
    def prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
        """Input-token count reported for a chat request: words of all message contents, minimum 1."""
        return max(1, sum(count_words(t) for m in messages for t in iter_texts(m.get("content"))))

    # ----------------------------------------------------------------- provider hooks

    def request_id_header(self) -> dict[str, str]:
        return {"x-request-id": new_id("req_", 32), "openai-processing-ms": "1"}

    def presented_key(self, request: RecordedRequest) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def unauthorized(self) -> PeerResponse:
        return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

    def check_auth(self, request: RecordedRequest) -> PeerResponse | None:
        if self.api_key is None:
            return None
        if request.key in self.valid_keys():
            return None
        return self.unauthorized()

    def server_error(self) -> PeerResponse:
        return _error(500, "The server had an error while processing your request. Sorry about that!", "server_error")

    def bad_request(self) -> PeerResponse:
        return _error(
            400, "Invalid value for 'temperature': expected a number.", "invalid_request_error", param="temperature"
        )

    def rate_limited(self) -> PeerResponse:
        return _error(
            429,
            "Rate limit reached for requests. Please try again in 0s.",
            "requests",
            "rate_limit_exceeded",
        )

    def route(self, request: RecordedRequest) -> PeerResponse:
        method, path = request.method, request.path.rstrip("/")
        if method == "GET" and path == "/v1/models":
            return self._list_models()
        if method == "GET" and path.startswith("/v1/models/"):
            return self._get_model(path.removeprefix("/v1/models/"))
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(request)
        if method == "POST" and path == "/v1/embeddings":
            return self._embeddings(request)
        return _error(404, f"Invalid URL ({method} {request.path})", "invalid_request_error")

    # ----------------------------------------------------------------- endpoints

    def _model_object(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": "peer"}

    def _list_models(self) -> PeerResponse:
        if not self.models_endpoint:
            return _error(404, "Invalid URL (GET /v1/models)", "invalid_request_error")
        return json_response(200, {"object": "list", "data": [self._model_object(m) for m in self.models]})

    def _get_model(self, model: str) -> PeerResponse:
        if not self.models_endpoint:
            return _error(404, f"Invalid URL (GET /v1/models/{model})", "invalid_request_error")
        if model not in self.models:
            return self._model_not_found(model)
        return json_response(200, self._model_object(model))

    @staticmethod
    def _model_not_found(model: str) -> PeerResponse:
        return _error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )

    def _validated_model(self, body: Any) -> tuple[str, PeerResponse | None]:
        if not isinstance(body, dict):
            return "", _error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
                "invalid_request_error",
            )
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "", _error(400, "you must provide a model parameter", "invalid_request_error")
        if model not in self.models:
            return model, self._model_not_found(model)
        return model, None

    def _chat(self, request: RecordedRequest) -> PeerResponse:
        body = request.json
        model, problem = self._validated_model(body)
        if problem is not None:
            return problem
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(
                400, "'messages' must contain at least one message.", "invalid_request_error", param="messages"
            )
        reply = self.next_reply()
        calls = [(call.id or new_id("call_"), call.name, json.dumps(call.arguments)) for call in reply.tool_calls]
        usage = self._usage(self.prompt_tokens(messages), reply)
        completion_id = new_id("chatcmpl-", 29)
        finish_reason = "tool_calls" if calls else "stop"
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            events = self._chat_stream(completion_id, model, reply, calls, finish_reason, usage, include_usage)
            return PeerResponse(200, content_type="text/event-stream; charset=utf-8", events=events)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if (reply.text or not calls) else None,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in calls
            ]
        return json_response(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": unix_now(),
                "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": _FINGERPRINT,
            },
        )

    @staticmethod
    def _usage(prompt_tokens: int, reply: ScriptedReply) -> dict[str, Any]:
        completion_tokens = reply.completion_tokens()
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _chat_stream(
        completion_id: str,
        model: str,
        reply: ScriptedReply,
        calls: list[tuple[str, str, str]],
        finish_reason: str,
        usage: dict[str, Any],
        include_usage: bool,
    ) -> Iterator[bytes]:
        created = unix_now()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": _FINGERPRINT,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                payload["usage"] = None
            return sse_data(payload)

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in split_stream_pieces(reply.text):
            yield chunk({"content": piece})
        for index, (call_id, name, arguments) in enumerate(calls):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
            for fragment in split_json_pieces(arguments):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
        yield chunk({}, finish_reason)
        if include_usage:
            yield sse_data(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "service_tier": "default",
                    "system_fingerprint": _FINGERPRINT,
                    "choices": [],
                    "usage": usage,
                }
            )
        yield sse_data("[DONE]")

    def _embeddings(self, request: RecordedRequest) -> PeerResponse:
        body = request.json
        model, problem = self._validated_model(body)
        if problem is not None:
            return problem
        items = self._embedding_inputs(body.get("input"))
        if items is None:
            return _error(
                400,
                "'input' must be a string, an array of strings, an array of tokens or an array of token arrays.",
                "invalid_request_error",
                param="input",
            )
        dimensions = body.get("dimensions", self.embedding_dimensions)
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            return _error(400, "'dimensions' must be a positive integer.", "invalid_request_error", param="dimensions")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return _error(
                400,
                f"'{encoding}' is not one of ['float', 'base64'] - 'encoding_format'",
                "invalid_request_error",
                param="encoding_format",
            )
        data: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            vector = embedding_vector(item, dimensions)
            encoded: list[float] | str = (
                base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if encoding == "base64" else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = max(1, sum(count_words(i) if isinstance(i, str) else len(i) for i in items))
        return json_response(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    @staticmethod
    def _embedding_inputs(value: Any) -> list[str | list[int]] | None:
        """Normalise ``input`` to a list of texts / token lists (None = invalid)."""

        def is_tokens(x: Any) -> bool:
            return isinstance(x, list) and bool(x) and all(isinstance(t, int) and not isinstance(t, bool) for t in x)

        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not value:
            return None
        if all(isinstance(v, str) for v in value):
            return list(value)
        if is_tokens(value):
            return [list(value)]
        if all(is_tokens(v) for v in value):
            return [list(v) for v in value]
        return None


def main(argv: Sequence[str] | None = None) -> int:
    return run_standalone(OpenAIPeer, argv)


if __name__ == "__main__":
    sys.exit(main())

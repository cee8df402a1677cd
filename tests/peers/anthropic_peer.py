"""Loopback server speaking the Anthropic Messages API wire format.

Endpoints: ``GET /v1/models`` (with ``limit``/``after_id``/``before_id`` paging),
``GET /v1/models/{id}``, ``POST /v1/messages`` (plain and ``stream: true`` SSE with
``event:`` lines, tool_use blocks) and ``POST /v1/messages/count_tokens``.

``stream_error_at`` makes streams fail with Anthropic's mid-stream ``error`` event.

Auth like the real service: the key must match (401 ``authentication_error``) and an
``anthropic-version`` header must be present (400 ``invalid_request_error``). The key is read
from ``x-api-key`` or, failing that, ``Authorization: Bearer`` -- the installed anthropic SDK
(2.x) sends ``api_key=`` as a Bearer token, not as ``x-api-key``.

Standalone: ``python -m tests.peers.anthropic_peer --port 0 --api-key KEY --models a,b``.
"""

from __future__ import annotations

import json
import re
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
    sse_event,
)

__all__ = ["AnthropicPeer", "display_name_for"]

_MODEL_CREATED_AT: Final = "2025-09-29T00:00:00Z"


def _error(status: int, type_: str, message: str) -> PeerResponse:
    return json_response(status, {"type": "error", "error": {"type": type_, "message": message}})


def display_name_for(model: str) -> str:
    """``claude-sonnet-4-5`` -> ``Claude Sonnet 4.5`` (dated suffixes are dropped)."""
    words: list[str] = []
    for part in model.split("-"):
        if re.fullmatch(r"\d{8}", part):
            continue
        if part.isdigit() and words and re.fullmatch(r"[\d.]+", words[-1]):
            words[-1] += "." + part
        else:
            words.append(part.capitalize() if not part.isdigit() else part)
    return " ".join(words)


class AnthropicPeer(BasePeer):
    """A real HTTP server answering like ``api.anthropic.com``.

    ``embedding_dimensions`` is accepted only so both peers share one constructor shape
    (Anthropic has no embeddings endpoint).
    """

    DEFAULT_MODELS: Final[tuple[str, ...]] = ("claude-sonnet-4-5", "claude-haiku-4-5")

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        models: Sequence[str] = DEFAULT_MODELS,
        name: str = "anthropic-peer",
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
        #: Streams end with an ``error`` event (``overloaded_error``) in place of their event at this index
        #: (0: before anything else); None streams normally.
        self.stream_error_at: int | None = None

    # ----------------------------------------------------------------- helpers for tests

    @staticmethod
    def prompt_tokens(messages: Sequence[dict[str, Any]], system: Any = None) -> int:
        """Input-token count reported for a request: words of ``system`` and all message contents, min 1."""
        words = sum(count_words(t) for t in iter_texts(system))
        words += sum(count_words(t) for m in messages for t in iter_texts(m.get("content")))
        return max(1, words)

    # ----------------------------------------------------------------- provider hooks

    def request_id_header(self) -> dict[str, str]:
        return {"request-id": new_id("req_011", 21)}

    def presented_key(self, request: RecordedRequest) -> str | None:
        key = request.headers.get("x-api-key")
        if key is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else None
        return key

    def unauthorized(self) -> PeerResponse:
        return _error(401, "authentication_error", "invalid x-api-key")

    def check_auth(self, request: RecordedRequest) -> PeerResponse | None:
        if self.api_key is None:
            return None
        # The key may come as ``x-api-key`` (the documented header, sent by older SDKs and
        # most other clients) or as ``Authorization: Bearer`` (what anthropic>=2 sends for
        # ``api_key=``). When ``x-api-key`` is present it is the one checked.
        if request.key not in self.valid_keys():
            return self.unauthorized()
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    def server_error(self) -> PeerResponse:
        return _error(500, "api_error", "Internal server error")

    def bad_request(self) -> PeerResponse:
        return _error(400, "invalid_request_error", "temperature: Input should be less than or equal to 1")

    def rate_limited(self) -> PeerResponse:
        return _error(
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization. Please try again later.",
        )

    def route(self, request: RecordedRequest) -> PeerResponse:
        method, path = request.method, request.path.rstrip("/")
        if method == "GET" and path == "/v1/models":
            return self._list_models(request.query)
        if method == "GET" and path.startswith("/v1/models/"):
            return self._get_model(path.removeprefix("/v1/models/"))
        if method == "POST" and path == "/v1/messages":
            return self._messages(request)
        if method == "POST" and path == "/v1/messages/count_tokens":
            return self._count_tokens(request)
        return _error(404, "not_found_error", "Not Found")

    # ----------------------------------------------------------------- endpoints

    @staticmethod
    def _model_object(model: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model,
            "display_name": display_name_for(model),
            "created_at": _MODEL_CREATED_AT,
            "lifecycle": "active",
            "max_input_tokens": 200_000,
            "max_tokens": 64_000,
        }

    def _list_models(self, query: dict[str, str]) -> PeerResponse:
        if not self.models_endpoint:
            return _error(404, "not_found_error", "Not Found")
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return _error(400, "invalid_request_error", "limit: Input should be a valid integer")
        if not 1 <= limit <= 1000:
            return _error(400, "invalid_request_error", "limit: Input should be between 1 and 1000")
        models = list(self.models)
        if (after := query.get("after_id")) and after in models:
            page = models[models.index(after) + 1 :][:limit]
            has_more = models.index(after) + 1 + limit < len(models)
        elif (before := query.get("before_id")) and before in models:
            start = max(0, models.index(before) - limit)
            page = models[start : models.index(before)]
            has_more = start > 0
        else:
            page, has_more = models[:limit], len(models) > limit
        return json_response(
            200,
            {
                "data": [self._model_object(m) for m in page],
                "has_more": has_more,
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            },
        )

    def _get_model(self, model: str) -> PeerResponse:
        if not self.models_endpoint or model not in self.models:
            return _error(404, "not_found_error", f"model: {model}")
        return json_response(200, self._model_object(model))

    def _validated(self, body: Any, *, need_max_tokens: bool) -> tuple[str, list[Any], PeerResponse | None]:
        if not isinstance(body, dict):
            return "", [], _error(400, "invalid_request_error", "Request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "", [], _error(400, "invalid_request_error", "model: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return model, [], _error(400, "invalid_request_error", "messages: Field required")
        if need_max_tokens and not isinstance(body.get("max_tokens"), int):
            return model, messages, _error(400, "invalid_request_error", "max_tokens: Field required")
        if model not in self.models:
            return model, messages, _error(404, "not_found_error", f"model: {model}")
        return model, messages, None

    def _count_tokens(self, request: RecordedRequest) -> PeerResponse:
        _, messages, problem = self._validated(request.json, need_max_tokens=False)
        if problem is not None:
            return problem
        return json_response(200, {"input_tokens": self.prompt_tokens(messages, request.json.get("system"))})

    def _messages(self, request: RecordedRequest) -> PeerResponse:
        body = request.json
        model, messages, problem = self._validated(body, need_max_tokens=True)
        if problem is not None:
            return problem
        reply = self.next_reply()
        input_tokens = self.prompt_tokens(messages, body.get("system"))
        output_tokens = reply.completion_tokens()
        message_id = new_id("msg_01", 22)
        calls = [(call.id or new_id("toolu_01", 22), call.name, call.arguments) for call in reply.tool_calls]
        stop_reason = "tool_use" if calls else "end_turn"
        if body.get("stream"):
            events = self._message_stream(message_id, model, reply, calls, stop_reason, input_tokens, output_tokens)
            if self.stream_error_at is not None:
                events = self._failing(events, self.stream_error_at)
            return PeerResponse(200, content_type="text/event-stream; charset=utf-8", events=events)
        content: list[dict[str, Any]] = []
        if reply.text or not calls:
            content.append({"type": "text", "text": reply.text})
        content.extend({"type": "tool_use", "id": cid, "name": name, "input": args} for cid, name, args in calls)
        return json_response(
            200,
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": self._usage(input_tokens, output_tokens),
            },
        )

    @staticmethod
    def _failing(events: Iterator[bytes], at: int) -> Iterator[bytes]:
        """The first ``at`` events, then the ``error`` event Anthropic sends when it is overloaded mid-stream."""
        for index, event in enumerate(events):
            if index == at:
                break
            yield event
        yield sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})

    @staticmethod
    def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _message_stream(
        self,
        message_id: str,
        model: str,
        reply: ScriptedReply,
        calls: list[tuple[str, str, dict[str, Any]]],
        stop_reason: str,
        input_tokens: int,
        output_tokens: int,
    ) -> Iterator[bytes]:
        start_usage = self._usage(input_tokens, 1)
        yield sse_event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
        index = 0
        if reply.text or not calls:
            yield sse_event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            )
            yield sse_event("ping", {"type": "ping"})
            for piece in split_stream_pieces(reply.text):
                yield sse_event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
                )
            yield sse_event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        for call_id, name, arguments in calls:
            yield sse_event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
                },
            )
            for fragment in ["", *split_json_pieces(json.dumps(arguments))]:
                yield sse_event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": fragment},
                    },
                )
            yield sse_event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        yield sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {
                    "input_tokens": input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": output_tokens,
                },
            },
        )
        yield sse_event("message_stop", {"type": "message_stop"})


def main(argv: Sequence[str] | None = None) -> int:
    return run_standalone(AnthropicPeer, argv)


if __name__ == "__main__":
    sys.exit(main())

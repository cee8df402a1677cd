"""Anthropic's Messages stream turned into OpenAI ``chat.completion.chunk`` objects: pure, no I/O.

See :mod:`llmconfig.gateway.anthropic` for the requests and complete answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmconfig.gateway.anthropic import completion_id, finish_reason, usage_of


class StreamError(Exception):
    """The provider reported an error inside its stream (Anthropic's ``error`` event)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def retryable(self) -> bool:
        # overloaded_error and api_error are the stream's 529 and 500: another target may answer.
        return self.kind in ("overloaded_error", "api_error", "rate_limit_error")


class StreamTranslator:
    """Turns the events of one Messages stream into ``chat.completion.chunk`` objects, in order.

    Feed each event with :meth:`feed`; it returns the chunks to send (often none). ``usage`` holds the
    token counts seen so far; :meth:`usage_chunk` is the final chunk for ``stream_options.include_usage``.
    """

    def __init__(self, *, created: int, response_tool: str | None = None) -> None:
        self.created = created
        self.response_tool = response_tool
        self.id = "chatcmpl-anthropic"
        self.model: Any = None
        self.finished = False
        self._input: dict[str, Any] = {}
        self._output_tokens = 0
        # Anthropic's content block index → OpenAI's tool call index (None: a block of the answer's text).
        self._tool_index: dict[int, int | None] = {}
        self._tools = 0

    @property
    def usage(self) -> dict[str, int]:
        return usage_of({**self._input, "output_tokens": self._output_tokens})

    def feed(self, event: str, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = data.get("type", event)
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = completion_id(message.get("id"))
            self.model = message.get("model")
            usage = message.get("usage") or {}
            self._input = {k: v for k, v in usage.items() if k != "output_tokens"}
            self._output_tokens = int(usage.get("output_tokens") or 0)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(data.get("index", 0)), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(data.get("index", 0)), data.get("delta") or {})
        if kind == "message_delta":
            usage = data.get("usage") or {}
            if usage.get("output_tokens") is not None:
                self._output_tokens = int(usage["output_tokens"])
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                if usage.get(name) is not None:
                    self._input[name] = usage[name]
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, finish_reason(stop_reason, response_tool=self.response_tool))]
        if kind == "message_stop":
            self.finished = True
            return []
        if kind == "error":
            error = data.get("error") or {}
            raise StreamError(str(error.get("message") or "the provider's stream failed"), str(error.get("type")))
        return []  # ping, content_block_stop, and events added after this was written

    def usage_chunk(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.usage,
        }

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = block.get("type")
        if kind == "text":
            self._tool_index[index] = None
            return [self._chunk({"content": block["text"]})] if block.get("text") else []
        if kind == "tool_use" and self.response_tool is not None and block.get("name") == self.response_tool:
            self._tool_index[index] = None
            return []
        if kind == "tool_use":
            position = self._tools
            self._tools += 1
            self._tool_index[index] = position
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking blocks and others carry nothing OpenAI clients read

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json"):
            position = self._tool_index.get(index)
            if position is None:  # the forced response tool: its input is the answer's text
                return [self._chunk({"content": delta["partial_json"]})]
            return [
                self._chunk({"tool_calls": [{"index": position, "function": {"arguments": delta["partial_json"]}}]})
            ]
        return []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

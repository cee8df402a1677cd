"""OpenAI chat completions ⇄ Anthropic's Messages API: pure functions, no I/O.

* :func:`to_messages_request` turns an OpenAI ``/chat/completions`` body into a ``/v1/messages`` body;
* :func:`to_chat_completion` turns a Messages answer into a ``chat.completion``;
* :class:`~llmconfig.gateway.anthropic_stream.StreamTranslator` turns the Messages stream's events into
  ``chat.completion.chunk`` objects.

What carries over: system and developer messages (into ``system``), user and assistant turns (consecutive
turns of one role are merged, as Anthropic wants them alternating), text and image parts (``data:`` URLs and
http(s) URLs), assistant ``tool_calls`` (``tool_use`` blocks) and ``tool`` messages (``tool_result`` blocks),
``tools``, ``tool_choice`` (auto, none, required, a named function), ``parallel_tool_calls: false``,
``stop``, ``max_tokens`` / ``max_completion_tokens`` (Anthropic requires one: the configured value, else
:data:`DEFAULT_MAX_TOKENS`), ``temperature`` (clamped to Anthropic's maximum of 1), ``top_p``, and
``response_format`` ``json_schema`` / ``json_object`` (a forced call of one tool whose input becomes the
message content). OpenAI fields Anthropic has no counterpart for are ignored (:data:`IGNORED`); those
that would change the answer in a way that cannot be honoured are refused with a 400 naming the field
(:data:`REFUSED`); any other field is taken for an Anthropic parameter (``top_k``, ``thinking``) and sent on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from llmconfig.gateway.errors import UPSTREAM, GatewayError, bad_request

# Anthropic requires max_tokens; what is asked for when neither the request nor the configuration says.
DEFAULT_MAX_TOKENS = 4096
ANTHROPIC_MAX_TEMPERATURE = 1.0
# The tool a response_format is forced through; its input is the answer.
RESPONSE_TOOL = "json_response"

# OpenAI fields with no Anthropic counterpart that do not change what the answer means: dropped.
IGNORED = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "logit_bias",
        "service_tier",
        "store",
        "metadata",
        "user",
        "prediction",
        "reasoning_effort",
        "modalities",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
        "web_search_options",
    }
)
# OpenAI fields whose meaning cannot be honoured: refused, so that nobody waits for what will not come.
REFUSED = {
    "logprobs": "Anthropic models return no log probabilities",
    "top_logprobs": "Anthropic models return no log probabilities",
    "audio": "Anthropic models produce no audio",
    "functions": "the legacy 'functions' field is not supported; send 'tools'",
    "function_call": "the legacy 'function_call' field is not supported; send 'tool_choice'",
}
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "response_format",
        "n",
    }
)
_DATA_URL = re.compile(r"data:(?P<media>image/[a-z0-9.+-]+);base64,(?P<data>.+)", re.S | re.I)
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


@dataclass(frozen=True, slots=True)
class Translated:
    """A Messages request, and the name of the tool whose input is the answer (response_format), if any."""

    body: dict[str, Any]
    response_tool: str | None = None


@dataclass(frozen=True, slots=True)
class Configured:
    """The configured parameters that fill what the request leaves out."""

    temperature: float | None = None
    max_tokens: int | None = None
    extra_params: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ requests


def to_messages_request(request: Mapping[str, Any], *, model: str, configured: Configured) -> Translated:
    """The Messages API body for an OpenAI chat request (already checked to be an object with messages).

    Request parameters win over ``configured`` ones. GatewayError (400, naming the field) for what cannot
    be translated.
    """
    for name, why in REFUSED.items():
        if request.get(name) not in (None, False):
            raise bad_request(f"'{name}' cannot be used with this interaction type's provider: {why}", name)
    n = request.get("n")
    if n not in (None, 1):
        raise bad_request("'n' must be 1 with this interaction type's provider (Anthropic answers once)", "n")

    system, messages = _messages(request["messages"])
    body: dict[str, Any] = {}
    for name, value in configured.extra_params.items():
        body[name] = value
    body["model"] = model
    body["messages"] = messages
    if system:
        body["system"] = system
    body["max_tokens"] = _max_tokens(request, configured)
    temperature = request.get("temperature", configured.temperature)
    if temperature is not None:
        body["temperature"] = min(float(temperature), ANTHROPIC_MAX_TEMPERATURE)
    if request.get("top_p") is not None:
        body["top_p"] = request["top_p"]
    stop = request.get("stop")
    if stop is not None:
        body["stop_sequences"] = _stop_sequences(stop)
    if request.get("stream"):
        body["stream"] = True

    tools = request.get("tools")
    if tools is not None:
        body["tools"] = _tools(tools)
    tool_choice = _tool_choice(request.get("tool_choice"), request.get("parallel_tool_calls"), has_tools=bool(tools))
    if tool_choice is not None:
        body["tool_choice"] = tool_choice

    # Anything else is an Anthropic parameter the client passed on purpose (top_k, thinking, through the SDKs'
    # extra_body): it goes to Anthropic as sent, and Anthropic judges it.
    for name, value in request.items():
        if name not in _HANDLED and name not in IGNORED and name not in REFUSED:
            body[name] = value

    response_tool = None
    forced = _response_format_tool(request.get("response_format"))
    if forced is not None:
        if tools:
            raise bad_request(
                "'response_format' json_schema/json_object cannot be combined with 'tools' for this interaction "
                "type's provider (Anthropic answers in JSON through a forced tool call); send one of them",
                "response_format",
            )
        body["tools"] = [forced]
        body["tool_choice"] = {"type": "tool", "name": forced["name"]}
        response_tool = str(forced["name"])
    return Translated(body, response_tool)


def _max_tokens(request: Mapping[str, Any], configured: Configured) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = request.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad_request(f"'{name}' must be a positive integer", name)
            return value
    return configured.max_tokens or DEFAULT_MAX_TOKENS


def _stop_sequences(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        return list(stop)
    raise bad_request("'stop' must be a string or a list of strings", "stop")


def _messages(raw: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"'{where}' must be an object with a 'role'", where)
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_text_blocks(content, f"{where}.content"))
        elif role == "user":
            add("user", _user_blocks(content, f"{where}.content"))
        elif role == "assistant":
            blocks = [] if content is None else _text_blocks(content, f"{where}.content", allow_refusal=True)
            blocks.extend(_tool_use_blocks(message.get("tool_calls"), f"{where}.tool_calls"))
            if not blocks:
                raise bad_request(f"'{where}' has neither content nor tool_calls", f"{where}.content")
            add("assistant", blocks)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request(f"'{where}.tool_call_id' must name the tool call answered", f"{where}.tool_call_id")
            result = _text_blocks(content, f"{where}.content") if content not in (None, "") else []
            add("user", [{"type": "tool_result", "tool_use_id": call_id, "content": result}])
        else:
            raise bad_request(
                f"'{where}.role' must be one of system, developer, user, assistant or tool, not {role!r}",
                f"{where}.role",
            )
    if not turns:
        raise bad_request("'messages' must contain at least one user or assistant message", "messages")
    return system, turns


def _content_blocks(
    content: Any, where: str, other: Callable[[str, str | None, Any], dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """The Anthropic blocks of an OpenAI message content (a string or a list of parts): text parts become text
    blocks; any other part is ``other``'s, called with where it is, its type and itself, to translate, to
    leave out (None) or to refuse."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request(f"'{where}' must be a string or a list of content parts", where)
    blocks = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                blocks.append({"type": "text", "text": part["text"]})
            continue
        block = other(f"{where}[{index}]", kind, part)
        if block is not None:
            blocks.append(block)
    return blocks


def _text_blocks(content: Any, where: str, *, allow_refusal: bool = False) -> list[dict[str, Any]]:
    def other(at: str, kind: str | None, part: Any) -> dict[str, Any] | None:
        if kind == "refusal" and allow_refusal:
            return None
        raise bad_request(f"'{at}' must be a text part here", at)

    return _content_blocks(content, where, other)


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    def other(at: str, kind: str | None, part: Any) -> dict[str, Any] | None:
        if kind == "image_url":
            return _image_block(part.get("image_url"), f"{at}.image_url")
        raise bad_request(
            f"'{at}' must be a text or image_url part for this interaction type's provider (got {kind!r})", at
        )

    return _content_blocks(content, where, other)


def _image_block(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise bad_request(f"'{where}.url' must be a data: URL or an http(s) URL", f"{where}.url")
    match = _DATA_URL.fullmatch(url)
    if match is not None:
        source = {"type": "base64", "media_type": match["media"].lower(), "data": match["data"]}
        return {"type": "image", "source": source}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_request(f"'{where}.url' must be a base64 data: URL of an image or an http(s) URL", f"{where}.url")


def _tool_use_blocks(calls: Any, where: str) -> list[dict[str, Any]]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise bad_request(f"'{where}' must be a list of tool calls", where)
    blocks = []
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad_request(f"'{where}[{index}].function.name' is missing", f"{where}[{index}].function.name")
        if not isinstance(call.get("id"), str):
            raise bad_request(f"'{where}[{index}].id' is missing", f"{where}[{index}].id")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise bad_request(
                f"'{where}[{index}].function.arguments' must be a JSON object in a string",
                f"{where}[{index}].function.arguments",
            )
        blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"], "input": parsed})
    return blocks


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise bad_request("'tools' must be a list of function tools", "tools")
    translated = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise bad_request(
                f"'tools[{index}]' must be {{'type': 'function', 'function': {{'name': …}}}}", f"tools[{index}]"
            )
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(schema, dict):
            raise bad_request(f"'tools[{index}].function.parameters' must be a JSON schema object", f"tools[{index}]")
        entry: dict[str, Any] = {"name": function["name"], "input_schema": schema}
        if isinstance(function.get("description"), str):
            entry["description"] = function["description"]
        translated.append(entry)
    return translated


def _tool_choice(choice: Any, parallel: Any, *, has_tools: bool) -> dict[str, Any] | None:
    translated: dict[str, Any] | None
    if choice is None:
        translated = {"type": "auto"} if (has_tools and parallel is False) else None
    elif choice == "auto":
        translated = {"type": "auto"}
    elif choice == "none":
        translated = {"type": "none"}
    elif choice == "required":
        translated = {"type": "any"}
    elif (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        translated = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise bad_request(
            "'tool_choice' must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': …}}",
            "tool_choice",
        )
    if translated is not None and choice is not None and not has_tools and translated["type"] != "none":
        raise bad_request("'tool_choice' needs 'tools'", "tool_choice")
    if translated is not None and parallel is False and translated["type"] != "none":
        translated["disable_parallel_tool_use"] = True
    return translated


def _response_format_tool(response_format: Any) -> dict[str, Any] | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {
            "name": RESPONSE_TOOL,
            "description": "Answer with a JSON object.",
            "input_schema": {"type": "object"},
        }
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise bad_request("'response_format.json_schema.schema' must be a JSON schema object", "response_format")
        name = spec.get("name") if isinstance(spec.get("name"), str) and spec["name"] else RESPONSE_TOOL
        description = spec.get("description") if isinstance(spec.get("description"), str) else None
        return {
            "name": name,
            "description": description or "Answer with JSON that matches this schema.",
            "input_schema": schema,
        }
    raise bad_request("'response_format.type' must be text, json_object or json_schema", "response_format")


# ------------------------------------------------------------------------------------------------ answers


def finish_reason(stop_reason: Any, *, response_tool: str | None = None) -> str:
    """OpenAI's ``finish_reason`` for Anthropic's ``stop_reason``."""
    reason = _FINISH_REASONS.get(str(stop_reason), "stop")
    if response_tool is not None and reason == "tool_calls":
        return "stop"  # the forced tool call is the answer, not a call the client should make
    return reason


def usage_of(usage: Any) -> dict[str, int]:
    """OpenAI's ``usage`` for Anthropic's (cached input counted as input, as OpenAI counts it)."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = sum(
        int(usage.get(name) or 0) for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def to_chat_completion(message: Mapping[str, Any], *, created: int, response_tool: str | None = None) -> dict[str, Any]:
    """The ``chat.completion`` for a Messages answer; GatewayError (502) when it is not one."""
    content = message.get("content")
    if message.get("type") != "message" or not isinstance(content, list):
        raise GatewayError(502, "The provider answered with something that is not a message", type=UPSTREAM)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use" and response_tool is not None and block.get("name") == response_tool:
            texts.append(orjson.dumps(block.get("input", {})).decode())
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input", {})).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    answer: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if (texts or not calls) else None,
        "refusal": None,
    }
    if calls:
        answer["tool_calls"] = calls
    return {
        "id": completion_id(message.get("id")),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": answer,
                "logprobs": None,
                "finish_reason": finish_reason(message.get("stop_reason"), response_tool=response_tool),
            }
        ],
        "usage": usage_of(message.get("usage")),
    }


def completion_id(message_id: Any) -> str:
    """OpenAI's completion id for an Anthropic message id."""
    return f"chatcmpl-{message_id}" if isinstance(message_id, str) and message_id else "chatcmpl-anthropic"

"""What the gateway checks in a request body, and how configured parameters fill what it leaves out.

The body is parsed once (orjson) and checked only where the gateway itself depends on it, or where a
mistake would otherwise come back from the provider as something less clear: the fields that pick the
configuration (``model``, ``user``), ``messages`` / ``input`` being there at all, ``stream`` and
``stream_options``, and the sampling parameters every provider shares. Everything else goes to the provider
as sent, and the provider judges it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llmconfig.config.schemas import MAX_USER_ID_LENGTH, storable_user_id
from llmconfig.gateway.errors import bad_request

# LangChain construction arguments that may sit in a configuration's extra_params but are no API parameter.
CLIENT_ONLY_PARAMS = frozenset(
    {
        "max_retries",
        "timeout",
        "request_timeout",
        "streaming",
        "stream_usage",
        "default_headers",
        "default_query",
        "http_client",
        "http_async_client",
        "http_socket_options",
        "openai_proxy",
        "tiktoken_model_name",
        "check_embedding_ctx_length",
        "chunk_size",
        "show_progress_bar",
        "skip_empty",
        "embedding_ctx_length",
        "callbacks",
        "tags",
        "verbose",
        "cache",
        "rate_limiter",
        "disable_streaming",
        "output_version",
        "include_response_headers",
    }
)
MAX_MODEL_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A checked request body: the interaction type, the user whose overrides apply, and the body itself."""

    interaction_type: str
    user_id: str | None
    body: dict[str, Any]
    stream: bool = False
    include_usage: bool = False


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body; 400 when it is not one."""
    if not raw:
        raise bad_request("The body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The body is not valid JSON ({exc.args[0] if exc.args else 'syntax error'})") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object")
    return body


def _selectors(body: Mapping[str, Any]) -> tuple[str, str | None]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required: the name of an interaction type (GET /v1/models lists them)", "model")
    if len(model) > MAX_MODEL_LENGTH or not model.isprintable():
        raise bad_request("'model' must be the name of an interaction type (GET /v1/models lists them)", "model")
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or not storable_user_id(user)):
        raise bad_request(
            f"'user' must be a user id: 1 to {MAX_USER_ID_LENGTH} characters without control characters", "user"
        )
    return model, user


def _number(body: Mapping[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"'{name}' must be a number between {low:g} and {high:g}", name)
    if not low <= value <= high:
        raise bad_request(f"'{name}' must be between {low:g} and {high:g}, got {value:g}", name)


def _positive_int(body: Mapping[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise bad_request(f"'{name}' must be a positive integer", name)


def parse_chat(raw: bytes) -> ParsedRequest:
    """A checked ``/chat/completions`` body; GatewayError (400, naming the field) otherwise."""
    body = parse_body(raw)
    interaction_type, user_id = _selectors(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list of messages", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(f"'messages[{index}]' must be an object with a 'role'", f"messages[{index}]")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise bad_request("'stream' must be true or false", "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise bad_request("'stream_options' must be an object", "stream_options")
        if not stream:
            raise bad_request("'stream_options' is only allowed when 'stream' is true", "stream_options")
        include_usage = bool(options.get("include_usage"))
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    _positive_int(body, "n")
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise bad_request("'tools' must be a list of tools", "tools")
    return ParsedRequest(interaction_type, user_id, body, bool(stream), include_usage)


def parse_embeddings(raw: bytes) -> ParsedRequest:
    """A checked ``/embeddings`` body; GatewayError (400, naming the field) otherwise."""
    body = parse_body(raw)
    interaction_type, user_id = _selectors(body)
    value = body.get("input")
    if isinstance(value, str):
        pass
    elif not isinstance(value, list) or not value:
        raise bad_request("'input' must be a string or a non-empty list of strings or token arrays", "input")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise bad_request("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    _positive_int(body, "dimensions")
    return ParsedRequest(interaction_type, user_id, body)


def api_params(extra_params: Mapping[str, Any]) -> dict[str, Any]:
    """The configured extra parameters that are API parameters (``model_kwargs`` flattened into them)."""
    params = {name: value for name, value in extra_params.items() if name not in CLIENT_ONLY_PARAMS}
    nested = params.pop("model_kwargs", None)
    if isinstance(nested, dict):
        params = {**nested, **params}
    return params


def openai_chat_body(
    request: ParsedRequest,
    *,
    model: str,
    temperature: float | None,
    max_tokens: int | None,
    extra_params: Mapping[str, Any],
) -> dict[str, Any]:
    """The body to forward to an OpenAI-compatible ``/chat/completions``: the request's parameters win.

    ``user`` selected the configuration and is not forwarded; a stream always asks for usage, so that it
    can be recorded (the usage chunk is dropped again when the client did not ask for it).
    """
    body = {**api_params(extra_params)}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None and "max_completion_tokens" not in request.body:
        body["max_tokens"] = max_tokens
    body.update(request.body)
    body["model"] = model
    body.pop("user", None)
    if request.stream:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return body


def openai_embeddings_body(request: ParsedRequest, *, model: str, extra_params: Mapping[str, Any]) -> dict[str, Any]:
    """The body to forward to an OpenAI-compatible ``/embeddings``."""
    params = api_params(extra_params)
    # Embeddings take few parameters: only those the API knows, so that a chat-minded extra param does no harm.
    body: dict[str, Any] = {name: params[name] for name in ("dimensions", "encoding_format") if name in params}
    body.update(request.body)
    body["model"] = model
    body.pop("user", None)
    return body

"""The errors of the OpenAI-compatible face, in OpenAI's own shape so that the official SDKs raise their usual
exceptions (``NotFoundError`` for 404, ``BadRequestError`` for 400, ``PermissionDeniedError`` for 403 …).

Every message says what was wrong and what to do. None ever carries a provider key: messages are built from
provider names, model names, hosts and statuses only, and a provider's own error text is passed on only after
the key it was called with has been cut out of it (:func:`scrubbed`).
"""

from __future__ import annotations

from typing import Any

import orjson

# OpenAI's error types, by status (what its API answers; the SDKs pick their exception by status alone).
INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
PERMISSION = "permission_error"
NOT_FOUND = "not_found_error"
RATE_LIMIT = "rate_limit_error"
UPSTREAM = "upstream_error"


class GatewayError(Exception):
    """A refusal or failure of ``/v1``: HTTP ``status`` and the body ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str, param: str | None = None, code: str | None = None) -> bytes:
    """OpenAI's error document."""
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    """400: the request cannot be served as sent; ``param`` names the field."""
    return GatewayError(400, message, param=param, code=code)


def scrubbed(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (and of its longer prefixes) replaced by ``***``.

    Providers quote part of a rejected key in their messages ("Incorrect API key provided: sk-abc…xyz"); a
    provider's text is only ever passed on through here.
    """
    if not secret:
        return text
    text = text.replace(secret, "***")
    # A provider may quote the key shortened; any run of its first 8+ characters is cut too.
    if len(secret) >= 8 and secret[:8] in text:
        cut = secret[:8]
        while cut in text:
            start = text.index(cut)
            end = start + len(cut)
            while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
                end += 1
            text = text[:start] + "***" + text[end:]
    return text


def upstream_message(body: bytes) -> str | None:
    """The human-readable message of a provider's error answer (OpenAI's or Anthropic's shape), if any."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:1000]
    if isinstance(error, str):
        return error[:1000]
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return str(document["message"])[:1000]
    return None

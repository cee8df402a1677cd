"""Request guards that apply to every route, before any of them runs."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmconfig.api.errors import problem
from llmconfig.api.openai_compat import PREFIX as OPENAI_PREFIX

# Bodies of this API are small JSON documents; anything larger is refused rather than buffered.
MAX_BODY_BYTES = 1_000_000


class RejectNulBytes:
    """Refuses NUL characters in the path, the query string and the body with a 422 problem.

    PostgreSQL cannot store them (psycopg raises), SQLite stores them silently; either way no legitimate
    name, URL or key contains one. The body is read in full (it is small) and replayed to the app.

    The OpenAI-compatible endpoints under ``/v1/`` are left alone: their bodies are conversations (larger, and
    free to hold any character) for the provider, not values to store, and their refusals must be in OpenAI's
    shape; that face checks and caps its own input.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPENAI_PREFIX):
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        # Decoded only when something is percent-encoded (rarely): the check runs on every request.
        if b"%" in raw_path:
            raw_path = unquote_to_bytes(raw_path)
        if b"\x00" in raw_path or b"%00" in scope.get("query_string", b""):
            await problem(422, "Invalid input: the path or query contains a NUL character")(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await problem(413, "The body is too large; this API takes JSON documents under 1 MB")(
                    scope, receive, send
                )
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"\x00" in body or b"\\u0000" in body:
            await problem(422, "Invalid input: the body contains a NUL character")(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

"""Security headers on every response: a strict Content Security Policy, no MIME sniffing, no referrer, no framing.

The panel (``/``, ``/ui/…``) and the API answer with :data:`PANEL_POLICY`: scripts and styles only from files
of this server, nothing inline, no plugins, no ``<base>``, and no page of another site may frame it. FastAPI's
interactive documentation (``/docs``, ``/redoc``) loads Swagger UI and ReDoc from their CDN and starts Swagger
UI with an inline script, so those pages get :func:`docs_policy` instead: the CDN is allowed, the inline
script only by its SHA-256 (computed from the page as served, so nothing else inline can run), and styles may
be inline because both bundles set them at run time. The panel's policy is never loosened for them.

This is a plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``, which would add a task and
a stream per request; here the headers are appended to the start message and nothing else is touched.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_COMMON_DIRECTIVES = ("object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'")

PANEL_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        *_COMMON_DIRECTIVES,
    )
)

# Where FastAPI's documentation pages load their assets from (fastapi.openapi.docs).
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_FAVICON_HOST = "https://fastapi.tiangolo.com"
REDOC_FONTS = ("https://fonts.googleapis.com", "https://fonts.gstatic.com")

OTHER_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),  # frame-ancestors for browsers that predate it
)

# Inline scripts are <script> elements without a src attribute; their text is what the browser hashes.
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.DOTALL | re.IGNORECASE)
# The documentation pages are a few kilobytes; anything larger is not one of them and is passed on as is.
_MAX_DOCS_PAGE = 256 * 1024


def docs_policy(inline_scripts: Iterable[bytes] = ()) -> str:
    """The policy of a documentation page whose inline scripts are ``inline_scripts`` (their exact text)."""
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'" for script in inline_scripts]
    return "; ".join(
        (
            "default-src 'self'",
            " ".join(("script-src 'self'", DOCS_CDN, *hashes)),
            f"style-src 'self' 'unsafe-inline' {DOCS_CDN} {REDOC_FONTS[0]}",
            f"font-src 'self' {REDOC_FONTS[1]}",
            f"img-src 'self' data: {DOCS_FAVICON_HOST}",
            "worker-src 'self' blob:",  # ReDoc's search index runs in a worker built from a blob
            "connect-src 'self'",
            *_COMMON_DIRECTIVES,
        )
    )


def inline_scripts(page: bytes) -> list[bytes]:
    """The text of every inline ``<script>`` element of an HTML page."""
    return _INLINE_SCRIPT.findall(page)


class SecurityHeaders:
    """Adds the security headers to every HTTP response that does not set them itself.

    ``docs_paths`` are the paths of the documentation pages; their response is held until complete (they are
    small and generated) so that the policy can name the hashes of their inline scripts.
    """

    def __init__(self, app: ASGIApp, *, docs_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if path in self.docs_paths or (root and path.removeprefix(root) in self.docs_paths):
            await self._docs_page(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                _add_headers(message, PANEL_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        body: list[bytes] = []
        size = 0
        passing_through = False

        async def send_after_body(message: Message) -> None:
            nonlocal start, size, passing_through
            if passing_through:
                await send(message)
            elif message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body" and start is not None:
                chunk = message.get("body", b"")
                body.append(chunk)
                size += len(chunk)
                more = message.get("more_body", False)
                if more and size <= _MAX_DOCS_PAGE:
                    return
                page = b"".join(body)
                # Hashes only for a complete page; an unexpected large one gets the policy with none.
                _add_headers(start, docs_policy(inline_scripts(page) if not more else ()))
                await send(start)
                await send({"type": "http.response.body", "body": page, "more_body": more})
                passing_through = True
            else:
                await send(message)

        await self.app(scope, receive, send_after_body)


def _encoded(policy: str) -> tuple[tuple[bytes, bytes], ...]:
    return tuple(
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in (("content-security-policy", policy), *OTHER_HEADERS)
    )


# Encoded once: every response of the panel and the API gets these.
_PANEL_HEADERS = _encoded(PANEL_POLICY)
_PANEL_NAMES = frozenset(name for name, _ in _PANEL_HEADERS)


def _add_headers(start: Message, policy: str) -> None:
    ours = _PANEL_HEADERS if policy is PANEL_POLICY else _encoded(policy)
    # ASGI header names are lower case. A new list: the one in the message may be a response's own.
    given = list(start.get("headers", ()))
    if _PANEL_NAMES.isdisjoint(name for name, _ in given):
        given.extend(ours)  # the usual case: the app set none of them
    else:
        present = {bytes(name).lower() for name, _ in given}
        given.extend(header for header in ours if header[0] not in present)
    start["headers"] = given

"""The checks every model call's answer passes before the SDK sees it: a size cap, and JSON when it succeeded.

:class:`AnswerChecks` is applied by the guarded transports of model calls (see
:mod:`llmconfig.providers.transport`). The body is decoded here, so the cap counts what the SDK would hold
and a compressed bomb is cut like any other body; the cap applies to the total of a stream too, chunk by
chunk, without buffering it. A successful answer that is an HTML page or not JSON is refused with a
:class:`~llmconfig.errors.ProviderBadResponseError` naming the host and path (never the query string or a
header), so that a fallback chain moves on and a lone model fails clearly. Left to the SDKs, an HTML page
comes back as text that LangChain turns into a ``ValueError`` or ``AttributeError``, a body that is not JSON
raises ``JSONDecodeError``, and a stream of either ends without a chunk: nothing a fallback chain could tell
from a bug in the calling code.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2

from llmconfig.errors import ProviderBadResponseError

MODEL_MAX_RESPONSE_SETTING = "LLMCONFIG_MODEL_MAX_RESPONSE_BYTES"


def display_host(url: httpx2.URL) -> str:
    """host[:port] without any user info, for messages."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port}" if url.port is not None else host


def describe_size(count: int) -> str:
    """A byte count for messages: ``2 MB``, ``64 kB``."""
    if count >= 1024 * 1024:
        return f"{count / 1024 / 1024:.3g} MB"
    return f"{count / 1024:.3g} kB"


def _media_type(response: httpx2.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


# The body was decoded here, so these no longer describe it.
_ENCODING_HEADERS = frozenset({"content-encoding", "content-length"})


class AnswerChecks:
    """What a model call's answer must be: at most ``max_bytes`` once decoded, and JSON when it succeeded.

    Streams (``text/event-stream``) and error answers are passed on chunk by chunk under the same cap; the
    SDKs read error bodies themselves to build their status errors. Other successful answers are read
    whole (as the SDKs would read them anyway) and parsed once to see that they are JSON.
    """

    def __init__(self, max_bytes: int, *, setting: str = MODEL_MAX_RESPONSE_SETTING) -> None:
        self.max_bytes = max_bytes
        self.setting = setting

    def check(self, request: httpx2.Request, response: httpx2.Response) -> httpx2.Response:
        """The answer to hand on, decoded; ProviderBadResponseError if it cannot be used."""
        problem, whole = self._screen(request, response)
        if problem is not None:
            response.close()
            raise problem
        if not whole:
            return self._passed_on(response, stream=_CappedBody(self, request, response))
        chunks: list[bytes] = []
        size = 0
        try:
            with self._decoding(request):
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._too_large(request)
                    chunks.append(chunk)
        finally:
            response.close()
        return self._json_answer(request, response, b"".join(chunks))

    async def acheck(self, request: httpx2.Request, response: httpx2.Response) -> httpx2.Response:
        """The async twin of :meth:`check`."""
        problem, whole = self._screen(request, response)
        if problem is not None:
            await response.aclose()
            raise problem
        if not whole:
            return self._passed_on(response, stream=_AsyncCappedBody(self, request, response))
        chunks: list[bytes] = []
        size = 0
        try:
            with self._decoding(request):
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._too_large(request)
                    chunks.append(chunk)
        finally:
            await response.aclose()
        return self._json_answer(request, response, b"".join(chunks))

    # -- internals ---------------------------------------------------------------------------------

    def _screen(
        self, request: httpx2.Request, response: httpx2.Response
    ) -> tuple[ProviderBadResponseError | None, bool]:
        """What the headers already give away, and whether the body must be read whole and checked."""
        declared = response.headers.get("content-length", "")
        success = response.is_success and response.status_code not in (204, 205) and request.method != "HEAD"
        media_type = _media_type(response)
        problem: ProviderBadResponseError | None = None
        if declared.isdigit() and int(declared) > self.max_bytes:
            problem = self._too_large(request)
        elif success and media_type in ("text/html", "application/xhtml+xml"):
            problem = ProviderBadResponseError(
                f"{self._where(request)} with an HTML page ({media_type}), not JSON; is the base URL the provider's "
                "API address (for OpenAI-compatible servers usually ending in /v1), with no proxy or login page "
                "in the way?"
            )
        return problem, success and media_type != "text/event-stream"

    def _json_answer(self, request: httpx2.Request, response: httpx2.Response, body: bytes) -> httpx2.Response:
        try:
            json.loads(body)
        except ValueError:  # JSONDecodeError, or bytes that are no Unicode text at all
            media_type = _media_type(response) or "no content type"
            what = "an empty body" if not body.strip() else f"a body that is not valid JSON ({media_type})"
            raise ProviderBadResponseError(
                f"{self._where(request)} with {what}; check the base URL and the server's logs"
            ) from None
        return self._passed_on(response, content=body)

    @staticmethod
    def _passed_on(response: httpx2.Response, **body: Any) -> httpx2.Response:
        headers = [(name, value) for name, value in response.headers.multi_items() if name not in _ENCODING_HEADERS]
        return httpx2.Response(
            status_code=response.status_code,
            headers=headers,
            extensions=response.extensions,
            request=response.request,
            **body,
        )

    @staticmethod
    def _where(request: httpx2.Request) -> str:
        return f"{display_host(request.url)} answered {request.method} {request.url.path}"

    def _too_large(self, request: httpx2.Request) -> ProviderBadResponseError:
        return ProviderBadResponseError(
            f"{self._where(request)} with a body larger than {describe_size(self.max_bytes)}; check the base URL, "
            f"or raise {self.setting} if such answers are expected"
        )

    @contextlib.contextmanager
    def _decoding(self, request: httpx2.Request) -> Iterator[None]:
        try:
            yield
        except httpx2.DecodingError:
            raise ProviderBadResponseError(
                f"{self._where(request)} with a body that cannot be decompressed; check the server"
            ) from None


class _CappedBody(httpx2.SyncByteStream):
    """The decoded body of an answer, passed on as it arrives until it passes the cap."""

    def __init__(self, checks: AnswerChecks, request: httpx2.Request, response: httpx2.Response) -> None:
        self._checks, self._request, self._response = checks, request, response

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        with self._checks._decoding(self._request):
            for chunk in self._response.iter_bytes():
                size += len(chunk)
                if size > self._checks.max_bytes:
                    self._response.close()
                    raise self._checks._too_large(self._request)
                yield chunk

    def close(self) -> None:
        self._response.close()


class _AsyncCappedBody(httpx2.AsyncByteStream):
    def __init__(self, checks: AnswerChecks, request: httpx2.Request, response: httpx2.Response) -> None:
        self._checks, self._request, self._response = checks, request, response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        with self._checks._decoding(self._request):
            async for chunk in self._response.aiter_bytes():
                size += len(chunk)
                if size > self._checks.max_bytes:
                    await self._response.aclose()
                    raise self._checks._too_large(self._request)
                yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


__all__ = ["MODEL_MAX_RESPONSE_SETTING", "AnswerChecks", "describe_size", "display_host"]

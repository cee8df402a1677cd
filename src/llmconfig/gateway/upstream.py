"""Forwarding to providers over one guarded aiohttp session: the gateway's only way out.

The session is built the way :func:`llmconfig.providers.aiohttp_client.guarded_aiohttp_client` builds its
own: host names are resolved by :class:`~llmconfig.providers.aiohttp_client.GuardedResolver` (every address
checked by the outbound policy), IP literals are checked here before a request leaves, no proxy from the
environment (``trust_env=False``), no redirects, and answers are cut off past the model answer size cap
(``LLMCONFIG_MODEL_MAX_RESPONSE_BYTES``), counted on the decoded body. aiohttp rather than httpx2: it
forwards several times faster under concurrent load, which is what a gateway does all day.

An aiohttp session belongs to the event loop it was made in: the server makes one per worker at startup
(:meth:`Upstream.start`) and closes it at shutdown (:meth:`Upstream.close`).

What each target needs per request (its URL, its headers with the key) is built once and kept
(:meth:`Upstream.endpoint`), so forwarding a request costs one ``session.post``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp
import httpx2
from yarl import URL

from llmconfig import __version__
from llmconfig.errors import ProviderBlockedError, ProviderError, cause_of
from llmconfig.providers.adapters import ANTHROPIC_API_VERSION, FALLBACK_CONNECT_TIMEOUT
from llmconfig.providers.aiohttp_client import GuardedResolver
from llmconfig.providers.answers import MODEL_MAX_RESPONSE_SETTING, describe_size
from llmconfig.providers.clients import MODEL_LIMITS
from llmconfig.providers.outbound import OutboundPolicy, parse_address

# Without a fallback chain, a provider gets as long to connect as the SDKs give it; in a chain a dead one
# must cost little, as in library calls (llmconfig.llm.fallback).
CONNECT_TIMEOUT = 5.0
# The SDKs' read timeout: a model may think for minutes before its first byte.
READ_TIMEOUT = 600.0
_MAX_ENDPOINTS = 1000
USER_AGENT = f"llmconfig-gateway/{__version__}"
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider API route, ready to post to: its URL and every header, the key among them."""

    provider_id: str
    provider_name: str
    provider_type: str
    url: URL
    headers: dict[str, str] = field(repr=False)
    api_key: str | None = field(repr=False)
    # The outbound guard's refusal of a literal address, decided once (the policy does not change).
    blocked: ProviderBlockedError | None = None

    @property
    def where(self) -> str:
        """The provider and host, for messages (never the key or the query)."""
        port = f":{self.url.explicit_port}" if self.url.explicit_port else ""
        return f"provider {self.provider_name!r} ({self.url.host}{port})"


class UpstreamFailure(Exception):
    """A provider could not be used for this request; ``retryable`` says whether the next target may be tried.

    The message names the provider and what went wrong, never its key.
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.kind = kind or ("HTTP" + str(status) if status is not None else "UpstreamError")


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's complete answer."""

    status: int
    content_type: str
    body: bytes
    # The answer's headers (a key pool reads Retry-After from them).
    headers: Mapping[str, str] = field(default_factory=dict)


class StreamingAnswer:
    """A provider's answer whose body is read as it arrives (:meth:`chunks`), under the size cap."""

    def __init__(self, response: aiohttp.ClientResponse, endpoint: Endpoint, max_bytes: int) -> None:
        self.response = response
        self.status = response.status
        self.content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        self.headers: Mapping[str, str] = response.headers
        self._endpoint = endpoint
        self._max_bytes = max_bytes

    async def chunks(self) -> AsyncIterator[bytes]:
        size = 0
        try:
            async for chunk in self.response.content.iter_any():
                size += len(chunk)
                if size > self._max_bytes:
                    raise _too_large(self._endpoint, self._max_bytes)
                yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _transport_failure(self._endpoint, exc) from None

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def close(self) -> None:
        self.response.close()


class Upstream:
    """The guarded session and the endpoints of every target; one per event loop."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        max_response_bytes: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.max_response_bytes = max_response_bytes
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._endpoints: dict[tuple[str, str, str, str | None], Endpoint] = {}
        self._timeouts = {
            chained: aiohttp.ClientTimeout(
                total=None,
                sock_connect=FALLBACK_CONNECT_TIMEOUT if chained else CONNECT_TIMEOUT,
                connect=FALLBACK_CONNECT_TIMEOUT if chained else CONNECT_TIMEOUT,
                sock_read=READ_TIMEOUT,
            )
            for chained in (False, True)
        }

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the session in the running event loop (done on first use otherwise)."""
        self._open()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            # The same trust store as the SDKs' clients (llmconfig.providers.clients).
            context = self._ssl_context or httpx2.create_ssl_context()
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.policy),
                ssl=context,
                limit=MODEL_LIMITS.max_connections or 0,
                keepalive_timeout=MODEL_LIMITS.keepalive_expiry or 5.0,
            )
            # trust_env=False: a proxy from the environment would connect out of reach of the resolver's check.
            session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=True,
            )
            self._session = session
        return session

    # -- endpoints ---------------------------------------------------------------------------------

    def endpoint(
        self, *, provider_id: str, provider_name: str, provider_type: str, base_url: str, path: str, api_key: str | None
    ) -> Endpoint:
        """The endpoint ``path`` of a target (built once per provider URL and key)."""
        key = (provider_type, base_url, path, api_key)
        found = self._endpoints.get(key)
        if found is not None and found.provider_name == provider_name:
            return found
        url = URL(base_url.rstrip("/") + path)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            # Set here rather than skipped: aiohttp's skip_auto_headers takes a slow path on every request.
            "User-Agent": USER_AGENT,
        }
        if provider_type == "anthropic":
            headers["anthropic-version"] = ANTHROPIC_API_VERSION
            if api_key:
                headers["x-api-key"] = api_key
        elif api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        blocked = None
        literal = parse_address(url.host or "")
        if literal is not None:
            try:
                self.policy.check(url.host or "", literal)
            except ProviderBlockedError as exc:
                blocked = exc
        endpoint = Endpoint(provider_id, provider_name, provider_type, url, headers, api_key, blocked)
        if len(self._endpoints) >= _MAX_ENDPOINTS:
            self._endpoints.clear()
        self._endpoints[key] = endpoint
        return endpoint

    # -- calls -------------------------------------------------------------------------------------

    async def post(self, endpoint: Endpoint, body: bytes, *, chained: bool) -> Answer:
        """POST ``body`` and read the whole answer, whatever its status; UpstreamFailure if there is none."""
        answer = await self.open(endpoint, body, chained=chained)
        try:
            response = answer.response
            length = response.content_length
            if length is not None and length > self.max_response_bytes:
                raise _too_large(endpoint, self.max_response_bytes)
            if length is not None and "Content-Encoding" not in response.headers:
                try:
                    data = await response.read()
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    raise _transport_failure(endpoint, exc) from None
            else:
                data = await answer.read()
            return Answer(answer.status, answer.content_type, data, answer.headers)
        finally:
            answer.close()

    async def open(self, endpoint: Endpoint, body: bytes, *, chained: bool) -> StreamingAnswer:
        """POST ``body`` and hand over the answer once its headers are in; the caller reads and closes it."""
        if endpoint.blocked is not None:
            raise _blocked(endpoint, endpoint.blocked)
        session = self._open()
        try:
            response = await session.post(
                endpoint.url,
                data=body,
                headers=endpoint.headers,
                timeout=self._timeouts[chained],
                allow_redirects=False,
            )
        except ProviderError as exc:
            raise _blocked(endpoint, exc) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            own = cause_of(exc, ProviderError, context=True)
            if own is not None:
                raise _blocked(endpoint, own) from None
            raise _transport_failure(endpoint, exc) from None
        return StreamingAnswer(response, endpoint, self.max_response_bytes)


def _blocked(endpoint: Endpoint, exc: ProviderError) -> UpstreamFailure:
    # The guard's refusals move a fallback chain on, as in library calls (llmconfig.llm.fallback).
    return UpstreamFailure(f"{endpoint.where} may not be contacted: {exc}", retryable=True, kind=type(exc).__name__)


def _transport_failure(endpoint: Endpoint, exc: BaseException) -> UpstreamFailure:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamFailure(f"{endpoint.where} did not answer in time", retryable=True, kind="Timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return UpstreamFailure(f"{endpoint.where} cannot be reached ({reason})", retryable=True, kind="ConnectError")
    return UpstreamFailure(
        f"{endpoint.where} dropped the connection ({type(exc).__name__})", retryable=True, kind=type(exc).__name__
    )


def _too_large(endpoint: Endpoint, max_bytes: int) -> UpstreamFailure:
    return UpstreamFailure(
        f"{endpoint.where} answered with a body larger than {describe_size(max_bytes)}; check the base URL, or "
        f"raise {MODEL_MAX_RESPONSE_SETTING} if such answers are expected",
        retryable=True,
        kind="ProviderBadResponseError",
    )


__all__ = ["CONNECT_TIMEOUT", "READ_TIMEOUT", "Answer", "Endpoint", "StreamingAnswer", "Upstream", "UpstreamFailure"]

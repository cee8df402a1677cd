"""The HTTP transports under every outbound request: guarded connections and checked model answers.

Both layers are :mod:`httpx2` transports (the HTTP library the OpenAI and Anthropic SDKs are built on)
over public :mod:`httpcore2` parts, so no private attribute of either library is touched:

* :class:`GuardedTransport` / :class:`AsyncGuardedTransport` send requests over a connection pool whose
  network backend (:class:`GuardedBackend` / :class:`AsyncGuardedBackend`) resolves each host itself, checks
  every address with the :class:`~llmconfig.providers.outbound.OutboundPolicy`, and connects only to a
  checked address. A refusal is a :class:`~llmconfig.errors.ProviderBlockedError` raised before any
  connection is made. httpcore's exceptions are mapped to httpx2's, as httpx2's own transport does.
* With ``answers`` (model calls), every answer passes :class:`~llmconfig.providers.answers.AnswerChecks`
  on its way to the SDK: a size cap and a check that a successful answer is JSON.

Validation and discovery use :class:`OutboundClient`, which applies its own limits per request (see
``adapters._fetch_json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import httpcore2
import httpx2

from llmconfig.providers.outbound import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_REDIRECTS,
    IPAddress,
    OutboundPolicy,
    parse_address,
)

if TYPE_CHECKING:
    from llmconfig.providers.answers import AnswerChecks

# httpx2's own defaults, for validation.
DEFAULT_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

# ------------------------------------------------------------------------------------------------ backends


def _unique_addresses(answers: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    """The addresses of getaddrinfo answers, in resolver order, without repeats."""
    addresses: list[IPAddress] = []
    for *_, sockaddr in answers:
        address = parse_address(str(sockaddr[0]))
        if address is not None and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore2.ConnectError("the host name has no address")
    return addresses


class GuardedBackend(httpcore2.SyncBackend):
    """Resolves, checks every address, then connects to a checked address (never re-resolving)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        last_error: Exception | None = None
        for address in self.resolve(host, port):
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as exc:  # try the next address, as socket.create_connection does
                last_error = exc
        raise last_error or httpcore2.ConnectError("the host name has no address")

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The checked addresses of ``host`` in resolver order; ProviderBlockedError if any is blocked."""
        vouched = self.policy.check_name(host)
        literal = parse_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = _unique_addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except (socket.gaierror, UnicodeError) as exc:
                raise httpcore2.ConnectError(f"cannot resolve the host name ({exc})") from None
        if not vouched:
            self.policy.check_addresses(host, addresses)
        return addresses


class AsyncGuardedBackend(httpcore2.AnyIOBackend):
    """The async twin of :class:`GuardedBackend`; the lookup runs in a worker thread, off the event loop."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self.resolve(host, port)
        except TimeoutError:
            raise httpcore2.ConnectTimeout("the host name was not resolved in time") from None
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore2.ConnectError("the host name has no address")

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """As :meth:`GuardedBackend.resolve`."""
        vouched = self.policy.check_name(host)
        literal = parse_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = _unique_addresses(await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except (OSError, UnicodeError) as exc:
                raise httpcore2.ConnectError(f"cannot resolve the host name ({exc})") from None
        if not vouched:
            self.policy.check_addresses(host, addresses)
        return addresses


# ------------------------------------------------------------------------------------------------ transports

# Most specific first: the first match is the one raised.
_MAPPED_ERRORS: tuple[tuple[type[Exception], type[httpx2.TransportError]], ...] = (
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout),
    (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout),
    (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException),
    (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError),
    (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError),
    (httpcore2.ProxyError, httpx2.ProxyError),
    (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError),
    (httpcore2.ProtocolError, httpx2.ProtocolError),
)


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """httpcore2's exceptions as the httpx2 ones callers (and the SDKs) catch; anything else unchanged."""
    try:
        yield
    except Exception as exc:
        for core, mapped in _MAPPED_ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


def _core_request(request: httpx2.Request) -> httpcore2.Request:
    return httpcore2.Request(
        method=request.method,
        url=httpcore2.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


class _Body(httpx2.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _mapped_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _AsyncBody(httpx2.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class GuardedTransport(httpx2.BaseTransport):
    """An httpx2 transport over one keep-alive connection pool whose every connection passes ``policy``.

    With ``answers``, every answer is checked on its way to the caller (see :class:`AnswerChecks`).
    Thread-safe, like the pool under it.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        ssl_context: Any = None,
        answers: AnswerChecks | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> None:
        self._pool = httpcore2.ConnectionPool(
            ssl_context=ssl_context or httpx2.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
            socket_options=socket_options,
        )
        self._answers = answers

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        with _mapped_errors():
            answer = self._pool.handle_request(_core_request(request))
        assert isinstance(answer.stream, Iterable)
        response = httpx2.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream),
            extensions=answer.extensions,
            request=request,
        )
        return response if self._answers is None else self._answers.check(request, response)

    def close(self) -> None:
        self._pool.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AsyncGuardedTransport(httpx2.AsyncBaseTransport):
    """The async twin of :class:`GuardedTransport`.

    A connection belongs to the event loop that opened it, so each running loop gets a pool of its own: a
    client shared by several ``asyncio.run`` calls (or threads with loops of their own) keeps working
    instead of handing out connections of a finished loop. Pools of closed loops are dropped.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        ssl_context: Any = None,
        answers: AnswerChecks | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> None:
        self._backend = AsyncGuardedBackend(policy)
        self._socket_options = socket_options
        self._limits = limits
        self._ssl_context = ssl_context or httpx2.create_ssl_context()
        self._answers = answers
        # Keyed by asyncio loop; None for another event loop library (trio), which gets one shared pool.
        self._pools: dict[asyncio.AbstractEventLoop | None, httpcore2.AsyncConnectionPool] = {}
        self._lock = threading.Lock()

    def _pool(self) -> httpcore2.AsyncConnectionPool:
        loop = _running_loop()
        with self._lock:
            pool = self._pools.get(loop)
            if pool is None:
                for stale in [known for known in self._pools if known is not None and known.is_closed()]:
                    del self._pools[stale]
                pool = self._pools[loop] = httpcore2.AsyncConnectionPool(
                    ssl_context=self._ssl_context,
                    max_connections=self._limits.max_connections,
                    max_keepalive_connections=self._limits.max_keepalive_connections,
                    keepalive_expiry=self._limits.keepalive_expiry,
                    network_backend=self._backend,
                    socket_options=self._socket_options,
                )
        return pool

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        with _mapped_errors():
            answer = await self._pool().handle_async_request(_core_request(request))
        assert isinstance(answer.stream, AsyncIterable)
        response = httpx2.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_AsyncBody(answer.stream),
            extensions=answer.extensions,
            request=request,
        )
        return response if self._answers is None else await self._answers.acheck(request, response)

    async def aclose(self) -> None:
        """Close this loop's pool; those of other loops cannot be closed from here and are forgotten."""
        with self._lock:
            pool = self._pools.pop(_running_loop(), None)
            self._pools.clear()
        if pool is not None:
            await pool.aclose()

    def forget(self) -> None:
        """Drop every pool without awaiting anything (for a synchronous shutdown)."""
        with self._lock:
            self._pools.clear()


# ------------------------------------------------------------------------------------------------ validation


class OutboundClient(httpx2.Client):
    """The httpx2 client for validation and discovery: every connection goes through the policy.

    It also carries the limits that ``adapters._fetch_json`` enforces per request (body size, redirects).
    Redirects are never followed by httpx2 itself: the caller follows them one hop at a time so that it can
    check the scheme and drop credentials when the origin changes. Proxies from the environment are never
    used (``trust_env=False``, and an explicit transport): a proxy would connect out of reach of the check.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        timeout: float,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_redirects: int = MAX_REDIRECTS,
        ssl_context: Any = None,
    ) -> None:
        super().__init__(
            timeout=timeout,
            follow_redirects=False,
            max_redirects=max_redirects,
            trust_env=False,
            transport=GuardedTransport(policy, ssl_context=ssl_context),
        )
        self.policy = policy
        self.max_response_bytes = max_response_bytes


__all__ = [
    "DEFAULT_LIMITS",
    "AsyncGuardedBackend",
    "AsyncGuardedTransport",
    "GuardedBackend",
    "GuardedTransport",
    "OutboundClient",
]
